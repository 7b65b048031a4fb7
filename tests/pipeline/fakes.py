"""Cheap stand-ins for the System 1 components, with the contracted interfaces (docs/CONTRACTS.md)."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from omnihuman_core.errors import InputError

C = 4  # latent channels of the fakes


class FakeVAE(torch.nn.Module):
    """Causal 4x temporal / 8x spatial 'VAE': average pooling in, nearest upsampling out.

    Latent frame 0 = video frame 0, latent frame j = mean of frames 4j-3..4j (the causal layout).
    """

    latent_channels, temporal_factor, spatial_factor = C, 4, 8

    def __init__(self):
        super().__init__()
        self.encoded_frames: list[torch.Tensor] = []

    def check_size(self, height, width):
        if height % 8 or width % 8:
            raise InputError(f"{height}x{width} is not a multiple of 8")

    def encode(self, video):
        assert video.dim() == 5 and (video.shape[2] - 1) % 4 == 0, video.shape
        self.encoded_frames.append(video.clone())
        first, rest = video[:, :, :1], video[:, :, 1:]
        B, _, T, H, W = rest.shape
        if T:
            rest = rest.reshape(B, 3, T // 4, 4, H, W).mean(3)
            frames = torch.cat([first, rest], dim=2)
        else:
            frames = first
        pooled = F.avg_pool3d(frames.float(), (1, 8, 8))
        return torch.cat([pooled, pooled.mean(1, keepdim=True)], dim=1)

    def decode(self, latent):
        rgb = latent[:, :3].float()
        first, rest = rgb[:, :, :1], rgb[:, :, 1:].repeat_interleave(4, dim=2)
        video = torch.cat([first, rest], dim=2)
        return F.interpolate(video, scale_factor=(1, 8, 8), mode="nearest").clamp(-1, 1)


class FakeTextEncoder:
    """Prompt -> features from its hash; the empty prompt is the null text (mask all False)."""

    dim = 8

    def __init__(self):
        self.seen: list[str] = []

    def encode(self, prompts, device=None, dtype=None):
        self.seen.extend(prompts)
        feats, masks = [], []
        for p in prompts:
            seed = int.from_bytes(hashlib.sha256(p.encode()).digest()[:4], "little")
            feats.append(torch.randn(3, self.dim, generator=torch.Generator().manual_seed(seed)))
            masks.append(torch.full((3,), bool(p.strip())))
        f, m = torch.stack(feats), torch.stack(masks)
        return (f * m[..., None]).to(device=device, dtype=dtype or torch.float32), m.to(device)


class FakeAudioEncoder:
    """50 Hz 'features': the waveform's local energy and mean per 320-sample hop."""

    dim, feature_rate = 2, 50.0

    def encode(self, waveform):
        n = 1 + waveform.shape[-1] // 320
        padded = F.pad(waveform.float(), (0, n * 320 - waveform.shape[-1]))
        hops = padded.reshape(n, 320)
        return torch.stack([hops.pow(2).mean(1).sqrt(), hops.mean(1)], dim=1)


class FakeModel(torch.nn.Module):
    """MMDiT forward signature; counts calls and records inputs. The velocity depends on the latent,
    the text and the audio, so prompts and audio change the picture."""

    def __init__(self, audio_dim=FakeAudioEncoder.dim * 5, text_dim=FakeTextEncoder.dim, record=True):
        super().__init__()
        self.config = SimpleNamespace(latent_channels=C, patch_size=(1, 1, 1), text_dim=text_dim, audio_dim=audio_dim)
        self.weight = torch.nn.Parameter(torch.tensor(0.5))
        self.calls = 0
        self.record = record
        self.inputs: list[dict] = []

    def forward(self, x, timestep, text, audio, *, frame_positions, text_mask=None):
        self.calls += 1
        if self.record:
            self.inputs.append(dict(x=x.clone(), audio=None if audio is None else audio.clone(),
                                    frame_positions=frame_positions.clone(), text=text.clone()))
        B = x.shape[0]
        lat = x[:, :C]
        text_term = (text * text_mask[..., None]).mean(dim=(1, 2)).view(B, 1, 1, 1, 1)
        audio_term = 0 if audio is None else audio.mean(dim=(2, 3))[:, None, :, None, None]
        if audio is not None and audio.shape[1] < x.shape[2]:
            audio_term = F.pad(audio_term, (0, 0, 0, 0, 0, x.shape[2] - audio.shape[1]))
        return self.weight * lat + 0.3 * text_term + 0.2 * audio_term + 0.1 * torch.cos(lat + frame_positions.view(1, 1, -1, 1, 1))
