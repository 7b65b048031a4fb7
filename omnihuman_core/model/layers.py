"""Small building blocks of the MMDiT: norms, MLPs, embedders.

Every Linear / LayerNorm is built through `operations` (default `torch.nn`) so a host can pass a namespace
such as ComfyUI's `comfy.ops.manual_cast` (weights cast on the fly, no init cost).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


# torch has no public in-place GELU; the aten op is stable, and we fall back if it ever disappears.
_gelu_ = getattr(torch._C._nn, "gelu_", None)


class RMSNorm(nn.Module):
    """RMS norm over the last dim, computed in fp32; used when `operations` has no RMSNorm."""

    def __init__(self, dim: int, eps: float = 1e-6, elementwise_affine: bool = True, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, device=device, dtype=dtype)) if elementwise_affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps).to(x.dtype)


def make_rms_norm(dim: int, eps: float, operations, device=None, dtype=None) -> nn.Module:
    """`operations.RMSNorm` if the namespace has one, else our own `RMSNorm`."""
    cls = getattr(operations, "RMSNorm", None) or RMSNorm
    return cls(dim, eps=eps, elementwise_affine=True, device=device, dtype=dtype)


def norm_weight(norm: nn.Module, like: torch.Tensor) -> torch.Tensor | None:
    """The norm's weight on `like`'s device in fp32 (hosts may store it elsewhere or in fp8 / fp16)."""
    w = getattr(norm, "weight", None)
    return None if w is None else w.to(device=like.device, dtype=torch.float32)


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    """fp32 RMS norm over the last dim; returns fp32 (callers cast once, after RoPE)."""
    x = x.float()
    # vector_norm reads x once without materialising x**2; mean(x**2) = norm**2 / dim.
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    out = x * torch.rsqrt(norm.square() * (1.0 / x.shape[-1]) + eps)
    return out if weight is None else out * weight.to(device=x.device, dtype=torch.float32)


def vector_linear(linear: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`linear(x)` for a handful of vectors `x` `[B, in]` (adaLN modulation: the weight is read for B rows only).

    On CPU, `W @ x^T` with at least two columns streams the weight ~1.7-2.5x faster than `x @ W^T`
    (MKL's small-N GEMM beats its GEMV path), so one vector is computed as two. This is ~3 % of a demo
    forward: the adaLN Linears are a third of all weights and are read for just B rows. Host op classes
    (ComfyUI casts / patches weights in their forward) always get a plain call.
    """
    B = x.shape[0] if x.dim() == 2 else 0
    if type(linear) is nn.Linear and 1 <= B <= 16 and x.device.type == "cpu":
        w, b = linear.weight, linear.bias
        cols = torch.cat((x, x)).t() if B == 1 else x.t()
        out = torch.mm(w, cols) if b is None else torch.addmm(b[:, None], w, cols)
        return out[:, :B].t().contiguous()  # contiguous so the chunks broadcast with unit stride
    return linear(x)


def modulated_norm(norm: nn.Module, x: torch.Tensor, shift: torch.Tensor, scale1: torch.Tensor) -> torch.Tensor:
    """`norm(x) * scale1 + shift` with per-sample `[B, 1, dim]` shift / scale1 (adaLN)."""
    if x.shape[0] == 1 and type(norm) is nn.LayerNorm and norm.weight is None:
        # One sample: the modulation is exactly a LayerNorm affine, so it costs no extra pass.
        return F.layer_norm(x, norm.normalized_shape, scale1.reshape(-1), shift.reshape(-1), norm.eps)
    return torch.addcmul(shift, norm(x), scale1)


class MLP(nn.Module):
    """Linear -> GELU -> Linear. Exact GELU: the tanh approximation is ~3.5x slower on CPU and buys nothing."""

    def __init__(self, dim: int, hidden: int, out_dim: int | None = None, operations=nn, device=None, dtype=None):
        super().__init__()
        self.fc1 = operations.Linear(dim, hidden, device=device, dtype=dtype)
        self.fc2 = operations.Linear(hidden, out_dim or dim, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        # In place without autograd: the [N, 4 * hidden] buffer is the largest of the layer (CPU page faults).
        h = _gelu_(h) if _gelu_ is not None and not torch.is_grad_enabled() else F.gelu(h)
        return self.fc2(h)


class TokenEmbed(nn.Module):
    """Condition features -> hidden: Linear -> SiLU -> Linear (text and audio embedders)."""

    def __init__(self, in_dim: int, hidden: int, operations=nn, device=None, dtype=None):
        super().__init__()
        self.fc1 = operations.Linear(in_dim, hidden, device=device, dtype=dtype)
        self.fc2 = operations.Linear(hidden, hidden, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.silu(self.fc1(x)))


def timestep_sinusoid(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """fp32 `[B, dim]` cos/sin features of (already scaled) timesteps `[B]`."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.to(torch.float32)[:, None] * freqs[None]
    return torch.cat((torch.cos(args), torch.sin(args)), dim=-1)


class TimestepEmbedding(nn.Module):
    """Flow time t in [0, 1] -> sinusoid of `scale * t` -> MLP -> the shared conditioning vector."""

    def __init__(self, hidden: int, freq_dim: int = 256, scale: float = 1000.0, operations=nn, device=None, dtype=None):
        super().__init__()
        self.freq_dim, self.scale = freq_dim, scale
        self.fc1 = operations.Linear(freq_dim, hidden, device=device, dtype=dtype)
        self.fc2 = operations.Linear(hidden, hidden, device=device, dtype=dtype)

    def forward(self, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        emb = timestep_sinusoid(t.float() * self.scale, self.freq_dim).to(dtype)
        return self.fc2(F.silu(self.fc1(emb)))
