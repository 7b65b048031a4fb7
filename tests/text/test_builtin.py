"""The built-in text encoder and its two tokenizers (hashed words, the default; UTF-8 bytes)."""

import subprocess
import sys

import pytest
import torch

from omnihuman_core.errors import InputError
from omnihuman_core.text import (
    BuiltinTextConfig,
    BuiltinTextEncoder,
    ByteTokenizer,
    TextEncoder,
    WordTokenizer,
    load_text_encoder,
)
from omnihuman_core.text.builtin import BOS_ID, EOS_ID, PAD_ID, WORD_BOS_ID, WORD_EOS_ID, WORD_PAD_ID


def test_word_tokenizer_words_punctuation_case_and_null_text():
    tok = WordTokenizer(max_length=16, buckets=4096)
    assert tok.words("She waves her LEFT hand, it's two-tone!") == \
        ["she", "waves", "her", "left", "hand", ",", "it's", "two-tone", "!"]
    assert tok.words("你好 ok") == ["你", "好", "ok"]  # scripts without spaces: one token per character
    ids = tok.tokenize("Waves waves")
    assert ids[0] == WORD_BOS_ID and ids[-1] == WORD_EOS_ID and ids[1] == ids[2] >= 3
    assert tok.tokenize("") == tok.tokenize("  \n") == []
    # Stable ids (crc32, not Python's salted hash): the same in every process.
    out = subprocess.run([sys.executable, "-c", "from omnihuman_core.text import WordTokenizer; "
                          "print(WordTokenizer().tokenize('a robot waves'))"], capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "123", "PATH": ""}, cwd=str(_repo_root()))
    assert out.stdout.strip() == str(WordTokenizer().tokenize("a robot waves"))
    ids, mask = tok(["a b", "", "a b c d"])
    assert ids.shape == mask.shape == (3, 6) and mask.sum(1).tolist() == [4, 0, 6]
    assert (ids[~mask] == WORD_PAD_ID).all()
    assert len(WordTokenizer(max_length=5).tokenize("one two three four five")) == 5  # first 3 words kept


def _repo_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[2]


def test_byte_tokenizer_is_still_selectable():
    enc = BuiltinTextEncoder(BuiltinTextConfig.preset("tiny", tokenizer="bytes"))
    assert isinstance(enc.tokenizer, ByteTokenizer) and enc.token_embedding.num_embeddings == 259
    with pytest.raises(InputError, match="tokenizer must be one of"):
        BuiltinTextConfig(tokenizer="letters")


def test_tokenizer_bytes_specials_and_null_text():
    tok = ByteTokenizer(max_length=16)
    assert tok.tokenize("ab") == [BOS_ID, 97, 98, EOS_ID]
    assert tok.tokenize("") == tok.tokenize("  \n") == []
    # NFC + strip: visually equal prompts get equal ids.
    assert tok.tokenize(" e\u0301 ") == tok.tokenize("\u00e9")
    ids, mask = tok(["ab", "", "abcd"])
    assert ids.shape == mask.shape == (3, 6)
    assert mask.sum(1).tolist() == [4, 0, 6]
    assert (ids[~mask] == PAD_ID).all()


def test_truncation_keeps_whole_characters():
    tok = ByteTokenizer(max_length=8)  # room for 6 bytes
    ids = tok.tokenize("aé€€")  # 1 + 2 + 3 + 3 bytes: the first euro sign would be split at 6
    assert len(ids) <= 8 and ids[0] == BOS_ID and ids[-1] == EOS_ID
    assert tok.decode(ids) == "aé€"
    assert tok.tokenize("aé€€") == ids  # deterministic
    assert tok.tokenize("x" * 100) == [BOS_ID] + [ord("x")] * 6 + [EOS_ID]


def test_tokenizer_rejects_bare_string_and_empty_batch():
    tok = ByteTokenizer()
    with pytest.raises(InputError, match=r"\[prompt\]"):
        tok("a cat")
    with pytest.raises(InputError, match="at least one prompt"):
        tok([])
    with pytest.raises(InputError, match=r"entries \[1\]"):
        tok(["a", 3])


@pytest.fixture(scope="module")
def tiny_encoder():
    return BuiltinTextEncoder.from_config("tiny").eval()


@torch.no_grad()
def test_encode_shapes_padding_and_null_text(tiny_encoder):
    enc = tiny_encoder
    assert isinstance(enc, TextEncoder) and enc.dim == 32
    feats, mask = enc.encode(["a cat talks", "", "hi"])
    assert feats.shape == (3, 5, 32) and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [5, 0, 3]
    assert (feats[~mask] == 0).all() and feats[mask].abs().sum() > 0
    # An all-null batch still has one (masked) position.
    feats, mask = enc.encode(["", " "])
    assert feats.shape == (2, 1, 32) and not mask.any() and (feats == 0).all()


