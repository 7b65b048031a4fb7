"""The Python side of the widget's parity tests (tests/web/python_parity.test.mjs runs it).

Reads cases as JSON on stdin, answers with what omnihuman_core computes for them. Loads only
segments.py, schedule.py and errors.py (stdlib-only modules), bypassing the package __init__
files, so it runs with a bare python3 and no torch.
"""

import importlib.util
import json
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "omnihuman_core"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _package(name: str, path: Path) -> None:
    pkg = types.ModuleType(name)
    pkg.__path__ = [str(path)]
    sys.modules[name] = pkg


_package("omnihuman_core", ROOT)
_package("omnihuman_core.pipeline", ROOT / "pipeline")
errors = _load("omnihuman_core.errors", ROOT / "errors.py")
segments = _load("omnihuman_core.pipeline.segments", ROOT / "pipeline" / "segments.py")
schedule = _load("omnihuman_core.schedule", ROOT / "schedule.py") if (ROOT / "schedule.py").is_file() else None


def grid(duration, fps, seg, motion):
    n = segments.frame_count(duration, fps)
    try:
        segs = segments.plan_segments(n, seg, motion)
    except errors.InputError as e:
        return {"frames": n, "error": str(e)}
    return {
        "frames": n,
        "segments": [[s.start, s.end, s.new_start, s.render_frames] for s in segs],
        "spans": [list(s.time_span(fps)) for s in segs],
    }


def split_errors(message: str) -> list[str]:
    head, sep, rest = message.partition(":\n  ")
    if not sep:
        return [message]
    return [line for line in rest.split("\n  ") if not line.startswith("... and ")]


def validate(data):
    try:
        schedule.Schedule.from_dict(data)
    except errors.InputError as e:
        return split_errors(str(e))
    return []


def normalize(data):
    s = schedule.Schedule.from_dict(data)
    g = s.grid or {}
    segs = segments.plan_segments(
        segments.frame_count(s.duration, s.fps), g.get("segment_frames", 121), g.get("motion_frames", 5)
    )
    out, notes = s.normalize(segs, s.fps)
    return {"shots": [[sh.start, sh.end, sh.action, sh.speaking] for sh in out.shots], "notes": notes,
            "grid": out.grid}


def main() -> None:
    cases = json.load(sys.stdin)
    out = {"grid": [grid(*c) for c in cases.get("grid", [])], "has_schedule": schedule is not None}
    if schedule is not None:
        out["validate"] = [validate(c) for c in cases.get("validate", [])]
        out["normalize"] = [normalize(c) for c in cases.get("normalize", [])]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
