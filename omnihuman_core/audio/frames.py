"""Align audio features to video frames, then pack them per latent frame (the AudioBranch's tokens).

Pipeline: encoder features at 50 Hz -> one feature per video frame (linear interpolation in time)
-> a centred window of neighbouring frames per frame (mouth shapes anticipate and trail the sound)
-> grouped by latent frame of the causal 4x VAE.
"""

from __future__ import annotations

import math

import torch

from ..errors import InputError

DEFAULT_WINDOW = 5  # video frames of audio context per frame (open models use about 5-8)
TEMPORAL_FACTOR = 4  # video frames per latent frame after the first (causal 4x VAE)


def _check_features(features, feature_rate, fps) -> None:
    if not isinstance(features, torch.Tensor) or features.dim() != 2 or features.shape[0] == 0:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise InputError(f"audio features must be a tensor [N_feat > 0, dim], got {shape}")
    if not feature_rate > 0 or not math.isfinite(feature_rate):
        raise InputError(f"feature_rate must be a positive number of Hz, got {feature_rate!r}")
    if not fps > 0 or not math.isfinite(fps):
        raise InputError(f"fps must be a positive number, got {fps!r}")


def _check_count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _per_frame(features: torch.Tensor, feature_rate: float, fps: float, frames: torch.Tensor) -> torch.Tensor:
    """Feature at each video frame's time `k / fps` by linear interpolation; clamped at both ends."""
    pos = (frames.to(torch.float64) * (feature_rate / fps)).clamp(0, features.shape[0] - 1)
    i0 = pos.floor().long()
    i1 = (i0 + 1).clamp(max=features.shape[0] - 1)
    w = (pos - i0).to(features.device, torch.float32).unsqueeze(1)
    i0, i1 = i0.to(features.device), i1.to(features.device)
    f = features.float()
    return (f[i0] * (1 - w) + f[i1] * w).to(features.dtype)


def _offsets(window: int, device) -> torch.Tensor:
    # Centred: window 5 -> -2..2; an even window 8 -> -4..3 (one more frame of the past).
    return torch.arange(window, device=device) - window // 2


def frame_features(
    features: torch.Tensor, feature_rate: float, fps: float, n_frames: int, window: int = DEFAULT_WINDOW
) -> torch.Tensor:
    """`[N_feat, D]` at `feature_rate` -> `[n_frames, window, D]`: per video frame, a centred window.

    Features are resampled to `fps` by linear interpolation; windows are edge-padded (frames before
    0 / after `n_frames - 1` repeat the first / last frame).
    """
    _check_features(features, feature_rate, fps)
    n_frames = _check_count("n_frames", n_frames, 1)
    window = _check_count("window", window, 1)
    per = _per_frame(features, feature_rate, fps, torch.arange(n_frames))
    idx = (torch.arange(n_frames, device=features.device)[:, None] + _offsets(window, features.device)).clamp(0, n_frames - 1)
    return per[idx]


def segment_frame_features(
    features: torch.Tensor,
    feature_rate: float,
    fps: float,
    start: int,
    n_frames: int,
    window: int = DEFAULT_WINDOW,
    audio_seconds: float | None = None,
) -> torch.Tensor:
    """Windows for video frames `[start, start + n_frames)` of a longer audio: `[n_frames, window, D]`.

    Equals `frame_features(features, ..., n_audio_frames)[start:start + n_frames]` for frames that
    have audio (windows see neighbours across the segment boundary, edge-padded only at the audio's
    ends); frames at or past the audio's end are all zeros, the null audio condition.
    `audio_seconds` defaults to the time of the last feature.
    """
    _check_features(features, feature_rate, fps)
    start = _check_count("start", start, 0)
    n_frames = _check_count("n_frames", n_frames, 1)
    window = _check_count("window", window, 1)
    if audio_seconds is None:
        audio_seconds = (features.shape[0] - 1) / feature_rate
    # Frames whose timestamp k / fps lies inside the audio (a 1 s clip at 24 fps has frames 0..23).
    n_audio = max(1, math.ceil(audio_seconds * fps - 1e-6))
    dev = features.device
    frames = torch.arange(start, start + n_frames, device=dev)
    idx = (frames[:, None] + _offsets(window, dev)).clamp(0, n_audio - 1)
    lo = int(idx.min())
    per = _per_frame(features, feature_rate, fps, torch.arange(lo, int(idx.max()) + 1))
    out = per[idx - lo]
    past = frames >= n_audio
    if past.any():
        out[past] = 0
    return out


def pack_latent_frames(per_frame: torch.Tensor, temporal_factor: int = TEMPORAL_FACTOR) -> torch.Tensor:
    """`[T, W, D]` (or `[B, T, W, D]`) -> `[t, 4, W*D]` (or `[B, t, 4, W*D]`) with `t = 1 + (T-1)/4`.

    Latent frame j > 0 holds video frames 4j-3..4j, one token each. The causal VAE's first latent
    frame holds only frame 0, so frame 0 is repeated 4 times: every latent frame then carries the
    same number of audio tokens, keeping the audio a dense tensor with one RoPE time per latent frame.
    """
    if not isinstance(per_frame, torch.Tensor) or per_frame.dim() not in (3, 4):
        shape = tuple(per_frame.shape) if isinstance(per_frame, torch.Tensor) else type(per_frame).__name__
        raise InputError(f"pack_latent_frames needs per-frame features [T, window, dim], got {shape}")
    tf = _check_count("temporal_factor", temporal_factor, 1)
    batched = per_frame.dim() == 4
    x = per_frame if batched else per_frame.unsqueeze(0)
    b, T, W, D = x.shape
    if (T - 1) % tf:
        lower = 1 + (T - 1) // tf * tf
        raise InputError(
            f"{T} video frames cannot be packed into latent frames: the count must be 1 + {tf}k "
            f"(nearest: {lower} or {lower + tf})"
        )
    flat = x.reshape(b, T, W * D)
    first = flat[:, :1].expand(b, tf, W * D).unsqueeze(1)
    rest = flat[:, 1:].reshape(b, (T - 1) // tf, tf, W * D)
    out = torch.cat([first, rest], dim=1)
    return out if batched else out[0]


def audio_tokens_for_segment(
    features: torch.Tensor,
    feature_rate: float,
    fps: float,
    start: int,
    n_frames: int,
    window: int = DEFAULT_WINDOW,
    temporal_factor: int = TEMPORAL_FACTOR,
    audio_seconds: float | None = None,
) -> torch.Tensor:
    """AudioBranch tokens `[t, 4, window*D]` for video frames `[start, start + n_frames)`.

    For the SegmentChainer, whose audio offset advances per segment; `n_frames` must be 1 + 4k.
    Frames past the end of the audio get zeros (null audio).
    """
    tf = _check_count("temporal_factor", temporal_factor, 1)
    if isinstance(n_frames, int) and n_frames >= 1 and (n_frames - 1) % tf:
        lower = 1 + (n_frames - 1) // tf * tf
        raise InputError(f"segment of {n_frames} frames: the count must be 1 + {tf}k (nearest: {lower} or {lower + tf})")
    per = segment_frame_features(features, feature_rate, fps, start, n_frames, window, audio_seconds)
    return pack_latent_frames(per, temporal_factor)
