"""Upscale a whole video tile by tile: overlapping tiles in time and space, blended with smooth windows.

Each tile runs the full pipeline on its own (bicubic `scale`x, VAE encode, SR denoise, VAE decode), so
memory is bounded by the tile size, not the video. Tiles overlap; in every overlap the two tiles are
cross-faded with raised-cosine windows normalised to sum to exactly 1 at every output pixel and frame.

Alignment that keeps overlapping tiles consistent (and so the seams invisible):
- time: tiles are `1 + 4k` frames (the causal VAE's grid) and start on multiples of the VAE's temporal
  factor, so the latent frames of overlapping tiles cover the same video frames;
- space: tile origins sit on whole latent patches;
- noise: one noise tensor for the whole (padded) video's high-res latent, seeded once; each tile takes its
  slice. Overlapping tiles start from the same noise where they overlap, and the result does not depend
  on the order the tiles are processed in (nor on which tiles exist around it);
- bicubic: each tile is upscaled with 2 px of real neighbouring context and cropped, so its upscaled
  pixels equal those of the whole frame's upscale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import Cancelled, InputError
from ..sampling.denoise import make_noise
from .model import Upscaler, sample_latent, sr_sigmas

# Pixels of context on each side that PyTorch's bicubic kernel (4 taps) reads for any upscale factor.
BICUBIC_CONTEXT = 2

ProgressFn = Callable[[int, int], None]


# ---- tile layout -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Axis:
    """Tiles along one axis: `spans` `(start, end)` in input units and blend `weights` in output units.

    `weights[i]` is float32 `[scale * (end - start)]`; at every output position the weights of the tiles
    covering it sum to 1.
    """

    spans: tuple[tuple[int, int], ...]
    weights: tuple[torch.Tensor, ...]
    scale: int = 1


def _ramp(n: int) -> torch.Tensor:
    """Raised-cosine ramp 0 -> 1 over n samples, sampled at cell centres (never exactly 0 or 1)."""
    k = torch.arange(n, dtype=torch.float64)
    return torch.sin(0.5 * math.pi * (k + 0.5) / n) ** 2


def axis_tiles(length: int, tile: int, step: int, scale: int = 1) -> Axis:
    """Tiles of `tile` units every `step` units covering `[0, length)`; the last tile ends at `length`.

    `tile <= 0` or `tile >= length` gives one tile over everything. The windows ramp over each overlap
    with a neighbour (a rising ramp and the falling one of the neighbour sum to 1) and are then
    normalised by their sum, which also covers a last tile overlapping more than `tile - step`.
    """
    if tile <= 0 or tile >= length:
        spans = [(0, length)]
    else:
        if step < 1:
            raise InputError(f"tile step must be >= 1, got {step}")
        spans = [(s, s + tile) for s in range(0, length - tile, step)] + [(length - tile, length)]
    out_len = scale * length
    windows, total = [], torch.zeros(out_len, dtype=torch.float64)
    for i, (a, b) in enumerate(spans):
        w = torch.ones(scale * (b - a), dtype=torch.float64)
        if i > 0:
            n = scale * (spans[i - 1][1] - a)
            if n > 0:
                w[:n] = _ramp(n)
        if i < len(spans) - 1:
            n = scale * (b - spans[i + 1][0])
            if n > 0:
                w[-n:] = w[-n:] * _ramp(n).flip(0)
        windows.append(w)
        total[scale * a : scale * b] += w
    weights = tuple((w / total[scale * a : scale * b]).to(torch.float32) for w, (a, b) in zip(windows, spans))
    return Axis(tuple(spans), weights, scale)


@dataclass(frozen=True)
class TilePlan:
    """Geometry of one upscale: the padded input, and the tiles in time (frames) and space (low-res px)."""

    frames: int
    height: int
    width: int
    padded: tuple[int, int, int]  # (T, H, W) after padding to the VAE / patch grid
    scale: int
    time: Axis  # output weights per frame (scale 1)
    y: Axis  # output weights per high-res row
    x: Axis

    @property
    def n_tiles(self) -> int:
        return len(self.time.spans) * len(self.y.spans) * len(self.x.spans)


def _int_arg(name: str, value, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def spatial_multiple(upscaler: Upscaler, vae) -> int:
    """Low-res sizes (and tile sizes) must be multiples of this: one latent patch of the high-res latent."""
    _, ph, pw = upscaler.config.mmdit.patch_size
    high = int(vae.spatial_factor) * math.lcm(ph, pw)  # high-res px of one patch
    return high // math.gcd(high, upscaler.scale)


def plan_tiles(
    upscaler: Upscaler,
    vae,
    frames: int,
    height: int,
    width: int,
    *,
    tile_frames: int = 33,
    tile_overlap_frames: int = 8,
    tile_size: int = 128,
    tile_overlap: int = 16,
) -> TilePlan:
    """Validate the tile settings and lay out the tiles (see `upscale_video` for their meaning)."""
    for name, value in (("frames", frames), ("height", height), ("width", width)):
        _int_arg(name, value, 1)
    tf = int(vae.temporal_factor)
    tile_frames = _int_arg("tile_frames", tile_frames)
    tile_overlap_frames = _int_arg("tile_overlap_frames", tile_overlap_frames)
    tile_size = _int_arg("tile_size", tile_size)
    tile_overlap = _int_arg("tile_overlap", tile_overlap)
    if tile_frames and (tile_frames < 1 + tf or (tile_frames - 1) % tf):
        lower = 1 + max(1, (tile_frames - 1) // tf) * tf
        options = sorted({lower, lower + tf} if lower < tile_frames else {lower})
        raise InputError(
            f"tile_frames must be 1 + {tf}k frames with k >= 1 (the VAE's grid: {1 + tf}, {1 + 2 * tf}, "
            f"{1 + 8 * tf}, ...) or 0 for the whole clip; got {tile_frames}, try {' or '.join(map(str, options))}"
        )
    # Overlaps snap down to the grid that keeps the latents of neighbouring tiles aligned.
    overlap_t = (tile_overlap_frames // tf) * tf
    if tile_frames and overlap_t >= tile_frames - 1:
        raise InputError(
            f"tile_overlap_frames ({tile_overlap_frames}) must be smaller than tile_frames - {tf} "
            f"({tile_frames - tf}) so that the tiles advance"
        )
    m = spatial_multiple(upscaler, vae)
    if tile_size and tile_size % m:
        lower = max(m, (tile_size // m) * m)
        raise InputError(
            f"tile_size must be a multiple of {m} low-res pixels (one latent patch after {upscaler.scale}x) or 0 "
            f"for whole frames; got {tile_size}, try {lower} or {lower + m}"
        )
    overlap_s = (tile_overlap // m) * m
    if tile_size and overlap_s >= tile_size:
        raise InputError(f"tile_overlap ({tile_overlap}) must be smaller than tile_size ({tile_size})")

    T = 1 + math.ceil((frames - 1) / tf) * tf
    H, W = math.ceil(height / m) * m, math.ceil(width / m) * m
    s = upscaler.scale
    return TilePlan(
        frames=frames,
        height=height,
        width=width,
        padded=(T, H, W),
        scale=s,
        # A time step of (tile_frames - 1 - overlap): the next tile's single first frame lands on the last
        # frame of one of this tile's latent frames, so tiles share whole latent frames.
        time=axis_tiles(T, tile_frames, tile_frames - 1 - overlap_t),
        y=axis_tiles(H, tile_size, tile_size - overlap_s, s),
        x=axis_tiles(W, tile_size, tile_size - overlap_s, s),
    )


# ---- one tile --------------------------------------------------------------------------------------------
def bicubic_upscale(video: torch.Tensor, scale: int, box: tuple[int, int, int, int] | None = None) -> torch.Tensor:
    """`[3, T, H, W]` -> `[3, T, scale*h, scale*w]` bicubic, clamped to -1..1, of the crop `box` (y0, y1, x0, x1).

    The crop is upscaled with up to `BICUBIC_CONTEXT` px of its surroundings and cut back, so the result
    equals the same region of the whole frame's upscale.
    """
    _, T, H, W = video.shape
    y0, y1, x0, x1 = box if box is not None else (0, H, 0, W)
    cy0, cy1 = max(0, y0 - BICUBIC_CONTEXT), min(H, y1 + BICUBIC_CONTEXT)
    cx0, cx1 = max(0, x0 - BICUBIC_CONTEXT), min(W, x1 + BICUBIC_CONTEXT)
    crop = video[:, :, cy0:cy1, cx0:cx1].transpose(0, 1)  # frames as the batch: [T, 3, h, w]
    up = F.interpolate(crop.float(), scale_factor=scale, mode="bicubic", align_corners=False)
    oy, ox = scale * (y0 - cy0), scale * (x0 - cx0)
    up = up[:, :, oy : oy + scale * (y1 - y0), ox : ox + scale * (x1 - x0)]
    return up.clamp(-1.0, 1.0).transpose(0, 1)


def _check_models(upscaler, vae) -> None:
    if not isinstance(upscaler, Upscaler):
        raise InputError(f"upscaler must be an omnihuman_core Upscaler (load_upscaler), got {type(upscaler).__name__}")
    for attr in ("latent_channels", "temporal_factor", "spatial_factor", "encode", "decode"):
        if not hasattr(vae, attr):
            raise InputError(f"vae must be a VideoVAE (omnihuman_core.vae); {type(vae).__name__} has no {attr!r}")
    if int(vae.latent_channels) != upscaler.latent_channels:
        raise InputError(
            f"the upscaler works on {upscaler.latent_channels}-channel latents but the VAE has "
            f"{vae.latent_channels}; use the VAE the upscaler was trained with"
        )


def _check_video(video) -> None:
    if not isinstance(video, torch.Tensor) or video.dim() != 4 or video.shape[0] != 3:
        shape = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__
        raise InputError(
            f"video must be a tensor [3, T, H, W] in -1..1 (RGB channels first; a ComfyUI IMAGE [T, H, W, 3] in "
            f"0..1 becomes image.permute(3, 0, 1, 2) * 2 - 1), got {shape}"
        )
    if min(video.shape[1:]) < 1:
        raise InputError(f"video has no frames or no pixels: shape {tuple(video.shape)}")
    if not video.is_floating_point():
        raise InputError(f"video must be a float tensor in -1..1, got {video.dtype}")
    if not bool(torch.isfinite(video).all()):
        raise InputError("video holds NaN or infinite values")


def upscale_video(
    upscaler: Upscaler,
    vae,
    video: torch.Tensor,
    *,
    steps: int | None = None,
    seed: int = 0,
    tile_frames: int = 33,
    tile_overlap_frames: int = 8,
    tile_size: int = 128,
    tile_overlap: int = 16,
    strength: float | None = None,
    shift: float | None = None,
    progress: ProgressFn | None = None,
    cancel: Callable[[], bool] | None = None,
) -> torch.Tensor:
    """Upscale `video` `[3, T, H, W]` (-1..1) by `upscaler.scale` -> `[3, T, scale*H, scale*W]` float32 in -1..1.

    Any T >= 1 and any H, W >= 1 work: the clip is padded (last frame and edge pixels repeated) to
    `1 + 4k` frames and to multiples of `spatial_multiple(upscaler, vae)` (8 px for the demo: one latent
    patch after 2x), upscaled, and cropped back to exactly T frames of scale*H x scale*W.

    Tiles: `tile_frames` frames (`1 + 4k`, 0 = the whole clip) overlapping by `tile_overlap_frames`
    (rounded down to a multiple of the VAE's temporal factor 4; neighbours then share that many frames
    + 1), `tile_size` x `tile_size` low-res px (a multiple of the spatial multiple, 0 = whole frames)
    overlapping by `tile_overlap` px (rounded down to that multiple). Overlaps are cross-faded (module docstring).
    `steps`, `strength`, `shift` None = the upscaler's own defaults (`UpscalerConfig`). The result depends
    only on the inputs and `seed`. `progress(done, total)` counts per tile an encode, each denoise step and
    a decode; `cancel()` True raises Cancelled. The result is on `video`'s device.
    """
    _check_models(upscaler, vae)
    _check_video(video)
    cfg = upscaler.config
    steps = cfg.steps if steps is None else steps
    strength = cfg.strength if strength is None else strength
    shift = cfg.shift if shift is None else shift
    sr_sigmas(steps, shift, strength)  # validates all three before any work
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"seed must be an integer, got {seed!r}")
    _, frames, height, width = video.shape
    plan = plan_tiles(
        upscaler, vae, frames, height, width, tile_frames=tile_frames, tile_overlap_frames=tile_overlap_frames,
        tile_size=tile_size, tile_overlap=tile_overlap,
    )
    T, H, W = plan.padded
    s, tf, sf = plan.scale, int(vae.temporal_factor), int(vae.spatial_factor)

    low = video.detach().to(device="cpu", dtype=torch.float32).clamp(-1.0, 1.0)
    # Replicate-pad time and the bottom / right edges; [3, T, H, W] is read as a batch of one 3D volume.
    low = F.pad(low[None], (0, W - width, 0, H - height, 0, T - frames), mode="replicate")[0]
    latent_shape = (upscaler.latent_channels, 1 + (T - 1) // tf, s * H // sf, s * W // sf)
    noise = make_noise(latent_shape, seed=seed % 2**64)

    out = torch.zeros(3, frames, s * height, s * width, dtype=torch.float32, device=video.device)
    per_tile = steps + 2
    total, done = plan.n_tiles * per_tile, 0

    def report(n: int = 1) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    def check_cancel() -> None:
        if cancel is not None and cancel():
            raise Cancelled(f"upscaling cancelled after {done // per_tile} of {plan.n_tiles} tiles")

    for (t0, t1), wt in zip(plan.time.spans, plan.time.weights):
        for (y0, y1), wy in zip(plan.y.spans, plan.y.weights):
            for (x0, x1), wx in zip(plan.x.spans, plan.x.weights):
                check_cancel()
                # The part of the tile inside the un-padded output (every tile reaches into it: padding is
                # less than one tile).
                te, ye, xe = min(t1, frames), min(s * y1, s * height), min(s * x1, s * width)
                with torch.no_grad():
                    up = bicubic_upscale(low[:, t0:t1], s, (y0, y1, x0, x1))
                    lr = vae.encode(up[None]).float()
                    report()
                    tile_noise = noise[
                        None, :, t0 // tf : t0 // tf + lr.shape[2],
                        s * y0 // sf : s * y1 // sf, s * x0 // sf : s * x1 // sf,
                    ]
                    hr = sample_latent(
                        upscaler, lr, tile_noise, steps=steps, strength=strength, shift=shift,
                        callback=lambda i, n: report(), cancel=cancel,
                    )
                    tile = vae.decode(hr)[0, :, : te - t0, : ye - s * y0, : xe - s * x0]
                w = wt[: te - t0, None, None] * wy[None, : ye - s * y0, None] * wx[None, None, : xe - s * x0]
                out[:, t0:te, s * y0 : ye, s * x0 : xe] += tile.to(device=out.device, dtype=torch.float32) * w.to(
                    out.device
                )
                report()
    return out.clamp_(-1.0, 1.0)


__all__ = [
    "Axis",
    "TilePlan",
    "axis_tiles",
    "bicubic_upscale",
    "plan_tiles",
    "spatial_multiple",
    "upscale_video",
]
