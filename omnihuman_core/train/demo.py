"""`train demo`: every shipped demo model in one command, within a time budget.

dataset (synth, made if missing) -> VAE -> latent cache -> text encoder (pretrained on the captions, then
frozen) -> base (text+video) -> stage 1 (all branches) -> stage 2 (base text/video + stage-1 audio, fine-tuned)
-> 2x upscaler, then the
fp16 files in OUT/ with their training records in the metadata. Every stage checkpoints into WORK/, so rerunning the same
command after an interruption resumes where it stopped; finished stages are skipped.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

# The demo pipeline on the generic Trainer (train/{loop,data,vae,text,mmdit,upscaler}.py). The budget is split over the steps by these stated
# fractions; each step's share is fixed when the step first starts, as its fraction of the minutes left to
# the steps not yet done (a slow dataset or cache shrinks the later steps in proportion), and stored in
# WORK/plan.json, so a rerun resumes every step with the budget it started with.
# The cache share buys one bfloat16-encoded window of each of the ~2100 training clips (~0.4 s a window);
# the text share (~2.4 of 120 min) is about what masked-word pretraining on the ~8000 captions needs to level off.
SPLIT = {"vae": 0.15, "cache": 0.14, "text": 0.02, "base": 0.21, "stage1": 0.12, "stage2": 0.26, "upscaler": 0.10}
# One clip per character, many characters: the first demo run (720 clips of 180 characters, 4 each) rendered
# its training characters well and collapsed on unseen ones, i.e. it memorised identities. Identity is what
# must generalise, so the dataset spends its clips on distinct characters; 4% (~90 clips) are held out.
CLIPS_PER_IDENTITY = 1
TEST_FRACTION = 0.04
# Optimiser per MMDiT stage (batch 8): from scratch 6e-4 (the first demo run's 3e-4 at batch 4 was far from
# converged in the same minutes; 6e-4 at batch 8 trained stably); the warm-up stages start from trained
# weights and take a lower rate.
STAGE_LR = {"base": 6e-4, "stage1": 3e-4, "stage2": 2e-4}
# Text-encoder pretraining (masked words, train/text.py): see docs/TRAINING.md, "Text encoder", for the
# measured s/step and how far it gets in the demo's share.
TEXT_BATCH, TEXT_LR, TEXT_WARMUP = 64, 1e-3, 50
# Face cells weigh this much more in the flow loss (Recipe.face_weight): the mouth is a few latent cells of
# a 16x16 frame, and lip sync and identity are read there.
FACE_WEIGHT = 2.0
# Mouth cells (the lower middle of the face box, objective.mouth_cells) weigh this much in the audio stages
# (stage 1, stage 2; the base has no audio to explain the mouth with). With the face weight alone the demo
# model learnt almost no lip sync in its budget; 30 made its audio branch learn ~4x faster per minute
# (BENCHMARKS.md, "Why the audio branch learnt so little, and the mouth weight").
MOUTH_WEIGHT = 30.0
# Motion-latent noise augmentation (Recipe.motion_noise) is off: a run with 0.1 (and the base stage cut to a
# quarter of the MMDiT minutes) moved the hands twice as much but kept the characters less well, and the
# chained renders of this recipe do not drift (BENCHMARKS.md, "A recipe experiment").
MOTION_NOISE = 0.0
# Shift of the MMDiT stages' training flow times (MMDiTSettings.timestep_shift; 1 = logit-normal(0, 1)); the
# demo samples with shift 3 (cli.DEMO_RENDER_DEFAULTS). Training at 3 too was not better in the same 2 hours
# (BENCHMARKS.md, "Timestep shift in the demo recipe"). Stored in plan.json by a work folder's first run.
TIMESTEP_SHIFT = 1.0
STEPS = ("data", "vae", "cache", "text", "base", "stage1", "stage2", "upscaler", "export")
# The steps that train a model, and so can be given a step count instead of minutes (`--steps`): minutes buy
# twice the steps on a machine twice as fast, so a plan's step counts are what reproduces its models elsewhere.
TRAINED = ("vae", "text", "base", "stage1", "stage2", "upscaler")
MMDIT_STAGES = ("base", "stage1", "stage2")


class _Stopped(Exception):
    """A step was paused or interrupted: its checkpoint is kept and a rerun continues it."""


def train_demo(data_dir, out_dir, work_dir, *, minutes_total: float = 120.0, clips: int = 2200, size: int = 128,
               frames: int = 121, sr_data=None, sr_clips: int = 120, sr_frames: int = 49, preset: str = "demo",
               seed: int = 0, device=None, precision: str = "auto", only=None, shares=None,
               timestep_shift: float | None = None, fixed_steps=None, log=None) -> dict:
    """Rebuild the demo models into `out_dir` (vae, text_encoder, mmdit, upscaler .safetensors, fp16 EMA).

    Steps: synthetic dataset (only when `data_dir` has none) -> VAE -> latent cache -> text encoder
    (masked-word pretraining on the captions; frozen in every MMDiT stage) -> base (text+video) -> stage 1 ->
    stage 2 -> upscaler (on a 2x-resolution synthetic set) -> export. Every step resumes from `work_dir`; finished steps are skipped. `precision` "auto" trains in
    bfloat16 where the hardware has it (`loop.fast_precision`). Returns the plan record
    (`status` "done", or the step that was paused / interrupted). `shares` ({step: fraction}) overrides entries
    of SPLIT for a new work folder (stored in its plan.json; a resumed run keeps the split it started with);
    `timestep_shift` (None: TIMESTEP_SHIFT) likewise. `fixed_steps` ({step: count}, steps of TRAINED) trains those
    steps for exactly that many optimiser steps instead of their minutes (stored and kept likewise): the steps with
    a budget share what is left of `minutes_total`, and a fixed step ends at its count, so a run can pass the total.
    """
    import torch

    from ..errors import InputError
    from . import distributed as D
    from .loop import PRECISIONS, fast_precision

    say = log or (lambda m: print(m, flush=True))
    if minutes_total <= 0:
        raise InputError(f"--minutes-total must be > 0, got {minutes_total}")
    if precision != "auto" and precision not in PRECISIONS:
        raise InputError(f"--precision must be auto or one of {', '.join(PRECISIONS)}, got {precision!r}")
    unknown = sorted(set(only or ()) - set(STEPS))
    if unknown:
        raise InputError(f"--only: unknown step(s) {unknown}; steps are {' '.join(STEPS)}")
    split = budget_split(shares)
    fixed = fixed_step_counts(fixed_steps)
    work = Path(work_dir)
    plan_path = work / "plan.json"
    plan = json.loads(plan_path.read_text()) if plan_path.exists() else {"minutes_total": minutes_total, "stages": {}}
    # Plans written before the split was stored used the default one.
    started = plan.setdefault("split", dict(SPLIT) if plan["stages"] else split)
    if shares and started != split:
        raise InputError(f"--share: {work}/plan.json was started with the split {started}; a run keeps its split "
                         f"(drop --share to resume it, or pass a new --work)")
    # Plans written before step counts could be fixed had none.
    started_fixed = plan.setdefault("fixed_steps", {} if plan["stages"] else fixed)
    if fixed and started_fixed != fixed:
        raise InputError(f"--steps: {work}/plan.json was started with the step counts {started_fixed or 'none'}; a run "
                         f"keeps them (drop --steps / --steps-from to resume it, or pass a new --work)")
    if timestep_shift is not None and (isinstance(timestep_shift, bool) or not isinstance(timestep_shift, (int, float))
                                       or not (timestep_shift > 0 and math.isfinite(timestep_shift))):
        raise InputError(f"--timestep-shift must be a number > 0 (1 = no shift), got {timestep_shift!r}")
    # Plans written before the shift was stored trained with none.
    shift = plan.setdefault("timestep_shift", 1.0 if plan["stages"] else float(timestep_shift or TIMESTEP_SHIFT))
    if timestep_shift is not None and float(timestep_shift) != shift:
        raise InputError(f"--timestep-shift: {work}/plan.json was started with timestep shift {shift:g}; a run keeps "
                         f"it (drop --timestep-shift to resume, or pass a new --work)")
    work.mkdir(parents=True, exist_ok=True)
    dist = D.DistInfo(device=torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu")))
    # A resumed run keeps the precision it started with (its checkpoints were trained in it).
    plan.setdefault("precision", fast_precision(dist.device) if precision == "auto" else precision)
    run = _DemoRun(plan, plan_path, Path(data_dir), Path(out_dir), work, say, dist, preset, seed, only)
    run.sr_data = Path(sr_data) if sr_data is not None else run.data_dir.with_name(run.data_dir.name + f"_sr{2 * size}")
    try:
        run.steps(clips, size, frames, sr_clips, sr_frames)
    except _Stopped:
        say(f"[demo] stopped during {plan['status']}; rerun the same command to continue")
        return plan
    plan["status"] = "done"
    run.save()
    return plan


def fixed_step_counts(counts=None) -> dict:
    """`counts` ({step: optimiser steps}) checked: steps of TRAINED, whole numbers >= 1."""
    from ..errors import InputError

    fixed = {}
    for step, value in (counts or {}).items():
        if step not in TRAINED:
            raise InputError(f"--steps: unknown step {step!r}; steps that train a model are {' '.join(TRAINED)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or value != int(value) or value < 1:
            raise InputError(f"--steps {step}: the step count must be a whole number >= 1, got {value!r}")
        fixed[step] = int(value)
    return fixed


def budget_split(shares=None) -> dict:
    """SPLIT with `shares` ({step: fraction > 0}) put over its entries; wrong names or values fail here."""
    from ..errors import InputError

    split = dict(SPLIT)
    for step, value in (shares or {}).items():
        if step not in SPLIT:
            raise InputError(f"--share: unknown step {step!r}; steps with a budget are {' '.join(SPLIT)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
            raise InputError(f"--share {step}: the fraction must be a number > 0 (a share of the total, like "
                             f"SPLIT's {SPLIT[step]}), got {value!r}")
        split[step] = float(value)
    return split


class _DemoRun:
    def __init__(self, plan, plan_path, data_dir, out_dir, work, say, dist, preset, seed, only):
        self.plan, self.plan_path, self.data_dir, self.out_dir, self.work = plan, plan_path, data_dir, out_dir, work
        self.say, self.dist, self.preset, self.seed, self.only = say, dist, preset, seed, only
        self.tiny = preset == "tiny"
        self.precision = plan["precision"]
        self.command = (f"python -m omnihuman_core train demo --data {data_dir} --out {out_dir} "
                        f"--work {work} --minutes-total {plan['minutes_total']:g} --preset {preset} --seed {seed} "
                        f"--precision {self.precision}" +
                        "".join(f" --share {k}={v:g}" for k, v in plan["split"].items() if v != SPLIT.get(k)) +
                        (f" --timestep-shift {plan['timestep_shift']:g}"
                         if plan["timestep_shift"] != TIMESTEP_SHIFT else "") +
                        "".join(f" --steps {k}={v}" for k, v in plan["fixed_steps"].items()))
        self.paths = {
            "vae": work / "vae" / "vae.safetensors", "base": work / "base" / "mmdit.safetensors",
            "text_encoder": work / "text" / "text_encoder.safetensors", "stage1": work / "stage1" / "mmdit.safetensors",
            "stage2": work / "stage2" / "mmdit.safetensors", "upscaler": work / "upscaler" / "upscaler.safetensors"}

    # ---- bookkeeping ----------------------------------------------------------------------------------
    def save(self) -> None:
        tmp = self.plan_path.with_name("plan.json.tmp")
        tmp.write_text(json.dumps(self.plan, indent=1, default=str))
        tmp.replace(self.plan_path)

    def wanted(self, step: str) -> bool:
        return not self.only or step in self.only

    def done(self, step: str) -> bool:
        return bool(self.plan["stages"].get(step, {}).get("done"))

    def used_minutes(self) -> float:
        return sum(s.get("minutes", 0.0) for s in self.plan["stages"].values())

    def budget(self, step: str) -> float:
        """This step's minutes: its fraction of what is left for the steps not yet finished."""
        entry = self.plan["stages"].setdefault(step, {})
        if "budget" not in entry:
            split = self.plan["split"]
            open_steps = [s for s in split if not self.done(s) and s not in self.plan["fixed_steps"]]
            share = split[step] / sum(split[s] for s in open_steps)
            left = max(self.plan["minutes_total"] - self.used_minutes(), 0.0)
            entry["budget"] = round(max(share * left, 0.05), 3)
            self.save()
        return entry["budget"]

    def limits(self, step: str, steps: int = 0) -> dict:
        """TrainConfig's `minutes` and `steps` for a trained step: its fixed step count with no time limit, or
        its budget (and `steps`, a cap of its own, if any)."""
        count = self.plan["fixed_steps"].get(step)
        if count:
            self.plan["stages"].setdefault(step, {})["fixed_steps"] = count
            return {"minutes": 0.0, "steps": count}
        return {"minutes": self.budget(step), "steps": steps}

    def finish(self, step: str, started: float, **record) -> None:
        entry = self.plan["stages"].setdefault(step, {})
        entry.update(record, done=True, minutes=round(entry.get("minutes", 0.0) + (time.time() - started) / 60, 2))
        self.save()
        self.say(f"[demo] {step} done: {json.dumps(record, default=str)}")

    def check(self, result, step: str, started: float) -> None:
        if not result.done:
            entry = self.plan["stages"].setdefault(step, {})
            entry["minutes"] = round(entry.get("minutes", 0.0) + (time.time() - started) / 60, 2)
            self.plan["status"] = f"{step} {result.status}"
            self.save()
            raise _Stopped

    # ---- the steps --------------------------------------------------------------------------------------
    def steps(self, clips, size, frames, sr_clips, sr_frames) -> None:
        import torch

        from ..errors import InputError
        from ..synth import write_dataset
        from ..synth.dataset import INDEX_NAME
        from ..weights import load_safetensors, read_metadata, save_safetensors
        from .cli import DEMO_CHOSEN, DEMO_RENDER_DEFAULTS
        from .data import build_latent_cache
        from .loop import TrainConfig
        from .mmdit import MMDiTSettings, train_mmdit
        from .stages import uses_audio
        from .text import TextSettings, train_text_encoder
        from .upscaler import train_upscaler
        from .vae import VAESettings, train_vae

        tiny, seed, paths, say, dist = self.tiny, self.seed, self.paths, self.say, self.dist
        f32 = torch.float32
        if self.wanted("data") and not (self.data_dir / INDEX_NAME).exists():
            t0 = time.time()
            say(f"[demo] writing the synthetic dataset {self.data_dir} ({clips} clips, {size} px, {frames} frames)")
            write_dataset(self.data_dir, clips, seed=seed, size=size, frames=frames, test_fraction=TEST_FRACTION,
                          clips_per_identity=CLIPS_PER_IDENTITY, workers=min(os.cpu_count() or 1, 8))
            self.finish("data", t0, clips=clips)

        if self.wanted("vae") and not self.done("vae"):
            t0 = time.time()
            # Small crops of short windows in bigger batches: the convolutional VAE learns the same statistics
            # ~4x cheaper per step than 64 px x 9 frames, and lr 1e-3 converged where 4e-4 had not within the
            # demo's budget (the first shipped VAE: 4591 steps, loss 0.103). Half the crops are centred on the
            # face (its labelled box), where lip sync and identity are read.
            settings = VAESettings(preset=self.preset, crop=32, frames=5, max_clips=400, face_crops=0.5,
                                   stats_windows=2 if tiny else 24, stats_frames=9 if tiny else 17)
            config = TrainConfig(lr=1e-3, warmup=100, batch_size=2 if tiny else 8, ema_decay=0.999, seed=seed,
                                 log_every=25, precision=self.precision, **self.limits("vae"))
            result, _ = train_vae(self.data_dir, paths["vae"], self.work / "vae" / "run", settings, config, dist=dist,
                                  export_dtype=f32, extra={"training_command": self.command + " (step vae)"}, log=say)
            self.check(result, "vae", t0)
            self.finish("vae", t0, steps=result.step, train_minutes=result.minutes, final_loss=result.final_loss)

        mm = dict(preset=self.preset, text_preset=self.preset, frames=9 if tiny else 33, windows_per_clip=1,
                  face_weight=FACE_WEIGHT, motion_noise=MOTION_NOISE,
                  timestep_shift=self.plan["timestep_shift"])
        cache_dir = self.work / "latent_cache"
        if self.wanted("cache") and not self.done("cache"):
            t0 = time.time()
            # A fixed MMDiT stage asks for the same training data on any machine: its cache is built whole.
            whole = any(s in self.plan["fixed_steps"] for s in MMDIT_STAGES)
            cache = build_latent_cache(self.data_dir, paths["vae"], cache_dir, mm["frames"], mm["windows_per_clip"],
                                       seed=seed, max_minutes=None if whole else self.budget("cache"),
                                       device=dist.device,
                                       precision=self.precision, log=say)
            self.finish("cache", t0, windows=len(cache))

        if self.wanted("text") and not self.done("text"):
            t0 = time.time()
            # tiny: a step cap too, so the smoke run does not spend the budget's floor on a 40 k-parameter model.
            config = TrainConfig(lr=TEXT_LR, warmup=TEXT_WARMUP, batch_size=8 if tiny else TEXT_BATCH,
                                 weight_decay=0.01, ema_decay=0.995, seed=seed, log_every=25,
                                 precision=self.precision, **self.limits("text", 20 if tiny else 0))
            result, _ = train_text_encoder(self.data_dir, paths["text_encoder"], self.work / "text" / "run",
                                           TextSettings(preset=self.preset, eval_captions=32 if tiny else 512),
                                           config, dist=dist, export_dtype=f32, log=say,
                                           extra={"training_command": self.command + " (step text)"})
            self.check(result, "text", t0)
            self.finish("text", t0, steps=result.step, train_minutes=result.minutes, final_loss=result.final_loss)

        # Every MMDiT stage keeps the pretrained text encoder frozen (the paper's frozen text encoder).
        starts = {"base": {"text_encoder": paths["text_encoder"]},
                  "stage1": {"init": paths["base"], "text_encoder": paths["text_encoder"]},
                  "stage2": {"base": paths["base"], "stage1": paths["stage1"], "text_encoder": paths["text_encoder"]}}
        for stage in ("base", "stage1", "stage2"):
            if not self.wanted(stage) or self.done(stage):
                continue
            t0 = time.time()
            settings = MMDiTSettings(stage=stage, mouth_weight=MOUTH_WEIGHT if uses_audio(stage) else 1.0, **mm)
            defaults = {**settings.default_train_config(), "lr": STAGE_LR[stage], "batch_size": 2 if tiny else 8}
            config = TrainConfig(seed=seed, log_every=10, precision=self.precision, **self.limits(stage), **defaults)
            result, _ = train_mmdit(self.data_dir, paths["vae"], paths[stage], self.work / stage / "run", settings,
                                    config, cache_dir=cache_dir, dist=dist, export_dtype=f32,
                                    extra={"training_command": self.command + f" (step {stage})"}, log=say,
                                    **starts.get(stage, {}))
            self.check(result, stage, t0)
            self.finish(stage, t0, steps=result.step, train_minutes=result.minutes, final_loss=result.final_loss)

        if self.wanted("upscaler") and not self.done("upscaler"):
            t0 = time.time()
            limits = self.limits("upscaler")
            if not (self.sr_data / INDEX_NAME).exists():
                say(f"[demo] writing the {2 * size} px dataset {self.sr_data} for the upscaler ({sr_clips} clips)")
                write_dataset(self.sr_data, sr_clips, seed=seed + 1, size=2 * size, frames=sr_frames)
            # What the high-resolution data and its crop cache take comes out of the upscaler's own training
            # time (the deadline), so the step keeps to its budget.
            config = TrainConfig(lr=3e-4, warmup=20, batch_size=2 if tiny else 8, weight_decay=0.01,
                                 ema_decay=0.995, seed=seed, log_every=10, precision=self.precision, **limits)
            result, _ = train_upscaler(self.sr_data, paths["vae"], paths["upscaler"], self.work / "upscaler" / "run",
                                       config, preset="sr-tiny" if tiny else "sr-demo", samples=8 if tiny else 256,
                                       crop=32 if tiny else 128, frames=5 if tiny else 17, dist=dist,
                                       deadline=t0 + limits["minutes"] * 60 if limits["minutes"] else None,
                                       export_dtype=f32, log=say,
                                       extra={"training_command": self.command + " (step upscaler)"})
            self.check(result, "upscaler", t0)
            self.finish("upscaler", t0, steps=result.step, train_minutes=result.minutes, final_loss=result.final_loss)

        if self.wanted("export"):
            self.out_dir.mkdir(parents=True, exist_ok=True)
            sources = {"vae": ("vae", paths["vae"]), "text_encoder": ("text", paths["text_encoder"]),
                       "mmdit": ("stage2", paths["stage2"]), "upscaler": ("upscaler", paths["upscaler"])}
            for name, (step, src) in sources.items():
                if not src.exists():
                    raise InputError(f"{src} is missing: run the {step} step first (rerun without --only)")
                state, config = load_safetensors(src)
                meta = read_metadata(src)
                extra = {k: v for k, v in meta.items() if not k.startswith("omnihuman.")}
                record = {k: self.plan["stages"].get(step, {}).get(k) for k in ("steps", "train_minutes", "final_loss")}
                extra["demo"] = json.dumps({"step": step, "command": self.command, **record}, sort_keys=True)
                if name == "mmdit":
                    # The stage file's own settings (reference mode, motion frames...) follow its recipe, but
                    # the guidance scales and the first frame are the demo's choice (DEMO_CHOSEN), measured on the
                    # finished model (train/cli.py):
                    # re-exporting (--only export) after changing them updates the shipped file.
                    own = json.loads(meta.get("render_defaults", "{}"))
                    chosen = {k: DEMO_RENDER_DEFAULTS[k] for k in DEMO_CHOSEN}
                    extra["render_defaults"] = json.dumps({**DEMO_RENDER_DEFAULTS, **own, **chosen}, sort_keys=True)
                state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
                save_safetensors(self.out_dir / f"{name}.safetensors", state, meta["omnihuman.kind"], config,
                                 extra=extra)
            self.plan["exported"] = str(self.out_dir)
            self.save()
            say(f"[demo] wrote {', '.join(str(self.out_dir / (n + '.safetensors')) for n in sources)} "
                f"({self.used_minutes():.1f} min of {self.plan['minutes_total']:g})")
