"""Shared helpers for the MMDiT tests: small random models and inputs."""

import math

import pytest
import torch

from omnihuman_core.model import MMDiT, MMDiTConfig


def _randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Replace the identity-at-init weights by random ones, so every path (gates, outputs) is live."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g)
            if p.dim() >= 2:
                p.copy_(r / math.sqrt(p.shape[-1]))
            elif name.endswith("norm.weight") or "norm" in name.rsplit(".", 2)[-2]:
                p.copy_(1 + 0.1 * r)
            else:
                p.copy_(0.1 * r)
    return model


def _inputs(cfg: MMDiTConfig, batch=2, frames=3, h=4, w=6, text_len=5, audio_frames=None, per_frame=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    audio_frames = frames if audio_frames is None else audio_frames
    return dict(
        x=torch.randn(batch, cfg.in_channels, frames, h, w, generator=g),
        timestep=torch.rand(batch, generator=g),
        text=torch.randn(batch, text_len, cfg.text_dim, generator=g),
        audio=torch.randn(batch, audio_frames, per_frame, cfg.audio_dim, generator=g),
        frame_positions=torch.arange(frames, dtype=torch.float32),
    )


@pytest.fixture
def tiny_cfg():
    return MMDiTConfig.preset("tiny")


@pytest.fixture
def random_model():
    """`random_model(cfg=None, **overrides)` -> a tiny MMDiT with random weights, in eval mode."""

    def make(cfg=None, seed=0, **overrides):
        cfg = cfg or MMDiTConfig.preset("tiny", **overrides)
        return _randomize(MMDiT(cfg), seed).eval()

    return make


@pytest.fixture
def make_inputs():
    """`make_inputs(cfg, **geometry)` -> dict of forward arguments (x, timestep, text, audio, frame_positions)."""
    return _inputs


def run(model, inputs, **changes):
    """Forward with `inputs` updated by `changes` (keyword names of MMDiT.forward)."""
    args = {**inputs, **changes}
    x, t, text, audio = args.pop("x"), args.pop("timestep"), args.pop("text"), args.pop("audio")
    with torch.no_grad():
        return model(x, t, text, audio, **args)


@pytest.fixture
def forward():
    return run
