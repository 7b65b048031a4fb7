"""Small stand-ins with the MMDiT forward signature, for testing the sampler's mechanisms."""

from __future__ import annotations

import torch


class RecordingModel(torch.nn.Module):
    """Records every forward's inputs; returns a velocity that depends on x, t, text and audio, so
    every guidance pass gives a different answer."""

    def __init__(self, latent_channels: int = 4, dtype=torch.float32):
        super().__init__()
        self.latent_channels = latent_channels
        self.anchor = torch.nn.Parameter(torch.zeros(1, dtype=dtype))  # gives the model a dtype/device
        self.calls: list[dict] = []

    def forward(self, x, timestep, text, audio, *, frame_positions, text_mask=None):
        self.calls.append(dict(x=x.clone(), timestep=timestep.clone(), text=text.clone(),
                               audio=None if audio is None else audio.clone(),
                               frame_positions=frame_positions.clone(),
                               text_mask=None if text_mask is None else text_mask.clone()))
        B = x.shape[0]
        lat = x[:, : self.latent_channels].float()
        t = timestep.float().view(B, 1, 1, 1, 1)
        text_term = (text.float() * text_mask[..., None]).sum(dim=(1, 2)).view(B, 1, 1, 1, 1) if text_mask is not None \
            else text.float().sum(dim=(1, 2)).view(B, 1, 1, 1, 1)
        audio_term = 0 if audio is None else audio.float().sum(dim=(1, 2, 3)).view(B, 1, 1, 1, 1)
        v = 0.3 * lat + 0.1 * t + 0.01 * text_term + 0.02 * audio_term + 0.05 * torch.sin(lat * 3)
        return v.to(x.dtype)


class FieldModel(torch.nn.Module):
    """A velocity field `fn(latent, t)` with the MMDiT signature (ignores text and audio)."""

    def __init__(self, fn, latent_channels: int = 4):
        super().__init__()
        self.fn, self.latent_channels = fn, latent_channels
        self.calls = 0

    def forward(self, x, timestep, text, audio, *, frame_positions, text_mask=None):
        self.calls += 1
        t = timestep.float().view(-1, 1, 1, 1, 1)
        return self.fn(x[:, : self.latent_channels].float(), t).to(x.dtype)
