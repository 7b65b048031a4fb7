"""Does a model open the mouth for speech and close it in silence? The probes' mouth opening, in frames
where the audio's mouth track says "speaking" and in the silent ones, for renders against ground truth.

Lip sync (a correlation) says only that the mouth does not follow the speech; this says whether the audio
moves the mouth at all, which separates "the audio branch learnt nothing" (the same opening in speech and
silence) from "it opens with speech but late or unevenly". Renders come from `evaluate run --work-dir DIR`,
which keeps `<clip id>.mp4` for every clip it scored:

    .venv/bin/python -m omnihuman_core evaluate run --data data/synth --split test --clips 4 \
        --work-dir runs/renders --out runs/renders/run.json
    .venv/bin/python scripts/mouth_by_speech.py --data data/synth --renders runs/renders --clips 4

Prints one line per clip on stderr and one JSON object with the means on stdout (so `> file.json` keeps it);
docs: BENCHMARKS.md (the demo model).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from omnihuman_core.errors import InputError  # noqa: E402

SPEAKING = 0.05  # the audio mouth track's opening above which a frame counts as speech (it is ~0 in pauses)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, type=Path, help="dataset folder (the synthetic world's layout)")
    ap.add_argument("--renders", required=True, type=Path, help="folder of <clip id>.mp4 renders (evaluate run --work-dir)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--probes", type=Path, default=Path(__file__).resolve().parents[1] / "models/probes/probes.safetensors")
    args = ap.parse_args(argv)

    from omnihuman_core.evaluate.metrics import audio_mouth
    from omnihuman_core.evaluate.probes import Probes
    from omnihuman_core.evaluate.run import dataset_split, load_clip_audio
    from omnihuman_core.media import read_video_frames

    clips = dataset_split(args.data, args.split, args.clips)
    missing = [c.id for c in clips if not (args.renders / f"{c.id}.mp4").is_file()]
    if missing:
        raise InputError(f"{args.renders} has no render of {', '.join(missing)}: render them with "
                         f"`evaluate run --clips {args.clips} --work-dir {args.renders}` first")
    probes = Probes.load(args.probes)
    rows = []
    for clip in clips:
        gt = probes.read(read_video_frames(clip.dir / "video.mp4")).mouth
        model = probes.read(read_video_frames(args.renders / f"{clip.id}.mp4")).mouth
        n = min(len(gt), len(model))
        speaking = audio_mouth(load_clip_audio(clip).waveform, float((clip.meta or {}).get("fps", 24.0)), n) > SPEAKING
        row = {"clip": clip.id, "speech_frames": int(speaking.sum()), "silent_frames": int((~speaking).sum())}
        for name, track in (("model", model[:n]), ("gt", gt[:n])):
            row[name] = {"speech": float(track[speaking].mean()) if speaking.any() else None,
                         "silence": float(track[~speaking].mean()) if (~speaking).any() else None,
                         "std": float(track.std())}
        rows.append(row)
        print(f"{clip.id}: mouth opening in speech / silence: model {_f(row['model']['speech'])} / "
              f"{_f(row['model']['silence'])}, ground truth {_f(row['gt']['speech'])} / {_f(row['gt']['silence'])}",
              file=sys.stderr)
    both = [r for r in rows if r["speech_frames"] and r["silent_frames"]]
    summary = {k: float(np.mean([r[k]["speech"] - r[k]["silence"] for r in both])) if both else None
               for k in ("model", "gt")}
    print(json.dumps({"clips": rows, "mean_speech_minus_silence": summary}, indent=1))
    return 0


def _f(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


if __name__ == "__main__":
    try:
        sys.exit(main())
    except InputError as e:
        print(f"mouth_by_speech.py: {e}", file=sys.stderr)
        sys.exit(2)
