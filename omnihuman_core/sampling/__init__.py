"""System 1 sampling: flow-matching time grid, solvers, two-scale guidance, segment conditioning
(motion frames, pseudo last frame) and the denoise loop."""

from .conditioning import DEFAULT_DELTA, REFERENCE_MODES, SegmentConditions
from .denoise import make_noise, noise_motion_latents, sample_segment
from .flow import DEFAULT_SHIFT, DEFAULT_STEPS, noised, shift_time, sigmas, velocity_target, x0_estimate
from .guidance import ANNEAL_MODES, PASSES, Guidance
from .solvers import SOLVERS, Euler, Heun, Solver, get_solver

__all__ = [
    "ANNEAL_MODES", "DEFAULT_DELTA", "DEFAULT_SHIFT", "DEFAULT_STEPS", "PASSES", "REFERENCE_MODES",
    "SOLVERS", "Euler", "Guidance", "Heun", "SegmentConditions", "Solver", "get_solver", "make_noise",
    "noise_motion_latents", "noised", "sample_segment", "shift_time", "sigmas", "velocity_target", "x0_estimate",
]
