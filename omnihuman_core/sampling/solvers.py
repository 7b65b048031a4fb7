"""ODE solvers for the flow-matching sampler, one interface, chosen by name.

A solver advances `x` from time `sigma` to `sigma_next` given `velocity(x, sigma)`. It returns the
new state and the velocity it evaluated at the start (the sampler turns that into the preview).
"""

from __future__ import annotations

from typing import Callable

import torch

from ..errors import InputError

VelocityFn = Callable[[torch.Tensor, float], torch.Tensor]


class Solver:
    """Interface: `step(velocity, x, sigma, sigma_next) -> (x_next, v_at_x)`; `evals_per_step` for cost."""

    name: str = ""
    evals_per_step: int = 1

    def step(self, velocity: VelocityFn, x: torch.Tensor, sigma: float, sigma_next: float):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Euler(Solver):
    """First order: one model call per step. Exact for straight (constant-velocity) paths."""

    name = "euler"

    def step(self, velocity, x, sigma, sigma_next):
        v = velocity(x, sigma)
        return x + (sigma_next - sigma) * v, v


class Heun(Solver):
    """Second order (explicit trapezoid): two calls per step, except the last step, which is Euler
    because the velocity at sigma = 0 would be evaluated on a finished sample (wasted, and off the
    training distribution)."""

    name = "heun"
    evals_per_step = 2

    def step(self, velocity, x, sigma, sigma_next):
        v = velocity(x, sigma)
        dt = sigma_next - sigma
        x_euler = x + dt * v
        if sigma_next == 0:
            return x_euler, v
        v_next = velocity(x_euler, sigma_next)
        return x + dt * 0.5 * (v + v_next), v


SOLVERS: dict[str, type[Solver]] = {"euler": Euler, "heun": Heun}


def get_solver(solver: str | Solver) -> Solver:
    """A solver instance from its name (`euler`, `heun`) or an instance; unknown names raise InputError."""
    if isinstance(solver, Solver):
        return solver
    key = str(solver).strip().lower() if isinstance(solver, str) else None
    if key not in SOLVERS:
        raise InputError(f"unknown solver {solver!r}; choose one of {', '.join(sorted(SOLVERS))}")
    return SOLVERS[key]()
