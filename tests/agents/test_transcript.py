"""Transcripts from a local Whisper folder (a tiny random model with a toy tokenizer: the real
loading and generation code runs, the words are noise), and the folder errors."""

import json

import pytest
import torch

from omnihuman_core.agents import PlanInputs
from omnihuman_core.agents.transcript import transcribe
from omnihuman_core.errors import InputError

SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>", "<|startoflm|>",
            "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]


def byte_symbols() -> list[str]:
    """GPT-2's printable stand-in for every byte (the byte-level BPE alphabet)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    out, extra = [], 0
    for b in range(256):
        if b in keep:
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return out


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    path = tmp_path_factory.mktemp("whisper")
    vocab = {c: i for i, c in enumerate(byte_symbols())}
    for s in SPECIALS:
        vocab[s] = len(vocab)
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n")
    tok = transformers.WhisperTokenizer(str(path / "vocab.json"), str(path / "merges.txt"), unk_token="<|endoftext|>",
                                        bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    processor = transformers.WhisperProcessor(transformers.WhisperFeatureExtractor(feature_size=80), tok)
    eot = vocab["<|endoftext|>"]
    cfg = transformers.WhisperConfig(
        vocab_size=len(vocab), num_mel_bins=80, d_model=16, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        max_source_positions=1500, max_target_positions=24, decoder_start_token_id=vocab["<|startoftranscript|>"],
        eos_token_id=eot, pad_token_id=eot, bos_token_id=eot, begin_suppress_tokens=None, suppress_tokens=None)
    torch.manual_seed(0)
    model = transformers.WhisperForConditionalGeneration(cfg)
    model.generation_config.forced_decoder_ids = None
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def test_transcribe_with_a_local_folder(whisper_dir, media):
    text = transcribe(0.1 * torch.randn(16000 * 2), whisper_dir)
    assert isinstance(text, str)
    inputs = PlanInputs.load(media["image"], media["audio"], whisper_folder=whisper_dir)
    assert inputs.notes == [f"transcript from the Whisper model in {whisper_dir}"]
    assert isinstance(inputs.transcript, str) and all(ch.isprintable() or ch in "\n\t" for ch in inputs.transcript)
    # a transcript the user gives wins over the model
    given = PlanInputs.load(media["image"], media["audio"], transcript="hello", whisper_folder=whisper_dir)
    assert given.transcript == "hello" and given.notes == []


def test_whisper_folder_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        transcribe(torch.zeros(16000), tmp_path / "missing")
    with pytest.raises(InputError, match="no config.json"):
        transcribe(torch.zeros(16000), tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(InputError, match="cannot load a Whisper model"):
        transcribe(torch.zeros(16000), tmp_path)
