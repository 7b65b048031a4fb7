"""`evaluate` subcommands; `omnihuman_core/cli.py` registers them via `add_evaluate_parser`.

Cheap to import (argparse only): torch and the probes load when a command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import InputError


def _model_args(p: argparse.ArgumentParser, need_model: bool = False) -> None:
    p.add_argument("--data", required=True, type=Path, help="dataset folder (index.json + SPLIT/<clip>/...)")
    p.add_argument("--split", default="test", help="split to evaluate (default: test, the unseen identities)")
    p.add_argument("--probes", type=Path, help="probe weights (default: models/probes/probes.safetensors)")
    p.add_argument("--mmdit", type=Path, help="MMDiT .safetensors; without it only the ground truth is measured")
    p.add_argument("--vae", type=Path, help="VAE .safetensors (required with --mmdit; `run` without --mmdit: "
                   "measure the clips passed through this VAE and back, the ceiling of a model using it)")
    p.add_argument("--text-encoder", help="builtin:<preset>, a built-in encoder .safetensors or a transformers "
                   "folder (required with --mmdit)")
    p.add_argument("--audio-encoder", default="mel", help="mel (default) or a local wav2vec2 / Whisper folder")
    p.add_argument("--reference-mode", choices=("pseudo_last_frame", "reference", "none"),
                   help="how the image conditions the video (default: the model's own setting)")
    p.add_argument("--prompts", choices=("schedule", "generic"), default="schedule",
                   help="schedule: one prompt per segment from the clip's timed actions; generic: one generic "
                        "prompt for everything (the 'without reasoning' ablation)")
    p.add_argument("--steps", type=int, help="sampler steps (default: the model's own setting)")
    p.add_argument("--shift", type=float, help="sampler flow shift (default: the model's own setting)")
    p.add_argument("--solver", choices=("euler", "heun"), help="ODE solver (default: the model's own setting)")
    p.add_argument("--text-scale", type=float, help="text guidance scale (default: the model's own setting)")
    p.add_argument("--audio-scale", type=float, help="audio guidance scale (default: the model's own setting)")
    p.add_argument("--first-frame-from-reference", action=argparse.BooleanOptionalAction, default=None,
                   help="also pin the image as each video's first frame (default: the model's own setting)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--work-dir", type=Path, help="keep the rendered videos here (default: a temporary folder)")
    p.add_argument("--label", help="row name in the ablation table (default: the MMDiT file's name)")
    p.add_argument("--out", required=True, type=Path, help="results .json")


def add_evaluate_parser(subparsers) -> None:
    """Register `evaluate` with its subcommands train-probes, check-probes, run, drift and table."""
    ev = subparsers.add_parser(
        "evaluate", help="benchmark a model on held-out synthetic clips (lip sync, identity, actions, HKV, drift)",
        description="Probe networks trained on ground-truth renders read mouth, head, hands, identity and action "
                    "from any frames; the metrics compare them with the audio, the reference and the prompts. "
                    "Definitions: docs/EVALUATION.md.")
    sub = ev.add_subparsers(dest="evaluate_command", required=True, metavar="SUBCOMMAND")

    p = sub.add_parser("train-probes", help="train the probe networks on a synthetic dataset's ground truth")
    p.add_argument("--data", required=True, type=Path, help="synthetic dataset (python -m omnihuman_core synth)")
    p.add_argument("--out", required=True, type=Path, help="probe weights .safetensors to write")
    p.add_argument("--minutes", type=float, default=10.0,
                   help="CPU-time budget for everything, all threads counted (default 10)")
    p.add_argument("--frames-per-clip", type=int, default=32, help="random frames decoded per train clip (default 32)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: on a shared machine one "
                   "thread trains 2-3x more per CPU second than two)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report", type=Path, help="also write the training report (test accuracy) as JSON here")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("check-probes", help="probe accuracy on a labelled split (synthetic data only)")
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--split", default="test")
    p.add_argument("--clips", type=int, help="at most this many clips")
    p.add_argument("--probes", type=Path, help="default: models/probes/probes.safetensors")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("run", help="render held-out clips with a model and measure them against the ground truth")
    _model_args(p)
    p.add_argument("--clips", type=int, help="evaluate the first N clips of the split (default: all)")
    p.add_argument("--skip-clips", type=int, default=0,
                   help="start after the split's first N clips: a validation slice to choose settings on "
                   "(e.g. --skip-clips 16 when the first 16 are the ones reported)")
    p.add_argument("--reference-source", choices=("neutral", "action_frame"), default="neutral",
                   help="the image the model renders from: neutral (default, the benchmark: the character's idle "
                   "reference) or action_frame (diagnostic: the clip's ground-truth frame mid-action; tells whether "
                   "a model takes the action from the frame rather than the prompt)")
    p.add_argument("--segment-frames", type=int,
                   help="without --mmdit: cut each clip into segments of this many frames (5 motion frames "
                   "overlapping) and score the actions per segment, as a model with these segments is scored "
                   "(the demo model: 33); default one segment per 121 frames. With --mmdit: the model's own")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("drift", help="long videos from concatenated held-out audios: first vs last window")
    _model_args(p)
    p.add_argument("--seconds", type=float, default=60.0, help="video length (default 60)")
    p.add_argument("--window", type=float, default=10.0, help="seconds compared at each end (default 10)")
    p.add_argument("--videos", type=int, default=1,
                   help="long videos to render, each a different held-out character and audio (default 1); "
                   "the windows' numbers are averaged over them")
    p.set_defaults(func=_cmd_drift)

    p = sub.add_parser("table", help="markdown ablation table from results files of run / drift")
    p.add_argument("results", nargs="+", type=Path, help="results .json files (run and drift; one label per row)")
    p.add_argument("--out-md", type=Path, help="also write the table to this markdown file")
    p.add_argument("--against", metavar="LABEL",
                   help="also compare every row with this row clip by clip (mean difference and a 90 %% bootstrap "
                   "interval over clips for lip sync, HKV, identity and actions)")
    p.set_defaults(func=_cmd_table)

    p = sub.add_parser("merge", help="one run results file from runs of one model over disjoint clips (sittings)")
    p.add_argument("results", nargs="+", type=Path, help="`evaluate run` results .json files (same model and settings)")
    p.add_argument("--out", required=True, type=Path, help="the merged results .json")
    p.add_argument("--label", help="the merged run's label (needed when the files' labels differ)")
    p.set_defaults(func=_cmd_merge)


def _model(args):
    from .run import ModelFiles

    if args.mmdit is None:
        if args.text_encoder:
            raise InputError("--text-encoder was given without --mmdit; pass the MMDiT file too")
        if args.vae and args.evaluate_command != "run":
            raise InputError("--vae without --mmdit (the VAE round trip) is measured by `evaluate run` only; "
                             "pass the MMDiT file too")
        return None
    if args.vae is None or args.text_encoder is None:
        raise InputError("--mmdit needs --vae and --text-encoder (the files the model was trained with)")
    return ModelFiles(args.mmdit, args.vae, args.text_encoder, args.audio_encoder)


def _common(args) -> dict:
    import torch

    return dict(split=args.split, probes_path=args.probes, model=_model(args), reference_mode=args.reference_mode,
                prompts=args.prompts, steps=args.steps, shift=args.shift, solver=args.solver, text_scale=args.text_scale,
                audio_scale=args.audio_scale, first_frame_from_reference=args.first_frame_from_reference,
                seed=args.seed, device=args.device,
                dtype=getattr(torch, args.dtype) if args.dtype else None, work_dir=args.work_dir, out=args.out,
                label=args.label, progress=lambda m: print(m, file=sys.stderr, flush=True))


def _cmd_train(args) -> int:
    from .train import train_probes

    report = train_probes(args.data, args.out, args.minutes, frames_per_clip=args.frames_per_clip,
                          threads=args.threads, seed=args.seed, progress=lambda m: print(m, flush=True))
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(report["test"], indent=1))
    return 0


def _cmd_check(args) -> int:
    from .probes import Probes
    from .train import dataset_clips, require_labels, test_report

    clips = dataset_clips(args.data, args.split)[: args.clips or None]
    require_labels(clips, "check-probes")
    print(json.dumps(test_report(Probes.load(args.probes), clips), indent=1))
    return 0


def _cmd_run(args) -> int:
    from .run import run_benchmark

    result = run_benchmark(args.data, clips=args.clips, vae=args.vae if args.mmdit is None else None,
                           reference_source=args.reference_source, segment_frames=args.segment_frames,
                           skip_clips=args.skip_clips, **_common(args))
    print(json.dumps(result["summary"], indent=1))
    for k, v in result["unavailable"].items():
        print(f"note ({k}): {v}", file=sys.stderr)
    return 0


def _cmd_drift(args) -> int:
    from .run import run_drift

    result = run_drift(args.data, seconds=args.seconds, window=args.window, videos=args.videos, **_common(args))
    print(json.dumps(result["summary"], indent=1))
    return 0


def _cmd_table(args) -> int:
    from .run import paired_table, results_table

    # Both built before anything is printed or written: a wrong --against loses no table.
    table = results_table(args.results)
    if args.against:
        table += "\n" + paired_table(args.results, args.against)
    print(table, end="")
    if args.out_md:
        args.out_md.parent.mkdir(parents=True, exist_ok=True)
        args.out_md.write_text(table, encoding="utf-8")
    return 0


def _cmd_merge(args) -> int:
    from .run import merge_results

    result = merge_results(args.results, args.out, label=args.label)
    print(json.dumps(result["summary"], indent=1))
    print(f"wrote {args.out}: {len(result['clips'])} clips from {len(args.results)} files", file=sys.stderr)
    return 0
