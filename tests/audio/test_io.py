"""load_audio / audio_from_array: decoding, mono mixing, resampling, and every bad input."""

import numpy as np
import pytest
import torch

from omnihuman_core.audio import SAMPLE_RATE, Audio, audio_from_array, load_audio
from omnihuman_core.errors import InputError


def peak_freq(x, rate):
    spec = np.abs(np.fft.rfft(np.asarray(x, dtype=np.float64)))
    return np.fft.rfftfreq(len(x), 1 / rate)[spec.argmax()]


def test_wav_mono_16k_roundtrip(wav, make_tone):
    data = make_tone(1.5, 16000)
    a = load_audio(wav(data, 16000))
    assert isinstance(a, Audio)
    assert a.waveform.dtype == torch.float32 and a.waveform.shape == (24000,)
    assert a.source_rate == 16000 and a.source_channels == 1 and a.sample_rate == SAMPLE_RATE
    assert a.duration == pytest.approx(1.5) and a.path.endswith(".wav")
    assert torch.allclose(a.waveform, torch.from_numpy(data), atol=1e-4)


@pytest.mark.parametrize("codec,suffix", [("libmp3lame", "mp3"), ("flac", "flac")])
def test_compressed_formats_decode(encode, make_tone, codec, suffix):
    a = load_audio(encode(make_tone(1.0, 44100, freq=440), 44100, codec, suffix))
    assert a.source_rate == 44100
    assert a.duration == pytest.approx(1.0, abs=0.08)  # mp3 adds encoder padding
    assert peak_freq(a.waveform, SAMPLE_RATE) == pytest.approx(440, abs=3)


def test_stereo_is_mixed_to_mono(wav, make_tone):
    left, right = make_tone(1.0, 16000, 440, 0.4), make_tone(1.0, 16000, 1000, 0.2)
    a = load_audio(wav(np.stack([left, right]), 16000))
    assert a.source_channels == 2 and a.waveform.dim() == 1
    assert torch.allclose(a.waveform, torch.from_numpy((left + right) / 2), atol=1e-4)


def test_8khz_is_upsampled(wav, make_tone):
    a = load_audio(wav(make_tone(1.0, 8000, 440), 8000))
    assert a.source_rate == 8000 and a.waveform.shape == (16000,)
    assert peak_freq(a.waveform, SAMPLE_RATE) == pytest.approx(440, abs=2)


def test_96khz_is_downsampled_without_aliasing(wav, make_tone):
    # 1 kHz speech-band tone plus 30 kHz that must be filtered out, not folded into the band.
    data = make_tone(1.0, 96000, 1000, 0.3) + make_tone(1.0, 96000, 30000, 0.3)
    a = load_audio(wav(data, 96000))
    assert a.source_rate == 96000 and a.waveform.shape == (16000,)
    spec = np.abs(np.fft.rfft(a.waveform.numpy()))
    freqs = np.fft.rfftfreq(16000, 1 / 16000)
    assert freqs[spec.argmax()] == pytest.approx(1000, abs=2)
    assert spec[np.abs(freqs - 2000) < 50].max() < 0.01 * spec.max()  # 30 kHz folds to 2 kHz


def test_missing_file():
    with pytest.raises(InputError, match="does not exist"):
        load_audio("/no/such/voice.wav")


def test_folder_is_refused(tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        load_audio(tmp_path)


def test_zero_size_file(tmp_path):
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    with pytest.raises(InputError, match="empty \\(0 bytes\\)"):
        load_audio(p)


def test_corrupt_file(tmp_path):
    p = tmp_path / "broken.wav"
    p.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(range(256)) * 4)
    with pytest.raises(InputError, match="corrupt"):
        load_audio(p)


def test_file_without_audio_stream(tmp_path):
    from PIL import Image

    p = tmp_path / "face.png"
    Image.new("RGB", (16, 16), "red").save(p)
    with pytest.raises(InputError, match="no audio stream"):
        load_audio(p)


