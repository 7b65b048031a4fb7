"""The super-resolution model: the System 1 MMDiT, conditioned on the low-res video's latent.

The paper upscales its 480p outputs with "a separate super-resolution model of the same
architecture". Here that is an `MMDiT` whose `cond_channels` carry the latent of the low-res video
(bicubic-upscaled by `scale`, then encoded by the same VAE) on the high-res latent grid; the video
branch denoises the high-res latent by flow matching, with the mask channel all zeros (every frame
is generated), the null text (no text tokens) and no audio tokens. Training (`training.py`) and
sampling (`sample_latent`) both call `Upscaler.velocity`, so the conditioning is the same by construction.

Sampling starts at flow time `strength` from the low-res latent noised to that level (SDEdit,
Meng et al. 2022) instead of from pure noise at t = 1. Why: the low-res latent is already most of the
answer (the 2x detail that is missing is small next to noise at t >= 0.5), so the high-noise steps
spent re-deriving layout and colour from the cond channels would be wasted, and an imperfect model
cannot drift far from the input. The 8 default steps then all fall on the part of the path where the
detail is decided. `strength=1` is plain sampling from noise; it works too (training covers all t).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

import torch
from torch import nn

from ..config import ModelConfig
from ..errors import Cancelled, InputError, WeightsError
from ..model import MMDiT, MMDiTConfig
from ..sampling import flow
from ..sampling.solvers import get_solver


def _sr_mmdit(**overrides: Any) -> dict[str, Any]:
    """MMDiT fields of an upscaler: cond channels = latent channels (the low-res latent rides along)."""
    d = dict(overrides)
    d.setdefault("cond_channels", d.get("latent_channels", MMDiTConfig.latent_channels))
    return d


def _demo_mmdit() -> MMDiTConfig:
    return MMDiTConfig.from_dict(PRESETS["sr-demo"]["mmdit"])


@dataclass
class UpscalerConfig(ModelConfig):
    """Super-resolution model: its MMDiT plus the sampling defaults it was trained for. Defaults = `sr-demo`."""

    LABEL: ClassVar[str] = "upscaler"

    mmdit: MMDiTConfig = field(default_factory=_demo_mmdit)
    # Linear upscaling factor in pixels: low-res H x W -> (scale H) x (scale W).
    scale: int = 2
    # Sampling defaults (upscale_video uses them unless overridden): Euler steps, the flow time the
    # low-res latent is noised to before denoising (1 = start from pure noise), time shift.
    steps: int = 8
    strength: float = 0.6
    shift: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.mmdit, Mapping):
            self.mmdit = MMDiTConfig.from_dict(self.mmdit)
        problems = []
        if not isinstance(self.mmdit, MMDiTConfig):
            problems.append(f"mmdit must be an MMDiTConfig or its dict, got {type(self.mmdit).__name__}")
        elif self.mmdit.cond_channels != self.mmdit.latent_channels:
            problems.append(
                f"mmdit.cond_channels ({self.mmdit.cond_channels}) must equal mmdit.latent_channels "
                f"({self.mmdit.latent_channels}): the cond is the low-res latent of the same VAE"
            )
        if isinstance(self.scale, bool) or not isinstance(self.scale, int) or not 2 <= self.scale <= 8:
            problems.append(f"scale must be an integer in 2..8, got {self.scale!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            problems.append(f"steps must be a positive integer, got {self.steps!r}")
        if not _valid_strength(self.strength):
            problems.append(f"strength must be in (0, 1], got {self.strength!r}")
        if not (isinstance(self.shift, (int, float)) and math.isfinite(self.shift) and self.shift > 0):
            problems.append(f"shift must be a positive number, got {self.shift!r}")
        if problems:
            raise InputError("invalid UpscalerConfig: " + "; ".join(problems))

    @property
    def latent_channels(self) -> int:
        return self.mmdit.latent_channels

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["mmdit"] = self.mmdit.to_dict()
        return d


def _valid_strength(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1


# Presets hold only what differs from the dataclass defaults (= sr-demo).
PRESETS: dict[str, dict[str, Any]] = {
    # Unit tests: tiny VAE latents (4 channels), ~0.3 M parameters.
    "sr-tiny": dict(mmdit=_sr_mmdit(latent_channels=4, hidden=64, depth=2, heads=2, text_dim=8, audio_dim=8)),
    # Shipped with the demo (models/demo/upscaler.safetensors): 1.5 M parameters, 3 MB in fp16, next to the
    # 13 M MMDiT, 2.7 M VAE and 1.7 M text encoder inside the 40 MB budget. Half of it is the text and audio
    # branches, which the upscaler never feeds (null text, no audio): "same architecture" as System 1 keeps
    # one model class and one set of kernels; text_dim / audio_dim are set tiny so their embedders cost nothing.
    # A 33-frame 256x256 output tile is 9 x 16 x 16 = 2304 tokens.
    "sr-demo": dict(mmdit=_sr_mmdit(latent_channels=16, hidden=128, depth=2, heads=2, text_dim=8, audio_dim=8)),
}


def sr_sigmas(steps: int, shift: float, strength: float) -> torch.Tensor:
    """`[steps + 1]` float32 times from exactly `strength` to exactly 0, with the density of `flow.sigmas`.

    The shifted grid of `flow.sigmas` restricted to [0, strength]: the unshifted times are spaced evenly
    from the time that shifts to `strength` down to 0. `strength=1` gives `flow.sigmas(steps, shift)`.
    """
    full = flow.sigmas(steps, shift)  # validates steps and shift
    if not _valid_strength(strength):
        raise InputError(f"strength must be in (0, 1] (1 = start from pure noise), got {strength!r}")
    if strength == 1:
        return full
    s = float(shift)
    u0 = strength / (s - (s - 1) * strength)  # inverse of flow.shift_time
    u = torch.linspace(u0, 0.0, steps + 1, dtype=torch.float64)
    grid = flow.shift_time(u, s)
    grid[0] = strength
    return grid.to(torch.float32)


class Upscaler(nn.Module):
    """The super-resolution MMDiT. `velocity(x_t, t, lr)` is the one conditioning used by training and sampling."""

    kind = "upscaler"  # weights-file kind (omnihuman_core.weights)

    def __init__(self, config: UpscalerConfig | None = None, operations=nn, device=None, dtype=None):
        super().__init__()
        self.config = config = config or UpscalerConfig()
        self.mmdit = MMDiT(config.mmdit, operations=operations, device=device, dtype=dtype)

    @classmethod
    def from_config(
        cls, config: UpscalerConfig | Mapping[str, Any] | str, operations=nn, device=None, dtype=None
    ) -> "Upscaler":
        """Build from a config, its `to_dict()` form (a weights file's metadata) or a preset name."""
        if isinstance(config, str):
            config = UpscalerConfig.preset(config)
        elif not isinstance(config, UpscalerConfig):
            config = UpscalerConfig.from_dict(config)
        return cls(config, operations=operations, device=device, dtype=dtype)

    @property
    def latent_channels(self) -> int:
        return self.config.latent_channels

    @property
    def scale(self) -> int:
        return self.config.scale

    @property
    def device(self) -> torch.device:
        return self.mmdit.patch_embed.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.mmdit.patch_embed.weight.dtype

    def velocity(self, x_t: torch.Tensor, t: torch.Tensor | float, lr: torch.Tensor) -> torch.Tensor:
        """Flow velocity `[B, C, t, h, w]` (float32) of the high-res latent `x_t` at time `t`, given the low-res `lr`.

        `lr` is the VAE latent of the low-res video upscaled `scale`x (bicubic), on the same grid as `x_t`.
        Mask channel 0 everywhere, no text tokens (the null text: identical to a fully masked one), no audio.
        Gradients follow the caller's grad mode.
        """
        c = self.config.mmdit
        if x_t.dim() != 5 or x_t.shape[1] != c.latent_channels:
            raise InputError(f"x_t must be [B, {c.latent_channels}, t, h, w], got {tuple(x_t.shape)}")
        if tuple(lr.shape) != tuple(x_t.shape):
            raise InputError(
                f"the low-res latent must have the shape of the high-res latent {tuple(x_t.shape)}, "
                f"got {tuple(lr.shape)}"
            )
        B, _, T, H, W = x_t.shape
        device, dtype = self.device, self.dtype
        x = x_t.to(device=device, dtype=dtype)
        x = torch.cat([x, x.new_zeros(B, 1, T, H, W)], dim=1)
        timestep = torch.as_tensor(t, dtype=torch.float32, device=device).reshape(-1).expand(B)
        text = x.new_zeros(B, 0, c.text_dim)
        positions = torch.arange(T, dtype=torch.float32, device=device)
        v = self.mmdit(x, timestep, text, None, frame_positions=positions, cond=lr.to(device=device, dtype=dtype))
        return v.float()

    forward = velocity


# callback(step, total_steps): step counts finished steps (1..total).
StepCallback = Callable[[int, int], None]


@torch.no_grad()
def sample_latent(
    upscaler: Upscaler,
    lr: torch.Tensor,
    noise: torch.Tensor,
    *,
    steps: int | None = None,
    strength: float | None = None,
    shift: float | None = None,
    callback: StepCallback | None = None,
    cancel: Callable[[], bool] | None = None,
) -> torch.Tensor:
    """The high-res latent (float32, on the upscaler's device) for the low-res latent `lr` and a `noise` like it.

    Euler steps from `strength` (the low-res latent noised to that flow time) to 0. None = the upscaler
    config's defaults. `cancel()` True raises Cancelled before the next step.
    """
    cfg = upscaler.config
    steps = cfg.steps if steps is None else steps
    strength = cfg.strength if strength is None else strength
    shift = cfg.shift if shift is None else shift
    sig = sr_sigmas(steps, shift, strength)
    if tuple(noise.shape) != tuple(lr.shape):
        raise InputError(f"noise must have the shape of the low-res latent {tuple(lr.shape)}, got {tuple(noise.shape)}")
    device = upscaler.device
    lr = lr.to(device=device, dtype=torch.float32)
    x = flow.noised(lr, noise.to(device=device, dtype=torch.float32), float(sig[0]))
    solver = get_solver("euler")
    total = len(sig) - 1
    for i in range(total):
        if cancel is not None and cancel():
            raise Cancelled(f"upscaling cancelled at step {i + 1} of {total}")
        x, _ = solver.step(lambda x_t, s: upscaler.velocity(x_t, s, lr), x, float(sig[i]), float(sig[i + 1]))
        if callback is not None:
            callback(i + 1, total)
    return x


# ---- weights --------------------------------------------------------------------------------------------
def save_upscaler(path, upscaler: Upscaler, extra: Mapping[str, object] | None = None):
    """Write the upscaler's weights and config (kind "upscaler") to one safetensors file."""
    from ..weights import save_safetensors

    return save_safetensors(path, upscaler.state_dict(), Upscaler.kind, upscaler.config.to_dict(), extra=extra)


def read_upscaler(path) -> tuple[dict, UpscalerConfig]:
    """(state dict, config) of an upscaler file, checked to be one (kind and config); for custom builders."""
    from ..weights import load_safetensors

    state, config = load_safetensors(path, Upscaler.kind)
    if not config:
        raise WeightsError(f"{path} has no upscaler config in its metadata; it was not written by save_upscaler")
    try:
        return state, UpscalerConfig.from_dict(config)
    except InputError as e:
        raise WeightsError(f"{path}: {e}") from e


def load_upscaler(path, device=None, dtype=None) -> Upscaler:
    """The upscaler saved at `path` (kind "upscaler"), in eval mode, on `device` in `dtype` (default CPU, fp32)."""
    from ..weights import load_into

    state, cfg = read_upscaler(path)
    upscaler = Upscaler(cfg, device=device, dtype=dtype)
    load_into(upscaler, state, path)
    return upscaler.eval()
