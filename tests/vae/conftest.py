"""Shared helpers for the VAE tests: tiny VAEs with every path live, and random clips."""

import math

import pytest
import torch

from omnihuman_core.vae import CausalVAEConfig, CausalVideoVAE


def randomize(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights everywhere (the zero-initialised attention output and the identity-like time
    folds included), scaled so activations stay O(1): every temporal path then really mixes frames."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            r = torch.randn(p.shape, generator=g)
            if p.dim() >= 2:
                p.copy_(r / math.sqrt(p[0].numel()))
            elif "norm" in name:
                p.copy_(1.0 + 0.1 * r)  # RMS-norm gains stay near 1
            else:
                p.copy_(0.1 * r)
    return module


@pytest.fixture
def tiny_vae():
    """`tiny_vae(seed=0, **config_overrides)` -> a tiny CausalVideoVAE with random weights, eval mode."""

    def make(seed=0, dtype=None, **overrides):
        vae = CausalVideoVAE(CausalVAEConfig.preset("tiny", **overrides), dtype=dtype)
        return randomize(vae, seed).eval()

    return make


@pytest.fixture
def clip():
    """`clip(frames, h=16, w=16, batch=1, seed=0)` -> a random video in -1..1."""

    def make(frames, h=16, w=16, batch=1, seed=0):
        g = torch.Generator().manual_seed(seed)
        return torch.rand(batch, 3, frames, h, w, generator=g) * 2 - 1

    return make
