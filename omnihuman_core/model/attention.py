"""The one attention function every MMDiT layer calls, replaceable by a host (ComfyUI, xformers, sage...).

Layout everywhere: q, k, v are `[B, heads, N, head_dim]`; `mask` is None or a bool tensor broadcastable
to `[B, heads, Nq, Nk]` with True = may attend. Returns `[B, heads, Nq, head_dim]`.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterator, Optional

import torch
import torch.nn.functional as F

AttentionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Optional[torch.Tensor]], torch.Tensor]


def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """torch's fused scaled_dot_product_attention (flash / memory-efficient kernels where available)."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def math_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Plain matmul-softmax-matmul reference; slow, but every op is visible to FLOP counters and debuggers."""
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores.float(), dim=-1).to(v.dtype) @ v


_attention_fn: AttentionFn = sdpa_attention


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Attention through the currently installed function (default: `sdpa_attention`)."""
    return _attention_fn(q, k, v, mask)


def get_attention_function() -> AttentionFn:
    """The function `attention` currently calls."""
    return _attention_fn


def set_attention_function(fn: AttentionFn | None) -> AttentionFn:
    """Install `fn(q, k, v, mask)` for every MMDiT attention (None restores SDPA); returns the previous one."""
    global _attention_fn
    previous = _attention_fn
    _attention_fn = sdpa_attention if fn is None else fn
    return previous


@contextlib.contextmanager
def attention_function(fn: AttentionFn | None) -> Iterator[AttentionFn]:
    """Use `fn` inside the `with` block and restore the previous function afterwards, even on error."""
    previous = set_attention_function(fn)
    try:
        yield get_attention_function()
    finally:
        set_attention_function(previous)
