"""The metrics on hand-made signals: each check can fail if a definition is wrong."""

import numpy as np
import pytest

from omnihuman_core.errors import InputError
from omnihuman_core.evaluate.metrics import (action_units, audio_mouth, hkv, identity_similarity, lip_sync,
                                             relative_drop)
from omnihuman_core.synth.speech import mouth_track
from omnihuman_core.synth.vocab import ACTION_ID, ACTIONS


def _speechy(n=120, seed=0):
    """A mouth-like track: bursts of opening separated by closed stretches."""
    rng = np.random.default_rng(seed)
    x = np.convolve(rng.random(n) * (rng.random(n) > 0.4), np.ones(3) / 3, mode="same")
    return x.astype(np.float32)


def test_lip_sync_in_sync_and_shifted():
    a = _speechy()
    r = lip_sync(a, a)
    assert r["offset"] == 0 and r["corr"] == pytest.approx(1.0)
    for s in (-4, -1, 2, 3, 5):
        delayed = np.roll(a, s)  # the sound comes s frames after the mouth
        if s > 0:
            delayed[:s] = 0
        else:
            delayed[s:] = 0
        r = lip_sync(a, delayed)
        assert r["offset"] == s, (s, r["by_offset"])
        assert r["corr"] > 0.95
        assert r["corr_at_0"] < 0.6  # at offset 0 the shifted tracks disagree: the search matters


def test_lip_sync_frozen_mouth_and_silence():
    a = _speechy()
    frozen = lip_sync(np.full_like(a, 0.5), a)
    assert frozen["corr"] == 0.0
    unrelated = lip_sync(_speechy(seed=7), a)
    assert unrelated["corr"] < 0.5
    silent = lip_sync(a, np.zeros_like(a))
    assert silent["corr"] is None and silent["offset"] is None and "silent" in silent["reason"]


def test_lip_sync_length_mismatch_is_an_input_error():
    with pytest.raises(InputError, match="same frames"):
        lip_sync(np.zeros(10), np.zeros(12))


def test_audio_mouth_normalisation_undoes_a_gain():
    rng = np.random.default_rng(0)
    t = np.arange(32000) / 16000
    env = (np.sin(2 * np.pi * 2.0 * t) > 0).astype(np.float32)
    wav = (0.1 * env * rng.standard_normal(t.size)).astype(np.float32)  # about -20 dBFS while "speaking"
    ref = mouth_track(wav, 24, 48)
    quiet = wav * 10 ** (-15 / 20)
    assert np.abs(mouth_track(quiet, 24, 48) - ref).max() > 0.2  # the thresholds are absolute dBFS
    fixed = audio_mouth(quiet, 24, 48, normalize=True)
    assert np.abs(fixed - audio_mouth(wav, 24, 48, normalize=True)).max() < 1e-3
    assert np.abs(fixed - ref).mean() < 0.1


def test_identity_similarity():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(68)
    same = ref[None] + 0.1 * rng.standard_normal((20, 68))
    other = rng.standard_normal((20, 68))
    s_same = identity_similarity(same, ref)
    s_other = identity_similarity(other, ref)
    assert s_same["mean"] > 0.95 and s_same["min"] <= s_same["mean"]
    assert abs(s_other["mean"]) < 0.3
    assert s_same["per_frame"].shape == (20,)


def test_hkv_units_and_visibility():
    t = 50
    hands = np.zeros((t, 2, 2))
    hands[:, 0, 0] = 0.5 + 0.1 * np.sin(np.arange(t))  # left hand x moves; everything else still
    hands[:, 1] = 0.3
    vis = np.ones((t, 2))
    expected = np.var(100 * hands[:, 0, 0]) / 4  # mean over 2 hands x 2 axes, percent of the frame
    assert hkv(hands, vis) == pytest.approx(expected)
    assert hkv(np.full((t, 2, 2), 0.4), vis) == 0.0
    assert hkv(hands, np.zeros((t, 2))) is None
    only_right = np.zeros((t, 2))
    only_right[:, 1] = 1
    assert hkv(hands, only_right) == 0.0  # the moving hand is not visible: no motion is counted


def test_action_units_split_and_skip():
    fps, n = 24.0, 96
    probs = np.zeros((n, len(ACTIONS)))
    probs[:48, ACTION_ID["wave_right"]] = 1
    probs[48:, ACTION_ID["nod"]] = 1
    units = action_units(probs, [(0.0, 4.0, "A robot waves its right hand, then nods, looking happy.")], fps)
    assert [(u["expected"], u["read"], u["correct"]) for u in units] == [
        ("wave_right", "wave_right", True), ("nod", "nod", True)]
    assert units[0]["end"] <= 48 <= units[1]["start"]  # central halves of the two parts
    wrong = action_units(probs, [(0.0, 2.0, "she raises both arms"), (2.0, 4.0, "shakes her head")], fps)
    assert [u["correct"] for u in wrong] == [False, False]
    assert action_units(probs, [(0.0, 4.0, "zxcv qwerty")], fps) == []  # nothing asked: not counted


def test_relative_drop():
    assert relative_drop(0.8, 0.6) == pytest.approx(0.25)
    assert relative_drop(0.5, 0.6) == pytest.approx(-0.2)
    assert relative_drop(None, 0.5) is None and relative_drop(0.0, 0.5) is None


def test_frechet_distance_matches_the_gaussian_formula():
    from omnihuman_core.evaluate.metrics import frechet_distance

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4000, 6)), rng.normal(size=(4000, 6))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, b) < 0.05  # two samples of one Gaussian
    assert frechet_distance(a, b + 1.0) == pytest.approx(6.0, abs=0.15)  # |mean shift|^2 = 6 x 1
    # N(0, 1) vs N(0, 4): per dimension 1 + 4 - 2 * 2 = 1.
    assert frechet_distance(a, 2.0 * b) == pytest.approx(6.0, abs=0.3)
    assert frechet_distance(a, b + 1.0) == pytest.approx(frechet_distance(b + 1.0, a))
    assert frechet_distance(a[:1], b) is None
    with pytest.raises(InputError, match="one width"):
        frechet_distance(a, b[:, :5])
