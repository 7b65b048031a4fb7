"""Tiled video upscaling: tile layout and blend weights, tiled == untiled for local models, padding and
cropping, seeding, locality, progress / cancel, input validation."""

import pytest
import torch

from omnihuman_core.errors import Cancelled, InputError
from omnihuman_core.upscale import (
    Upscaler,
    UpscalerConfig,
    axis_tiles,
    bicubic_upscale,
    plan_tiles,
    spatial_multiple,
    upscale_video,
)
from omnihuman_core.vae import CausalVideoVAE, VideoVAE


class LocalVAE(VideoVAE):
    """A 4x8x8 "VAE" whose every latent cell depends on one 8x8 block of one frame (frame 4j), and back."""

    latent_channels, temporal_factor, spatial_factor = 4, 4, 8

    def encode(self, video):
        self.check_video(video)
        frames = video[:, :, ::4]  # latent frame j <- video frame 4j (the last frame it covers)
        b, c, t, h, w = frames.shape
        pooled = frames.reshape(b, c, t, h // 8, 8, w // 8, 8).mean(dim=(4, 6))
        return torch.cat([pooled, pooled[:, :1] ** 2], dim=1)

    def decode(self, latent):
        video = latent[:, :3].repeat_interleave(4, dim=2)[:, :, 3:]  # latent j -> frames 4j-3 .. 4j
        return video.repeat_interleave(8, dim=3).repeat_interleave(8, dim=4).clamp(-1, 1)


class LocalUpscaler(Upscaler):
    """Velocity that depends on each latent cell alone, so any tiling must reproduce the untiled result."""

    def velocity(self, x_t, t, lr):
        t = torch.as_tensor(t, dtype=torch.float32).reshape(-1, 1, 1, 1, 1)
        return x_t - lr + 0.3 * torch.tanh(lr) * (1 - t)


def _video(T, H, W, seed=0):
    g = torch.Generator().manual_seed(seed)
    # Smooth content plus detail, in -1..1.
    base = torch.rand(3, T, max(1, H // 4), max(1, W // 4), generator=g) * 2 - 1
    smooth = torch.nn.functional.interpolate(base, size=(H, W), mode="bilinear", align_corners=False)
    return (0.8 * smooth + 0.2 * (torch.rand(3, T, H, W, generator=g) * 2 - 1)).clamp(-1, 1)


@pytest.fixture(scope="module")
def real():
    torch.manual_seed(0)
    return Upscaler.from_config("sr-tiny").eval(), CausalVideoVAE.from_config("tiny").eval()


# ---- layout -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("length, tile, step, scale", [
    (13, 9, 4, 1), (33, 33, 24, 1), (121, 33, 24, 1), (45, 9, 8, 1), (24, 16, 8, 2), (40, 16, 8, 2),
    (72, 32, 8, 3), (8, 0, 0, 2), (5, 16, 8, 2),
])
def test_blend_weights_partition_unity_and_tiles_cover_exactly(length, tile, step, scale):
    axis = axis_tiles(length, tile, step, scale)
    total = torch.zeros(scale * length)
    for (a, b), w in zip(axis.spans, axis.weights):
        assert 0 <= a < b <= length and w.shape == (scale * (b - a),)
        assert bool((w > 0).all()) and bool((w <= 1 + 1e-6).all())
        total[scale * a : scale * b] += w
    assert torch.allclose(total, torch.ones_like(total), atol=1e-6)
    assert axis.spans[0][0] == 0 and axis.spans[-1][1] == length
    if 0 < tile < length:
        assert all(b - a == tile for a, b in axis.spans)


def test_blend_windows_are_smooth_raised_cosines():
    axis = axis_tiles(24, 16, 8)  # two tiles overlapping by 8
    w0, w1 = axis.weights
    assert torch.equal(w0[:8], torch.ones(8)) and torch.equal(w1[-8:], torch.ones(8))
    ramp = w1[:8]
    assert bool((ramp[1:] > ramp[:-1]).all()) and ramp[0] < 0.05 and ramp[-1] > 0.95
    assert torch.allclose(ramp, w0[8:].flip(0), atol=1e-6)


def test_plan_aligns_tiles_to_the_vae_and_patch_grid(real):
    up, vae = real
    assert spatial_multiple(up, vae) == 8  # 8x VAE, 2x2 patches, 2x upscale
    plan = plan_tiles(up, vae, 121, 100, 130, tile_frames=33, tile_overlap_frames=8, tile_size=64, tile_overlap=16)
    assert plan.padded == (121, 104, 136)
    assert plan.time.spans == ((0, 33), (24, 57), (48, 81), (72, 105), (88, 121))
    assert all(a % 4 == 0 for a, _ in plan.time.spans)
    assert all(a % 8 == 0 for a, _ in plan.y.spans + plan.x.spans)
    assert plan.y.spans == ((0, 64), (40, 104)) and plan.y.scale == 2
    whole = plan_tiles(up, vae, 6, 5, 7, tile_frames=0, tile_size=0)
    assert whole.padded == (9, 8, 8) and whole.n_tiles == 1
    # Overlaps round down to the grid.
    assert plan_tiles(up, vae, 41, 8, 8, tile_frames=17, tile_overlap_frames=7).time.spans[1][0] == 12


@pytest.mark.parametrize("kw, message", [
    (dict(tile_frames=32), "33"),
    (dict(tile_frames=1), "tile_frames"),
    (dict(tile_frames=9, tile_overlap_frames=8), "tile_overlap_frames"),
    (dict(tile_size=100), "96 or 104"),
    (dict(tile_size=16, tile_overlap=16), "tile_overlap"),
    (dict(tile_size=-8), "tile_size"),
    (dict(tile_overlap=1.5), "tile_overlap"),
])
def test_bad_tile_settings_say_what_to_use(real, kw, message):
    up, vae = real
    with pytest.raises(InputError, match=message):
        plan_tiles(up, vae, 33, 64, 64, **kw)


def test_bicubic_crop_with_context_equals_the_whole_frame():
    video = _video(2, 20, 28)
    whole = bicubic_upscale(video, 2)
    assert whole.shape == (3, 2, 40, 56) and whole.abs().max() <= 1
    for box in ((0, 8, 0, 8), (8, 16, 8, 24), (12, 20, 20, 28)):
        y0, y1, x0, x1 = box
        assert torch.allclose(bicubic_upscale(video, 2, box), whole[:, :, 2 * y0 : 2 * y1, 2 * x0 : 2 * x1], atol=1e-6)


# ---- results ------------------------------------------------------------------------------------------
def test_tiled_equals_untiled_for_a_local_model():
    up, vae = LocalUpscaler(UpscalerConfig.preset("sr-tiny")), LocalVAE()
    video = _video(23, 37, 45)  # 23 frames (not 1 + 4k), odd sizes: padded, then cropped back
    untiled = upscale_video(up, vae, video, steps=3, seed=5, tile_frames=0, tile_size=0)
    tiled = upscale_video(up, vae, video, steps=3, seed=5, tile_frames=9, tile_overlap_frames=4, tile_size=16,
                          tile_overlap=8)
    assert untiled.shape == tiled.shape == (3, 23, 74, 90)
    assert torch.allclose(tiled, untiled, atol=1e-5)
    # The blend is not a no-op: the seeds, hence the tiles' content, matter.
    other = upscale_video(up, vae, video, steps=3, seed=6, tile_frames=9, tile_overlap_frames=4, tile_size=16,
                          tile_overlap=8)
    assert not torch.allclose(tiled, other, atol=1e-3)


@pytest.mark.parametrize("T, H, W", [(1, 8, 8), (6, 13, 21), (9, 16, 24)])
def test_output_size_is_exact_for_any_frame_count_and_size(real, T, H, W):
    up, vae = real
    out = upscale_video(up, vae, _video(T, H, W), steps=1, tile_size=16, tile_overlap=8, tile_frames=5,
                        tile_overlap_frames=0)
    assert out.shape == (3, T, 2 * H, 2 * W) and out.dtype == torch.float32
    assert torch.isfinite(out).all() and out.abs().max() <= 1


def test_deterministic_by_seed(real):
    up, vae = real
    video = _video(5, 16, 24)
    kw = dict(steps=2, tile_size=16, tile_overlap=8)
    a = upscale_video(up, vae, video, seed=1, **kw)
    assert torch.equal(a, upscale_video(up, vae, video, seed=1, **kw))
    assert not torch.allclose(a, upscale_video(up, vae, video, seed=2, **kw), atol=1e-4)
    assert not torch.allclose(a, upscale_video(up, vae, video, seed=1, strength=1.0, **kw), atol=1e-4)


def test_a_tile_does_not_depend_on_the_other_tiles(real):
    """Noise comes from one seeded tensor for the whole video: what a tile makes depends on its own input
    only, so the order (or existence) of the other tiles cannot matter."""
    up, vae = real
    kw = dict(steps=2, seed=3, tile_frames=9, tile_overlap_frames=4, tile_size=16, tile_overlap=8)
    video = _video(13, 32, 32)
    changed = video.clone()
    changed[:, 9:] = -changed[:, 9:]  # frames only the second time tile reads
    changed[:, :, :, 19:] = 0.5  # columns beyond the first x tile and its bicubic context (16 + 2)
    a, b = upscale_video(up, vae, video, **kw), upscale_video(up, vae, changed, **kw)
    # Frames 0..3 and high-res columns 0..15 are covered by the first tile alone.
    assert torch.equal(a[:, :4, :, :16], b[:, :4, :, :16])
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_progress_counts_every_unit_and_cancel_stops(real):
    up, vae = real
    video = _video(9, 16, 24)
    calls = []
    kw = dict(steps=2, tile_frames=5, tile_overlap_frames=0, tile_size=16, tile_overlap=8)
    upscale_video(up, vae, video, progress=lambda d, n: calls.append((d, n)), **kw)
    n_tiles = 2 * 1 * 2
    total = n_tiles * (2 + 2)
    assert calls == [(i, total) for i in range(1, total + 1)]
    polls = []

    def cancel():
        polls.append(1)
        return len(polls) > 3

    with pytest.raises(Cancelled):
        upscale_video(up, vae, video, cancel=cancel, **kw)


@pytest.mark.parametrize("video, message", [
    (torch.zeros(3, 0, 8, 8), "no frames"),
    (torch.zeros(4, 5, 8, 8), r"\[3, T, H, W\]"),
    (torch.zeros(5, 8, 8, 3), r"\[3, T, H, W\]"),
    (torch.zeros(1, 3, 5, 8, 8), r"\[3, T, H, W\]"),
    (torch.zeros(3, 5, 8, 8, dtype=torch.uint8), "float"),
    (torch.full((3, 5, 8, 8), float("nan")), "NaN"),
    ([[0.0]], "tensor"),
])
def test_bad_videos_are_rejected_before_any_work(real, video, message):
    up, vae = real
    with pytest.raises(InputError, match=message):
        upscale_video(up, vae, video)


def test_bad_models_and_settings_are_rejected(real):
    up, vae = real
    video = _video(5, 8, 8)
    with pytest.raises(InputError, match="latent"):
        upscale_video(up, _WideVAE(), video)
    with pytest.raises(InputError, match="Upscaler"):
        upscale_video(torch.nn.Linear(2, 2), vae, video)
    with pytest.raises(InputError, match="VideoVAE"):
        upscale_video(up, object(), video)
    with pytest.raises(InputError, match="steps"):
        upscale_video(up, vae, video, steps=0)
    with pytest.raises(InputError, match="strength"):
        upscale_video(up, vae, video, strength=2.0)
    with pytest.raises(InputError, match="seed"):
        upscale_video(up, vae, video, seed=1.5)


class _WideVAE(LocalVAE):
    latent_channels = 16


def test_half_precision_models_run(real):
    up = Upscaler.from_config("sr-tiny", dtype=torch.bfloat16)
    vae = CausalVideoVAE.from_config("tiny", dtype=torch.bfloat16)
    out = upscale_video(up, vae, _video(5, 8, 8), steps=1)
    assert out.dtype == torch.float32 and out.shape == (3, 5, 16, 16) and torch.isfinite(out).all()
