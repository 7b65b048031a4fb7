"""SR training data and loss: degradation, pre-encoded cache from a 2x synthetic dataset, seeded batches,
the flow-matching loss (same conditioning as sampling) and that it trains."""

import functools

import pytest
import torch

from omnihuman_core.errors import InputError
from omnihuman_core.synth import write_dataset
from omnihuman_core.upscale import Upscaler, bicubic_upscale
from omnihuman_core.upscale.training import (
    SRBatches,
    SRCache,
    build_sr_cache,
    clip_videos,
    downsample_area,
    encode_pair,
    sr_loss,
    sr_trainable_parameters,
)
from omnihuman_core.vae import CausalVideoVAE


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return CausalVideoVAE.from_config("tiny").eval()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("sr_synth")
    # The SR data is the world rendered at 2x: 64 px here stands in for the demo's 256.
    write_dataset(out, 3, seed=1, size=64, fps=12.0, frames=9, speech="babble", test_fraction=0.0,
                  clips_per_identity=2)
    return out


def _cache(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    hr = torch.randn(n, 4, 2, 4, 4, generator=g)
    return SRCache(hr, 0.7 * hr + 0.1 * torch.randn(hr.shape, generator=g), {"note": "test"})


def test_downsample_area_is_the_block_mean():
    x = torch.arange(16.0).reshape(1, 1, 4, 4).expand(3, 2, 4, 4)
    low = downsample_area(x, 2)
    assert low.shape == (3, 2, 2, 2)
    assert torch.equal(low[0, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))
    assert downsample_area(x[None], 2).shape == (1, 3, 2, 2, 2)
    with pytest.raises(InputError, match="multiples of 2"):
        downsample_area(torch.zeros(3, 1, 5, 4), 2)


def test_encode_pair_encodes_what_inference_feeds_the_model(vae):
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 3, 5, 32, 32, generator=g) * 2 - 1
    h, l = encode_pair(vae, hr, 2)
    assert h.shape == l.shape == (2, 4, 2, 4, 4) and h.dtype == torch.float32
    with torch.no_grad():
        assert torch.allclose(h[1:], vae.encode(hr[1:]), atol=1e-5)
        # Low-res path of inference: bicubic 2x of the low-res frames, then the VAE.
        low = downsample_area(hr[1], 2)
        assert torch.allclose(l[1:], vae.encode(bicubic_upscale(low, 2)[None]), atol=1e-5)


def test_clip_videos_reads_the_index_or_scans_folders(dataset, tmp_path):
    videos = clip_videos(dataset)
    assert len(videos) == 3 and all(v.name == "video.mp4" and v.exists() for v in videos)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "video.mp4").write_bytes(b"x")
    assert clip_videos(tmp_path, split=None) == [tmp_path / "a" / "video.mp4"]
    with pytest.raises(InputError, match="split 'val'"):
        clip_videos(dataset, "val")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no clips"):
        clip_videos(tmp_path / "empty")
    with pytest.raises(InputError, match="does not exist"):
        clip_videos(tmp_path / "missing")


def test_cache_from_a_synthetic_dataset_round_trips_and_is_reused(dataset, vae, tmp_path):
    msgs = []
    path = tmp_path / "cache.safetensors"
    kw = dict(samples=6, crop=32, frames=5, crops_per_clip=2, batch=4, seed=3, cache_path=path)
    cache = build_sr_cache(dataset, vae, progress=msgs.append, **kw)
    assert len(cache) == 6 and cache.hr.shape == (6, 4, 2, 4, 4) and cache.lr.shape == cache.hr.shape
    assert torch.isfinite(cache.hr).all() and not torch.allclose(cache.hr, cache.lr)
    assert path.exists() and any("6/6" in m for m in msgs)
    msgs.clear()
    again = build_sr_cache(dataset, vae, progress=msgs.append, **kw)
    assert torch.equal(again.hr, cache.hr) and "from" in msgs[0]
    # Other settings (or other VAE weights) rebuild rather than reuse.
    other_vae = CausalVideoVAE.from_config("tiny").eval()
    msgs.clear()
    rebuilt = build_sr_cache(dataset, other_vae, progress=msgs.append, **kw)
    assert "rebuilding" in msgs[0] and not torch.allclose(rebuilt.hr, cache.hr)
    assert torch.equal(SRCache.load(path).hr, rebuilt.hr)


def test_cache_settings_are_validated(dataset, vae):
    with pytest.raises(InputError, match="crop must be a multiple of 16"):
        build_sr_cache(dataset, vae, samples=2, crop=24, frames=5)
    with pytest.raises(InputError, match="frames must be 1 \\+ 4k"):
        build_sr_cache(dataset, vae, samples=2, crop=32, frames=6)
    with pytest.raises(InputError, match="no clip"):
        build_sr_cache(dataset, vae, samples=2, crop=128, frames=5)
    with pytest.raises(InputError, match="samples"):
        build_sr_cache(dataset, vae, samples=0, crop=32, frames=5)
    with pytest.raises(InputError, match="one shape"):
        SRCache(torch.zeros(2, 4, 2, 4, 4), torch.zeros(2, 4, 2, 4, 2))


