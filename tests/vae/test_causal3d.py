"""The causal 3D VAE: shapes, causality of encoder and decoder, chunking, normalisation, dtypes, config."""

import pytest
import torch

from omnihuman_core.errors import InputError
from omnihuman_core.vae import (
    CausalVAEConfig,
    CausalVideoVAE,
    compute_latent_stats,
    gaussian_kl,
    parameter_count,
)

ATOL = 1e-5


@torch.no_grad()
def test_shapes_1_plus_4k_frames(tiny_vae, clip):
    vae = tiny_vae()
    assert (vae.latent_channels, vae.temporal_factor, vae.spatial_factor) == (4, 4, 8)
    for frames, latent_frames in [(1, 1), (5, 2), (9, 3)]:
        z = vae.encode(clip(frames, 16, 24, batch=2))
        assert z.shape == (2, 4, latent_frames, 2, 3) == (2, *vae.latent_shape(frames, 16, 24))
        video = vae.decode(z)
        assert video.shape == (2, 3, frames, 16, 24)
        assert video.min() >= -1 and video.max() <= 1


def test_encode_rejects_bad_geometry_before_work(tiny_vae, clip):
    vae = tiny_vae()
    with pytest.raises(InputError, match="9 or 13"):
        vae.encode(clip(10))
    with pytest.raises(InputError, match="16x16 or 24x24"):
        vae.encode(clip(9, 20, 20))
    with pytest.raises(InputError, match=r"\[B, 4, t, h, w\]"):
        vae.decode(torch.zeros(1, 3, 2, 2, 2))
    with pytest.raises(InputError, match="chunk_latent_frames"):
        vae.encode(clip(9), chunk_latent_frames=0)


@torch.no_grad()
def test_encoder_is_causal(tiny_vae, clip):
    vae = tiny_vae()
    video = clip(13)
    full = vae.encode(video)  # 4 latent frames
    for j in range(4):
        prefix = vae.encode(video[:, :, : 1 + 4 * j])
        torch.testing.assert_close(prefix, full[:, :, : 1 + j], atol=ATOL, rtol=0)
    # ...and not trivially so: changing frame 5 changes latent frame 2 onwards, and only those.
    changed = video.clone()
    changed[:, :, 5] = -changed[:, :, 5]
    diff = (vae.encode(changed) - full).abs().amax(dim=(0, 1, 3, 4))
    assert diff[:2].max() < ATOL and diff[2:].min() > 1e-3


@torch.no_grad()
def test_decoder_is_causal(tiny_vae):
    vae = tiny_vae()
    z = torch.randn(1, 4, 4, 2, 2, generator=torch.Generator().manual_seed(3))
    full = vae.decode_raw(z)
    assert full.shape[2] == 13
    for j in range(4):
        torch.testing.assert_close(vae.decode_raw(z[:, :, : 1 + j]), full[:, :, : 1 + 4 * j], atol=ATOL, rtol=0)
    changed = z.clone()
    changed[:, :, 2] += 1.0
    diff = (vae.decode_raw(changed) - full).abs().amax(dim=(0, 1, 3, 4))
    assert diff[:5].max() < ATOL and diff[5:].min() > 1e-4


@torch.no_grad()
@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_chunked_equals_one_pass(tiny_vae, clip, chunk):
    vae = tiny_vae()
    video = clip(17, batch=2)  # 5 latent frames: chunks that divide it and ones that do not
    z = vae.encode(video)
    torch.testing.assert_close(vae.encode(video, chunk_latent_frames=chunk), z, atol=ATOL, rtol=0)
    torch.testing.assert_close(vae.decode(z, chunk_latent_frames=chunk), vae.decode(z), atol=ATOL, rtol=0)
    # Sampling draws the noise for the whole latent at once, so chunking does not change it either.
    sample = vae.encode(video, sample=True, generator=torch.Generator().manual_seed(1))
    sample_chunked = vae.encode(
        video, sample=True, generator=torch.Generator().manual_seed(1), chunk_latent_frames=chunk
    )
    torch.testing.assert_close(sample_chunked, sample, atol=ATOL, rtol=0)
    assert (sample - z).abs().max() > 1e-3


@torch.no_grad()
def test_normalisation_round_trip_and_state_dict(tiny_vae, clip):
    vae = tiny_vae()
    video = clip(9, batch=2)
    raw, _ = vae.encode_distribution(video)
    mean, std = compute_latent_stats(raw)
    assert mean.shape == std.shape == (4,)
    vae.set_latent_stats(mean, std)
    z = vae.encode(video)
    # Normalised latents are zero-mean, unit-std per channel on the data the stats came from.
    flat = z.transpose(0, 1).reshape(4, -1)
    torch.testing.assert_close(flat.mean(1), torch.zeros(4), atol=1e-4, rtol=0)
    torch.testing.assert_close(flat.std(1, unbiased=False), torch.ones(4), atol=1e-4, rtol=0)
    torch.testing.assert_close(vae.denormalize(vae.normalize(raw)), raw, atol=1e-5, rtol=0)
    torch.testing.assert_close(vae.decode(z), vae.decode_raw(raw).clamp(-1, 1), atol=1e-4, rtol=0)
    # The stats are buffers: they travel with the weights.
    state = vae.state_dict()
    assert {"latent_mean", "latent_std"} <= set(state)
    other = CausalVideoVAE(vae.config)
    other.load_state_dict(state)
    torch.testing.assert_close(other.encode(video), z, atol=ATOL, rtol=0)


