"""The MMDiT training objective: flow matching under the paper's conditioning recipe (METHOD §5-§7).

- Flow matching (sampling/flow.py): `x_t = (1 - t) x0 + t noise`, the model predicts `noise - x0`;
  t ~ logit-normal(mean, std) per sample, which puts most of the training where the velocity is
  hardest to predict (mid noise) and little at the trivial ends.
- Pseudo last frame (paper §3.3): the model is never shown a reference image. It is conditioned, each
  at random, on the window's ground-truth FIRST latent frames (what continuation pins at inference)
  and on a real FUTURE frame of the same clip `delta` latent frames past the window's end (`last_latent`)
  at exactly the slot and RoPE position where inference puts the user's reference image. Dropping each
  condition at random (p_first_frames, p_drop_last) makes each work alone: the first segment of a
  render has no motion frames, and the "none" ablation has no extra frame.
- The model input is built by the sampler's own `SegmentConditions`, so a sample's x, mask channel and
  frame_positions in training are exactly what `sampling.sample_segment` feeds the model for the same
  conditions (tests/train/test_objective.py compares them call for call). Pinned frames are inputs, not
  predictions: they are excluded from the loss, as the sampler excludes them from the ODE.
- Guidance needs the null conditions, so dropout produces exactly the sampler's: a dropped caption is
  the empty prompt (the encoder's null text: zero features, `text_mask` all False) and dropped audio is
  all zeros. Stage "base" (the text+video model) gets `audio=None`, no audio tokens at all.

Every random choice (flags, timesteps, noise) comes from the caller's CPU generator, drawn in a fixed
order and amount whatever the recipe and stage, so a seed reproduces a run and ablations that share a
seed see the same timesteps and noise.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import torch
from torch import nn

from ..config import ModelConfig
from ..errors import InputError
from ..sampling.conditioning import DEFAULT_DELTA, REFERENCE_MODES, SegmentConditions
from ..sampling.denoise import _model_place, make_noise
from ..sampling.flow import noised, velocity_target
from ..text.builtin import BuiltinTextEncoder
from .distributed import unwrap
from .stages import FULL_SCHEDULE, JOINT_SCHEDULE, check_stage, uses_audio

# Batch key holding the extra clean frame of each reference mode ("none" has none).
EXTRA_FRAME_KEY = {"pseudo_last_frame": "last_latent", "reference": "reference_latent"}


@dataclass
class Recipe(ModelConfig):
    """Conditioning, dropout and timestep distribution of one MMDiT training run (saved with it)."""

    LABEL: ClassVar[str] = "training recipe"

    # "pseudo_last_frame" (the paper), "reference" (reference image at position 0, an ablation),
    # "none" (no extra frame, an ablation). The same name the renderer's settings use.
    reference_mode: str = "pseudo_last_frame"
    # Probability of pinning the window's first `motion_latent_frames` latent frames (continuation).
    p_first_frames: float = 0.5
    # 2 latent frames = the 5 motion video frames the chainer carries over (RenderSettings.motion_frames).
    motion_latent_frames: int = 2
    # Probability of dropping the pseudo last frame (or the reference in the "reference" ablation).
    p_drop_last: float = 0.1
    p_drop_text: float = 0.1
    p_drop_audio: float = 0.2
    # Latent frames from the window's last frame to the pseudo last frame; must equal the distance the
    # data took `last_latent` from (the latent cache's delta) and the renderer's delta.
    delta: float = DEFAULT_DELTA
    # Flow times t ~ sigmoid(N(mean, std)). A mean of ln(s) is exactly the sampler's resolution shift s applied
    # to logit-normal(0, 1) times (shift_time(sigmoid(z), s) = sigmoid(z + ln s)), so `--timestep-shift s`
    # trains where a sampler with shift s spends its steps: the demo renders with shift 3, half its steps above
    # t = 0.75, where logit-normal(0, 1) puts 14 % of the training.
    logit_normal_mean: float = 0.0
    logit_normal_std: float = 1.0
    # Loss weight of latent cells inside a face box (batch["face"], from the clips' optional face boxes;
    # train/data.py) relative to the rest of the frame; 1 = a plain mean. The mouth is a few cells of a
    # 128 px frame, so in a plain mean lip sync is a tiny share of the loss and is learnt last; talking-head
    # models (Hallo, EchoMimic) weight face / lip regions for the same reason. Each frame's weights are
    # normalised, so the loss keeps its scale.
    face_weight: float = 1.0
    # Loss weight of the mouth cells: the lower middle of each frame's face box (`mouth_cells`), replacing the
    # face weight there; 1 = no extra weight. The mouth is ~12 of a 128 px frame's 256 latent cells and the only
    # region whose motion only the audio explains, so even face-weighted the audio branch's gradient is mostly
    # noise from the rest of the frame; weighting the mouth aims it at lip sync.
    mouth_weight: float = 1.0
    # Loss weight of the moving cells: the MOVING_SHARE of each window's latent cells whose clean latents vary
    # most over the window's frames (`moving_cells`; no labels needed), raised to at least this weight; 1 = no
    # extra weight. An action (a wave, a nod, raised arms) moves a few cells of a 128 px frame, so in a plain
    # mean the loss it explains is a sliver of a loss dominated by the static background and the character's
    # looks: the mouth weight's reason, for the motion the text explains. Measured, it did not do for the
    # actions what the mouth weight did for lip sync: at 10 for 400 base steps the characters moved more and
    # performed fewer prompted actions (BENCHMARKS.md, "Why the demo model ignores the action in its prompt"),
    # so the demo recipe leaves it at 1.
    motion_weight: float = 1.0
    # Noise on the pinned motion latents (noise augmentation of the continuation frames): each pinned
    # sample's motion latents are moved along the flow path to a time drawn uniformly in [0, motion_noise].
    # In training they are exact encodings of real frames; in a long render they are re-encodings of the
    # model's own previous output, whose small errors the model would otherwise copy forward and amplify
    # segment by segment (drift). Trained on noisy copies, the model takes them as a hint it repairs; the
    # renderer adds half the maximum (`render_defaults`' motion_noise) so both see the same kind of input.
    # 0 = off (exact copies, as every model trained before it).
    motion_noise: float = 0.0

    def __post_init__(self) -> None:
        problems = []
        if self.reference_mode not in REFERENCE_MODES:
            problems.append(f"reference_mode must be one of {REFERENCE_MODES}, got {self.reference_mode!r}")
        for name in ("p_first_frames", "p_drop_last", "p_drop_text", "p_drop_audio"):
            p = getattr(self, name)
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
                problems.append(f"{name} must be a probability in [0, 1], got {p!r}")
        m = self.motion_latent_frames
        if isinstance(m, bool) or not isinstance(m, int) or m < 0:
            problems.append(f"motion_latent_frames must be an integer >= 0, got {m!r}")
        elif m == 0 and isinstance(self.p_first_frames, (int, float)) and self.p_first_frames > 0:
            problems.append("p_first_frames > 0 needs motion_latent_frames >= 1 (2 = the chainer's 5 motion frames)")
        mn = self.motion_noise
        if isinstance(mn, bool) or not isinstance(mn, (int, float)) or not math.isfinite(mn) or not 0 <= mn < 1:
            problems.append(f"motion_noise must be a flow time in [0, 1), got {mn!r}")
        for name, low in (("delta", 0.0), ("logit_normal_std", 0.0), ("face_weight", 0.0),
                          ("mouth_weight", 0.0), ("motion_weight", 0.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= low:
                problems.append(f"{name} must be a number > 0, got {v!r}")
        mean = self.logit_normal_mean
        if isinstance(mean, bool) or not isinstance(mean, (int, float)) or not math.isfinite(mean):
            problems.append(f"logit_normal_mean must be a finite number, got {mean!r}")
        if problems:
            raise InputError("invalid training Recipe: " + "; ".join(problems))

    def render_defaults(self, temporal_factor: int = 4) -> dict[str, Any]:
        """The RenderSettings a model trained with this recipe must be sampled with (for its file's
        `render_defaults`): the same reference mode, delta and motion-frame count, and motion-latent noise
        in the middle of the range it was trained on. The ablations that condition on the image another way
        ("reference") or not at all ("none") never also pin it as the first frame, whatever the defaults
        they are merged into say: that would put the image back into the "none" row."""
        m = self.motion_latent_frames
        out = {"reference_mode": self.reference_mode, "delta": float(self.delta),
               "motion_frames": 1 + (m - 1) * temporal_factor if m else 0,
               "motion_noise": float(self.motion_noise) / 2}
        if self.reference_mode != "pseudo_last_frame":
            out["first_frame_from_reference"] = False
        return out


def mouth_cells(face: torch.Tensor) -> torch.Tensor:
    """`[..., h, w]` 0/1: the mouth's cells of each frame's face mask (`[..., h, w]`, 1 inside a face box).

    The face boxes carry no landmarks, so the mouth is taken where an upright face has it: the rows in the
    lower 45 % of the mask's bounding box and the columns in its middle half (on the synthetic characters,
    whose box is the head's, that is the mouth with a cell of margin at 128 px). Frames without a face: zeros.
    """
    rows = face.amax(dim=-1) > 0  # [..., h]
    cols = face.amax(dim=-2) > 0  # [..., w]

    def span(hit: torch.Tensor):
        n = hit.shape[-1]
        idx = torch.arange(n, device=hit.device, dtype=torch.float32)
        first = torch.where(hit, idx, torch.full_like(idx, n)).amin(dim=-1, keepdim=True)
        last = torch.where(hit, idx, torch.full_like(idx, -1)).amax(dim=-1, keepdim=True)
        return idx, first, last - first + 1

    ri, r0, rh = span(rows)
    ci, c0, cw = span(cols)
    in_rows = (ri + 0.5 >= r0 + 0.55 * rh) & (ri < r0 + rh)
    in_cols = (ci + 0.5 >= c0 + 0.25 * cw) & (ci + 0.5 <= c0 + 0.75 * cw)
    return (in_rows.unsqueeze(-1) & in_cols.unsqueeze(-2) & (face > 0)).to(face.dtype)


# The share of a window's latent cells `moving_cells` marks: at 128 px (16 x 16 cells) 26 cells, about what
# a waving arm and hand sweep over a 33-frame window on the synthetic characters.
MOVING_SHARE = 0.1


def moving_cells(latents: torch.Tensor, share: float = MOVING_SHARE) -> torch.Tensor:
    """`[B, 1, h, w]` 0/1: per sample, the `share` of cells whose clean latents `[B, C, t, h, w]` vary most over
    the window's t latent frames (standard deviation over time, mean over channels). A window without motion
    (t == 1, or every cell still) marks nothing: there is no motion to weight."""
    B, C, t, h, w = latents.shape
    if t < 2:
        return latents.new_zeros(B, 1, h, w)
    spread = latents.float().std(dim=2).mean(dim=1).flatten(1)  # [B, h*w]
    k = max(1, int(round(share * h * w)))
    top = spread.topk(k, dim=1)
    mask = torch.zeros_like(spread).scatter_(1, top.indices, (top.values > 0).to(spread.dtype))
    return mask.view(B, 1, h, w)


def cell_weights(face: torch.Tensor, recipe: Recipe, moving: torch.Tensor | None = None) -> torch.Tensor:
    """Loss weight of every latent cell: 1, `face_weight` inside a face box, `mouth_weight` on its mouth,
    at least `motion_weight` on the moving cells (`moving`, `[B, 1, h, w]`, broadcast over the frames)."""
    weights = 1.0 + (recipe.face_weight - 1.0) * face
    if recipe.mouth_weight != 1.0:
        weights = torch.where(mouth_cells(face) > 0, torch.full_like(weights, recipe.mouth_weight), weights)
    if recipe.motion_weight != 1.0 and moving is not None:
        # The larger of the two where a moving cell lies in the face: a moving mouth keeps its mouth weight.
        weights = torch.where(moving > 0, weights.clamp(min=recipe.motion_weight), weights)
    return weights


# ---- random choices -----------------------------------------------------------------------------------
def sample_timesteps(n: int, mean: float, std: float, generator: torch.Generator) -> torch.Tensor:
    """`[n]` float32 flow times, logit-normal(mean, std): sigmoid of a normal, so always in (0, 1)."""
    return torch.sigmoid(mean + std * torch.randn(n, generator=generator, dtype=torch.float32))


@dataclass
class Draws:
    """Every random choice of one training step, per sample (`[B]` each, `noise` `[B, C, t, h, w]`)."""

    timestep: torch.Tensor  # float32 flow time t in (0, 1)
    noise: torch.Tensor  # float32
    pin_first: torch.Tensor  # bool: the first motion_latent_frames are clean, pinned and not trained
    extra_frame: torch.Tensor  # bool: the pseudo last frame (or reference) is appended
    drop_text: torch.Tensor  # bool: null text
    drop_audio: torch.Tensor  # bool: null audio
    # float32 flow time of the noise on the pinned motion latents (Recipe.motion_noise); None = clean
    motion_noise: torch.Tensor | None = None


def draw(batch: Mapping[str, Any], recipe: Recipe, generator: torch.Generator) -> Draws:
    """The step's random choices. The amount drawn depends only on the latent shape, never on the
    recipe or the stage, so runs that differ only in those see the same noise and timesteps."""
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise InputError("flow_matching_loss needs a CPU torch.Generator (noise is drawn on the CPU, as in sampling)")
    latents = batch["latents"]
    B = latents.shape[0]
    u = torch.rand(B, 4, generator=generator, dtype=torch.float64)
    t = sample_timesteps(B, recipe.logit_normal_mean, recipe.logit_normal_std, generator)
    noise = make_noise(latents.shape, generator=generator)
    return Draws(
        timestep=t,
        noise=noise,
        pin_first=(u[:, 0] < recipe.p_first_frames) & (recipe.motion_latent_frames > 0),
        extra_frame=(u[:, 1] >= recipe.p_drop_last) & (recipe.reference_mode != "none"),
        drop_text=u[:, 2] < recipe.p_drop_text,
        drop_audio=u[:, 3] < recipe.p_drop_audio,
        # u[:, 0] / p is uniform in [0, 1) on the pinned samples and independent of the other choices, so
        # the level needs no extra draw and runs without motion noise keep their random streams.
        motion_noise=(recipe.motion_noise * (u[:, 0] / max(recipe.p_first_frames, 1e-12)).clamp(max=1.0)).float(),
    )


def _distributed() -> bool:
    """True under torchrun with more than one process."""
    return torch.distributed.is_available() and torch.distributed.is_initialized() \
        and torch.distributed.get_world_size() > 1


# ---- inputs -------------------------------------------------------------------------------------------
def encode_captions(text_encoder: nn.Module, captions: list[str], device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(features, mask) as `TextEncoder.encode` gives them. A built-in encoder being trained is run
    through its `forward` (the wrapper's, if DDP-wrapped: that is where DDP hooks in); a frozen one
    without autograd."""
    inner = unwrap(text_encoder)
    if isinstance(inner, BuiltinTextEncoder) and any(p.requires_grad for p in inner.parameters()):
        ids, mask = inner.tokenizer(captions)
        mask = mask.to(inner.device)
        return inner._finish(text_encoder(ids, mask), mask, device, dtype)
    with torch.no_grad():
        return inner.encode(captions, device=device, dtype=dtype)


