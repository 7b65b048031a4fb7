"""`python -m omnihuman_core ...`: the command-line face of the library.

Every subcommand imports what it needs when it runs, so `--help` is instant and a missing optional
dependency only affects the command that needs it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from .errors import InputError, OmniHumanError

# Kinds of model file `init` can create, with the presets each offers.
INIT_KINDS = ("mmdit", "vae", "text_encoder")


def _cmd_init(args: argparse.Namespace) -> int:
    """Write a randomly initialised model file (tests, training from scratch)."""
    import torch

    from .weights import save_safetensors

    torch.manual_seed(args.seed)
    if args.kind == "mmdit":
        from .model import MMDiT, MMDiTConfig

        if args.preset == "base":
            raise InputError("the base preset is paper-scale (22 B parameters) and only built on the meta "
                             "device to report its size: use `bench --only base`, or init tiny / demo")
        overrides = {"audio_mode": args.audio_mode} if args.audio_mode else {}
        if args.audio_dim:
            overrides["audio_dim"] = args.audio_dim
        config = MMDiTConfig.preset(args.preset, **overrides)
        module = MMDiT(config)
    elif args.kind == "vae":
        from .vae import CausalVAEConfig, CausalVideoVAE

        config = CausalVAEConfig.preset(args.preset)
        module = CausalVideoVAE.from_config(config)
    else:
        from .text import BuiltinTextConfig, BuiltinTextEncoder

        config = BuiltinTextConfig.preset(args.preset)
        module = BuiltinTextEncoder.from_config(config)
    n_params = sum(p.numel() for p in module.parameters())
    path = save_safetensors(
        args.out, module.state_dict(), args.kind, config.to_dict(),
        {"omnihuman.note": f"random init, preset {args.preset}, seed {args.seed}"},
    )
    print(f"wrote {path} ({args.kind}, preset {args.preset}, {n_params:,} parameters)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m omnihuman_core",
        description="OmniHuman-1.5: reference image + speech audio + optional prompt -> video.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", help="write a randomly initialised model file")
    p.add_argument("--preset", default="tiny", help="tiny | demo | base (base only for mmdit, meta-device sizes)")
    p.add_argument("--kind", default="mmdit", choices=INIT_KINDS, help="which model (default: mmdit)")
    p.add_argument("--audio-mode", choices=("branch", "cross_attention"), help="mmdit audio fusion (ablation)")
    p.add_argument("--audio-dim", type=int, help="mmdit audio feature size per token (mel front end: 80 x "
                   "audio window 5 = 400); default: the preset's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path, help="output .safetensors file")
    p.set_defaults(func=_cmd_init)

    _add_generate_parser(sub)
    for module, name in _OPTIONAL_COMMANDS:
        try:
            register = getattr(importlib.import_module(module, __package__), name)
        except ImportError:
            continue  # that part of the library is not installed in this checkout
        register(sub)
    return parser


# Subcommands registered by the package that implements them (cheap modules: argparse only).
_OPTIONAL_COMMANDS = (
    (".bench", "add_bench_parser"),
    (".agents.cli", "add_plan_parser"),
    (".synth.cli", "add_synth_parser"),
    (".train.cli", "add_train_parser"),
    (".evaluate.cli", "add_evaluate_parser"),
)


def _add_generate_parser(sub) -> None:
    from .pipeline.settings import RenderSettings

    d = RenderSettings()
    p = sub.add_parser("generate", help="render IMAGE speaking AUDIO into an MP4 (H.264 + AAC)")
    p.add_argument("--image", required=True, type=Path, help="reference image of the character")
    p.add_argument("--audio", required=True, type=Path, help="speech or singing (WAV, MP3, FLAC, ...)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--prompt", help="one text prompt for every segment")
    g.add_argument("--prompts-file", type=Path, help="text file, one prompt per line = one per segment")
    p.add_argument("--weights", type=Path, help="MMDiT .safetensors (default: models/demo/mmdit.safetensors)")
    p.add_argument("--vae", type=Path, help="VAE .safetensors (default: models/demo/vae.safetensors)")
    p.add_argument("--text-encoder", help="builtin:<preset>, a built-in encoder .safetensors, or a transformers folder "
                   "(default: models/demo/text_encoder.safetensors)")
    p.add_argument("--audio-encoder", default="mel", help="mel (weightless) or a local wav2vec2 / Whisper folder")
    p.add_argument("--seed", type=int, default=0)
    # None = the model file's own render settings (render_defaults in its metadata), else RenderSettings'.
    model_default = " (default: the model's own setting, else {})"
    p.add_argument("--steps", type=int, help="sampler steps" + model_default.format(d.steps))
    p.add_argument("--shift", type=float, help="flow shift" + model_default.format(d.shift))
    p.add_argument("--fps", type=float, help="frames per second" + model_default.format(d.fps))
    p.add_argument("--short-side", type=int, help="output short side in pixels" + model_default.format(d.short_side))
    p.add_argument("--segment-frames", type=int, help="frames per segment" + model_default.format(d.segment_frames))
    p.add_argument("--motion-frames", type=int, help="frames carried between segments" + model_default.format(d.motion_frames))
    p.add_argument("--text-scale", type=float, help="text guidance" + model_default.format(d.text_scale))
    p.add_argument("--audio-scale", type=float, help="audio guidance" + model_default.format(d.audio_scale))
    p.add_argument("--solver", choices=("euler", "heun"), help="ODE solver" + model_default.format(d.solver))
    p.add_argument("--reference-mode", choices=("pseudo_last_frame", "reference", "none"),
                   help="how the image conditions the video" + model_default.format(d.reference_mode))
    p.add_argument("--delta", type=float, help="latent frames between the clip and the pseudo last frame"
                   + model_default.format(d.delta))
    p.add_argument("--motion-noise", type=float, help="noise (flow time) added to the frames carried between "
                   "segments; a model trained with motion noise renders with half its range"
                   + model_default.format(d.motion_noise))
    p.add_argument("--first-frame-from-reference", action=argparse.BooleanOptionalAction, default=None,
                   help="also pin the image as the video's first frame (--no-...: let the model generate it)"
                   + model_default.format(d.first_frame_from_reference))
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--dtype", default=None, choices=("float32", "bfloat16", "float16"))
    p.add_argument("--work-dir", type=Path, help="keep finished segments here (resume after a crash)")
    p.add_argument("--out", required=True, type=Path, help="output .mp4")
    try:  # System 2 options: --schedule, --reflect and the --llm-* endpoint settings
        from .agents.cli import add_generate_arguments
    except ImportError:
        pass
    else:
        add_generate_arguments(p)
    p.set_defaults(func=_cmd_generate)


DEMO_DIR = Path(__file__).resolve().parent.parent / "models" / "demo"


def _cmd_generate(args: argparse.Namespace) -> int:
    """The whole job: validate, load, render segment by segment, write the MP4."""
    import torch

    from .pipeline.generate import Renderer, generate
    from .pipeline.settings import RenderSettings

    weights = args.weights or DEMO_DIR / "mmdit.safetensors"
    vae = args.vae or DEMO_DIR / "vae.safetensors"
    text = args.text_encoder or str(DEMO_DIR / "text_encoder.safetensors")
    for label, path in (("--weights", weights), ("--vae", vae)):
        if not Path(path).exists():
            raise InputError(
                f"{label}: {path} does not exist. Pass your model files, or make random ones to test the "
                "pipeline: `python -m omnihuman_core init --kind mmdit --preset tiny --out m.safetensors` "
                "(and --kind vae); random weights render noise"
            )
    prompts = None
    if args.prompts_file:
        if not args.prompts_file.exists():
            raise InputError(f"--prompts-file {args.prompts_file} does not exist")
        prompts = [line.strip() for line in args.prompts_file.read_text().splitlines() if line.strip()]
    elif args.prompt is not None:
        prompts = args.prompt
    settings = RenderSettings.for_model(
        weights, fps=args.fps, segment_frames=args.segment_frames, motion_frames=args.motion_frames,
        steps=args.steps, shift=args.shift, text_scale=args.text_scale, audio_scale=args.audio_scale,
        solver=args.solver, reference_mode=args.reference_mode, delta=args.delta, short_side=args.short_side,
        motion_noise=args.motion_noise, first_frame_from_reference=args.first_frame_from_reference,
    )
    settings.validate()  # bad numbers fail here, before any file is loaded
    schedule_path = getattr(args, "schedule", None)
    if schedule_path is not None and (args.prompt is not None or args.prompts_file):
        raise InputError("give either --schedule or --prompt / --prompts-file, not both: the schedule's shots are the prompts")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = getattr(torch, args.dtype) if args.dtype else None
    hook = None
    if schedule_path is not None or getattr(args, "reflect", False):
        # The schedule is validated against the audio and snapped to the render grid, and the LLM
        # endpoint for Reflection is checked, before any model is loaded.
        from .agents.cli import reflection_from_args, schedule_prompts_from_args
        from .audio import load_audio
        from .media import load_image
        from .pipeline.segments import frame_count, plan_segments

        sound = load_audio(args.audio)
        segments = plan_segments(frame_count(sound.duration, settings.fps), settings.segment_frames,
                                 settings.motion_frames)
        schedule, prompts, _notes = schedule_prompts_from_args(args, segments, settings.fps, sound.duration)
        hook = reflection_from_args(args, schedule, load_image(args.image), fps=settings.fps, out_path=args.out)
    renderer = Renderer.from_files(weights, vae, text, args.audio_encoder, device=device, dtype=dtype, settings=settings)
    bar = _ProgressBar()
    result = generate(renderer, args.image, args.audio, prompts, out_path=args.out, seed=args.seed,
                      work_dir=args.work_dir, progress=bar, reflection=hook)
    bar.close()
    print(f"wrote {result.path}")
    return 0


class _ProgressBar:
    """A one-line terminal progress bar over all segments' sampler steps."""

    def __init__(self) -> None:
        import time

        self._start = time.monotonic()
        self._time = time.monotonic

    def __call__(self, event) -> None:
        if not event.total:
            return
        done = event.step / event.total
        elapsed = self._time() - self._start
        eta = elapsed / done - elapsed if done > 0 else 0.0
        bar = "#" * int(30 * done)
        print(f"\r[{bar:<30}] {100 * done:5.1f}%  segment {event.segment + 1}/{event.n_segments}  "
              f"step {event.segment_step}/{event.segment_steps}  eta {eta:5.0f}s", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        print(file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except OmniHumanError as e:
        # Bad input: one clear line, no traceback; exit code 2 like argparse's own errors.
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished segments are kept in the work folder and a rerun resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
