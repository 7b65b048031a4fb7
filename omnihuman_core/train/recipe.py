"""The MMDiT training objective: flow matching with the paper's conditioning recipe and MM-branch warm-up.

- Flow matching (METHOD §6): x_t = (1 - t) x0 + t noise, the model predicts noise - x0, timesteps
  logit-normal(0, 1) (mass in the middle, where the velocity is hardest to predict).
- Pseudo last frame (paper §3.3, METHOD §5): the model is conditioned on the ground-truth FIRST frames
  of the window (what continuation pins at inference) and on a real FUTURE frame of the same clip,
  `delta` latent frames past the window's end, placed exactly where inference puts the user's
  reference image. Never on a reference image: at inference the reference takes the future frame's
  slot, so identity comes from a frame the clip moves towards, not one it copies.
  Each condition is dropped at random so each works alone (inference's first segment has no motion
  frames). The input is built with the same `SegmentConditions` the sampler uses, so what the model
  sees in training is bit-for-bit what it sees at inference.
- Guidance needs the null conditions: text dropped = text mask all False, audio dropped = all-zero
  audio, exactly the sampler's null text / null audio.
- MM-branch warm-up (METHOD §7): "base" is the text+video model (no audio tokens; the audio branch is
  unused and frozen); "stage1" trains all three branches jointly from the base; "stage2" rebuilds the
  model with text/video/shared weights from the base and the audio branch from stage 1
  (`model.merge_branches`) and fine-tunes it. "joint" (the no-warm-up ablation) trains all three
  branches from scratch in one stage.

Per-batch vs per-sample choices: `frame_positions` (and so the presence of the pseudo frame and the
number of pinned frames) is shared by a batch, so those two are drawn per batch; text/audio dropout and
the timestep are per sample.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from ..config import ModelConfig
from ..errors import InputError
from ..sampling.conditioning import DEFAULT_DELTA, REFERENCE_MODES, SegmentConditions
from ..sampling.flow import noised, velocity_target

STAGES = ("base", "stage1", "stage2", "joint")


@dataclass
class Recipe(ModelConfig):
    """Conditioning and dropout probabilities of one training run (saved with the checkpoint)."""

    LABEL = "training recipe"

    reference_mode: str = "pseudo_last_frame"
    delta: float = DEFAULT_DELTA
    motion_latent_frames: int = 2  # 5 motion video frames = 2 latent frames (RenderSettings.motion_frames)
    p_first_frames: float = 0.5  # pin the window's first latent frames (continuation)
    p_drop_last: float = 0.1  # drop the pseudo last frame / reference
    p_drop_text: float = 0.1
    p_drop_audio: float = 0.2
    t_mean: float = 0.0  # logit-normal timesteps
    t_std: float = 1.0

    def __post_init__(self) -> None:
        problems = []
        if self.reference_mode not in REFERENCE_MODES:
            problems.append(f"reference_mode must be one of {REFERENCE_MODES}, got {self.reference_mode!r}")
        for name in ("p_first_frames", "p_drop_last", "p_drop_text", "p_drop_audio"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                problems.append(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.delta <= 0 or self.t_std <= 0 or self.motion_latent_frames < 0:
            problems.append("delta and t_std must be > 0 and motion_latent_frames >= 0")
        if problems:
            raise InputError("invalid Recipe: " + "; ".join(problems))


def sample_timesteps(batch: int, recipe: Recipe, generator: torch.Generator) -> torch.Tensor:
    """Logit-normal flow times in (0, 1), `[batch]` float32."""
    z = torch.randn(batch, generator=generator) * recipe.t_std + recipe.t_mean
    return torch.sigmoid(z)


def _bernoulli(p: float, n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator) < p


def flow_matching_loss(model, text_encoder, batch: dict[str, Any], recipe: Recipe, stage: str,
                       generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of one batch (see the module docstring); every random choice comes from `generator`."""
    if stage not in STAGES:
        raise InputError(f"stage must be one of {STAGES}, got {stage!r}")
    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    x0 = batch["latents"].float()
    B, C, t, h, w = x0.shape

    # Per-batch structure: pinned first frames, the extra (pseudo last / reference) frame.
    m = recipe.motion_latent_frames if (recipe.motion_latent_frames and t > recipe.motion_latent_frames
                                        and bool(_bernoulli(recipe.p_first_frames, 1, generator))) else 0
    mode = recipe.reference_mode
    if mode != "none" and bool(_bernoulli(recipe.p_drop_last, 1, generator)):
        mode = "none"
    extra = None
    if mode == "pseudo_last_frame":
        extra = batch["last_latent"].float()
    elif mode == "reference":
        extra = batch["reference_latent"].float()
    cond = SegmentConditions(t, motion_latents=x0[:, :, :m] if m else None, reference_latent=extra,
                             reference_mode=mode, delta=recipe.delta, latent_shape=(B, C, h, w))

    # Per-sample timestep, noise, dropouts.
    tt = sample_timesteps(B, recipe, generator)
    noise = torch.randn(x0.shape, generator=generator)
    x_t = noised(x0, noise, tt.view(B, 1, 1, 1, 1))
    x_in, positions = cond.model_input(x_t)

    captions = list(batch["captions"])
    drop_text = _bernoulli(recipe.p_drop_text, B, generator)
    text, text_mask = text_encoder.encode(captions, device=device, dtype=dtype)
    text_mask = text_mask & ~drop_text.to(text_mask.device).view(B, 1)

    if stage == "base":
        audio = None
    else:
        audio = batch["audio"].float().clone()
        drop_audio = _bernoulli(recipe.p_drop_audio, B, generator)
        audio[drop_audio] = 0.0
        audio = audio.to(device=device, dtype=dtype)

    v = model(x_in.to(device=device, dtype=dtype), tt.to(device=device, dtype=dtype), text, audio,
              frame_positions=positions.to(device), text_mask=text_mask)
    v = cond.output(v).float()
    target = velocity_target(x0, noise).to(v.device)
    # Pinned frames are inputs, not predictions: they take no part in the loss.
    loss = (v[:, :, m:] - target[:, :, m:]).pow(2).mean()
    stats = {"loss": loss.item(), "t": tt.mean().item(), "pinned": float(m), "extra": float(mode != "none")}
    return loss, stats


