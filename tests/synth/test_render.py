"""The renderer: deterministic, fast enough, and its labels agree with what it draws."""

import numpy as np
import pytest

from omnihuman_core.errors import InputError
from omnihuman_core.synth import (ACTION_ID, compute_pose, generate_clip, render_clip, render_pose, render_reference,
                                  sample_character)

FPS = 24


def _mouth_box(labels, i):
    cx, cy = labels["head_center"][i]
    r = labels["head_radius"][i]
    return int(cx - 0.6 * r), int(cy + 0.2 * r), int(cx + 0.6 * r), int(cy + 1.0 * r)


def test_reference_image():
    for kind in ("human", "cat", "bear", "robot"):
        img = render_reference(sample_character(11, kind), 96)
        assert img.size == (96, 96) and img.mode == "RGB"
        assert np.asarray(img).std() > 10  # something was drawn


def test_same_seed_same_frames():
    spec = sample_character(5)
    m = np.linspace(0, 1, 13).astype(np.float32)
    a, la = render_clip(spec, ["wave_left", "nod"], "happy", "zoom_in", m, FPS, 64, seed=3)
    b, lb = render_clip(spec, ["wave_left", "nod"], "happy", "zoom_in", m, FPS, 64, seed=3)
    assert a.shape == (13, 64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert la.keys() == lb.keys() and all(np.array_equal(la[k], lb[k]) for k in la)


def test_mouth_opening_is_drawn():
    spec = sample_character(2, "human")
    mouth = np.asarray([0.0] * 4 + [1.0] * 4, np.float32)
    frames, labels = render_clip(spec, ["idle"], "neutral", "static", mouth, FPS, 128, seed=0)
    assert np.array_equal(labels["mouth"], mouth)

    def dark(i):  # pixels of the mouth's dark interior
        x0, y0, x1, y1 = _mouth_box(labels, i)
        return int((frames[i, y0:y1, x0:x1].astype(int).sum(-1) < 250).sum())

    assert dark(6) > dark(1) + 15


def test_wave_moves_the_labelled_hand_and_the_pixels():
    spec = sample_character(4, "human")
    T = 24
    frames, labels = render_clip(spec, ["wave_right"], "neutral", "static", None, FPS, 128, n_frames=T, seed=1)
    _, idle = render_clip(spec, ["idle"], "neutral", "static", None, FPS, 128, n_frames=T, seed=1)
    right = labels["hands"][:, 1]
    assert right[T // 2, 1] < idle["hands"][T // 2, 1, 1] - 25  # the right hand is up near the head
    assert right[T // 2, 0] < 64  # ... on the image's left: the character's right
    assert abs(labels["hands"][T // 2, 0, 1] - idle["hands"][T // 2, 0, 1]) < 2  # the left hand stays down
    assert np.ptp(right[6:18, 0]) > 2  # and it waves
    assert (labels["action"] == ACTION_ID["wave_right"]).all()
    # The labelled hand centre is drawn in the hand's colour.
    x, y = np.round(right[T // 2]).astype(int)
    assert np.abs(frames[T // 2, y, x].astype(int) - np.asarray(spec.skin)).max() < 40


def test_turn_and_nod_labels():
    spec = sample_character(8)
    _, lab = render_clip(spec, ["turn_left", "nod"], "neutral", "static", None, FPS, 64, n_frames=48, seed=2)
    assert lab["head_pose"][12:20, 0].mean() > 20  # yaw: turned to its left
    assert lab["head_pose"][30:44, 1].max() > 8  # pitch: nodding
    assert lab["action"][0] == ACTION_ID["turn_left"] and lab["action"][-1] == ACTION_ID["nod"]


def test_camera_moves_change_the_head_size():
    spec = sample_character(9)
    _, lab = render_clip(spec, ["idle"], "neutral", "zoom_in", None, FPS, 64, n_frames=25, seed=0)
    assert lab["head_radius"][-1] > 1.3 * lab["head_radius"][0]
    assert lab["camera_params"][-1, 0] > lab["camera_params"][0, 0]


def test_generate_clip_end_to_end():
    spec = sample_character(12, "robot")
    clip = generate_clip(spec, seed=99, n_frames=25, fps=FPS, size=64, speech="babble")
    again = generate_clip(spec, seed=99, n_frames=25, fps=FPS, size=64, speech="babble")
    assert np.array_equal(clip.frames, again.frames) and np.array_equal(clip.waveform, again.waveform)
    assert clip.caption == again.caption and clip.meta == again.meta
    assert clip.waveform.size == round(25 / FPS * 16000)
    assert clip.labels["speaking"].dtype == bool and clip.labels["mouth"].shape == (25,)
    # Closed mouth wherever the ground-truth speech says silence, give or take the one frame of
    # audio context each frame's loudness window reaches into its neighbours.
    sp = clip.labels["speaking"]
    near = sp | np.r_[sp[1:], False] | np.r_[False, sp[:-1]]
    assert sp.any() and not near.all()
    assert np.all(clip.labels["mouth"][~near] == 0) and clip.labels["mouth"][sp].mean() > 0.3


def test_bad_inputs():
    spec = sample_character(1)
    with pytest.raises(InputError, match="odd"):
        render_clip(spec, ["idle"], n_frames=2, size=63)
    with pytest.raises(InputError, match="action"):
        render_clip(spec, ["fly"], n_frames=2, size=64)
    with pytest.raises(InputError, match="emotion"):
        render_clip(spec, ["idle"], "bored", n_frames=2, size=64)
    with pytest.raises(InputError, match="outside"):
        render_clip(spec, [("nod", 0, 9)], n_frames=4, size=64)


def test_render_pose_accepts_explicit_segments():
    pose = compute_pose([("point_left", 2, 10)], "angry", "pan_left", np.zeros(12), FPS, seed=0)
    frames, labels = render_pose(sample_character(3), pose, 64)
    assert labels["action"][0] == ACTION_ID["idle"] and labels["action"][5] == ACTION_ID["point_left"]
    assert labels["hands"][6, 0, 0] > labels["hands"][0, 0, 0] + 5  # left arm out to the image's right
