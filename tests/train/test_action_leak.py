"""scripts/action_leak.py: the share of training windows whose conditioning frames already show the action."""


import numpy as np
import pytest

from omnihuman_core.errors import InputError
from omnihuman_core.synth import write_dataset
from omnihuman_core.train.data import CacheSettings, _window_plan, scan_dataset

FRAMES, DELTA = 9, 2.0  # a 9-frame window, the pseudo last frame 8 frames past it


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("leak")
    write_dataset(root, 4, seed=2, size=32, frames=29, test_fraction=0.0, speech="babble")
    return root


def _set_actions(root, fn):
    """Rewrite every clip's per-frame `action` labels as fn(clip, frames) -> int array."""
    for clip in scan_dataset(root, "train", log=None):
        path = clip.folder / "labels.npz"
        with np.load(path) as z:
            labels = {k: z[k] for k in z.files}
        labels["action"] = fn(clip, len(labels["action"])).astype(np.int16)
        np.savez(path, **labels)


def test_constant_actions_leak_from_both_frames(dataset, script):
    _set_actions(dataset, lambda clip, T: np.full(T, 3))
    r = script("action_leak").leak_report(dataset, frames=FRAMES, delta=DELTA, p_first_frames=[0.5], p_drop_last=[0.1, 0.5])
    assert r["windows"] == 4 * CacheSettings.windows_per_clip
    assert r["pseudo_last_frame_shows_action"] == r["first_frames_show_action"] == r["both_show_action"] == 1.0
    # Only the samples given neither frame need the caption: (1 - 0.5) * p_drop_last.
    assert r["samples_that_need_the_caption"] == {"p_first_frames=0.5 p_drop_last=0.1": 0.05,
                                                   "p_first_frames=0.5 p_drop_last=0.5": 0.25}
    assert r["distinct_actions_per_clip"] == {"1": 4} and r["idle_windows"] == 0.0


def test_an_action_change_after_the_window_hides_the_action_in_the_last_frame(dataset, script):
    settings = CacheSettings(frames=FRAMES, windows_per_clip=1, delta=DELTA)
    starts = {}
    for clip in scan_dataset(dataset, "train", log=None):
        starts[clip.clip_id] = [(s, last) for s, last, _ in _window_plan(clip, settings, 4)]

    def change_after_first_window(clip, T):
        s, last = starts[clip.clip_id][0]
        action = np.full(T, 1)
        action[s + FRAMES:] = 0  # idle from just after the first window on: its pseudo last frame is idle
        return action

    _set_actions(dataset, change_after_first_window)
    r = script("action_leak").leak_report(dataset, frames=FRAMES, delta=DELTA, windows_per_clip=1, p_first_frames=[0.5],
                            p_drop_last=[0.1])
    assert r["windows"] == 4
    assert r["first_frames_show_action"] == 1.0 and r["pseudo_last_frame_shows_action"] == 0.0
    assert r["samples_that_need_the_caption"] == {"p_first_frames=0.5 p_drop_last=0.1": 0.5}


def test_a_dataset_without_action_labels_is_named(dataset, tmp_path, script):
    import shutil
    root = tmp_path / "data"
    shutil.copytree(dataset, root)
    for f in root.glob("train/*/labels.npz"):
        f.unlink()
    with pytest.raises(InputError, match="lack labels.npz 'action'"):
        script("action_leak").leak_report(root, frames=FRAMES, delta=DELTA)
    assert script("action_leak").main(["--data", str(root), "--frames", str(FRAMES), "--delta", str(DELTA)]) == 2
