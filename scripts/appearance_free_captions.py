"""Diagnostic: does the caption's description of the character crowd out its action words?

The demo model's captions open with a long description of the character ("A cartoon person with a bald head in a
pink polka-dot shirt ...") before the action phrase, and `caption_sensitivity.py` finds the model's loss uses the
caption's looks about ten times more than its action words. This script drops the description and keeps the rest
("The character shakes their head no, with a cheerful face, while speaking. The camera stays still."), so a model
trained and prompted this way can take nothing from its text but the action, the mood, the speaking and the
camera. Trained from the same base file for the same steps as a control on the full captions, it tells whether
the description is what holds action accuracy down.

    # a copy of a latent cache whose window captions lose their description (the tensors are hard-linked)
    .venv/bin/python scripts/appearance_free_captions.py cache runs/demo/latent_cache runs/cache_no_looks
    # `evaluate run` with every schedule prompt rewritten the same way (any evaluate-run arguments)
    .venv/bin/python scripts/appearance_free_captions.py evaluate --data data/synth --split test --clips 16 ...

Docs: BENCHMARKS.md, "Why the demo model ignores the action in its prompt".
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from omnihuman_core.errors import InputError  # noqa: E402
from omnihuman_core.synth.vocab import spelled_action_phrases  # noqa: E402

_PHRASES = [phrase for phrase, _, _ in spelled_action_phrases()]


def appearance_free(caption: str) -> str:
    """The caption from its first action phrase on, after "The character"; unchanged if it names no action."""
    low = caption.lower()
    hits = [i for i in (low.find(p) for p in _PHRASES) if i >= 0]
    if not hits:
        return caption
    return "The character " + caption[min(hits):]


def rewrite_cache(src: Path, dst: Path) -> int:
    """Copy the latent cache `src` to `dst` (shards hard-linked, else copied) with appearance-free captions."""
    manifest_path = src / "manifest.json"
    if not manifest_path.is_file():
        raise InputError(f"{src} holds no latent cache (no manifest.json); pass the folder `train mmdit --cache` built")
    if dst.exists():
        raise InputError(f"{dst} exists; pass a new folder")
    manifest = json.loads(manifest_path.read_text())
    dst.mkdir(parents=True)
    changed = 0
    for shard in manifest["shards"]:
        try:
            os.link(src / shard["file"], dst / shard["file"])
        except OSError:
            shutil.copy2(src / shard["file"], dst / shard["file"])
        for w in shard["windows"]:
            new = appearance_free(w["caption"])
            changed += new != w["caption"]
            w["caption"] = new
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return changed


def evaluate(argv: list[str]) -> None:
    """`evaluate run` with every synthetic clip's schedule prompts made appearance-free."""
    from omnihuman_core.cli import main
    from omnihuman_core.evaluate import run as run_module

    plain = run_module.clip_schedule

    def clip_schedule(*args, **kwargs):
        schedule = plain(*args, **kwargs)
        for shot in schedule.shots:
            shot.prompt = appearance_free(shot.prompt)
        return schedule

    run_module.clip_schedule = clip_schedule
    sys.exit(main(["evaluate", "run", *argv]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cache", help="copy a latent cache with appearance-free window captions")
    c.add_argument("src", type=Path)
    c.add_argument("dst", type=Path)
    sub.add_parser("evaluate", help="evaluate run (its arguments follow) with appearance-free prompts", add_help=False)
    args, rest = ap.parse_known_args()
    try:
        if args.cmd == "cache":
            if rest:
                ap.error(f"unrecognized arguments: {' '.join(rest)}")
            n = rewrite_cache(args.src, args.dst)
            print(f"wrote {args.dst}: {n} window captions lost their description")
        else:
            evaluate(rest)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