def _check_batch(batch: Mapping[str, Any], recipe: Recipe, stage: str) -> None:
    """Shapes and keys, named, before any model work."""
    latents = batch.get("latents")
    if not isinstance(latents, torch.Tensor) or latents.dim() != 5:
        got = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
        raise InputError(f"batch['latents'] must be a [B, C, t, h, w] tensor, got {got}")
    B, C, t, h, w = latents.shape
    m = recipe.motion_latent_frames
    if recipe.p_first_frames > 0 and t <= m:
        raise InputError(f"training windows of {t} latent frames leave nothing to generate after pinning "
                         f"motion_latent_frames={m}; use longer windows or fewer motion frames")
    key = EXTRA_FRAME_KEY.get(recipe.reference_mode)
    if key is not None:
        extra = batch.get(key)
        if not isinstance(extra, torch.Tensor) or tuple(extra.shape) != (B, C, 1, h, w):
            got = tuple(extra.shape) if isinstance(extra, torch.Tensor) else type(extra).__name__
            raise InputError(f"reference_mode {recipe.reference_mode!r} needs batch[{key!r}] of shape "
                             f"{(B, C, 1, h, w)} (single-image latents), got {got}")
    if recipe.face_weight != 1.0 or recipe.mouth_weight != 1.0:
        face = batch.get("face")
        if not isinstance(face, torch.Tensor) or tuple(face.shape) != (B, t, h, w):
            got = tuple(face.shape) if isinstance(face, torch.Tensor) else type(face).__name__
            raise InputError(f"face_weight {recipe.face_weight:g} / mouth_weight {recipe.mouth_weight:g} need "
                             f"batch['face'] of shape {(B, t, h, w)} "
                             f"(1 on latent cells inside a face box), got {got}")
    if uses_audio(stage):
        audio = batch.get("audio")
        if not isinstance(audio, torch.Tensor) or audio.dim() != 4 or tuple(audio.shape[:2]) != (B, t):
            got = tuple(audio.shape) if isinstance(audio, torch.Tensor) else type(audio).__name__
            raise InputError(f"stage {stage!r} needs batch['audio'] of shape [B={B}, t={t}, tokens, dim] "
                             f"(one set of audio tokens per latent frame), got {got}")
    captions = batch.get("captions")
    if isinstance(captions, str) or not isinstance(captions, (list, tuple)) or len(captions) != B \
            or not all(isinstance(c, str) for c in captions):
        raise InputError(f"batch['captions'] must be a list of {B} strings")


