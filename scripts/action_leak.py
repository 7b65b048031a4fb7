"""How often a training window's conditioning frames already show the action its caption asks for.

The pseudo-last-frame recipe conditions each training window on the clip's real frame a little past the
window (the pseudo last frame) and, half of the time, on the window's first frames (the motion frames a
chained render carries over). On data where an action lasts longer than a window, both frames show the
action being performed, so the model can copy the pose instead of reading the caption. At render time the
pseudo last frame is the reference image (an idle character) and the first segment has no motion frames,
so a model that learnt to copy performs no asked action. This script measures that shortcut on a dataset
with ground-truth per-frame actions (labels.npz `action`, as the synthetic world writes): for the windows
the latent cache takes (the same `_window_plan`), how often the pseudo last frame and the first frames show
the window's action, and the expected share of training samples that can only get the action from the
caption for given conditioning probabilities.

    .venv/bin/python scripts/action_leak.py --data data/synth --max-clips 1300 --windows-per-clip 1

Prints one JSON object; docs: BENCHMARKS.md, "Why the demo model ignores the action in its prompt".
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from omnihuman_core.errors import InputError  # noqa: E402
from omnihuman_core.synth.vocab import ACTIONS  # noqa: E402
from omnihuman_core.train.data import CacheSettings, _window_plan, scan_dataset  # noqa: E402


def leak_report(data, *, split="train", frames=CacheSettings.frames, windows_per_clip=CacheSettings.windows_per_clip,
                delta=CacheSettings.delta, seed=0, max_clips=0, temporal_factor=4, motion_frames=5,
                p_first_frames=(0.5,), p_drop_last=(0.1, 0.5)) -> dict:
    """The shares described in the module docstring, over the windows `build_latent_cache` would take."""
    settings = CacheSettings(frames=frames, windows_per_clip=windows_per_clip, delta=delta, seed=seed, split=split,
                             max_clips=max_clips)
    clips = scan_dataset(data, split, min_frames=frames, max_clips=max_clips, seed=seed)
    first_shows, last_shows, idle_windows, actions_per_clip = [], [], 0, collections.Counter()
    missing = []
    for clip in clips:
        path = clip.folder / "labels.npz"
        action = None
        if path.is_file():
            with np.load(path) as z:
                action = np.asarray(z["action"]).astype(int) if "action" in z.files else None
        if action is None:
            missing.append(clip.clip_id)
            continue
        actions_per_clip[len(set(action.tolist()))] += 1
        for start, last, _ in _window_plan(clip, settings, temporal_factor):
            # The window's action is its most common frame label; the shot's caption names it.
            target = collections.Counter(action[start:start + frames].tolist()).most_common(1)[0][0]
            idle_windows += ACTIONS[target] == "idle"
            first = collections.Counter(action[start:start + motion_frames].tolist()).most_common(1)[0][0]
            first_shows.append(first == target)
            last_shows.append(action[min(last, len(action) - 1)] == target)
    if not first_shows:
        raise InputError(f"no window with per-frame action labels in {data} (split {split!r}): "
                         f"{len(missing)} clip(s) lack labels.npz 'action'; the synthetic world writes them")
    a, b = np.array(first_shows, float), np.array(last_shows, float)
    caption_only = {}
    for pf in p_first_frames:
        for pd in p_drop_last:
            # A sample must read the action from the caption when no frame it is given shows it: the first
            # frames are pinned with probability pf, the pseudo last frame kept with probability 1 - pd.
            caption_only[f"p_first_frames={pf:g} p_drop_last={pd:g}"] = round(
                float(np.mean((1 - pf * a) * (1 - (1 - pd) * b))), 4)
    return {
        "data": str(data), "split": split, "clips": len(clips), "windows": int(a.size),
        "clips_without_labels": len(missing),
        "distinct_actions_per_clip": {str(k): v for k, v in sorted(actions_per_clip.items())},
        "idle_windows": round(idle_windows / a.size, 4),
        "pseudo_last_frame_shows_action": round(float(b.mean()), 4),
        "first_frames_show_action": round(float(a.mean()), 4),
        "both_show_action": round(float((a * b).mean()), 4),
        "samples_that_need_the_caption": caption_only,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="dataset folder (train/ and test/ of clips with labels.npz)")
    ap.add_argument("--split", default="train")
    ap.add_argument("--frames", type=int, default=CacheSettings.frames, help="window length in video frames")
    ap.add_argument("--windows-per-clip", type=int, default=CacheSettings.windows_per_clip)
    ap.add_argument("--delta", type=float, default=CacheSettings.delta,
                    help="pseudo last frame offset past the window, in latent frames")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-clips", type=int, default=0, help="as train mmdit --max-clips (0: all)")
    ap.add_argument("--temporal-factor", type=int, default=4, help="the VAE's frames per latent frame")
    ap.add_argument("--motion-frames", type=int, default=5,
                    help="video frames the first motion latents hold (2 latent frames = 5 video frames)")
    ap.add_argument("--p-first-frames", type=float, nargs="+", default=[0.5])
    ap.add_argument("--p-drop-last", type=float, nargs="+", default=[0.1, 0.5])
    args = ap.parse_args(argv)
    try:
        report = leak_report(args.data, split=args.split, frames=args.frames, windows_per_clip=args.windows_per_clip,
                             delta=args.delta, seed=args.seed, max_clips=args.max_clips,
                             temporal_factor=args.temporal_factor, motion_frames=args.motion_frames,
                             p_first_frames=args.p_first_frames, p_drop_last=args.p_drop_last)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
