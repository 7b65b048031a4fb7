"""Command-line pieces of System 2: the `plan` subcommand and the `--llm-*` / `--schedule` / `--reflect`
options that `generate` shares. `omnihuman_core/cli.py` wires them in.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from ..errors import InputError
from .defaults import DEFAULT_FPS, DEFAULT_MOTION_FRAMES, DEFAULT_SEGMENT_FRAMES


def add_llm_arguments(parser: argparse.ArgumentParser, *, offline: bool = False) -> None:
    """The `--llm-*` options (endpoint, model, key variable, limits, fallbacks, cache)."""
    g = parser.add_argument_group("LLM endpoint (System 2; any OpenAI-compatible server)")
    g.add_argument("--llm-base-url", metavar="URL",
                   help="e.g. https://api.openai.com/v1, http://localhost:11434/v1 (Ollama), "
                        "http://localhost:8000/v1 (vLLM), http://localhost:1234/v1 (LM Studio)")
    g.add_argument("--llm-model", metavar="NAME", help="model name as the server knows it (e.g. gpt-4o, qwen2.5vl:7b)")
    g.add_argument("--llm-api-key-env", metavar="VAR",
                   help="NAME of the environment variable holding the API key (e.g. OPENAI_API_KEY); "
                        "local servers need none")
    g.add_argument("--llm-timeout", type=float, default=120.0, metavar="S", help="seconds per request (default 120)")
    g.add_argument("--llm-retries", type=int, default=3, metavar="N",
                   help="retries after 429 / 5xx / timeouts, with exponential backoff (default 3)")
    g.add_argument("--llm-temperature", type=float, default=0.2, help="sampling temperature (default 0.2)")
    g.add_argument("--llm-seed", type=int, default=0, help="request seed, for servers that support it (default 0)")
    g.add_argument("--llm-structured", choices=("auto", "json_schema", "json_object", "off"), default="auto",
                   help="response format: auto tries a JSON schema and falls back to JSON mode, then to "
                        "extracting JSON from the text (default auto)")
    g.add_argument("--llm-audio", choices=("auto", "on", "off"), default="auto",
                   help="send the audio itself as an input_audio part: auto = when the endpoint accepts it "
                        "(otherwise transcript + audio facts only), on = require it, off = never")
    g.add_argument("--llm-no-vision", action="store_true",
                   help="the model cannot see images: send no image parts (give --caption to describe the image)")
    g.add_argument("--llm-cache", type=Path, metavar="DIR",
                   help="answer cache folder (default $OMNIHUMAN_CACHE_DIR/llm or ~/.cache/omnihuman/llm)")
    g.add_argument("--no-llm-cache", action="store_true", help="always ask the endpoint, write no cache")
    if offline:
        g.add_argument("--offline", action="store_true",
                       help="no LLM: the deterministic fallback planner (speaking/idle from the audio, actions "
                            "from the prompt by simple rules)")


def config_from_args(args: argparse.Namespace, *, raw_reply_dir: Path | None = None):
    """An LLMConfig from the `--llm-*` options, or None when no endpoint was given."""
    from .llm import LLMConfig, default_cache_dir

    url, model = getattr(args, "llm_base_url", None), getattr(args, "llm_model", None)
    if url is None and model is None:
        return None
    if url is None or model is None:
        raise InputError("give both --llm-base-url and --llm-model (e.g. --llm-base-url http://localhost:11434/v1 "
                         "--llm-model qwen2.5vl:7b)")
    if getattr(args, "no_llm_cache", False):
        cache = None
    else:
        cache = getattr(args, "llm_cache", None) or default_cache_dir()
    return LLMConfig(
        base_url=url, model=model, api_key_env=getattr(args, "llm_api_key_env", None),
        timeout=getattr(args, "llm_timeout", 120.0), max_retries=getattr(args, "llm_retries", 3),
        temperature=getattr(args, "llm_temperature", 0.2), seed=getattr(args, "llm_seed", 0),
        structured=getattr(args, "llm_structured", "auto"), audio=getattr(args, "llm_audio", "auto"),
        vision=not getattr(args, "llm_no_vision", False), cache_dir=cache, raw_reply_dir=raw_reply_dir,
    )


def client_from_args(args: argparse.Namespace, *, raw_reply_dir: Path | None = None):
    """An LLMClient from the options, or None when no endpoint was given."""
    from .llm import LLMClient

    config = config_from_args(args, raw_reply_dir=raw_reply_dir)
    return None if config is None else LLMClient(config)


# ------------------------------------------------------------------------------------------- plan


def add_plan_parser(subparsers) -> argparse.ArgumentParser:
    """Register `plan`: image + audio (+ prompt) -> schedule JSON."""
    p = subparsers.add_parser(
        "plan", help="System 2: plan a schedule of shots (JSON) from an image, audio and a prompt",
        description="Analyzer + Planner over an OpenAI-compatible LLM (or --offline) write a schedule: one "
                    "shot per generation segment. Edit it by hand if you like, then render it with "
                    "`generate --schedule plan.json`.")
    p.add_argument("--image", required=True, type=Path, help="reference image of the character")
    p.add_argument("--audio", required=True, type=Path, help="speech or singing audio (any format FFmpeg reads)")
    p.add_argument("--prompt", default="", help="optional description of the desired behaviour")
    p.add_argument("--transcript", help="what is said in the audio (else --whisper-folder, else unknown)")
    p.add_argument("--transcript-file", type=Path, help="read the transcript from a UTF-8 text file")
    p.add_argument("--whisper-folder", type=Path,
                   help="local transformers Whisper model folder to transcribe the audio (nothing is downloaded)")
    p.add_argument("--caption", help="description of the image (instead of asking the model; for --llm-no-vision)")
    p.add_argument("--fps", type=float, default=DEFAULT_FPS, help=f"video frame rate (default {DEFAULT_FPS:g})")
    p.add_argument("--segment-frames", type=int, default=DEFAULT_SEGMENT_FRAMES,
                   help=f"frames per generation segment (default {DEFAULT_SEGMENT_FRAMES})")
    p.add_argument("--motion-frames", type=int, default=DEFAULT_MOTION_FRAMES,
                   help=f"frames consecutive segments overlap by (default {DEFAULT_MOTION_FRAMES})")
    p.add_argument("--max-seconds", type=float, default=None, help="refuse longer audio (default 600)")
    p.add_argument("--out", required=True, type=Path, help="schedule file to write (e.g. plan.json)")
    add_llm_arguments(p, offline=True)
    p.set_defaults(func=run_plan)
    return p


def _check_out(out: Path) -> Path:
    if out.is_dir():
        raise InputError(f"--out '{out}' is a folder; give a file name such as {out / 'plan.json'}")
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create the folder '{parent}' ({e.strerror})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"folder '{parent}' is not writable; choose another --out")
    return out


def run_plan(args: argparse.Namespace) -> int:
    """`python -m omnihuman_core plan ...`: write the schedule and print a one-line-per-shot summary."""
    from .inputs import PlanInputs
    from .system2 import plan_schedule

    has_llm = getattr(args, "llm_base_url", None) is not None or getattr(args, "llm_model", None) is not None
    if args.offline and has_llm:
        raise InputError("choose either --offline or an LLM endpoint (--llm-base-url/--llm-model), not both")
    if not args.offline and not has_llm:
        raise InputError("plan needs an LLM endpoint (--llm-base-url URL --llm-model NAME) or --offline for the "
                         "deterministic fallback planner")
    if not args.fps > 0:
        raise InputError(f"--fps must be positive, got {args.fps:g}")
    out = _check_out(Path(args.out))
    transcript = args.transcript
    if args.transcript_file is not None:
        if transcript:
            raise InputError("give either --transcript or --transcript-file, not both")
        try:
            transcript = args.transcript_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read --transcript-file '{args.transcript_file}' ({e})") from None
    # Check the endpoint options before loading anything heavy.
    config = None if args.offline else config_from_args(args, raw_reply_dir=out.parent)
    if config is not None:
        config.read_key()  # a missing key variable is reported now, not after loading the audio
    inputs = PlanInputs.load(args.image, args.audio, prompt=args.prompt, transcript=transcript, caption=args.caption,
                             whisper_folder=args.whisper_folder, max_seconds=args.max_seconds)
    client = None
    if config is not None:
        from .llm import LLMClient

        client = LLMClient(config)
    schedule = plan_schedule(inputs, client, fps=args.fps, segment_frames=args.segment_frames,
                             motion_frames=args.motion_frames)
    schedule.save(out)
    print(summary(schedule, out))
    if client is not None:
        print(f"LLM: {client.requests} request(s), {client.cache_hits} answer(s) from the cache")
    return 0


def summary(schedule, out: Path | None = None) -> str:
    """What was planned, one line per shot."""
    kind = schedule.planner.get("kind", "manual")
    who = f"LLM {schedule.planner.get('model', '')}" if kind == "llm" else "the OFFLINE fallback planner" \
        if kind == "offline" else kind
    head = f"wrote {out}: " if out is not None else ""
    lines = [f"{head}{len(schedule.shots)} shot(s) over {schedule.duration:.2f} s, planned by {who}"]
    for i, s in enumerate(schedule.shots):
        lines.append(f"  [{i}] {s.start:6.2f}-{s.end:6.2f} s {'speaking' if s.speaking else 'silent  '}  {s.text()[:100]}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ generate options


def add_generate_arguments(parser: argparse.ArgumentParser, *, llm: bool = True) -> None:
    """`--schedule`, `--reflect`, `--reflect-save` (and the `--llm-*` options) for `generate`."""
    g = parser.add_argument_group("System 2 schedule and Reflection")
    g.add_argument("--schedule", type=Path, metavar="PLAN_JSON",
                   help="render this schedule (from `plan` or hand-edited): one prompt per segment")
    g.add_argument("--reflect", action="store_true",
                   help="Reflection: after each segment, the LLM re-plans the remaining shots from the last "
                        "frames (needs --schedule and the --llm-* options; costs one request per segment)")
    g.add_argument("--reflect-save", type=Path, metavar="JSON",
                   help="where to write the schedule with Reflection's revisions (default <out>.schedule.json)")
    if llm:
        add_llm_arguments(parser)


def schedule_prompts_from_args(args: argparse.Namespace, segments: Sequence, fps: float, audio_duration: float):
    """(schedule, prompts, notes) for `--schedule`, or (None, None, []) without it. The schedule is
    validated against the audio and snapped to the render grid before any rendering starts."""
    path = getattr(args, "schedule", None)
    if path is None:
        if getattr(args, "reflect", False):
            raise InputError("--reflect needs --schedule plan.json (make one with `python -m omnihuman_core plan`)")
        return None, None, []
    from ..schedule import load_schedule

    schedule, notes = load_schedule(path, segments, fps, audio_duration)
    for note in notes:
        print(f"note: schedule: {note}", file=sys.stderr)
    return schedule, schedule.segment_prompts(segments, fps), notes


def reflection_from_args(args: argparse.Namespace, schedule, reference_image, *, fps: float | None = None,
                         out_path: str | os.PathLike | None = None):
    """The Reflection hook for the SegmentChainer when `--reflect` is given, else None.

    Checks the endpoint is reachable before any rendering starts; the revised schedule is saved to
    `--reflect-save` (default `<out_path>.schedule.json`) after every segment.
    """
    if not getattr(args, "reflect", False):
        return None
    if schedule is None:
        raise InputError("--reflect needs --schedule plan.json (make one with `python -m omnihuman_core plan`)")
    save_to = getattr(args, "reflect_save", None)
    if save_to is None and out_path is not None:
        save_to = Path(str(out_path) + ".schedule.json")
    if getattr(args, "llm_base_url", None) is None or getattr(args, "llm_model", None) is None:
        raise InputError("--reflect needs an LLM endpoint: --llm-base-url URL --llm-model NAME (a vision model)")
    from .reflection import Reflection

    client = client_from_args(args, raw_reply_dir=Path(save_to).parent if save_to else None)
    client.check_reachable()
    return Reflection(client).hook(schedule, reference_image, fps=fps, save_to=save_to)


def register(subparsers) -> None:
    """For the top-level CLI's registrar list."""
    add_plan_parser(subparsers)
