"""Pretraining the built-in text encoder by masked-word prediction: the corruption, the effect on a collapsed
encoder, bit-exact resume, the export record, bad data."""

import json
import shutil

import pytest
import torch

from omnihuman_core.errors import InputError
from omnihuman_core.synth import write_dataset
from omnihuman_core.text import load_text_encoder
from omnihuman_core.train.loop import TrainConfig
from omnihuman_core.train.text import (
    CaptionBatches, TextSettings, dataset_captions, mask_words, special_ids, text_feature_spread, train_text_encoder,
)
from omnihuman_core.weights import load_safetensors, read_metadata, save_safetensors

from .helpers import tiny_text


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    # 49 frames: room for two actions per clip, so schedules add shot prompts to the captions.
    write_dataset(root, 8, seed=7, size=32, frames=49, test_fraction=0.0, speech="babble")
    return root


def config(steps, **kw):
    return TrainConfig(**{"lr": 5e-3, "warmup": 10, "steps": steps, "batch_size": 16, "ema_decay": 0.9,
                          "ckpt_every": 1000, "log_every": 50, **kw})


def quiet(msg):
    pass


def test_captions_are_the_clips_and_their_shots_deduplicated(dataset):
    captions = dataset_captions(dataset, log=None)
    assert len(captions) == len(set(captions)) > 8  # caption.txt of 8 clips plus shot prompts
    first = sorted(p for p in dataset.rglob("caption.txt"))[0].read_text().strip()
    assert first in captions


def test_mask_words_selects_only_real_words_and_changes_only_selected():
    text = tiny_text()
    specials = special_ids(text)
    ids, mask = text.tokenizer(["a cat waves its left hand, smiling", "hi", "", "the robot nods twice. static camera"])
    real = mask & ~torch.isin(ids, torch.tensor(specials))
    for seed in range(20):
        inputs, selected = mask_words(ids, mask, specials, torch.Generator().manual_seed(seed))
        assert not (selected & ~real).any()  # never BOS / EOS / PAD
        assert torch.equal(inputs[~selected], ids[~selected])
        words = real.sum(1)
        want = torch.where(words > 0, (words * 0.15).round().clamp(min=1), 0).long()
        assert torch.equal(selected.sum(1), want)  # ~15 %, at least one per caption with words
        assert set(inputs[selected].tolist()) <= set(ids[real].tolist())  # replacements are the batch's words
        again, sel2 = mask_words(ids, mask, specials, torch.Generator().manual_seed(seed))
        assert torch.equal(again, inputs) and torch.equal(sel2, selected)
    # Over many draws about 80 % of the selected words are replaced (a draw may pick the same word back).
    changed = total = 0
    for seed in range(200):
        inputs, selected = mask_words(ids, mask, specials, torch.Generator().manual_seed(seed))
        changed += int((inputs != ids).sum())
        total += int(selected.sum())
    assert 0.6 < changed / total < 0.85


def test_caption_batches_are_a_pure_function_of_the_step():
    rows = [[1, 3 + i, 2] for i in range(5)]
    a, b = CaptionBatches(rows, 3, 0, seed=1), CaptionBatches(rows, 3, 0, seed=1)
    assert all(torch.equal(a.batch(k)[0], b.batch(k)[0]) for k in (7, 0, 3))
    # A batch larger than the caption set still works; each epoch shows every caption once.
    big = CaptionBatches(rows, 10, 0)
    assert sorted(big.indices(0)) == sorted(list(range(5)) * 2)


def collapsed_file(path):
    """A tiny encoder whose features are a shared constant plus a small token-specific part (the collapse the
    jointly trained demo encoder showed)."""
    text = tiny_text()
    with torch.no_grad():
        text.norm_out.weight.mul_(0.05)
        text.norm_out.bias.copy_(torch.randn(text.dim, generator=torch.Generator().manual_seed(0)))
    save_safetensors(path, text.state_dict(), "text_encoder", text.config.to_dict())
    return path


def test_pretraining_lifts_a_collapsed_encoder(dataset, tmp_path):
    captions = dataset_captions(dataset, log=None)
    start = collapsed_file(tmp_path / "collapsed.safetensors")
    before = text_feature_spread(load_text_encoder(start), captions)
    assert before["pooled_cosine"] > 0.999
    result, path = train_text_encoder(dataset, tmp_path / "t.safetensors", tmp_path / "w",
                                      TextSettings(preset="tiny"), config(200), init=start,
                                      export_dtype=torch.float32, log=quiet)
    assert result.done and result.step == 200
    record = json.loads(read_metadata(path)["pretraining"])
    assert record["captions"] == len(captions)
    assert record["accuracy"] > 2 * record["chance"] and record["accuracy"] > 0.25
    after = record["spread"]
    assert after == text_feature_spread(load_text_encoder(path), captions)  # the record is the exported weights'
    assert after["token_deviation"] > 4 * before["token_deviation"]
    assert after["pooled_spread"] > 2 * before["pooled_spread"] and after["pooled_cosine"] < before["pooled_cosine"]
    assert set(record["spread_random_init"]) == set(after)
    assert record["eval_clips"] >= 1 and record["spread_within_clip"]["token_deviation"] > 0
    # An ordinary text encoder file (same vocabulary, same keys), loadable where any other is.
    _, cfg = load_safetensors(path, "text_encoder")
    assert cfg == tiny_text().config.to_dict()


def test_bit_exact_resume(dataset, tmp_path):
    settings = TextSettings(preset="tiny", eval_captions=4)
    _, path_a = train_text_encoder(dataset, tmp_path / "a.safetensors", tmp_path / "a", settings, config(6),
                                   export_dtype=torch.float32, log=quiet)
    first, _ = train_text_encoder(dataset, tmp_path / "b.safetensors", tmp_path / "b", settings, config(3),
                                  export_dtype=torch.float32, log=quiet)
    assert first.done
    resumed, path_b = train_text_encoder(dataset, tmp_path / "b.safetensors", tmp_path / "b", settings, config(6),
                                         export_dtype=torch.float32, log=quiet)
    assert resumed.step == 6
    a, _ = load_safetensors(path_a, "text_encoder")
    b, _ = load_safetensors(path_b, "text_encoder")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # Another objective setting is another run: refused, naming it.
    with pytest.raises(InputError, match="mask_fraction"):
        train_text_encoder(dataset, tmp_path / "b.safetensors", tmp_path / "b",
                           TextSettings(preset="tiny", eval_captions=4, mask_fraction=0.3), config(8), log=quiet)


def test_a_dataset_without_captions_is_refused_before_training(dataset, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(dataset, bare)
    for caption in bare.rglob("caption.txt"):
        caption.unlink()
    with pytest.raises(InputError, match=str(bare)):
        train_text_encoder(bare, tmp_path / "t.safetensors", tmp_path / "w", TextSettings(preset="tiny"), config(2),
                           log=quiet)
    assert not (tmp_path / "w").exists()
    with pytest.raises(InputError, match="mask_fraction"):
        TextSettings(mask_fraction=0.0)
    with pytest.raises(InputError, match="does not exist"):
        train_text_encoder(dataset, tmp_path / "t.safetensors", tmp_path / "w", TextSettings(preset="tiny"), config(2),
                           init=tmp_path / "missing.safetensors", log=quiet)