# ---- the loss -----------------------------------------------------------------------------------------
def loss_from_draws(model: nn.Module, text_encoder: nn.Module, batch: Mapping[str, Any], recipe: Recipe,
                    stage: str, draws: Draws) -> tuple[torch.Tensor, dict[str, float]]:
    """`flow_matching_loss` with the random choices given (validation at fixed noise, tests)."""
    check_stage(stage)
    _check_batch(batch, recipe, stage)
    if tuple(draws.noise.shape) != tuple(batch["latents"].shape):
        raise InputError(f"draws were made for latents {tuple(draws.noise.shape)}, the batch has "
                         f"{tuple(batch['latents'].shape)}")
    device, dtype = _model_place(model, None, None)
    x0 = batch["latents"].to(device=device, dtype=torch.float32)
    B, C, t, h, w = x0.shape
    m = recipe.motion_latent_frames
    noise = draws.noise.to(device)
    timestep = draws.timestep.to(device=device, dtype=torch.float32)
    pin = draws.pin_first.to(device)
    x_t = noised(x0, noise, timestep.view(B, 1, 1, 1, 1))
    target = velocity_target(x0, noise)

    # Null text = the empty prompt, so its features are the encoder's own null (zeros, mask all False),
    # exactly what the sampler's guidance passes use.
    captions = ["" if drop else c for c, drop in zip(batch["captions"], draws.drop_text.tolist())]
    text, text_mask = encode_captions(text_encoder, captions, device, dtype)
    audio = None
    if uses_audio(stage):
        audio = batch["audio"].to(device=device, dtype=torch.float32)
        audio = torch.where(draws.drop_audio.to(device).view(B, 1, 1, 1), torch.zeros_like(audio), audio)

    # Which frames each sample is trained on: all but its pinned first frames.
    generated = torch.ones(B, t, device=device)
    generated[pin, :m] = 0

    # frame_positions (and the tensor's length) is shared by a batch, so samples with and without the
    # extra frame cannot share a forward. They are grouped into two forwards, each built by
    # SegmentConditions exactly as inference builds that case. The alternative, keeping the frame with
    # mask 0 and zero latents for the samples that dropped it, would teach a "no extra frame" condition
    # that inference never builds ("none" appends nothing). The second forward is smaller, not extra
    # work (measured: the same time per step on the demo model). Under torchrun every rank runs both
    # forwards even when one group is empty (batch 0): FSDP gathers parameters in every forward, so
    # ranks must agree on the number of forwards. Pinning, timesteps and dropouts are per sample within
    # a forward: the mask channel and the per-sample timestep express them exactly.
    extra_key = EXTRA_FRAME_KEY.get(recipe.reference_mode)
    total = x0.new_zeros(())
    forwards = 0
    lockstep = _distributed()
    for with_extra in ((True, False) if recipe.reference_mode != "none" else (False,)):
        rows = torch.nonzero(draws.extra_frame.to(device) == with_extra).flatten()
        if rows.numel() == 0 and not lockstep:
            continue
        n = rows.numel()
        mode = recipe.reference_mode if with_extra else "none"
        ref = batch[extra_key].to(device=device, dtype=torch.float32)[rows] if with_extra else None
        free = SegmentConditions(t, reference_latent=ref, reference_mode=mode, delta=recipe.delta,
                                 latent_shape=(n, C, h, w))
        x_in, positions = free.model_input(x_t[rows])
        rows_pinned = pin[rows]
        if bool(rows_pinned.any()):
            motion = x0[rows, :, :m]
            if draws.motion_noise is not None and recipe.motion_noise > 0:
                # The pinned frames' own noise: those frames are not trained, so it is otherwise unused.
                level = draws.motion_noise.to(device)[rows].view(n, 1, 1, 1, 1)
                motion = noised(motion, noise[rows, :, :m], level)
            pinned = SegmentConditions(t, motion_latents=motion, reference_latent=ref, reference_mode=mode,
                                       delta=recipe.delta, latent_shape=(n, C, h, w))
            x_pin, _ = pinned.model_input(x_t[rows])
            x_in = torch.where(rows_pinned.view(n, 1, 1, 1, 1), x_pin, x_in)
        v = model(x_in.to(dtype), timestep[rows], text[rows], None if audio is None else audio[rows].to(dtype),
                  frame_positions=positions, text_mask=text_mask[rows])
        forwards += 1
        err = (free.output(v).float() - target[rows]).pow(2).mean(dim=1)  # [n, t, h, w]
        if recipe.face_weight != 1.0 or recipe.mouth_weight != 1.0 or recipe.motion_weight != 1.0:
            moving = moving_cells(x0[rows]) if recipe.motion_weight != 1.0 else None
            # The moving cells come from the latents: a motion weight alone needs no face boxes.
            face = batch["face"].to(device=device, dtype=torch.float32)[rows] if "face" in batch \
                else x0.new_zeros(n, t, h, w)
            cells = cell_weights(face, recipe, moving)
            err = (err * cells).sum(dim=(2, 3)) / cells.sum(dim=(2, 3))  # [n, t] per-frame weighted MSE
        else:
            err = err.mean(dim=(2, 3))  # [n, t] per-frame MSE
        weight = generated[rows]
        total = total + ((err * weight).sum(dim=1) / weight.sum(dim=1)).sum()
    loss = total / B  # mean over samples of each sample's MSE on its generated frames

    stats = {
        "loss": float(loss.detach()),
        "t": float(timestep.mean()),
        "pinned": float(draws.pin_first.float().mean()),
        "extra_frame": float(draws.extra_frame.float().mean()),
        "text_dropped": float(draws.drop_text.float().mean()),
        "forwards": float(forwards),
    }
    if uses_audio(stage):
        stats["audio_dropped"] = float(draws.drop_audio.float().mean())
    return loss, stats


