"""Speech engines and the mouth track that the renderer draws."""

import shutil

import numpy as np
import pytest

from omnihuman_core.errors import InputError
from omnihuman_core.synth import speech as S

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


def test_sample_rate_matches_audio_package():
    from omnihuman_core.audio import SAMPLE_RATE

    assert S.SAMPLE_RATE == SAMPLE_RATE


def test_babble_deterministic_with_pauses():
    a = S.synthesize_speech(np.random.default_rng(7), 6.0, "babble", silent_prob=0.0)
    b = S.synthesize_speech(np.random.default_rng(7), 6.0, "babble", silent_prob=0.0)
    assert np.array_equal(a.waveform, b.waveform) and a.phrases == b.phrases
    assert a.waveform.dtype == np.float32 and a.waveform.size == 6 * S.SAMPLE_RATE
    assert len(a.phrases) >= 2  # phrases separated by pauses
    assert np.abs(a.waveform).max() <= 1.0


def test_mouth_follows_loudness():
    sr, fps = S.SAMPLE_RATE, 25
    t = np.arange(2 * sr) / sr
    wav = np.zeros_like(t, dtype=np.float32)
    loud = (t >= 0.6) & (t < 1.4)
    wav[loud] = 0.3 * np.sin(2 * np.pi * 220 * t[loud])
    m = S.mouth_track(wav, fps, 50)
    assert m.shape == (50,) and m.dtype == np.float32
    assert np.all(m[:12] == 0) and np.all(m[38:] == 0)  # silence: mouth exactly closed
    assert m[20:32].min() > 0.8  # loud: wide open
    assert np.all((m >= 0) & (m <= 1))


def test_speaking_mask_and_silent_clip():
    tr = S.synthesize_speech(np.random.default_rng(1), 3.0, "babble", silent_prob=1.0)
    assert tr.phrases == [] and not tr.speaking(24, 72).any()
    assert np.all(S.mouth_track(tr.waveform, 24, 72) == 0)  # room noise alone keeps the mouth shut


def test_resample_and_wav_round_trip(tmp_path):
    x = np.sin(2 * np.pi * 440 * np.arange(22050) / 22050).astype(np.float32)
    y = S.resample(x, 22050, 16000)
    assert y.size == 16000
    spec = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spec) - 440) <= 1  # the tone keeps its pitch
    S.write_wav(tmp_path / "a.wav", y * 0.5)
    z, rate = S.read_wav(tmp_path / "a.wav")
    assert rate == 16000 and np.allclose(z, y * 0.5, atol=1e-4)


def test_missing_espeak_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(S.shutil, "which", lambda name: None)
    with pytest.raises(InputError, match="apt-get install espeak-ng"):
        S.resolve_engine("espeak")
    assert S.resolve_engine("auto") == "babble"
    with pytest.raises(InputError, match="speech engine"):
        S.resolve_engine("festival")


@needs_espeak
def test_espeak_speech_deterministic():
    a = S.synthesize_speech(np.random.default_rng(3), 3.0, "espeak", silent_prob=0.0)
    b = S.synthesize_speech(np.random.default_rng(3), 3.0, "espeak", silent_prob=0.0)
    assert a.engine == "espeak" and np.array_equal(a.waveform, b.waveform)
    assert a.phrases and all(isinstance(p[2], str) and p[2] for p in a.phrases)
    speaking = a.speaking(24, 72)
    m = S.mouth_track(a.waveform, 24, 72)
    assert m[speaking].mean() > 0.3 and m[~speaking].mean() < 0.1
