"""Latent cache, resumable MMDiT training, export, and the train CLI on a tiny synthetic dataset."""

import json
import shutil

import pytest
import torch

from omnihuman_core.errors import InputError
from omnihuman_core.train.mmdit_training import (CacheConfig, LatentWindows, TrainConfig, build_latent_cache, export,
                                                 train_mmdit)
from omnihuman_core.train.recipe import Recipe
from omnihuman_core.weights import load_safetensors, read_metadata, save_safetensors


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from omnihuman_core.synth import write_dataset
    from omnihuman_core.vae import CausalVideoVAE

    root = tmp_path_factory.mktemp("world")
    write_dataset(root / "data", 3, seed=0, size=32, frames=53, speech="babble", test_fraction=0.0)
    torch.manual_seed(0)
    vae = CausalVideoVAE.from_config("tiny")
    save_safetensors(root / "vae.safetensors", vae.state_dict(), "vae", vae.config.to_dict())
    cache = build_latent_cache(root / "data", root / "vae.safetensors", root / "cache.safetensors",
                               CacheConfig(frames=17, delta=4))
    return root, cache


def _cfg(**kw):
    base = dict(stage="base", preset="tiny", text_preset="tiny", batch_size=2, steps=4, ckpt_every=2, log_every=1,
                warmup=2)
    base.update(kw)
    return TrainConfig(**base)


def test_cache_windows_and_batches(world):
    root, cache = world
    data = LatentWindows(cache, 2, seed=0)
    # 53 frames -> 14 latent frames; a 17-frame window (5 latent) + delta 4 -> starts 0..5 -> 6 per clip.
    assert data.n == 3 * 6
    b = data.batch(0)
    assert b["latents"].shape == (2, 4, 5, 4, 4) and b["last_latent"].shape == (2, 4, 1, 4, 4)
    assert b["audio"].shape == (2, 5, 4, 400) and len(b["captions"]) == 2
    # A pure function of the position: resume needs no loader state.
    assert torch.equal(data.batch(3)["latents"], LatentWindows(cache, 2, seed=0).batch(3)["latents"])
    # Reused when nothing changed.
    assert build_latent_cache(root / "data", root / "vae.safetensors", cache, CacheConfig(frames=17, delta=4)) == cache


def test_resume_equals_uninterrupted(world, tmp_path):
    _, cache = world
    full = train_mmdit(cache, tmp_path / "a", _cfg(), Recipe(), log=lambda *_: None)
    part = train_mmdit(cache, tmp_path / "b", _cfg(steps=2), Recipe(), log=lambda *_: None)
    assert part["steps"] == 2
    rest = train_mmdit(cache, tmp_path / "b", _cfg(steps=4), Recipe(), log=lambda *_: None)
    assert rest["steps"] == 4
    for k in full["ema"]:
        assert torch.equal(full["ema"][k], rest["ema"][k]), k


def test_resume_with_other_settings_is_refused(world, tmp_path):
    _, cache = world
    train_mmdit(cache, tmp_path, _cfg(steps=1), Recipe(), log=lambda *_: None)
    with pytest.raises(InputError, match="different run"):
        train_mmdit(cache, tmp_path, _cfg(steps=2, lr=1e-3), Recipe(), log=lambda *_: None)


def test_stages_chain_and_export(world, tmp_path):
    _, cache = world
    quiet = dict(log=lambda *_: None)
    base = train_mmdit(cache, tmp_path / "base", _cfg(), Recipe(), **quiet)
    export(base, tmp_path / "base.safetensors", tmp_path / "text.safetensors",
           extra={"render_defaults": {"short_side": 32, "segment_frames": 17}})
    s1 = train_mmdit(cache, tmp_path / "s1", _cfg(stage="stage1"), Recipe(), init=tmp_path / "base.safetensors",
                     text_encoder_path=tmp_path / "text.safetensors", **quiet)
    assert not s1["train_text"]
    export(s1, tmp_path / "s1.safetensors")
    s2 = train_mmdit(cache, tmp_path / "s2", _cfg(stage="stage2"), Recipe(), base=tmp_path / "base.safetensors",
                     stage1=tmp_path / "s1.safetensors", text_encoder_path=tmp_path / "text.safetensors", **quiet)
    export(s2, tmp_path / "s2.safetensors", extra={"render_defaults": {"short_side": 32}})
    state, config = load_safetensors(tmp_path / "s2.safetensors", "mmdit")
    assert config["hidden"] == 64 and next(iter(state.values())).dtype == torch.float16
    assert json.loads(read_metadata(tmp_path / "s2.safetensors")["render_defaults"]) == {"short_side": 32}
    with pytest.raises(InputError, match="--base"):
        train_mmdit(cache, tmp_path / "x", _cfg(stage="stage2"), Recipe(), **quiet)


def test_bad_clips_are_named_and_skipped(world, tmp_path):
    root, _ = world
    data = tmp_path / "data"
    shutil.copytree(root / "data", data)
    index = json.loads((data / "index.json").read_text())
    clips = index["splits"]["train"]
    (data / clips[0]["path"] / "audio.wav").unlink()
    (data / clips[1]["path"] / "caption.txt").write_text("")
    lines = []
    cache = build_latent_cache(data, root / "vae.safetensors", tmp_path / "c.safetensors", CacheConfig(frames=17),
                               log=lines.append)
    text = "\n".join(lines)
    assert "missing audio.wav" in text and "empty caption.txt" in text
    assert LatentWindows(cache, 1, 0).n == 6  # the remaining clip still trains
    for c in clips[2:]:
        (data / c["path"] / "video.mp4").unlink()
    with pytest.raises(InputError, match="no usable clips"):
        build_latent_cache(data, root / "vae.safetensors", tmp_path / "d.safetensors", CacheConfig(frames=17),
                           log=lines.append)
