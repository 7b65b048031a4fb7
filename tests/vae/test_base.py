"""The VideoVAE interface: geometry checks and their messages."""

import pytest
import torch

from omnihuman_core.errors import InputError
from omnihuman_core.vae import VideoVAE


class _Geometry(VideoVAE):
    """A VideoVAE with only geometry, to test the shared checks apart from any model."""

    latent_channels, temporal_factor, spatial_factor = 16, 4, 8

    def encode(self, video):
        raise NotImplementedError

    def decode(self, latent):
        raise NotImplementedError


def test_interface_is_abstract():
    with pytest.raises(TypeError):
        VideoVAE()


@pytest.mark.parametrize("frames", [1, 5, 9, 121])
def test_check_frames_accepts_1_plus_4k(frames):
    _Geometry().check_frames(frames)


@pytest.mark.parametrize(
    "frames, nearest",
    [(10, "9 or 13"), (120, "117 or 121"), (2, "1 or 5"), (0, "are 1 ")],
)
def test_check_frames_names_nearest_counts(frames, nearest):
    with pytest.raises(InputError, match=f"{frames} frames.*1 \\+ 4k.*{nearest}"):
        _Geometry().check_frames(frames)


def test_check_size_names_nearest_sizes():
    vae = _Geometry()
    vae.check_size(128, 96)
    with pytest.raises(InputError, match=r"130x100 \(HxW\).*multiples of 8.*128x96 or 136x104"):
        vae.check_size(130, 100)
    # Below one cell only the larger size is valid.
    with pytest.raises(InputError, match=r"sizes are 8x16 —"):
        vae.check_size(4, 16)


def test_latent_shape_and_video_frames():
    vae = _Geometry()
    assert vae.latent_shape(121, 480, 832) == (16, 31, 60, 104)
    assert vae.latent_shape(1, 8, 8) == (16, 1, 1, 1)
    assert vae.video_frames(31) == 121
    with pytest.raises(InputError):
        vae.latent_shape(120, 480, 832)


def test_check_video_rejects_wrong_layout():
    with pytest.raises(InputError, match=r"\[B, 3, T, H, W\].*\(1, 9, 3, 16, 16\)"):
        _Geometry().check_video(torch.zeros(1, 9, 3, 16, 16))
