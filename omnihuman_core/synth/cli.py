"""`synth` and `synth-examples` subcommands; `omnihuman_core/cli.py` registers them via `add_synth_parser`.

Cheap to import (argparse only): the generator loads when a command runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_synth_parser(subparsers) -> None:
    """Register `synth` (write a synthetic dataset) and `synth-examples` (write the example inputs)."""
    p = subparsers.add_parser(
        "synth", help="write a synthetic talking-character dataset (video + audio + caption + labels per clip)",
        description="Procedural characters (people, cats, bears, robots) speaking eSpeak NG or babble audio and "
                    "acting out captioned actions. Writes OUT/{train,test}/<clip>/ and OUT/index.json; the test "
                    "split has characters unseen in train. Same arguments, same data; reruns resume.")
    p.add_argument("--out", required=True, type=Path, help="dataset folder (created)")
    p.add_argument("--clips", required=True, type=int, help="number of clips")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=128, help="frame width = height in pixels (even; default 128)")
    p.add_argument("--fps", type=float, default=24.0)
    p.add_argument("--frames", type=int, default=121, help="frames per clip (default 121 = 5 s at 24 fps)")
    p.add_argument("--test-fraction", type=float, default=0.1, help="share of identities held out (default 0.1)")
    p.add_argument("--clips-per-identity", type=int, default=4, help="clips of each character (default 4)")
    p.add_argument("--speech", default="auto", choices=("auto", "espeak", "babble"),
                   help="speech engine: espeak-ng (apt-get install espeak-ng), the built-in babble synthesiser, "
                        "or auto = espeak when installed (default)")
    p.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    p.add_argument("--video-audio", action="store_true",
                   help="also put an AAC copy of the audio in video.mp4, for watching (audio.wav is always written; "
                        "off by default: it doubles the size and time of the MP4s)")
    p.add_argument("--crf", type=int, default=18, help="H.264 quality, lower = better (default 18)")
    p.set_defaults(func=run_synth)

    e = subparsers.add_parser("synth-examples", help="write the example inputs: character.png, robot.png, speech.wav",
                              description="A human-like character and a robot (256x256 PNG) and about 5 s of speech "
                                          "with one pause (16 kHz mono WAV).")
    e.add_argument("--out", type=Path, default=Path("example_inputs"), help="folder (default example_inputs/)")
    # Not "examples/": ComfyUI 0.8 serves a pack folder of that name as the pack's workflow templates,
    # which would hide workflows/.
    e.add_argument("--speech", default="auto", choices=("auto", "espeak", "babble"))
    e.set_defaults(func=run_synth_examples)


def run_synth(args: argparse.Namespace) -> int:
    from .dataset import write_dataset

    start = time.monotonic()

    def progress(done: int, total: int, clip_id: str) -> None:
        el = time.monotonic() - start
        eta = el / done * (total - done)
        print(f"\r{done}/{total} clips  {el:6.0f}s elapsed  eta {eta:5.0f}s  ({clip_id})", end="", file=sys.stderr, flush=True)

    index = write_dataset(args.out, args.clips, seed=args.seed, size=args.size, fps=args.fps, frames=args.frames,
                          test_fraction=args.test_fraction, clips_per_identity=args.clips_per_identity,
                          speech=args.speech, workers=args.workers, video_audio=args.video_audio,
                          crf=args.crf, progress=progress)
    print(file=sys.stderr)
    n = {s: len(v) for s, v in index["splits"].items()}
    ids = {s: len(v) for s, v in index["identities"].items()}
    print(f"wrote {args.out}: {n['train']} train clips ({ids['train']} characters), {n['test']} test clips "
          f"({ids['test']} unseen characters), speech {index['settings']['speech']}, "
          f"{time.monotonic() - start:.0f}s")
    return 0


def run_synth_examples(args: argparse.Namespace) -> int:
    from .examples import write_examples

    paths = write_examples(args.out, speech=args.speech)
    info = paths.pop("info")
    for name, path in paths.items():
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")
    print(f"speech: {info['engine']}")
    return 0
