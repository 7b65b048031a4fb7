"""MM-branch warm-up (paper §3.3, METHOD §7): which weights each training stage starts from and trains.

Training the three-branch model jointly from the start lets it lean on the temporally dense audio and
wash out the text; freezing the text/video branches makes the audio branch learn lighting and camera
motion. The paper's answer, in stages:

    base    the text+video model: MMDiT video, text and shared weights (plus the built-in text encoder
            when the run builds it from scratch); no audio tokens, the audio branch frozen and unused.
    stage1  starts from the base; all MMDiT branches train jointly, so the audio branch specialises in
            what only audio explains (lip sync, speech mannerisms). Text encoder frozen.
    stage2  the model rebuilt by `build_stage2`: text, video and shared weights from the BASE, the audio
            branch from stage 1; then every MMDiT parameter is fine-tuned. Text encoder frozen.
    joint   the "without MM warm-up" ablation (the paper's "train the entire model jointly"): every MMDiT
            branch trained together, from the base (`--init`, as the ablation script does: the paper starts
            every variant from one pretrained text+video model) or from scratch, without the stage-2 rebuild.

A pretrained text encoder stays frozen in every stage, as in the paper: a `TransformersTextEncoder`, and
a built-in one given as a file (pretrained by `train text`, or an earlier base's). A built-in encoder
trained jointly with the MMDiT from scratch collapses (docs/TRAINING.md, "Text encoder"); that path is
kept for runs without a pretrained file.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import nn

from ..errors import InputError
from ..model.config import MMDiTConfig
from ..model.mmdit import BRANCHES, MMDiT, branch_of_param, is_audio_branch_param, merge_branches
from ..text.builtin import BuiltinTextEncoder
from .distributed import unwrap

STAGES = ("base", "stage1", "stage2", "joint")
# Where each stage's MMDiT weights come from: a fresh init, the base's weights, or build_stage2(base, stage1).
STAGE_START = {"base": "scratch", "stage1": "base", "stage2": "base+stage1", "joint": "base or scratch"}
# MMDiT branches each stage trains.
STAGE_BRANCHES = {
    "base": ("video", "text", "shared"),
    "stage1": BRANCHES,
    "stage2": BRANCHES,
    "joint": BRANCHES,
}
# Stages in which a built-in text encoder the run builds from scratch learns with the MMDiT.
TEXT_ENCODER_STAGES = ("base", "joint")

# Stage schedules as fractions of one run's MMDiT steps. The paper spends 3 days on the audio warm-up
# (stage 1) and 7 on the main phase (stage 2) after a pretrained text+video base; without a pretrained
# base, the demo gives the base 40 % and splits the rest 3 : 7.
FULL_SCHEDULE: tuple[tuple[str, float], ...] = (("base", 0.4), ("stage1", 0.18), ("stage2", 0.42))
# Without MM warm-up: the same base, then the stage-1 + stage-2 share in one joint stage started from it.
JOINT_SCHEDULE: tuple[tuple[str, float], ...] = (("base", 0.4), ("joint", 0.6))


def check_stage(stage: str) -> str:
    if stage not in STAGES:
        raise InputError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
    return stage


def uses_audio(stage: str) -> bool:
    """The base is the text+video model: no audio tokens at all."""
    return check_stage(stage) != "base"


def split_steps(schedule, total_steps: int) -> list[tuple[str, int]]:
    """(stage, steps) for `total_steps` split by the schedule's fractions; the counts sum to exactly
    `total_steps` (largest remainders), so ablations with different schedules train equally long."""
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < len(schedule):
        raise InputError(f"total_steps must be an integer >= {len(schedule)} (one per stage), got {total_steps!r}")
    fractions = [float(f) for _, f in schedule]
    if any(not math.isfinite(f) or f <= 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise InputError(f"stage fractions must be > 0 and sum to 1, got {fractions}")
    for stage, _ in schedule:
        check_stage(stage)
    exact = [f * total_steps for f in fractions]
    steps = [max(1, int(math.floor(e))) for e in exact]
    for i in sorted(range(len(steps)), key=lambda i: exact[i] - math.floor(exact[i]), reverse=True):
        if sum(steps) >= total_steps:
            break
        steps[i] += 1
    while sum(steps) > total_steps:  # the max(1, ...) floor took steps from a larger stage
        steps[steps.index(max(steps))] -= 1
    return [(stage, n) for (stage, _), n in zip(schedule, steps)]


def trains_text_encoder(text_encoder: nn.Module | None, stage: str, *, pretrained: bool = False) -> bool:
    """Whether `stage` trains this text encoder: only a built-in one built from scratch by this run
    (`pretrained` False), in base and joint. A pretrained (given) encoder is frozen in every stage."""
    return (check_stage(stage) in TEXT_ENCODER_STAGES and not pretrained
            and isinstance(unwrap(text_encoder), BuiltinTextEncoder))


def trainable_parameters(model: nn.Module, text_encoder: nn.Module | None, stage: str, *,
                         pretrained_text: bool = False) -> list[nn.Parameter]:
    """The parameters `stage` trains (MMDiT first, then the text encoder's, unless it is `pretrained_text`).
    Sets `requires_grad` on every parameter of both modules accordingly, so frozen ones build no autograd graph."""
    check_stage(stage)
    branches = STAGE_BRANCHES[stage]
    params = []
    for name, p in unwrap(model).named_parameters():
        try:
            branch = branch_of_param(name)
        except KeyError:
            raise InputError(f"trainable_parameters needs the MMDiT; {name!r} is not one of its parameters") from None
        train = branch in branches
        p.requires_grad_(train)
        if train:
            params.append(p)
    if text_encoder is not None:
        train_text = trains_text_encoder(text_encoder, stage, pretrained=pretrained_text)
        for p in unwrap(text_encoder).parameters():
            p.requires_grad_(train_text)
            if train_text:
                params.append(p)
    return params


def _expected_shapes(config: MMDiTConfig | Mapping) -> dict[str, tuple[int, ...]]:
    cfg = config if isinstance(config, MMDiTConfig) else MMDiTConfig.from_dict(dict(config))
    with torch.device("meta"):  # shapes only: no memory, no init cost
        model = MMDiT(cfg, device="meta")
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _mismatch(state: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]]) -> str | None:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k} {tuple(state[k].shape)} vs {expected[k]}" for k in sorted(set(state) & set(expected))
              if tuple(state[k].shape) != tuple(expected[k])]
    parts = [f"{label}: {', '.join(names[:4])}{' ...' if len(names) > 4 else ''}"
             for label, names in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)) if names]
    return "; ".join(parts) or None


def build_stage2(base_state: Mapping[str, torch.Tensor], stage1_state: Mapping[str, torch.Tensor],
                 config: MMDiTConfig | Mapping | None = None) -> dict[str, torch.Tensor]:
    """Stage 2's starting weights: video, text and shared tensors of the base, the audio branch of
    stage 1 (`model.merge_branches`). With `config` (the MMDiT config of the run), both states are
    checked against it; without, against each other. Any mismatch is an InputError naming the keys."""
    if config is not None:
        expected = _expected_shapes(config)
        for label, state in (("base", base_state), ("stage-1", stage1_state)):
            problem = _mismatch(state, expected)
            if problem:
                raise InputError(f"the {label} weights do not match the MMDiT config ({problem}); were they trained "
                                 "with another preset or audio_mode?")
    else:
        problem = _mismatch(stage1_state, {k: tuple(v.shape) for k, v in base_state.items()})
        if problem:
            raise InputError(f"the base and stage-1 weights are not the same MMDiT ({problem}); were they trained "
                             "with another preset or audio_mode?")
    audio = [k for k in stage1_state if is_audio_branch_param(k)]
    if not audio:
        raise InputError("the stage-1 weights have no audio branch (audio_embed.*, blocks.N.audio.*)")
    if all(torch.equal(stage1_state[k].cpu(), base_state[k].cpu()) for k in audio if k in base_state):
        raise InputError("the stage-1 audio branch is identical to the base's: pass the stage-1 model's weights, "
                         "not the base's twice")
    return merge_branches(base_state, stage1_state)
