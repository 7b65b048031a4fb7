"""Energy VAD on synthetic tone bursts (and espeak-ng speech with a pause when available)."""

import numpy as np
import pytest
import torch

from omnihuman_core.audio import load_audio, speech_activity, speech_spans
from omnihuman_core.errors import InputError

SR, FPS = 16000, 24


def burst_track(pattern, noise_db=-60.0, seed=0):
    """pattern: [(seconds, on?)...] -> tone where on, low noise everywhere."""
    parts = []
    for seconds, on in pattern:
        n = int(seconds * SR)
        t = np.arange(n) / SR
        parts.append(0.3 * np.sin(2 * np.pi * 220 * t) * (1.0 if on else 0.0))
    x = np.concatenate(parts)
    x += np.random.default_rng(seed).standard_normal(len(x)) * 10 ** (noise_db / 20)
    return torch.from_numpy(x.astype(np.float32))


def spans_of(x, fps=FPS):
    n = int(round(len(x) / SR * fps))
    return speech_spans(speech_activity(x, fps, n), fps)


def test_bursts_with_silence_between():
    spans = spans_of(burst_track([(1, True), (1, False), (1, True), (0.5, False)]))
    assert len(spans) == 2
    for (s, e), (es, ee) in zip(spans, [(0, 1), (2, 3)]):
        assert s == pytest.approx(es, abs=2 / FPS) and e == pytest.approx(ee, abs=2 / FPS)


def test_short_gaps_between_words_are_not_silence():
    words = [(0.25, True), (0.1, False)] * 4 + [(0.25, True), (1.0, False), (0.5, True)]
    spans = spans_of(burst_track(words))
    assert len(spans) == 2 and spans[0][0] == pytest.approx(0, abs=0.05)
    assert spans[0][1] == pytest.approx(1.65, abs=0.1)


def test_clicks_are_not_speech():
    spans = spans_of(burst_track([(1, False), (0.03, True), (1, False), (0.5, True)]))
    assert len(spans) == 1 and spans[0][0] == pytest.approx(2.03, abs=0.1)


def test_adaptive_threshold_follows_the_noise_floor():
    # Same pattern, much louder background: the pause is still found.
    spans = spans_of(burst_track([(1, True), (1, False), (1, True)], noise_db=-30))
    assert len(spans) == 2


def test_all_silence_and_all_tone():
    assert speech_activity(torch.zeros(SR), FPS, 24).sum() == 0
    assert speech_activity(burst_track([(1, True)], noise_db=-90), FPS, 24).all()


def test_frames_past_the_audio_are_silent():
    act = speech_activity(burst_track([(1, True)]), FPS, 48)
    assert act[:24].all() and not act[24:].any()
    assert speech_activity(torch.zeros(10), FPS, 0).shape == (0,)


def test_espeak_speech_with_a_pause(espeak, tmp_path):
    ssml = '<speak>Hello there, my friend.<break time="1500ms"/>How are you today?</speak>'
    audio = load_audio(espeak(ssml, tmp_path / "speech.wav"))
    spans = spans_of(audio.waveform)
    gaps = [b[0] - a[1] for a, b in zip(spans, spans[1:])]
    assert spans and max(gaps, default=0) > 1.0, spans  # the 1.5 s break is silence
    assert len(spans) <= 4, spans  # pauses between words are bridged


@pytest.mark.parametrize("args,match", [
    ((torch.zeros(2, 100), 24, 5), "mono waveform"),
    ((torch.zeros(100), 0, 5), "fps"),
    ((torch.zeros(100), 24, -1), "n_frames"),
    ((torch.zeros(100), 24, 2.5), "n_frames"),
])
def test_bad_input(args, match):
    with pytest.raises(InputError, match=match):
        speech_activity(*args)
