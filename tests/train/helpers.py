"""Tiny models shared by the training tests."""

import math

import torch

from omnihuman_core.model import MMDiT, MMDiTConfig
from omnihuman_core.text.builtin import BuiltinTextConfig, BuiltinTextEncoder


def randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights instead of adaLN-zero's identity init, so the velocity depends on every input."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g)
            p.copy_(r / math.sqrt(p.shape[-1]) if p.dim() >= 2 else (1 + 0.1 * r if "norm" in name else 0.1 * r))
    return model


def tiny_model(seed=0, **overrides):
    return randomized(MMDiT(MMDiTConfig.preset("tiny", **overrides)), seed)


def tiny_text():
    return BuiltinTextEncoder(BuiltinTextConfig.preset("tiny"))