def test_empty_audio(wav):
    with pytest.raises(InputError, match="no samples"):
        load_audio(wav(np.zeros(0, np.float32), 16000))


def test_silent_audio_is_refused_unless_allowed(wav):
    quiet = (np.random.default_rng(0).standard_normal(16000) * 1e-4).astype(np.float32)  # ~-70 dBFS
    path = wav(quiet, 16000)
    with pytest.raises(InputError, match="silent.*real speech.*allow_silent"):
        load_audio(path)
    assert load_audio(path, allow_silent=True).duration == pytest.approx(1.0)
    with pytest.raises(InputError, match="silent"):
        load_audio(wav(np.zeros(1600, np.float32), 16000))


def test_over_ten_minutes_is_refused_from_the_header(wav):
    # 601 s at 4 kHz (4.8 MB): refused by the header check, before decoding.
    path = wav(np.full(601 * 4000, 0.1, np.float32), 4000)
    with pytest.raises(InputError, match=r"10 min 1\.0 s long; the limit is 10 min 0\.0 s.*max_seconds") as e:
        load_audio(path)
    assert "Split" in str(e.value)
    with pytest.raises(InputError, match="limit is 1.00 s"):
        load_audio(wav(np.full(8000, 0.1, np.float32), 4000), max_seconds=1.0)
    assert load_audio(wav(np.full(8000, 0.1, np.float32), 4000), max_seconds=None).duration == pytest.approx(2.0)


def test_nan_and_inf_samples(wav):
    data = np.full(1600, 0.1, np.float32)
    data[100], data[200] = np.nan, np.inf
    with pytest.raises(InputError, match="NaN/inf"):
        load_audio(wav(data, 16000, float32=True))
    with pytest.raises(InputError, match="NaN/inf"):
        audio_from_array(torch.from_numpy(data), 16000)


def test_from_array_comfyui_layout(make_tone):
    stereo = torch.from_numpy(np.stack([make_tone(1.0, 44100), make_tone(1.0, 44100)]))[None]  # [1, 2, N]
    a = audio_from_array(stereo, 44100)
    assert a.source_channels == 2 and a.source_rate == 44100 and a.waveform.shape == (16000,)
    assert a.path is None and peak_freq(a.waveform, SAMPLE_RATE) == pytest.approx(440, abs=2)


def test_from_array_layouts_and_integer_pcm(make_tone):
    x = make_tone(0.5, 16000)
    pcm = (x * 32767).astype(np.int16)
    a = audio_from_array(pcm, 16000)
    assert torch.allclose(a.waveform, torch.from_numpy(x), atol=1e-3)
    nc = np.stack([x, x], axis=1)  # [N, C], as soundfile returns it
    assert audio_from_array(nc, 16000).source_channels == 2
    loud = audio_from_array(x * 4, 16000)  # floats past +-1 are scaled so nothing clips
    assert float(loud.waveform.abs().max()) == pytest.approx(1.0)


@pytest.mark.parametrize("bad,rate,match", [
    (torch.zeros(2, 1, 100), 16000, "one clip at a time"),
    (torch.zeros(1, 1, 1, 100), 16000, "expected \\[samples\\]"),
    (torch.zeros(0), 16000, "no samples"),
    (torch.ones(100) * 0.1, 0, "sample rate"),
    (torch.ones(100) * 0.1, 1000, "sample rate"),
    (torch.ones(100) * 0.1, 16000.5, "sample rate"),
    ("not audio", 16000, "numpy array or torch tensor"),
])
def test_from_array_bad_input(bad, rate, match):
    with pytest.raises(InputError, match=match):
        audio_from_array(bad, rate)


def test_from_array_length_limit():
    with pytest.raises(InputError, match="limit"):
        audio_from_array(torch.full((4000 * 3,), 0.1), 4000, max_seconds=2.0)