def flow_matching_loss(model: nn.Module, text_encoder: nn.Module, batch: Mapping[str, Any], recipe: Recipe,
                       stage: str, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
    """Flow-matching loss of one batch (see the module docstring) and its stats: loss, mean t, the
    fractions of samples with pinned first frames / the extra frame / dropped text / dropped audio, and
    the number of model forwards. Every random choice comes from `generator` (a CPU generator)."""
    check_stage(stage)
    _check_batch(batch, recipe, stage)
    return loss_from_draws(model, text_encoder, batch, recipe, stage, draw(batch, recipe, generator))


# ---- ablations (paper Table 1, docs/EVALUATION.md) ------------------------------------------------------
@dataclass(frozen=True)
class Ablation:
    """How one row of the ablation table is trained: Recipe and MMDiTConfig field overrides, and the
    stage schedule ((stage, fraction of the run's MMDiT steps), ...; stages.split_steps turns it into
    step counts). `schedule` None: no model of its own, it is evaluated with the full model."""

    recipe: Mapping[str, Any]
    model: Mapping[str, Any]
    schedule: tuple[tuple[str, float], ...] | None
    note: str

    def make_recipe(self, base: Recipe | None = None) -> Recipe:
        return dataclasses.replace(base or Recipe(), **dict(self.recipe))


ABLATIONS: dict[str, Ablation] = {
    "full": Ablation({}, {}, FULL_SCHEDULE,
                     "the paper's method: pseudo last frame, audio branch, MM-branch warm-up"),
    "cross_attention_audio": Ablation({}, {"audio_mode": "cross_attention"}, FULL_SCHEDULE,
                                      "audio injected by cross-attention from video instead of the symmetric branch"),
    "no_mm_warmup": Ablation({}, {}, JOINT_SCHEDULE,
                             "the full row's text+video base, then all MMDiT branches trained jointly for the rest of the "
                             "steps (a given text encoder stays frozen): no audio warm-up, no stage-2 rebuild"),
    "reference_image": Ablation({"reference_mode": "reference"}, {}, FULL_SCHEDULE,
                                "conditioned on a reference image (a frame of the clip outside the window) at "
                                "position 0; rendered with reference_mode 'reference'"),
    "no_reference": Ablation({"reference_mode": "none"}, {}, FULL_SCHEDULE,
                             "neither reference nor pseudo last frame; rendered with reference_mode 'none'"),
    "no_reasoning": Ablation({}, {}, None,
                             "no training: the full model, rendered with one generic prompt for every segment "
                             "(evaluate run --prompts generic) instead of System 2's schedule"),
}
