"""`python -m omnihuman_core train {vae,text,mmdit,upscaler,demo} ...` (argparse only at import; torch loads when a command runs).

Every command resumes from its --work folder: rerun the same command after a crash, Ctrl-C or a
--max-minutes pause and it continues where it stopped. Under torchrun the same commands train on several
processes (docs/TRAINING.md).
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

EXPORT_DTYPES = ("float16", "bfloat16", "float32")

# What the demo MMDiT is trained for and renders best at (written into its file as `render_defaults`,
# read by RenderSettings.for_model): 128 px, 33-frame segments (its training windows), 5 motion frames,
# few steps with a low shift (a 16x16-latent model needs less time at high noise than 480p ones).
# Guidance: weak text, stronger audio, chosen on the shipped demo model (6 held-out clips, `evaluate run
# --text-scale --audio-scale`; BENCHMARKS.md, "Guidance"): with the mouth weight its audio branch works, and
# audio 8 had the best lip sync (0.547; 4: 0.444, 12: 0.537) at no cost in identity (0.703; 4: 0.693). On the
# model before the mouth weight, audio 4 had been best (its audio branch barely worked; stronger guidance only
# smeared the character).
# First frame: the reference image is also pinned as the first frame of the first segment (the video starts on
# the image; the pseudo last frame still conditions every segment). Left to generate its own first frame, the
# demo model starts every video on a smeared character, and the first second is its worst: on the 16 held-out
# clips pinning it raised identity, lip sync and action accuracy together (BENCHMARKS.md, "First frame from
# the reference"). Recipe.render_defaults turns it off for the "reference" / "none" ablations.
DEMO_RENDER_DEFAULTS = {
    "fps": 24.0, "segment_frames": 33, "motion_frames": 5, "short_side": 128, "steps": 20, "shift": 3.0,
    "text_scale": 2.0, "audio_scale": 8.0, "delta": 4.0, "first_frame_from_reference": True,
}
# The render defaults the demo chooses on its finished model (`train demo --only export` writes them over the
# stage file's own, so changing one here and re-exporting updates the shipped file).
DEMO_CHOSEN = ("text_scale", "audio_scale", "first_frame_from_reference")


def command_line(args: argparse.Namespace) -> str:
    """The command being run with every option spelled out, defaults included (recorded in exported files)."""
    words = ["python", "-m", "omnihuman_core", "train", args.train_command]
    for key, value in vars(args).items():
        if key in ("command", "train_command", "func") or value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            words.append(flag)
        elif isinstance(value, (list, tuple)):
            words += [flag, *map(str, value)]
        else:
            words += [flag, str(value)]
    return " ".join(shlex.quote(w) for w in words)


def _budget_args(p, steps_help: str = "optimiser steps (total over resumes)") -> None:
    p.add_argument("--steps", type=int, default=0, help=steps_help + "; 0 = until --minutes")
    p.add_argument("--minutes", type=float, default=0.0, help="training time in total over resumes; 0 = until --steps")
    p.add_argument("--max-minutes", type=float, help="stop THIS invocation after this long with a checkpoint "
                   "(rerun to continue)")


def _common_args(p) -> None:
    p.add_argument("--data", required=True, type=Path, help="dataset folder (docs/SYNTH.md layout: "
                   "<clip>/video.mp4 + audio.wav + caption.txt)")
    p.add_argument("--out", required=True, type=Path, help="output .safetensors")
    p.add_argument("--work", required=True, type=Path, help="checkpoint + log folder; a rerun resumes from it")
    p.add_argument("--preset", default="demo", help="model preset: tiny | demo (default demo)")
    p.add_argument("--batch-size", type=int, help="clips per step and process")
    p.add_argument("--lr", type=float, help="AdamW learning rate")
    p.add_argument("--warmup", type=int, help="learning-rate warm-up steps")
    p.add_argument("--cooldown", type=float, help="fraction of the run (of --steps, else --minutes) at its end over "
                   "which the learning rate falls linearly to 0 (default 0: constant); may be set when continuing a run")
    p.add_argument("--ema-decay", type=float, help="EMA decay of the exported weights")
    p.add_argument("--weight-decay", type=float, help="AdamW weight decay")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--ckpt-every", type=int, default=200, help="steps between checkpoints (also every 10 min)")
    p.add_argument("--device", help="cpu, cuda, ... (default: cuda if available; torchrun: one GPU per process)")
    p.add_argument("--export-dtype", default="float16", choices=EXPORT_DTYPES, help="dtype of the written weights")
    p.add_argument("--precision", default="float32", choices=("float32", "bfloat16"),
                   help="bfloat16: autocast the forward (weights and optimiser stay float32); 1.5-2x faster on "
                   "GPUs and AMX / AVX512-BF16 CPUs (default float32)")


def add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train the VAE, the MMDiT stages, or the whole demo model set")
    tsub = p.add_subparsers(dest="train_command", required=True, metavar="WHAT")

    v = tsub.add_parser("vae", help="train the causal video VAE (L1 + motion L1 + small KL), set its latent stats")
    _common_args(v)
    _budget_args(v)
    v.add_argument("--frames", type=int, default=9, help="video frames per training window, 1 + 4k (default 9)")
    v.add_argument("--crop", type=int, default=64, help="square crop in px, a multiple of 8 (default 64)")
    v.add_argument("--kl-weight", type=float, default=1e-6)
    v.add_argument("--motion-weight", type=float, default=0.5, help="weight of the frame-difference L1")
    v.add_argument("--max-clips", type=int, default=400, help="clips decoded into RAM (default 400)")
    v.add_argument("--face-crops", type=float, default=0.0, help="share of crops placed over the clips' face boxes "
                   "(labels.npz face_box; the mouth is small and moves), 0..1 (default 0)")
    v.set_defaults(func=_cmd_vae)

    t = tsub.add_parser("text", help="pretrain the built-in text encoder on the dataset's captions (masked-word "
                        "prediction); the MMDiT stages then keep it frozen (--text-encoder)")
    _common_args(t)
    _budget_args(t)
    t.add_argument("--init", type=Path, help="continue from this built-in text encoder file instead of a fresh init")
    t.add_argument("--mask-fraction", type=float, default=0.15, help="share of each caption's words predicted "
                   "(at least one; default 0.15)")
    t.add_argument("--replace-fraction", type=float, default=0.8, help="share of those replaced by a random word of "
                   "the batch, the rest kept (default 0.8)")
    t.set_defaults(func=_cmd_text)

    m = tsub.add_parser("mmdit", help="train one MMDiT stage: base (text+video), stage1 (all branches), stage2 (merged)")
    _common_args(m)
    _budget_args(m)
    m.add_argument("--stage", required=True, choices=("base", "stage1", "stage2", "joint"),
                   help="MM-branch warm-up stage (docs/TRAINING.md); joint = the no-warm-up ablation, all "
                   "branches and the text encoder from scratch in one stage")
    m.add_argument("--vae", required=True, type=Path, help="the trained VAE (.safetensors); encodes the latent cache")
    m.add_argument("--init", type=Path, help="stage1: the base MMDiT to start from")
    m.add_argument("--base", type=Path, help="stage2: the base MMDiT (text, video and shared branches)")
    m.add_argument("--stage1", type=Path, help="stage2: the stage-1 MMDiT (its audio branch)")
    m.add_argument("--text-encoder", type=Path, help="a pretrained text encoder (`train text`), kept frozen in every "
                   "stage; without it base / joint train a built-in one from scratch and stage1 / stage2 take the "
                   "base's (the file its metadata names, else text_encoder.safetensors next to --init / --base)")
    m.add_argument("--text-out", type=Path, help="base / joint without --text-encoder: where to write the jointly "
                   "trained text encoder (default: text_encoder.safetensors next to --out)")
    m.add_argument("--text-preset", default=None, help="base / joint without --text-encoder: built-in text encoder "
                   "preset (default: --preset)")
    m.add_argument("--audio-mode", choices=("branch", "cross_attention"),
                   help="audio fusion: the paper's branch (default), or the cross-attention ablation; stage1/2 "
                   "inherit the base's")
    m.add_argument("--recipe-reference-mode", choices=("pseudo_last_frame", "reference", "none"),
                   default="pseudo_last_frame", help="image conditioning in training (ablations: reference, none)")
    m.add_argument("--frames", type=int, default=33, help="video frames per training window, 1 + 4k (default 33)")
    m.add_argument("--windows-per-clip", type=int, default=2, help="cached windows per clip (default 2)")
    m.add_argument("--max-clips", type=int, default=0, help="use at most this many clips (0 = all)")
    m.add_argument("--cache", type=Path, help="latent cache folder (default: WORK/../latent_cache; shared by stages)")
    m.add_argument("--cache-minutes", type=float, help="stop encoding new clips into the cache after this long")
    m.add_argument("--face-weight", type=float, default=1.0,
                   help="loss weight of latent cells inside the clips' face boxes (labels.npz face_box) relative "
                   "to the rest of the frame; 1 = off (default)")
    m.add_argument("--mouth-weight", type=float, default=1.0,
                   help="loss weight of the mouth cells (the lower middle of each face box) instead of the face "
                   "weight there; 1 = off (default)")
    m.add_argument("--motion-weight", type=float, default=1.0,
                   help="loss weight of the 10%% of each window's latent cells that move most (the action's; no labels "
                   "needed); 1 = off (default)")
    m.add_argument("--motion-noise", type=float, default=0.0,
                   help="noise augmentation of the pinned motion latents: flow time drawn in [0, this] per sample "
                   "(the exported model renders with half of it); 0 = off (default)")
    m.add_argument("--p-first-frames", type=float, default=0.5,
                   help="probability a window is conditioned on its first frames (continuation; default 0.5)")
    m.add_argument("--p-drop-last", type=float, default=0.1,
                   help="probability a window drops its pseudo last frame (default 0.1); the frames it keeps show the "
                   "pose, so a higher value makes more windows read the action from the caption")
    m.add_argument("--pooled-text", action="store_true",
                   help="give the MMDiT the pooled-text path (the mean of the caption's features added to the timestep "
                   "conditioning, as in SD3); a run from an --init file without it adds it with a zero output")
    m.add_argument("--timestep-shift", type=float, default=1.0,
                   help="shift of the training flow times towards noise, as the sampler's --shift (logit-normal mean "
                   "ln(shift)); 1 = SD3's logit-normal(0, 1) (default)")
    m.add_argument("--fsdp", action="store_true", help="under torchrun: shard the model with FSDP (large configs)")
    m.set_defaults(func=_cmd_mmdit)

    u = tsub.add_parser("upscaler", help="train the 2x super-resolution model on high-resolution clips")
    _common_args(u)
    _budget_args(u)
    u.set_defaults(preset="sr-demo")
    u.add_argument("--vae", required=True, type=Path, help="the trained VAE (.safetensors)")
    u.add_argument("--samples", type=int, default=256, help="cached high-res crops (default 256)")
    u.add_argument("--crop", type=int, default=128, help="high-res crop in px (default 128)")
    u.add_argument("--frames", type=int, default=17, help="frames per crop, 1 + 4k (default 17)")
    u.set_defaults(func=_cmd_upscaler)

    d = tsub.add_parser("demo", help="rebuild the shipped demo models: dataset, VAE, cache, base, stage1, "
                        "stage2, upscaler, export")
    d.add_argument("--data", required=True, type=Path, help="dataset folder (written with the synthetic world if missing)")
    d.add_argument("--out", required=True, type=Path, help="output folder for the four .safetensors (models/demo)")
    d.add_argument("--work", required=True, type=Path, help="work folder (checkpoints, caches, logs); reruns resume")
    d.add_argument("--minutes-total", type=float, default=120.0, help="wall-clock budget of the whole run (default 120)")
    d.add_argument("--sr-data", type=Path, help="high-resolution dataset for the upscaler (written if missing; "
                   "default: DATA_sr256 next to --data)")
    d.add_argument("--clips", type=int, default=2200, help="clips of the synthetic dataset if it is written "
                   "(one character each)")
    d.add_argument("--size", type=int, default=128, help="frame size of that dataset (the upscaler's is 2x)")
    d.add_argument("--frames", type=int, default=121, help="frames per clip of that dataset")
    d.add_argument("--preset", default="demo", help="demo, or tiny for a smoke run")
    d.add_argument("--seed", type=int, default=0, help="seed of the data and every stage")
    d.add_argument("--device", help="cpu, cuda, ...")
    d.add_argument("--precision", default="auto", help="auto (bfloat16 where the hardware has it, else float32), "
                   "float32 or bfloat16; a resumed run keeps the one it started with")
    d.add_argument("--only", nargs="+", help="run only these steps (data vae cache text base stage1 stage2 "
                   "upscaler export)")
    d.add_argument("--share", action="append", default=[], metavar="STEP=FRACTION",
                   help="the budget share of a step (repeatable; vae cache text base stage1 stage2 upscaler; "
                   "defaults in train/demo.py SPLIT), e.g. --share base=0.30 --share stage2=0.19; fixed by a "
                   "new --work folder's first run")
    d.add_argument("--timestep-shift", type=float, help="shift of the MMDiT stages' training flow times (as `train "
                   "mmdit --timestep-shift`; default in train/demo.py TIMESTEP_SHIFT); fixed by a new --work folder's "
                   "first run")
    d.add_argument("--steps", action="append", default=[], metavar="STEP=COUNT",
                   help="train a step for exactly COUNT optimiser steps instead of its share of the minutes "
                   "(repeatable; vae text base stage1 stage2 upscaler), e.g. --steps vae=4666; the steps with a "
                   "budget share what is left of --minutes-total; fixed by a new --work folder's first run")
    d.add_argument("--steps-from", type=Path, metavar="PLAN",
                   help="the step count of every trained step of a finished run's plan (its work folder's plan.json, "
                   "or models/demo/train_plan.json): the same recipe on another machine, whatever its speed; "
                   "--steps entries override it")
    d.set_defaults(func=_cmd_demo)


def _dtype(name: str):
    import torch

    return getattr(torch, name)


def _train_config(args, **defaults):
    from .loop import TrainConfig

    values = dict(defaults)
    for key in ("batch_size", "lr", "warmup", "cooldown", "ema_decay", "weight_decay"):
        if getattr(args, key, None) is not None:
            values[key] = getattr(args, key)
    return TrainConfig(steps=args.steps, minutes=args.minutes, log_every=args.log_every, ckpt_every=args.ckpt_every,
                       seed=args.seed, precision=args.precision, **values)


def _finish(result, written) -> int:
    if result.status == "interrupted":
        return 130
    return 0


def _cmd_vae(args: argparse.Namespace) -> int:
    from . import distributed as D
    from .vae import VAESettings, train_vae

    config = _train_config(args, lr=4e-4, warmup=100, batch_size=4, ema_decay=0.999)
    settings = VAESettings(preset=args.preset, frames=args.frames, crop=args.crop, kl_weight=args.kl_weight,
                           motion_weight=args.motion_weight, max_clips=args.max_clips, face_crops=args.face_crops)
    dist = D.setup(args.device)
    try:
        result, written = train_vae(args.data, args.out, args.work, settings, config, max_minutes=args.max_minutes,
                                    dist=dist, export_dtype=_dtype(args.export_dtype),
                                    extra={"training_command": command_line(args)})
    finally:
        D.cleanup(dist)
    return _finish(result, written)


def _cmd_text(args: argparse.Namespace) -> int:
    from . import distributed as D
    from .text import TextSettings, train_text_encoder

    config = _train_config(args, lr=1e-3, warmup=50, batch_size=64, weight_decay=0.01, ema_decay=0.995)
    settings = TextSettings(preset=args.preset, mask_fraction=args.mask_fraction,
                            replace_fraction=args.replace_fraction)
    dist = D.setup(args.device)
    try:
        result, written = train_text_encoder(args.data, args.out, args.work, settings, config, init=args.init,
                                             max_minutes=args.max_minutes, dist=dist,
                                             export_dtype=_dtype(args.export_dtype),
                                             extra={"training_command": command_line(args)})
    finally:
        D.cleanup(dist)
    return _finish(result, written)


def _cmd_mmdit(args: argparse.Namespace) -> int:
    from . import distributed as D
    from .mmdit import MMDiTSettings, train_mmdit

    settings = MMDiTSettings(
        stage=args.stage, preset=args.preset, text_preset=args.text_preset or args.preset, audio_mode=args.audio_mode,
        reference_mode=args.recipe_reference_mode, frames=args.frames, windows_per_clip=args.windows_per_clip,
        max_clips=args.max_clips, face_weight=args.face_weight, mouth_weight=args.mouth_weight,
        motion_weight=args.motion_weight, motion_noise=args.motion_noise, pooled_text=args.pooled_text,
        p_first_frames=args.p_first_frames, p_drop_last=args.p_drop_last, timestep_shift=args.timestep_shift)
    config = _train_config(args, **settings.default_train_config())
    dist = D.setup(args.device)
    try:
        result, written = train_mmdit(
            args.data, args.vae, args.out, args.work, settings, config, init=args.init, base=args.base,
            stage1=args.stage1, text_encoder=args.text_encoder, text_out=args.text_out, cache_dir=args.cache,
            cache_minutes=args.cache_minutes, max_minutes=args.max_minutes, fsdp=args.fsdp, dist=dist,
            export_dtype=_dtype(args.export_dtype), extra={"training_command": command_line(args)})
    finally:
        D.cleanup(dist)
    return 130 if result.status == "interrupted" else 0


def _cmd_upscaler(args: argparse.Namespace) -> int:
    from . import distributed as D
    from .upscaler import train_upscaler

    config = _train_config(args, lr=3e-4, warmup=20, batch_size=8, weight_decay=0.01, ema_decay=0.995)
    dist = D.setup(args.device)
    try:
        result, written = train_upscaler(args.data, args.vae, args.out, args.work, config, preset=args.preset,
                                         samples=args.samples, crop=args.crop, frames=args.frames,
                                         max_minutes=args.max_minutes, dist=dist,
                                         export_dtype=_dtype(args.export_dtype),
                                         extra={"training_command": command_line(args)})
    finally:
        D.cleanup(dist)
    return _finish(result, written)


def _step_values(items, flag: str, convert, example: str) -> dict:
    """`--flag STEP=VALUE` items as {step: convert(VALUE)}; the names and ranges are checked by train_demo."""
    from ..errors import InputError

    values = {}
    for item in items:
        step, _, value = item.partition("=")
        try:
            values[step.strip()] = convert(value)
        except ValueError:
            raise InputError(f"{flag} {item!r}: expected {example}") from None
    return values


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import train_demo

    shares = _step_values(args.share, "--share", float, "STEP=FRACTION, e.g. base=0.30")
    fixed, shift = _plan_step_counts(args.steps_from) if args.steps_from else ({}, None)
    if args.timestep_shift is None:
        args.timestep_shift = shift
    fixed.update(_step_values(args.steps, "--steps", int, "STEP=COUNT, e.g. vae=4666"))
    plan = train_demo(args.data, args.out, args.work, minutes_total=args.minutes_total, clips=args.clips,
                      size=args.size, frames=args.frames, sr_data=args.sr_data, preset=args.preset, seed=args.seed,
                      device=args.device, precision=args.precision, only=args.only, shares=shares,
                      timestep_shift=args.timestep_shift, fixed_steps=fixed)
    return 0 if plan.get("status") == "done" or "paused" in plan.get("status", "") else 130


def _plan_step_counts(path: Path) -> tuple[dict, float | None]:
    """The step count of every finished trained step of a `train demo` plan, and its timestep shift (None if the
    plan predates it: such runs trained without one, the default)."""
    from ..errors import InputError
    from .demo import TRAINED

    try:
        plan = json.loads(Path(path).read_text())
        stages = plan["stages"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"--steps-from {path}: not a readable `train demo` plan ({e}); pass a work folder's "
                         f"plan.json or models/demo/train_plan.json") from None
    counts = {s: stages[s]["steps"] for s in TRAINED
              if isinstance(stages.get(s), dict) and stages[s].get("done") and stages[s].get("steps")}
    if not counts:
        raise InputError(f"--steps-from {path}: the plan has no finished step with a step count (a run that has "
                         f"not trained yet?); pass a finished run's plan.json")
    return counts, plan.get("timestep_shift")
