"""Audio encoders on the shared 50 Hz grid: mel (weightless) and tiny random wav2vec2 / Whisper
checkpoints saved into tmp folders (no downloads)."""

import json
import subprocess
import sys

import pytest
import torch

from omnihuman_core.audio import (
    FEATURE_RATE, MelEncoder, Wav2Vec2Encoder, WhisperEncoder, load_audio_encoder, n_features,
)
from omnihuman_core.errors import InputError


def speechy(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, generator=g) * 0.1).float()


@pytest.fixture(scope="module")
def wav2vec2_dir(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    path = tmp_path_factory.mktemp("w2v")
    cfg = transformers.Wav2Vec2Config(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=8)
    torch.manual_seed(0)
    transformers.Wav2Vec2Model(cfg).save_pretrained(path)
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    path = tmp_path_factory.mktemp("whisper")
    # A 2 s window (100 positions of 320 samples) instead of 30 s keeps the test fast and still
    # exercises the chunking of audio longer than the window.
    cfg = transformers.WhisperConfig(
        d_model=16, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=80,
        max_source_positions=100, max_target_positions=16, vocab_size=16, pad_token_id=0,
        bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)
    torch.manual_seed(0)
    transformers.WhisperModel(cfg).save_pretrained(path)
    transformers.WhisperFeatureExtractor(feature_size=80, chunk_length=2).save_pretrained(path)
    return path


@pytest.mark.parametrize("n", [1, 100, 16000, 16319, 40000])
def test_mel_shape_and_grid(n):
    enc = MelEncoder()
    f = enc.encode(speechy(n))
    assert f.shape == (n_features(n), 80) == (1 + n // 320, enc.dim)
    assert enc.feature_rate == FEATURE_RATE == 50 and torch.isfinite(f).all()


def test_mel_is_normalised_and_gain_invariant():
    enc = MelEncoder()
    x = speechy(16000)
    f = enc.encode(x)
    assert abs(float(f.mean())) < 1e-4 and float(f.std(unbiased=False)) == pytest.approx(1.0, abs=1e-3)
    assert torch.allclose(enc.encode(x * 0.1), f, atol=1e-3)  # per-utterance normalisation


def test_mel_sees_where_the_sound_is():
    x = torch.cat([torch.zeros(8000), speechy(8000)])
    f = MelEncoder().encode(x)
    assert f[:20].mean() < f[30:].mean() - 0.5  # first 0.4 s silent, last 0.4 s loud


def test_mel_dtype():
    f = MelEncoder(dtype=torch.bfloat16).encode(speechy(4000))
    assert f.dtype == torch.bfloat16 and torch.isfinite(f.float()).all()


@pytest.mark.parametrize("bad,match", [
    (torch.zeros(2, 100), "mono waveform"),
    (torch.zeros(0), "empty"),
    (torch.tensor([0.1, float("nan")]), "NaN"),
    ([0.1, 0.2], "torch tensor"),
])
def test_encoder_bad_input(bad, match):
    with pytest.raises(InputError, match=match):
        MelEncoder().encode(bad)


def test_wav2vec2_layers_and_grid(wav2vec2_dir):
    x = speechy(16000)
    enc = Wav2Vec2Encoder(wav2vec2_dir)
    assert enc.dim == 16 and enc.layers == "all"
    all_, last, first = enc.encode(x), Wav2Vec2Encoder(wav2vec2_dir, layers="last").encode(x), \
        Wav2Vec2Encoder(wav2vec2_dir, layers=1).encode(x)
    assert all_.shape == last.shape == first.shape == (n_features(16000), 16)
    assert not torch.allclose(all_, last) and not torch.allclose(first, last)
    with pytest.raises(InputError, match="layers must be"):
        Wav2Vec2Encoder(wav2vec2_dir, layers=7)


def test_wav2vec2_chunks_long_audio(wav2vec2_dir):
    enc = Wav2Vec2Encoder(wav2vec2_dir)
    enc.window_samples, enc.context_samples = 320 * 50, 320 * 5  # 1 s windows, 0.1 s context
    x = speechy(16000 * 3 + 123)
    f = enc.encode(x)
    assert f.shape == (n_features(x.numel()), 16) and torch.isfinite(f).all()
    # The kept part of the first window is exactly what that window alone gives.
    alone = enc._encode_region(x[:16000])
    assert torch.allclose(f[:45], alone[:45], atol=1e-5)


def test_whisper_keeps_only_real_audio_and_chunks(whisper_dir):
    enc = WhisperEncoder(whisper_dir)
    assert enc.dim == 16 and enc.window_samples == 32000 and enc.feature_rate == 50
    short = enc.encode(speechy(16000))
    assert short.shape == (51, 16)  # 1 s of a 2 s window: the padding frames are dropped
    x = speechy(16000 * 5 + 700)  # 5 s: several 2 s windows
    f = enc.encode(x)
    assert f.shape == (n_features(x.numel()), 16) and torch.isfinite(f).all()
    keep = (enc.window_samples - enc.context_samples) // 320
    assert torch.allclose(f[:keep], enc.encode(x[:32000])[:keep], atol=1e-5)


def test_transformer_encoders_run_in_half_precision(wav2vec2_dir, whisper_dir):
    assert Wav2Vec2Encoder(wav2vec2_dir, dtype=torch.bfloat16).encode(speechy(8000)).dtype == torch.bfloat16
    assert WhisperEncoder(whisper_dir, dtype=torch.float16).encode(speechy(8000)).dtype == torch.float16


def test_load_audio_encoder_detects_the_kind(wav2vec2_dir, whisper_dir):
    assert isinstance(load_audio_encoder("mel"), MelEncoder)
    assert isinstance(load_audio_encoder(str(wav2vec2_dir)), Wav2Vec2Encoder)
    assert isinstance(load_audio_encoder(whisper_dir, layers="all"), WhisperEncoder)


def test_load_audio_encoder_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_audio_encoder(tmp_path / "nope")
    with pytest.raises(InputError, match="no config.json"):
        load_audio_encoder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(InputError, match="no weights"):
        load_audio_encoder(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(InputError, match="'bert' model; supported: 'mel'"):
        load_audio_encoder(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_audio_encoder(tmp_path)
    with pytest.raises(InputError, match="'mel' or a local model folder"):
        load_audio_encoder("")


def test_import_is_cheap():
    code = ("import sys, omnihuman_core.audio; "
            "assert 'transformers' not in sys.modules and 'torchaudio' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=__file__.rsplit("/tests/", 1)[0])