def test_batches_are_seeded_epoch_permutations_and_resumable():
    cache = _cache(n=5)
    batches = SRBatches(cache, batch_size=2, seed=7)
    it = iter(batches)
    first = [next(it) for _ in range(6)]
    assert all(b["hr"].shape == (2, 4, 2, 4, 4) for b in first)
    # Two batches per epoch (the 5th sample is dropped), each epoch without repeats.
    epoch = torch.cat([first[0]["hr"], first[1]["hr"]])
    assert len({tuple(x.flatten().tolist()) for x in epoch}) == 4
    resumed = batches.iterate(start=3)
    for b in first[3:]:
        assert torch.equal(next(resumed)["lr"], b["lr"])
    assert not all(torch.equal(a["hr"], b["hr"]) for a, b in zip(first, SRBatches(cache, 2, seed=8).iterate()))
    with pytest.raises(InputError, match="batch_size"):
        SRBatches(cache, batch_size=6)


def test_sr_loss_is_reproducible_and_uses_the_sampling_conditioning():
    torch.manual_seed(0)
    up = Upscaler.from_config("sr-tiny")
    batch = {"hr": _cache().hr[:2], "lr": _cache().lr[:2]}
    a, stats = sr_loss(up, batch, torch.Generator().manual_seed(1))
    b, _ = sr_loss(up, batch, torch.Generator().manual_seed(1))
    assert a.dim() == 0 and torch.equal(a, b) and set(stats) == {"loss", "t_mean"}
    # The same draws by hand through Upscaler.velocity give the same loss.
    g = torch.Generator().manual_seed(1)
    t = torch.sigmoid(torch.randn(2, generator=g))
    noise = torch.randn(batch["hr"].shape, generator=g)
    x_t = (1 - t.view(2, 1, 1, 1, 1)) * batch["hr"] + t.view(2, 1, 1, 1, 1) * noise
    by_hand = ((up.velocity(x_t, t, batch["lr"]) - (noise - batch["hr"])) ** 2).mean()
    assert torch.allclose(a, by_hand)
    with pytest.raises(InputError, match="one shape"):
        sr_loss(up, {"hr": batch["hr"], "lr": batch["lr"][:, :, :1]})


def test_sr_loss_decreases_when_overfitting_a_tiny_batch():
    torch.manual_seed(0)
    up = Upscaler.from_config("sr-tiny").train()
    batches = SRBatches(_cache(n=2), batch_size=2, seed=0).iterate()
    loss_fn = functools.partial(sr_loss, up)  # the trainer's loss_fn(batch, generator)
    opt = torch.optim.AdamW(sr_trainable_parameters(up), lr=3e-3)
    gen = torch.Generator().manual_seed(0)

    def eval_loss():
        # Fixed draws, so the comparison is not noise.
        with torch.no_grad():
            return sum(loss_fn(next(batches), torch.Generator().manual_seed(s))[1]["loss"] for s in range(4)) / 4

    before = eval_loss()
    for _ in range(40):
        loss, _ = loss_fn(next(batches), gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = eval_loss()
    assert after < 0.5 * before


def test_sr_validation_reports_the_input_baseline_and_each_strength():
    from omnihuman_core.upscale import UpscalerConfig
    from omnihuman_core.upscale.training import sr_validation

    class ToInput(Upscaler):  # lands exactly on the low-res latent
        def velocity(self, x_t, t, lr):
            return (x_t - lr) / torch.as_tensor(t).reshape(-1, 1, 1, 1, 1)

    cache = _cache(n=3)
    result = sr_validation(ToInput(UpscalerConfig.preset("sr-tiny")), cache, strengths=(0.5, 1.0), steps=3)
    assert set(result) == {"input", "strength=0.5", "strength=1"}
    baseline = float(((cache.lr - cache.hr) ** 2).mean())
    assert result["input"] == pytest.approx(baseline)
    assert result["strength=0.5"] == pytest.approx(baseline, rel=1e-4) == result["strength=1"]


def test_trainable_parameters_are_exactly_those_the_loss_reaches():
    up = Upscaler.from_config("sr-tiny")
    params = sr_trainable_parameters(up)
    names = {n for n, p in up.named_parameters() if p.requires_grad}
    assert names == {n for n, p in up.named_parameters() if any(p is q for q in params)}
    assert all(n.startswith(("mmdit.patch_embed", "mmdit.final", "mmdit.time_embed")) or ".video." in n for n in names)
    loss, _ = sr_loss(up, {"hr": _cache().hr[:2], "lr": _cache().lr[:2]}, torch.Generator().manual_seed(0))
    loss.backward()
    # Every trained parameter is reached by the loss (DDP requires it); frozen ones get no gradient.
    assert all(p.grad is not None for p in params)
    assert all(p.grad is None for p in up.parameters() if not p.requires_grad)
    assert sum(p.numel() for p in params) < sum(p.numel() for p in up.parameters())