def test_set_latent_stats_validates(tiny_vae):
    vae = tiny_vae()
    with pytest.raises(InputError, match="4 values"):
        vae.set_latent_stats([0.0] * 3, [1.0] * 3)
    with pytest.raises(InputError, match="strictly positive"):
        vae.set_latent_stats([0.0] * 4, [1.0, 0.0, 1.0, 1.0])


def test_training_api_gives_gradients(tiny_vae, clip):
    vae = tiny_vae().train()
    video = clip(5)
    mean, logvar = vae.encode_distribution(video)
    recon = vae.decode_raw(mean + torch.randn_like(mean) * (0.5 * logvar).exp())
    loss = (recon - video).abs().mean() + 1e-3 * gaussian_kl(mean, logvar)
    loss.backward()
    missing = [n for n, p in vae.named_parameters() if p.grad is None]
    assert not missing
    assert gaussian_kl(torch.zeros(3), torch.zeros(3)).item() == 0.0


@torch.no_grad()
def test_bf16_runs_on_cpu(tiny_vae, clip):
    vae = tiny_vae(dtype=torch.bfloat16)
    assert vae.dtype == torch.bfloat16
    z = vae.encode(clip(5), sample=True, generator=torch.Generator().manual_seed(0))  # fp32 input is cast
    video = vae.decode(z, chunk_latent_frames=1)
    assert z.dtype == video.dtype == torch.bfloat16
    assert video.shape == (1, 3, 5, 16, 16) and torch.isfinite(video).all()
    # Close to the fp32 model with the same weights.
    ref = tiny_vae()
    torch.testing.assert_close(vae.encode(clip(5)).float(), ref.encode(clip(5)), atol=0.1, rtol=0.05)


def test_config_round_trip_presets_and_errors():
    for name in ("tiny", "demo"):
        cfg = CausalVAEConfig.preset(name)
        assert CausalVAEConfig.from_dict(cfg.to_dict()) == cfg
        assert (cfg.temporal_factor, cfg.spatial_factor) == (4, 8)
    assert CausalVAEConfig.preset("demo").latent_channels == 16
    with pytest.raises(InputError, match=r"\['bogus'\]"):
        CausalVAEConfig.from_dict({**CausalVAEConfig().to_dict(), "bogus": 1})
    with pytest.raises(InputError, match="unknown VAE preset 'huge'"):
        CausalVAEConfig.preset("huge")
    with pytest.raises(InputError, match="temporal_downsample"):
        CausalVAEConfig(channels=(8, 8), temporal_downsample=(True, True))


def test_from_config_and_demo_size():
    vae = CausalVideoVAE.from_config(CausalVAEConfig.preset("tiny").to_dict())
    assert vae.config == CausalVAEConfig.preset("tiny")
    demo = CausalVideoVAE.from_config("demo")
    assert 1e6 < parameter_count(demo) < 5e6
    assert demo.latent_channels == 16 and demo.device.type == "cpu" and demo.dtype == torch.float32


@torch.no_grad()
def test_still_video_gives_still_latent(tiny_vae):
    """The past of frame 0 is frame 0 (replicate padding), so a still clip has identical latent frames."""
    vae = tiny_vae()
    frame = torch.rand(1, 3, 1, 16, 16) * 2 - 1
    z = vae.encode(frame.expand(-1, -1, 9, -1, -1))
    torch.testing.assert_close(z[:, :, 1:], z[:, :, :1].expand_as(z[:, :, 1:]), atol=1e-5, rtol=0)


def test_time_fold_round_trip():
    from omnihuman_core.vae.causal3d import _fold_time, _unfold_time

    x = torch.arange(2 * 3 * 4 * 1 * 1, dtype=torch.float32).reshape(2, 3, 4, 1, 1)
    folded = _fold_time(x)
    assert folded.shape == (2, 6, 2, 1, 1)
    # Channels hold (first frame of the pair, second frame of the pair), each C wide.
    torch.testing.assert_close(folded[:, :3, 1], x[:, :, 2])
    torch.testing.assert_close(folded[:, 3:, 1], x[:, :, 3])
    torch.testing.assert_close(_unfold_time(folded), x)


def test_patch_is_an_exact_space_to_channel_fold():
    from omnihuman_core.vae.causal3d import _to_channels, _to_space

    x = torch.arange(2 * 3 * 2 * 4 * 6, dtype=torch.float32).reshape(2, 3, 2, 4, 6)
    y = _to_channels(x, 2)
    assert y.shape == (2, 12, 2, 2, 3)
    # channel c*4 + 2*dy + dx holds pixel (2i + dy, 2j + dx) of channel c
    assert torch.equal(y[:, 0 * 4 + 2 * 1 + 1], x[:, 0, :, 1::2, 1::2])
    assert torch.equal(y[:, 4 * 2 + 2 * 1 + 0], x[:, 2, :, 1::2, 0::2])
    assert torch.equal(_to_space(y, 2), x)


@torch.no_grad()
def test_patched_vae_shapes_and_causality(tiny_vae, clip):
    # spatial factor 2 * 2^2 = 8, as the unpatched tiny preset's 2^3
    vae = tiny_vae(patch=2, channels=(8, 16, 16), temporal_downsample=(True, True))
    assert vae.spatial_factor == 8
    assert vae.encoder.conv_in.in_channels == 12 and vae.decoder.conv_out.out_channels == 12
    video = clip(9, 16, 24)
    z = vae.encode(video)
    assert z.shape == (1, 4, 3, 2, 3)
    assert vae.decode(z).shape == video.shape
    torch.testing.assert_close(vae.encode(video[:, :, :5]), z[:, :, :2], atol=ATOL, rtol=0)
    with pytest.raises(InputError, match="patch must be an integer >= 1"):
        CausalVAEConfig.preset("tiny", patch=0)
