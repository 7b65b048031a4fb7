"""The pack's socket types, what travels through them, and the conversions between ComfyUI's types and
the library's (the only place they are converted).

ComfyUI IMAGE `[T, H, W, 3]` float 0..1  <->  core video `[3, T, H, W]` float -1..1.
ComfyUI AUDIO `{"waveform": [B, C, N], "sample_rate": int}`  ->  core `Audio` (mono 16 kHz).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from omnihuman_core.errors import InputError

from . import _comfy

# Socket types (custom ones carry the pack's prefix).
MODEL = "OMNIHUMAN_MODEL"
UPSCALER = "OMNIHUMAN_UPSCALER"
AUDIO_FEATURES = "OMNIHUMAN_AUDIO"
LLM = "OMNIHUMAN_LLM"
ANALYSIS = "OMNIHUMAN_ANALYSIS"
SCHEDULE = "OMNIHUMAN_SCHEDULE"
REFLECTION = "OMNIHUMAN_REFLECTION"
SCHEDULE_EDITOR_WIDGET = "OMNIHUMAN_SCHEDULE_EDITOR"  # a widget type, never a socket type (docs/WIDGET.md)

CATEGORY = "OmniHuman"


def category(sub: str) -> str:
    return f"{CATEGORY}/{sub}"


# ---- what travels through the sockets -----------------------------------------------------------------
@dataclass
class OmniHumanModel:
    """OMNIHUMAN_MODEL: System 1's components, managed by ComfyUI, plus how the model renders."""

    mmdit: Any  # callable with the MMDiT's forward signature and its `.config`
    vae: Any  # VideoVAE interface
    text_encoder: Any  # TextEncoder interface
    settings: Any  # RenderSettings: the model file's native render settings
    device: torch.device  # where sampling runs
    dtype: torch.dtype  # the MMDiT's compute dtype
    identity: dict[str, str]  # resume identity of each component (file fingerprints)

    @property
    def config(self):
        return self.mmdit.config

    def spatial_multiple(self) -> int:
        """Output sides are multiples of this: VAE spatial factor x the MMDiT's spatial patch."""
        import math

        _, ph, pw = self.config.patch_size
        return int(self.vae.spatial_factor) * math.lcm(int(ph), int(pw))


@dataclass
class AudioFeatures:
    """OMNIHUMAN_AUDIO: the audio's per-video-frame features for one model, plus the audio itself."""

    frames: torch.Tensor  # [n_frames, window, D] float32 CPU: audio windows aligned to the video frames
    fps: float
    window: int
    audio: Any  # core Audio (mono 16 kHz)
    source: dict  # the ComfyUI AUDIO it came from (returned, trimmed, with the video)
    encoder: str  # which encoder made the features (for messages)
    digest: str = ""  # hash of `frames` (identity for resume)

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def duration(self) -> float:
        return float(self.audio.duration)


@dataclass
class AnalysisResult:
    """OMNIHUMAN_ANALYSIS: the System 2 inputs (image, audio facts, prompt...) and the Analyzer's output
    (None when no LLM was connected: the offline planner reasons from the inputs alone)."""

    inputs: Any  # agents.PlanInputs
    analysis: Any | None  # agents.Analysis
    llm_model: str | None = None


@dataclass
class ReflectionSettings:
    """OMNIHUMAN_REFLECTION: how the Segment Chainer re-plans after each segment (None llm = off)."""

    llm: Any | None  # agents.LLMConfig
    frames_to_send: int = 2
    on_error: str = "keep"


# ---- conversions ---------------------------------------------------------------------------------------
def _check_image(images, what: str) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[-1] not in (3, 4) or images.shape[0] < 1:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise InputError(f"{what} must be a ComfyUI IMAGE [frames, height, width, 3], got {shape}")
    return images[..., :3]


def image_to_pil(images, what: str = "image"):
    """The first picture of an IMAGE batch as PIL RGB."""
    from omnihuman_core.media import image_from_array

    images = _check_image(images, what)
    return image_from_array(images[0].detach().cpu().float().clamp(0, 1).numpy())


def image_to_video(images, what: str = "images") -> torch.Tensor:
    """IMAGE `[T, H, W, 3]` 0..1 -> core video `[3, T, H, W]` float32 -1..1 (CPU)."""
    images = _check_image(images, what)
    return (images.detach().to("cpu", torch.float32).clamp(0, 1) * 2 - 1).permute(3, 0, 1, 2).contiguous()


def video_to_image(video: torch.Tensor) -> torch.Tensor:
    """Core video `[3, T, H, W]` -1..1 -> IMAGE `[T, H, W, 3]` 0..1 on ComfyUI's intermediate device."""
    out = ((video.detach().float().clamp(-1, 1) + 1) / 2).permute(1, 2, 3, 0).contiguous()
    return out.to(_comfy.intermediate_device())


def uint8_into_image(out: torch.Tensor, start: int, frames: np.ndarray) -> None:
    """Write uint8 frames `[n, H, W, 3]` into a preallocated IMAGE at `start`."""
    chunk = torch.from_numpy(np.ascontiguousarray(frames)).to(out.device, torch.float32).div_(255.0)
    out[start:start + chunk.shape[0]] = chunk


def audio_to_core(audio, what: str = "audio"):
    """ComfyUI AUDIO -> core `Audio` (mono 16 kHz, with the library's checks: length, silence, damage)."""
    from omnihuman_core.audio import audio_from_array

    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise InputError(f"{what} must be ComfyUI AUDIO (from Load Audio), got {type(audio).__name__}")
    waveform = audio["waveform"]
    if isinstance(waveform, torch.Tensor) and waveform.dim() == 3 and waveform.shape[0] > 1:
        waveform = waveform[:1]  # a batch of clips: the first one, as for images
    return audio_from_array(waveform, audio["sample_rate"])


def audio_for_video(audio: dict, n_frames: int, fps: float) -> dict:
    """The AUDIO cut or zero-padded to exactly the video's length (n_frames / fps), first clip only."""
    waveform = audio["waveform"]
    rate = int(audio["sample_rate"])
    if waveform.dim() == 2:
        waveform = waveform.unsqueeze(0)
    waveform = waveform[:1]
    n = int(round(n_frames / fps * rate))
    if waveform.shape[-1] >= n:
        waveform = waveform[..., :n]
    else:
        waveform = torch.nn.functional.pad(waveform, (0, n - waveform.shape[-1]))
    return {"waveform": waveform.contiguous(), "sample_rate": rate}


def tensor_digest(t: torch.Tensor) -> str:
    """sha256 of a tensor's values (identity of features and images for resume)."""
    a = t.detach().to("cpu").contiguous()
    h = hashlib.sha256(f"{a.dtype}{tuple(a.shape)}".encode())
    h.update(a.view(torch.uint8).numpy().tobytes() if a.numel() else b"")
    return h.hexdigest()


def uint8_to_pil(frame: np.ndarray):
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(frame))
