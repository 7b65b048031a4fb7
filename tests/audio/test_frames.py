"""Features -> per-video-frame windows -> latent-frame packing, and per-segment slices."""

import pytest
import torch

from omnihuman_core.audio import (
    audio_tokens_for_segment, frame_features, pack_latent_frames, segment_frame_features,
)
from omnihuman_core.errors import InputError


def ramp(n, dim=2, rate=50.0):
    """Feature i = its own time in seconds (both channels): interpolation is easy to check."""
    return (torch.arange(n, dtype=torch.float32) / rate)[:, None].repeat(1, dim)


def test_linear_interpolation_to_the_frame_rate():
    f = frame_features(ramp(101), 50, 24, 24, window=1)  # 2 s of features, first 24 frames
    assert f.shape == (24, 1, 2)
    assert torch.allclose(f[:, 0, 0], torch.arange(24) / 24, atol=1e-6)


def test_centred_window_with_edge_padding():
    n = 10
    f = frame_features(ramp(101), 50, 25, n, window=5)
    t = torch.arange(n) / 25
    assert f.shape == (n, 5, 2)
    assert torch.allclose(f[5, :, 0], t[3:8], atol=1e-6)  # centred on frame 5
    assert torch.allclose(f[0, :, 0], t[[0, 0, 0, 1, 2]], atol=1e-6)  # edge-padded start
    assert torch.allclose(f[-1, :, 0], t[[7, 8, 9, 9, 9]], atol=1e-6)  # ... and end


def test_even_window_and_frames_past_the_features_clamp():
    f = frame_features(ramp(11), 50, 25, 20, window=4)  # 0.2 s of features, 0.8 s of frames
    assert f.shape == (20, 4, 2)
    assert torch.allclose(f[10:, :, 0], torch.full((10, 4), 0.2), atol=1e-6)


def test_pack_latent_frames_repeats_frame_zero():
    per = torch.arange(9 * 3 * 2, dtype=torch.float32).reshape(9, 3, 2)
    packed = pack_latent_frames(per)
    assert packed.shape == (3, 4, 6)
    assert torch.equal(packed[0], per[0].reshape(1, 6).expand(4, 6))
    assert torch.equal(packed[1], per[1:5].reshape(4, 6))
    assert torch.equal(packed[2], per[5:9].reshape(4, 6))
    assert pack_latent_frames(per[:1]).shape == (1, 4, 6)
    assert pack_latent_frames(per[None].repeat(2, 1, 1, 1)).shape == (2, 3, 4, 6)


def test_pack_latent_frames_rejects_bad_counts():
    with pytest.raises(InputError, match="1 \\+ 4k \\(nearest: 9 or 13\\)"):
        pack_latent_frames(torch.zeros(10, 5, 2))
    with pytest.raises(InputError, match="per-frame features"):
        pack_latent_frames(torch.zeros(9, 10))


def test_segment_matches_the_whole_clip_and_nulls_past_the_end():
    feats = torch.randn(151, 8)  # 3 s at 50 Hz -> 72 frames at 24 fps
    full = frame_features(feats, 50, 24, 72, window=5)
    seg = segment_frame_features(feats, 50, 24, start=20, n_frames=33, window=5)
    assert torch.allclose(seg, full[20:53], atol=1e-6)  # neighbours come from across the boundary
    tail = segment_frame_features(feats, 50, 24, start=60, n_frames=33, window=5)
    assert torch.allclose(tail[:12], full[60:72], atol=1e-6)
    assert torch.count_nonzero(tail[12:]) == 0  # frames 72.. have no audio: null condition


def test_audio_tokens_for_segment():
    feats = torch.randn(151, 8)
    tok = audio_tokens_for_segment(feats, 50, 24, start=28, n_frames=33, window=5)
    assert tok.shape == (9, 4, 40)
    per = segment_frame_features(feats, 50, 24, start=28, n_frames=33, window=5)
    assert torch.equal(tok, pack_latent_frames(per))
    with pytest.raises(InputError, match="nearest: 33 or 37"):
        audio_tokens_for_segment(feats, 50, 24, start=0, n_frames=34)


@pytest.mark.parametrize("kwargs,match", [
    (dict(features=torch.zeros(0, 4)), "N_feat > 0"),
    (dict(features=torch.zeros(10)), "N_feat > 0"),
    (dict(feature_rate=0), "feature_rate"),
    (dict(fps=-1), "fps"),
    (dict(n_frames=0), "n_frames"),
    (dict(window=0), "window"),
])
def test_frame_features_bad_input(kwargs, match):
    args = dict(features=torch.zeros(10, 4), feature_rate=50, fps=24, n_frames=5, window=5) | kwargs
    with pytest.raises(InputError, match=match):
        frame_features(**args)


def test_dtype_and_device_are_kept():
    f = frame_features(torch.randn(50, 4, dtype=torch.bfloat16), 50, 25, 9)
    assert f.dtype == torch.bfloat16 and f.device.type == "cpu"
