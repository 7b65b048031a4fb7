"""The denoise loop of one segment: seeded noise, guided velocity, solver steps, pinned first frames."""

from __future__ import annotations

from typing import Callable

import torch

from ..errors import Cancelled, InputError
from . import flow
from .conditioning import SegmentConditions
from .guidance import Guidance
from .solvers import Solver, get_solver

# callback(step, total_steps, x0_estimate): step counts finished steps (1..total).
StepCallback = Callable[[int, int, torch.Tensor], None]


def _model_place(model, device, dtype) -> tuple[torch.device, torch.dtype]:
    """Device / dtype to feed the model: explicit arguments win, else its parameters', else CPU fp32."""
    param = next(iter(model.parameters()), None) if isinstance(model, torch.nn.Module) else None
    device = torch.device(device) if device is not None else (param.device if param is not None else torch.device("cpu"))
    dtype = dtype or (param.dtype if param is not None else torch.float32)
    return device, dtype


def make_noise(shape, *, generator: torch.Generator | None = None, seed: int | None = None) -> torch.Tensor:
    """Float32 Gaussian noise drawn on the CPU, so a seed gives the same latent on every device."""
    if generator is None:
        if seed is None:
            raise InputError("sample_segment needs a seed or a torch.Generator for its noise")
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
    if generator.device.type != "cpu":
        raise InputError("pass a CPU torch.Generator: noise is drawn on the CPU so results do not depend on the device")
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float32)


def noise_motion_latents(motion: torch.Tensor, level: float, seed: int) -> torch.Tensor:
    """Motion latents moved `level` along the flow path on noise drawn from `seed` (noise augmentation of the
    continuation frames, RenderSettings.motion_noise / Recipe.motion_noise); `level` 0 returns them as they are.

    A model trained on noisy motion latents treats them as a hint to repair rather than frames to copy, so
    the small errors of its own re-encoded output do not pile up over a long chained render."""
    if not level:
        return motion
    g = torch.Generator().manual_seed(int(seed) ^ 0x6D6F74696F6E)  # not the segment's own noise stream
    return flow.noised(motion, make_noise(tuple(motion.shape), generator=g).to(motion.device, motion.dtype), float(level))


def _batched(name: str, value: torch.Tensor | None, batch: int) -> torch.Tensor | None:
    if value is None or value.shape[0] == batch:
        return value
    if value.shape[0] == 1:
        return value.expand(batch, *value.shape[1:])
    raise InputError(f"{name} has batch {value.shape[0]}, but the latent has batch {batch}")


@torch.no_grad()
def sample_segment(
    model,
    conditions: SegmentConditions,
    text: torch.Tensor,
    text_mask: torch.Tensor | None,
    audio: torch.Tensor | None,
    *,
    steps: int = flow.DEFAULT_STEPS,
    shift: float = flow.DEFAULT_SHIFT,
    guidance: Guidance | None = None,
    solver: str | Solver = "euler",
    generator: torch.Generator | None = None,
    seed: int | None = None,
    callback: StepCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    device=None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Sample one segment's latent `[B, C, t, h, w]` (float32, on `device`).

    The ODE state stays float32; model inputs are cast to the model's dtype. The conditioned first
    frames are re-imposed after every step and come back bit-identical. `cancel()` returning True
    raises Cancelled before the next step.
    """
    sig = flow.sigmas(steps, shift)  # validates steps / shift first: cheap errors before any work
    solver = get_solver(solver)
    guidance = guidance if guidance is not None else Guidance()
    device, dtype = _model_place(model, device, dtype)
    B = conditions.shape[0]
    text = _batched("text", text, B).to(device)
    text_mask = _batched("text_mask", text_mask, B)
    text_mask = text_mask.to(device) if text_mask is not None else None
    audio = _batched("audio", audio, B)
    audio = audio.to(device) if audio is not None else None
    if audio is not None and audio.shape[1] > conditions.n_latent_frames:
        raise InputError(
            f"audio covers {audio.shape[1]} latent frames but the segment has {conditions.n_latent_frames}"
        )

    x = conditions.pin(make_noise(conditions.shape, generator=generator, seed=seed).to(device))
    total = len(sig) - 1
    step_index = 0

    def velocity(x_t: torch.Tensor, sigma: float) -> torch.Tensor:
        x_in, positions = conditions.model_input(x_t)
        timestep = torch.full((B,), float(sigma), dtype=torch.float32, device=device)
        v = guidance.predict(
            model, x_in, timestep, text, text_mask, audio,
            frame_positions=positions, step=step_index, total_steps=total, dtype=dtype,
        )
        # Zero on pinned frames: they are data, not something the ODE moves.
        return conditions.generated(conditions.output(v))

    for i in range(total):
        if cancel is not None and cancel():
            raise Cancelled(f"sampling cancelled at step {i + 1} of {total}")
        step_index = i
        s, s_next = float(sig[i]), float(sig[i + 1])
        x_next, v = solver.step(velocity, x, s, s_next)
        if callback is not None:
            callback(i + 1, total, conditions.pin(flow.x0_estimate(x, v, s)))
        x = conditions.pin(x_next)
    return x
