"""scripts/mouth_in_latents.py: how much of the ground-truth mouth a latent cache's mouth cells carry."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from omnihuman_core.errors import InputError

FRAMES, T, C, H = 9, 3, 4, 8  # 9 video frames -> 3 causal latent frames (1 + 4 + 4)


def _cache(root, windows, latent_fn, seed=0):
    """A cache folder in the layout `train mmdit` writes, and the labels.npz its windows point at."""
    rng = np.random.default_rng(seed)
    data, cache = root / "data", root / "cache"
    cache.mkdir(parents=True)
    face = torch.zeros(windows, T, H, H)
    face[:, :, 2:7, 2:6] = 1  # a face box; objective.mouth_cells takes its lower middle
    lats, listing = [], []
    for i in range(windows):
        clip = f"clip_{i:03d}"
        mouth = rng.uniform(0, 1, 20).astype(np.float32)
        (data / "train" / clip).mkdir(parents=True)
        np.savez(data / "train" / clip / "labels.npz", mouth=mouth, speaking=np.ones(20, np.float32))
        lats.append(latent_fn(mouth[2:2 + FRAMES], rng))
        listing.append({"clip_id": clip, "start": 2})
    save_file({"latents": torch.stack(lats), "face": face}, str(cache / "shard_00000.safetensors"))
    (cache / "manifest.json").write_text(json.dumps({"settings": {"frames": FRAMES, "split": "train"}, "vae": "test",
                                                    "shards": [{"file": "shard_00000.safetensors",
                                                                "windows": listing}]}))
    return data, cache


def _per_latent_frame(mouth):
    return np.array([mouth[0], mouth[1:5].mean(), mouth[5:9].mean()])


def _mouth_in_channel_0(mouth, rng):
    lat = torch.tensor(rng.normal(0, 0.1, (C, T, H, H)), dtype=torch.float32)
    lat[0, :, 4:7, 3:5] += torch.tensor(_per_latent_frame(mouth), dtype=torch.float32)[:, None, None] * 3
    return lat


def _noise(mouth, rng):
    return torch.tensor(rng.normal(0, 1, (C, T, H, H)), dtype=torch.float32)


def test_a_cache_whose_mouth_cells_hold_the_opening_reads_it_and_noise_does_not(tmp_path, script):
    module = script("mouth_in_latents")
    data, cache = _cache(tmp_path / "a", 40, _mouth_in_channel_0)
    carried = module.measure(cache, data, 100)
    assert carried["windows"] == 40 and carried["mouth_r2"] > 0.9
    assert carried["mouth_share"] > 1.0  # the mouth cells move more than the frame on average
    data, cache = _cache(tmp_path / "b", 40, _noise)
    lost = module.measure(cache, data, 100)
    assert lost["mouth_r2"] < 0.2 and abs(lost["mouth_share"] - 1.0) < 0.1


def test_silent_windows_are_left_out_and_too_few_are_refused(tmp_path, script):
    module = script("mouth_in_latents")
    data, cache = _cache(tmp_path, 10, _mouth_in_channel_0)
    for clip in list((data / "train").iterdir())[:5]:
        np.savez(clip / "labels.npz", mouth=np.zeros(20, np.float32), speaking=np.zeros(20, np.float32))
    with pytest.raises(InputError, match="only 5 windows with speech"):
        module.measure(cache, data, 100)
    assert module.main(["--data", str(data), str(tmp_path / "nowhere")]) == 2
