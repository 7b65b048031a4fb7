"""The video VAE interface every System 1 component talks to.

Video in: `[B, 3, T, H, W]` in -1..1. Latents out: `[B, C, t, h, w]`, per-channel normalised by the
VAE itself, with causal temporal compression: `T = 1 + temporal_factor * k` frames become `1 + k`
latent frames (the first latent frame holds the first video frame alone).
"""

from __future__ import annotations

import abc

import torch

from ..errors import InputError


def _nearest_multiples(value: int, factor: int) -> list[int]:
    """The valid multiples of `factor` closest to `value` below and above (no zero; itself if valid)."""
    if value >= factor and value % factor == 0:
        return [value]
    lower = (value // factor) * factor
    return [v for v in (lower, lower + factor) if v >= factor]


class VideoVAE(torch.nn.Module, abc.ABC):
    """Abstract causal video VAE: geometry checks shared by all implementations, encode/decode per model."""

    latent_channels: int
    temporal_factor: int
    spatial_factor: int

    # ---- geometry -------------------------------------------------------------------------------
    def check_frames(self, frames: int) -> None:
        """Raise InputError unless `frames` is `1 + temporal_factor * k`; names the nearest valid counts."""
        tf = self.temporal_factor
        if frames >= 1 and (frames - 1) % tf == 0:
            return
        if frames < 1:
            nearest = [1]
        else:
            lower = 1 + ((frames - 1) // tf) * tf
            nearest = [lower, lower + tf]
        raise InputError(
            f"the video has {frames} frames, but this VAE needs 1 + {tf}k frames "
            f"(1, {1 + tf}, {1 + 2 * tf}, ...); the nearest valid counts are "
            f"{' or '.join(map(str, nearest))} — trim or pad the clip"
        )

    def check_size(self, height: int, width: int) -> None:
        """Raise InputError unless height and width are multiples of `spatial_factor`; names the nearest valid sizes."""
        sf = self.spatial_factor
        if height >= sf and width >= sf and height % sf == 0 and width % sf == 0:
            return
        hs, ws = _nearest_multiples(height, sf), _nearest_multiples(width, sf)
        # Pair smaller with smaller and larger with larger: the two natural "crop" and "pad" choices.
        options = sorted({(hs[0], ws[0]), (hs[-1], ws[-1])})
        raise InputError(
            f"the video is {height}x{width} (HxW), but this VAE needs both sides to be multiples of {sf}; "
            f"the nearest valid sizes are {' or '.join(f'{h}x{w}' for h, w in options)} — resize or crop"
        )

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """`(C, t, h, w)` of the latent of a `frames x height x width` video (checks the geometry first)."""
        self.check_frames(frames)
        self.check_size(height, width)
        return (
            self.latent_channels,
            1 + (frames - 1) // self.temporal_factor,
            height // self.spatial_factor,
            width // self.spatial_factor,
        )

    def video_frames(self, latent_frames: int) -> int:
        """Number of video frames decoded from `latent_frames` latent frames."""
        if latent_frames < 1:
            raise InputError(f"a latent needs at least 1 frame, got {latent_frames}")
        return 1 + self.temporal_factor * (latent_frames - 1)

    def check_video(self, video: torch.Tensor) -> None:
        """Raise InputError unless `video` is `[B, 3, T, H, W]` with a valid frame count and size."""
        if video.dim() != 5 or video.shape[1] != 3:
            raise InputError(
                f"expected a video tensor [B, 3, T, H, W] in -1..1, got shape {tuple(video.shape)}"
            )
        self.check_frames(video.shape[2])
        self.check_size(video.shape[3], video.shape[4])

    def check_latent(self, latent: torch.Tensor) -> None:
        """Raise InputError unless `latent` is `[B, latent_channels, t, h, w]`."""
        if latent.dim() != 5 or latent.shape[1] != self.latent_channels or min(latent.shape[2:]) < 1:
            raise InputError(
                f"expected a latent [B, {self.latent_channels}, t, h, w], got shape {tuple(latent.shape)}"
            )

    # ---- the model --------------------------------------------------------------------------------
    @abc.abstractmethod
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """`[B, 3, T, H, W]` in -1..1 -> normalised latent `[B, C, t, h, w]`."""

    @abc.abstractmethod
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Normalised latent `[B, C, t, h, w]` -> video `[B, 3, T, H, W]` in -1..1."""
