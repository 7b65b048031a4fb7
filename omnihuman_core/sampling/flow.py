"""Flow matching in latent space: the path, the velocity target and the sampling time grid.

Convention (Wan, HunyuanVideo, SD3): `x_t = (1 - t) * x0 + t * noise`, t = 1 is pure noise, and the
model predicts the velocity `v = dx_t/dt = noise - x0`. Sampling integrates from t = 1 down to 0.
"""

from __future__ import annotations

import math

import torch

from ..errors import InputError

DEFAULT_STEPS = 40  # open video models sample with 40-50 steps at 480p
DEFAULT_SHIFT = 5.0  # open video models use 3-7 at 480p; larger = more time spent at high noise


def _check_steps_shift(steps, shift) -> tuple[int, float]:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise InputError(f"steps must be a positive integer (e.g. {DEFAULT_STEPS}), got {steps!r}")
    try:
        s = float(shift)
    except (TypeError, ValueError):
        s = float("nan")
    if not math.isfinite(s) or s <= 0:
        raise InputError(f"shift must be a positive number (1 = no shift; 3-7 is usual at 480p), got {shift!r}")
    return steps, s


def shift_time(t: torch.Tensor, shift: float) -> torch.Tensor:
    """Resolution shift `s*t / (1 + (s-1)*t)`: keeps 0 and 1 fixed, moves the middle towards noise for s > 1."""
    return shift * t / (1 + (shift - 1) * t)


def sigmas(steps: int, shift: float = DEFAULT_SHIFT) -> torch.Tensor:
    """The `[steps + 1]` float32 time grid from exactly 1 down to exactly 0, shifted by `shift`."""
    steps, shift = _check_steps_shift(steps, shift)
    # float64 then cast, so the grid is the same on every device and the end points are exact.
    t = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    return shift_time(t, shift).to(torch.float32)


def noised(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Point of the path at time t: `(1 - t) * x0 + t * noise` (t broadcasts per sample)."""
    return (1 - t) * x0 + t * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """What the model learns to predict: `noise - x0`."""
    return noise - x0


def x0_estimate(x_t: torch.Tensor, velocity: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Clean sample implied by a velocity at time t (`x_t - t * v`); used for previews."""
    return x_t - t * velocity