# ---- MM-branch warm-up stages ------------------------------------------------------------------------
def trainable_parameters(model, text_encoder, stage: str) -> list[torch.nn.Parameter]:
    """What each stage trains; everything else gets requires_grad False (and no optimiser state)."""
    from ..model.mmdit import is_audio_branch_param

    if stage not in STAGES:
        raise InputError(f"stage must be one of {STAGES}, got {stage!r}")
    params = []
    for name, p in model.named_parameters():
        train = not is_audio_branch_param(name) if stage == "base" else True
        p.requires_grad_(train)
        if train:
            params.append(p)
    # The text encoder (ours is trained from scratch) learns with the text+video base (or the single
    # joint stage); later stages keep its features fixed so the base's semantics survive the warm-up.
    train_text = stage in ("base", "joint")
    for p in text_encoder.parameters():
        p.requires_grad_(train_text)
        if train_text:
            params.append(p)
    return params


def build_stage2(base_state: dict[str, torch.Tensor], stage1_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Stage 2's starting point: text, video and shared weights of the base, the audio branch of stage 1."""
    from ..model.mmdit import merge_branches

    missing = sorted(set(base_state) ^ set(stage1_state))
    if missing:
        raise InputError(f"base and stage-1 weights are not the same architecture (keys differ: {missing[:5]})")
    return merge_branches(base_state, stage1_state)


def recipe_with(recipe: Recipe, **overrides) -> Recipe:
    return dataclasses.replace(recipe, **overrides)
