"""One MMDiT training stage end to end: latent cache -> model and text encoder at the stage's starting point ->
the generic Trainer with the flow-matching objective -> EMA export with the render settings it was made for.

Stages (train/stages.py, METHOD section 7, the paper's MM-branch warm-up):
  base    text+video model from scratch; the audio branch is unused. With `--text-encoder` (pretrained by
          `train text`) the encoder is frozen, as the paper freezes its pretrained one, and no copy is
          written (the MMDiT's metadata names the file and its fingerprint); without, a built-in encoder is
          built from scratch, trained jointly and exported separately (kind "text_encoder").
  stage1  starts from the base (`--init`); all MMDiT branches train, the text encoder is frozen.
  stage2  `stages.build_stage2(base, stage1)`: text/video/shared weights of the base, audio branch of
          stage 1; every MMDiT parameter fine-tunes, the text encoder stays frozen.
The objective (train/objective.py) is helper OBJECTIVE's; this module wires it to data and the loop.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from ..errors import InputError
from . import distributed as D
from .loop import TrainConfig, Trainer, TrainResult

MMDIT_STAGES = ("base", "stage1", "stage2", "joint")
TEXT_ENCODER_FILE = "text_encoder.safetensors"


@dataclass
class MMDiTSettings:
    """What one MMDiT stage trains and on which windows (its identity in the checkpoint)."""

    stage: str = "base"
    preset: str = "demo"
    text_preset: str = "demo"
    audio_mode: str | None = None  # None: "branch" for a fresh model, else the starting weights' mode
    reference_mode: str = "pseudo_last_frame"
    frames: int = 33  # video frames per window (9 latent frames)
    windows_per_clip: int = 2
    delta: float = 4.0  # latent frames from the window's end to the pseudo last frame
    audio_window: int = 5
    max_clips: int = 0
    split: str = "train"
    face_weight: float = 1.0  # loss weight of face cells (Recipe.face_weight); needs face boxes in the data
    mouth_weight: float = 1.0  # loss weight of the face box's mouth cells (Recipe.mouth_weight)
    motion_weight: float = 1.0  # loss weight of each window's moving cells (Recipe.motion_weight)
    motion_noise: float = 0.0  # noise on the pinned motion latents (Recipe.motion_noise); 0 = off
    # How often the window is conditioned on its pinned first frames / drops its pseudo last frame
    # (Recipe.p_first_frames / p_drop_last). Both frames show the window's pose, so every sample that has one
    # can copy the action from it instead of reading it from the caption; raising p_drop_last makes more
    # samples depend on the text.
    p_first_frames: float = 0.5
    p_drop_last: float = 0.1
    # The MMDiT's pooled-text path (MMDiTConfig.pooled_text): a fresh model is built with it; a run starting
    # from a file without it (--init) gains it with a zero output, so training starts from that file's renders.
    # A file that has it keeps it either way.
    pooled_text: bool = False
    # Shift of the training flow times (Recipe.logit_normal_mean = ln(shift)); 1 = SD3's logit-normal(0, 1).
    timestep_shift: float = 1.0

    def __post_init__(self) -> None:
        if self.stage not in MMDIT_STAGES:
            raise InputError(f"stage must be one of {', '.join(MMDIT_STAGES)}, got {self.stage!r}")
        s = self.timestep_shift
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s <= 0:
            raise InputError(f"timestep_shift must be a positive number (1 = no shift), got {s!r}")

    def recipe(self):
        from .objective import Recipe

        return Recipe(reference_mode=self.reference_mode, delta=float(self.delta), face_weight=float(self.face_weight),
                      mouth_weight=float(self.mouth_weight), motion_weight=float(self.motion_weight),
                      motion_noise=float(self.motion_noise), p_first_frames=float(self.p_first_frames),
                      p_drop_last=float(self.p_drop_last), logit_normal_mean=math.log(float(self.timestep_shift)))

    def default_train_config(self) -> dict:
        """Optimiser defaults per stage: from scratch a higher learning rate, fine-tuning a lower one."""
        fresh = self.stage in ("base", "joint")
        return {"lr": 3e-4 if fresh else 1e-4, "warmup": 50 if fresh else 20, "batch_size": 4,
                "weight_decay": 0.01, "ema_decay": 0.995}


def _need_file(path, flag: str, why: str) -> Path:
    if path is None:
        raise InputError(f"{flag} is required: {why}")
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{flag} {p} does not exist ({why})")
    return p


def _fingerprint(path) -> str | None:
    from ..weights import file_fingerprint

    return file_fingerprint(path) if path is not None else None


# Recipe settings added after the first checkpoints were written, with the value every earlier run trained
# with (in both the recipe and the MMDiTSettings record): Trainer(added_later=...) fills them into an older
# checkpoint's record, so it resumes when this run uses that value.
_LATER_SETTINGS = {"motion_noise": 0.0, "p_first_frames": 0.5, "p_drop_last": 0.1, "mouth_weight": 1.0,
                   "motion_weight": 1.0, "pooled_text": False, "timestep_shift": 1.0}


# Metadata an exported MMDiT copies from each file it started from, so that a fine-tuned file still says how
# the weights under it were made (the files it started from are usually not shipped next to it).
_LINEAGE_KEYS = ("training_command", "training", "demo", "stage", "started_from")


def started_from_record(start_files: dict) -> dict:
    """The exported file's `started_from` metadata: per starting role (init / base / stage1), the file's name
    and fingerprint and its own training record, nested back to the first scratch run."""
    from ..weights import read_metadata

    record = {}
    for role, path in start_files.items():
        meta = read_metadata(path)
        entry = {"file": Path(path).name, "fingerprint": _fingerprint(path)}
        for key in _LINEAGE_KEYS:
            if key in meta:
                try:
                    entry[key] = json.loads(meta[key])
                except ValueError:  # plain strings (the training command)
                    entry[key] = meta[key]
        record[role] = entry
    return record


def render_defaults(settings: MMDiTSettings, recipe, fps: float, frame_size, temporal_factor: int) -> dict:
    """The RenderSettings this model is sampled with by default (its file's `render_defaults`)."""
    from .cli import DEMO_RENDER_DEFAULTS

    return {**DEMO_RENDER_DEFAULTS, **recipe.render_defaults(temporal_factor), "fps": float(fps),
            "segment_frames": int(settings.frames), "short_side": int(min(frame_size)),
            "audio_window": int(settings.audio_window)}


def train_mmdit(
    data_dir,
    vae,
    out_path,
    work_dir,
    settings: MMDiTSettings,
    config: TrainConfig,
    *,
    init=None,
    base=None,
    stage1=None,
    text_encoder=None,
    text_out=None,
    cache_dir=None,
    cache_minutes: float | None = None,
    max_minutes: float | None = None,
    fsdp: bool = False,
    dist: D.DistInfo | None = None,
    export_dtype: torch.dtype | None = torch.float16,
    extra: dict | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[TrainResult, list[Path] | None]:
    """Train one stage (resuming from `work_dir`) and export it; see the module docstring.

    Returns the result and the written files (the MMDiT, plus the text encoder after the base stage),
    or None while the run is only paused / interrupted.
    """
    from ..audio import MelEncoder
    from ..model import MMDiT, MMDiTConfig
    from ..text import BuiltinTextEncoder, load_text_encoder
    from ..weights import load_into, load_safetensors
    from .data import LatentBatches, build_latent_cache, load_vae
    from .objective import flow_matching_loss
    from .stages import build_stage2, trainable_parameters, trains_text_encoder

    dist = dist or D.DistInfo(device=torch.device("cpu"))
    say = log if log is not None else (lambda m: D.is_main_print(m, dist))
    stage = settings.stage
    recipe = settings.recipe()
    out_path = Path(out_path)
    work_dir = Path(work_dir)

    # ---- 1. every file and option checked before any expensive work ------------------------------------
    vae_path = _need_file(vae, "--vae", "the trained VAE encodes the training windows")
    start_files: dict[str, Path] = {}
    if stage == "stage1":
        start_files["init"] = _need_file(init, "--init", "stage1 starts from the base (text+video) MMDiT")
    elif stage == "stage2":
        start_files["base"] = _need_file(base, "--base", "stage2 takes the text/video branches of the base")
        start_files["stage1"] = _need_file(stage1, "--stage1", "stage2 takes the audio branch of stage 1")
    elif init is not None:
        start_files["init"] = _need_file(init, "--init", "weights to continue from")
    if text_encoder is None and stage in ("stage1", "stage2"):
        text_encoder = _base_text_encoder(next(iter(start_files.values())), stage)
    if text_encoder is not None and not (Path(text_encoder).exists() or str(text_encoder).startswith("builtin:")):
        raise InputError(f"--text-encoder {text_encoder} does not exist")
    # A given encoder is pretrained (or an earlier base's): frozen in every stage. Only one this run builds
    # from scratch trains, in base / joint.
    pretrained_text = text_encoder is not None
    if text_out is not None and (pretrained_text or stage not in ("base", "joint")):
        raise InputError(f"--text-out: this {stage} run trains no text encoder (a given --text-encoder stays frozen, "
                         "and only base / joint train one built from scratch); drop --text-out")

    # Read now, not at export: the starting files may be moved or replaced during a run of hours.
    started_from = started_from_record(start_files)

    if text_encoder is None:
        text = BuiltinTextEncoder.from_config(settings.text_preset, device=dist.device, seed=config.seed)
    else:
        text = load_text_encoder(text_encoder, device=dist.device)

    vae_module, _ = load_vae(vae_path, device=dist.device)
    temporal_factor = int(vae_module.temporal_factor)
    if start_files:
        first = start_files.get("init") or start_files["base"]
        _, start_config = load_safetensors(first, "mmdit")
        model_config = MMDiTConfig.from_dict(start_config)
        if settings.pooled_text and not model_config.pooled_text:
            if stage == "stage2":
                raise InputError("--pooled-text: stage 2 takes the text branch from the base; train the base (or "
                                 "stage 1's --init) with it instead")
            model_config = dataclasses.replace(model_config, pooled_text=True)
        if settings.audio_mode is not None and settings.audio_mode != model_config.audio_mode:
            raise InputError(f"{first} was trained with audio_mode {model_config.audio_mode!r}, this run asks for "
                             f"{settings.audio_mode!r}: train a base with --audio-mode {settings.audio_mode}")
    else:
        mel_dim = MelEncoder().dim
        overrides = {"audio_mode": settings.audio_mode or "branch", "latent_channels": vae_module.latent_channels,
                     "audio_dim": mel_dim * settings.audio_window, "text_dim": int(text.dim),
                     "pooled_text": bool(settings.pooled_text)}
        model_config = MMDiTConfig.preset(settings.preset, **overrides)
    if model_config.latent_channels != vae_module.latent_channels:
        raise InputError(f"the MMDiT has {model_config.latent_channels} latent channels, the VAE "
                         f"{vae_module.latent_channels}: use the VAE the base stage was trained with")
    settings = dataclasses.replace(settings, audio_mode=model_config.audio_mode)

    # ---- 2. the latent cache (rank 0 builds it, the others wait and read it) ---------------------------
    cache_dir = Path(cache_dir) if cache_dir is not None else work_dir.parent / "latent_cache"
    if dist.is_main:
        cache = build_latent_cache(data_dir, vae_module, cache_dir, settings.frames, settings.windows_per_clip,
                                   settings.delta, settings.audio_window, config.seed, split=settings.split,
                                   max_clips=settings.max_clips, max_minutes=cache_minutes, log=say)
    D.barrier(dist)
    if not dist.is_main:
        from .data import LatentCache

        cache = LatentCache.load(cache_dir)
    del vae_module
    fps = _cache_fps(cache_dir)

    # ---- 3. model and text encoder at the stage's starting point --------------------------------------
    torch.manual_seed(config.seed)
    model = MMDiT(model_config, device=dist.device)
    if stage == "stage2":
        b_state, _ = load_safetensors(start_files["base"], "mmdit")
        s_state, _ = load_safetensors(start_files["stage1"], "mmdit")
        load_into(model, build_stage2(b_state, s_state, model_config), start_files["base"])
    elif "init" in start_files:
        state, _ = load_safetensors(start_files["init"], "mmdit")
        if model_config.pooled_text and not any(k.startswith("text_pool.") for k in state):
            # Gaining the pooled-text path: its fresh weights, whose output starts at zero (see pooled_text).
            state = {**{k: v for k, v in model.state_dict().items() if k.startswith("text_pool.")}, **state}
        load_into(model, state, start_files["init"])
    if getattr(text, "dim", None) != model_config.text_dim:
        raise InputError(f"the text encoder gives {text.dim}-dim features, the MMDiT expects "
                         f"{model_config.text_dim}: use the text encoder of the base stage")
    params = trainable_parameters(model, text, stage, pretrained_text=pretrained_text)
    train_text = trains_text_encoder(text, stage, pretrained=pretrained_text)
    net = D.wrap(model, dist, fsdp=fsdp)
    if net is model and D.is_fsdp(model):
        params = trainable_parameters(model, text, stage, pretrained_text=pretrained_text)  # FSDP: sharded parameters
    modules = {"mmdit": net}
    if train_text:
        modules["text_encoder"] = text  # outside DDP: the Trainer averages its gradients
    else:
        text.eval()

    def loss_fn(batch, generator):
        return flow_matching_loss(net, text, batch, recipe, stage, generator)

    batches = LatentBatches(cache, config.batch_size, config.seed, dist.rank, dist.world)
    run_info = {
        "model": "mmdit", "stage": stage, "mmdit_config": model_config.to_dict(),
        "text_encoder": text.config.to_dict() if hasattr(text, "config") and hasattr(text.config, "to_dict")
        else str(text_encoder),
        "recipe": recipe.to_dict(),
        "settings": asdict(settings),
        "cache": _cache_fingerprint(cache_dir),
        "start": {k: v["fingerprint"] for k, v in started_from.items()},
        "text_encoder_file": _fingerprint(text_encoder) if text_encoder is not None and Path(text_encoder).is_file()
        else None,
        "world": dist.world, "fsdp": bool(fsdp),
    }
    trainer = Trainer(modules, params, loss_fn, batches, config, work_dir, run_info=run_info,
                      added_later={"recipe": _LATER_SETTINGS, "settings": _LATER_SETTINGS}, dist=dist, log=say)
    trainer.resume()
    n_train = sum(p.numel() for p in params)
    say(f"MMDiT {stage} ({settings.preset}, audio {model_config.audio_mode}, recipe {recipe.reference_mode}): "
        f"{n_train / 1e6:.2f} M trained parameters{' incl. the text encoder' if train_text else ''}, "
        f"{len(cache)} windows, batch {config.batch_size} x {dist.world}")
    result = trainer.run(max_minutes=max_minutes)
    if not result.done:
        return result, None

    # ---- 4. export ------------------------------------------------------------------------------------------
    frame_size = _cache_frame_size(cache_dir)
    meta = {"stage": stage, "recipe": recipe.to_dict(), "train_settings": asdict(settings),
            "train_config": config.to_dict(),
            "render_defaults": render_defaults(settings, recipe, fps, frame_size, temporal_factor), **(extra or {})}
    if started_from:
        meta["started_from"] = json.dumps(started_from, sort_keys=True)
    if text_encoder is not None and Path(text_encoder).is_file():
        # The frozen encoder is not copied: the file says which one it needs (stage 1 / 2 find it by this).
        meta["text_encoder"] = json.dumps({"file": str(Path(text_encoder).resolve()),
                                           "fingerprint": run_info["text_encoder_file"], "frozen": True}, sort_keys=True)
    written = [trainer.export(out_path, "mmdit", "mmdit", model_config.to_dict(), extra=meta, dtype=export_dtype)]
    if train_text:
        text_path = Path(text_out) if text_out is not None else out_path.with_name(TEXT_ENCODER_FILE)
        written.append(trainer.export(text_path, "text_encoder", "text_encoder", text.config.to_dict(),
                                      extra={"stage": stage, "trained_with": str(out_path), **(extra or {})},
                                      dtype=export_dtype))
    if dist.is_main:
        say("wrote " + ", ".join(str(p) for p in written))
    return result, written if dist.is_main else []


def _base_text_encoder(start: Path, stage: str) -> Path:
    """The text encoder a stage 1 / 2 run keeps frozen when none is given: the one the starting MMDiT names
    in its metadata (if that file is still there, unchanged), else text_encoder.safetensors next to it."""
    from ..weights import read_metadata

    recorded = json.loads(read_metadata(start).get("text_encoder", "{}"))
    path = Path(recorded["file"]) if recorded.get("file") else None
    if path is not None and path.is_file() and _fingerprint(path) == recorded.get("fingerprint"):
        return path
    beside = start.with_name(TEXT_ENCODER_FILE)
    if beside.is_file():
        return beside
    named = f"; {start.name} was trained with {path}, which is gone or changed" if path is not None else ""
    raise InputError(f"{stage} keeps the base stage's text encoder frozen: pass --text-encoder (looked for "
                     f"{beside} next to the starting weights{named})")


def _manifest(cache_dir) -> dict:
    return json.loads((Path(cache_dir) / "manifest.json").read_text(encoding="utf-8"))


def _cache_fingerprint(cache_dir) -> str:
    return _manifest(cache_dir)["fingerprint"]


def _cache_fps(cache_dir) -> float:
    return float(_manifest(cache_dir)["fps"])


def _cache_frame_size(cache_dir) -> tuple[int, int]:
    return tuple(_manifest(cache_dir)["frame_size"])