@torch.no_grad()
def test_features_do_not_depend_on_the_batch(tiny_encoder):
    alone, m1 = tiny_encoder.encode(["a cat talks"])
    batched, m2 = tiny_encoder.encode(["a cat talks", "a much longer prompt about a singing dog", ""])
    n = int(m1.sum())
    torch.testing.assert_close(batched[:1, :n], alone[:, :n], atol=1e-5, rtol=0)
    assert not m2[0, n:].any()


def test_deterministic_init_and_global_rng_untouched():
    state = torch.get_rng_state()
    a = BuiltinTextEncoder.from_config("tiny")
    assert torch.equal(torch.get_rng_state(), state)
    b = BuiltinTextEncoder.from_config("tiny")
    c = BuiltinTextEncoder.from_config("tiny", seed=1)
    with torch.no_grad():
        fa, _ = a.encode(["hello"])
        assert torch.equal(fa, b.encode(["hello"])[0])
        assert not torch.allclose(fa, c.encode(["hello"])[0])
        assert not torch.allclose(fa, a.encode(["hellp"])[0])


def test_trainable():
    enc = BuiltinTextEncoder.from_config("tiny").train()
    ids, mask = enc.tokenizer(["a cat", "a dog sings"])
    loss = enc(ids, mask)[mask].pow(2).mean()
    loss.backward()
    assert all(p.grad is not None for p in enc.parameters())


@torch.no_grad()
def test_bf16_and_output_placement():
    enc = BuiltinTextEncoder.from_config("tiny", dtype=torch.bfloat16)
    feats, mask = enc.encode(["a cat"])
    assert feats.dtype == torch.bfloat16
    feats, mask = enc.encode(["a cat"], device="cpu", dtype=torch.float32)
    assert feats.dtype == torch.float32 and torch.isfinite(feats).all()


def test_config_round_trip_and_errors():
    for name in ("tiny", "demo"):
        cfg = BuiltinTextConfig.preset(name)
        assert BuiltinTextConfig.from_dict(cfg.to_dict()) == cfg
    assert BuiltinTextConfig.preset("demo").dim == 256
    with pytest.raises(InputError, match=r"\['vocab'\]"):
        BuiltinTextConfig.from_dict({"dim": 32, "vocab": 9})
    with pytest.raises(InputError, match="not divisible by heads"):
        BuiltinTextConfig(dim=30, heads=4)
    with pytest.raises(InputError, match="unknown built-in text encoder preset"):
        BuiltinTextEncoder.from_config("huge")
    enc = BuiltinTextEncoder.from_config(BuiltinTextConfig.preset("tiny").to_dict())
    with pytest.raises(InputError, match="max_length 64"):
        enc(torch.zeros(1, 65, dtype=torch.long), torch.ones(1, 65, dtype=torch.bool))


def test_demo_size():
    enc = BuiltinTextEncoder.from_config("demo", device="meta")
    assert 1e6 < sum(p.numel() for p in enc.parameters()) < 3e6


def test_load_text_encoder_builtin_and_safetensors(tmp_path):
    from omnihuman_core.weights import save_safetensors

    enc = load_text_encoder("builtin:tiny")
    assert isinstance(enc, BuiltinTextEncoder) and enc.dim == 32
    trained = BuiltinTextEncoder.from_config("tiny", seed=5)
    path = tmp_path / "text.safetensors"
    save_safetensors(path, trained.state_dict(), "text_encoder", trained.config.to_dict())
    loaded = load_text_encoder(path)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(["hi"])[0], trained.encode(["hi"])[0])
    with pytest.raises(InputError, match="builtin:<preset>"):
        load_text_encoder(tmp_path / "nowhere")


def test_import_does_not_pull_in_transformers():
    code = "import sys, omnihuman_core.text; assert 'transformers' not in sys.modules, 'transformers imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_files_written_before_the_word_tokenizer_keep_bytes():
    old = {"dim": 32, "depth": 2, "heads": 2, "mlp_ratio": 4.0, "max_length": 64, "dropout": 0.0, "norm_eps": 1e-5}
    cfg = BuiltinTextConfig.from_dict(old)
    assert cfg.tokenizer == "bytes" and BuiltinTextEncoder(cfg).token_embedding.num_embeddings == 259
    assert BuiltinTextConfig.preset("demo").tokenizer == "words"
