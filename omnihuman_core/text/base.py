"""The text encoder interface: prompts in, per-token features and a padding mask out.

Null text: an empty or whitespace-only prompt encodes to an all-False mask with zero features. That
is exactly the MMDiT's "no text" condition (text CFG, conditioning dropout), so every encoder agrees
on it instead of each encoding "" its own way.
"""

from __future__ import annotations

import abc
from typing import Sequence

import torch

from ..errors import InputError


def is_null_prompt(prompt: str) -> bool:
    """True for the null text: empty or whitespace only."""
    return not prompt.strip()


def check_prompts(prompts: Sequence[str]) -> list[str]:
    """Validate a batch of prompts; a bare string is refused because iterating it would give characters."""
    if isinstance(prompts, str):
        raise InputError("text encoders take a list of prompts; wrap a single prompt as [prompt]")
    prompts = list(prompts)
    if not prompts:
        raise InputError("text encoders need at least one prompt (use '' for the null text)")
    bad = [i for i, p in enumerate(prompts) if not isinstance(p, str)]
    if bad:
        raise InputError(f"prompts must be strings; entries {bad} are {[type(prompts[i]).__name__ for i in bad]}")
    return prompts


class TextEncoder(torch.nn.Module, abc.ABC):
    """Abstract text encoder with feature size `dim`."""

    dim: int

    @abc.abstractmethod
    def encode(
        self, prompts: list[str], device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`prompts` -> (features `[B, L, dim]`, mask `[B, L]` bool, True = real token).

        Runs on the encoder's own device; `device` / `dtype` say where and in what dtype the result
        goes (default: the encoder's). Padded and null-text positions have zero features.
        """

    @staticmethod
    def _finish(
        features: torch.Tensor,
        mask: torch.Tensor,
        device: torch.device | str | None,
        dtype: torch.dtype | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero the masked-out positions (so padding can never leak) and move to the requested place."""
        features = features * mask.unsqueeze(-1).to(features.dtype)
        features = features.to(device=device or features.device, dtype=dtype or features.dtype)
        return features, mask.to(device=device or mask.device, dtype=torch.bool)
