"""TransformersTextEncoder on tiny random models saved to temporary folders (no hub, no download)."""

import pytest
import torch

from omnihuman_core.errors import InputError, WeightsError
from omnihuman_core.text import TransformersTextEncoder, load_text_encoder

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

WORDS = "a the cat dog talks sings smiles person happy sad".split()


def _word_tokenizer(specials, template):
    """An offline fast tokenizer: whitespace words, fixed vocabulary, special tokens via a template."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {tok: i for i, tok in enumerate(list(specials.values()) + WORDS)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token=specials["unk_token"]))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[(t, vocab[t]) for t in specials.values() if t in template]
    )
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tk, **specials), vocab


@pytest.fixture(scope="module")
def t5_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-t5")
    tok, vocab = _word_tokenizer(dict(pad_token="<pad>", eos_token="</s>", unk_token="<unk>"), "$A </s>")
    tok.save_pretrained(folder)
    cfg = transformers.T5Config(
        vocab_size=len(vocab), d_model=16, d_kv=8, d_ff=32, num_layers=2, num_heads=2, decoder_start_token_id=0
    )
    torch.manual_seed(0)
    transformers.T5EncoderModel(cfg).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def t5_encoder(t5_folder):
    return TransformersTextEncoder(t5_folder, max_length=6)


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory):
    """A BERT folder whose only tokenizer file is a WordPiece vocab.txt."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    cfg = transformers.BertConfig(
        vocab_size=len(WORDS) + 5,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=24,
    )
    torch.manual_seed(0)
    transformers.BertModel(cfg).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def clip_text_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-clip-text")
    specials = dict(pad_token="<pad>", eos_token="<eos>", unk_token="<unk>", bos_token="<bos>")
    tok, vocab = _word_tokenizer(specials, "<bos> $A <eos>")
    tok.save_pretrained(folder)
    cfg = transformers.CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=12,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=3,
    )
    torch.manual_seed(0)
    transformers.CLIPTextModel(cfg).save_pretrained(folder)
    return folder


def test_t5_loads_encoder_only_and_matches_the_model(t5_encoder):
    enc = t5_encoder
    assert type(enc.model).__name__ == "T5EncoderModel"
    assert enc.dim == 16 and enc.max_length == 6
    feats, mask = enc.encode(["a cat talks", "", "the happy dog sings and smiles a lot"])
    assert feats.shape == (3, 6, 16) and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [4, 0, 6]  # 3 words + </s>; null text; truncated to max_length
    assert (feats[~mask] == 0).all()
    ids = enc.tokenizer(["a cat talks"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        ref = enc.model(input_ids=ids).last_hidden_state
    torch.testing.assert_close(feats[:1, :4], ref, atol=1e-5, rtol=0)


def test_all_null_batch_skips_the_model(t5_encoder):
    feats, mask = t5_encoder.encode(["", "  "])
    assert feats.shape == (2, 1, 16) and not mask.any()


def test_hidden_layer_and_dtype(t5_folder):
    enc = TransformersTextEncoder(t5_folder, hidden_layer=1, dtype=torch.bfloat16)
    assert enc.dtype == torch.bfloat16
    feats, mask = enc.encode(["a cat"], dtype=torch.float32)
    ids = enc.tokenizer(["a cat"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        ref = enc.model(input_ids=ids, output_hidden_states=True).hidden_states[1]
    assert feats.dtype == torch.float32
    torch.testing.assert_close(feats, ref.float(), atol=1e-2, rtol=0)


def test_bert_folder_with_vocab_txt_uses_automodel(bert_folder):
    enc = load_text_encoder(bert_folder, max_length=512)
    assert isinstance(enc, TransformersTextEncoder)
    assert type(enc.model).__name__ == "BertModel"
    assert enc.max_length == 24  # capped by the position table
    feats, mask = enc.encode(["a cat", "dog"])
    assert feats.shape == (2, 4, 16) and mask.sum(1).tolist() == [4, 3]  # [CLS] ... [SEP]


def test_clip_text_penultimate_layer(clip_text_folder):
    enc = TransformersTextEncoder(clip_text_folder, hidden_layer=-2)
    assert type(enc.model).__name__ == "CLIPTextModel" and enc.max_length == 12
    feats, mask = enc.encode(["the sad person talks"])
    assert feats.shape == (1, 6, 16) and mask.all() and torch.isfinite(feats).all()


def test_folder_errors_say_what_to_copy(tmp_path, t5_folder):
    with pytest.raises(InputError, match="does not exist"):
        TransformersTextEncoder(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="has no config.json; copy the whole model folder"):
        TransformersTextEncoder(empty)
    (empty / "config.json").write_text((t5_folder / "config.json").read_text())
    with pytest.raises(InputError, match=r"has no tokenizer files \(tokenizer.json or spiece.model\); copy"):
        TransformersTextEncoder(empty)
    (empty / "tokenizer.json").write_text((t5_folder / "tokenizer.json").read_text())
    (empty / "pytorch_model.bin").write_bytes(b"PK")
    with pytest.raises(InputError, match="only pickle weights.*never unpickles"):
        TransformersTextEncoder(empty)
    with pytest.raises(InputError, match="is a file"):
        TransformersTextEncoder(t5_folder / "config.json")


def test_weights_that_do_not_fit_the_config_are_named(tmp_path, t5_folder):
    import json
    import shutil

    folder = tmp_path / "t5-mixed"
    shutil.copytree(t5_folder, folder)
    config = json.loads((folder / "config.json").read_text())
    config["num_layers"] = 3  # one more block than the weights hold
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match=r"do not fit T5EncoderModel \(\d+ missing.*block\.2"):
        TransformersTextEncoder(folder)
