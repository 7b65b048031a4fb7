"""The MMDiT layer: three symmetric branches (video, text, audio) fused by one joint attention.

Per layer each branch modulates its tokens from the timestep (adaLN-zero), projects them to Q/K/V with
its own fused Linear, RMS-normalises Q and K per head; all tokens are concatenated once and attend
jointly; the result is split (views) and every branch continues with its own output projection and MLP.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InputError
from .attention import attention
from .layers import MLP, make_rms_norm, modulated_norm, norm_weight, rms_norm, vector_linear
from .rope import Rope, apply_rope

# adaLN-zero chunks of a full branch: (shift, scale, gate) before attention, then before the MLP.
_FULL_CHUNKS = 6
# A pre-only branch (text / audio in the last layer) only feeds keys and values: (shift, scale).
_PRE_ONLY_CHUNKS = 2


def _is_linear(m: nn.Module) -> bool:
    # Host op namespaces may use their own Linear classes; they are named Linear and have a 2D weight.
    return isinstance(m, nn.Linear) or (type(m).__name__ == "Linear" and getattr(m, "weight", None) is not None)


def init_linear(m: nn.Module, zero: bool = False) -> None:
    """Xavier-uniform weight and zero bias (DiT's init), or all zeros for adaLN-zero / output layers."""
    with torch.no_grad():
        if zero:
            nn.init.zeros_(m.weight)
        else:
            nn.init.xavier_uniform_(m.weight)
        if getattr(m, "bias", None) is not None:
            nn.init.zeros_(m.bias)


def init_module(module: nn.Module) -> None:
    """DiT-style init of every Linear in `module` and unit RMS-norm weights (host ops may skip init)."""
    for name, m in module.named_modules():
        if _is_linear(m):
            init_linear(m)
        elif name.rsplit(".", 1)[-1] in ("q_norm", "k_norm") and getattr(m, "weight", None) is not None:
            with torch.no_grad():
                nn.init.ones_(m.weight)


class Branch(nn.Module):
    """One modality's weights in one layer: adaLN-zero modulation, fused QKV, Q/K RMS norms, output, MLP.

    `pre_only` (the text / audio branch of the last layer): its tokens are never read after the last
    joint attention, so it keeps only what produces keys and values (as SD3's `context_pre_only`).
    """

    def __init__(
        self,
        hidden: int,
        heads: int,
        mlp_ratio: float = 4.0,
        *,
        pre_only: bool = False,
        eps: float = 1e-6,
        operations=nn,
        device=None,
        dtype=None,
    ):
        super().__init__()
        self.hidden, self.heads, self.head_dim = hidden, heads, hidden // heads
        self.pre_only, self.eps = pre_only, eps
        self.chunks = _PRE_ONLY_CHUNKS if pre_only else _FULL_CHUNKS
        kw = dict(device=device, dtype=dtype)
        self.modulation = operations.Linear(hidden, self.chunks * hidden, **kw)
        self.norm1 = operations.LayerNorm(hidden, elementwise_affine=False, eps=eps, **kw)
        self.qkv = operations.Linear(hidden, 3 * hidden, **kw)
        self.q_norm = make_rms_norm(self.head_dim, eps, operations, **kw)
        self.k_norm = make_rms_norm(self.head_dim, eps, operations, **kw)
        if not pre_only:
            self.proj = operations.Linear(hidden, hidden, **kw)
            self.norm2 = operations.LayerNorm(hidden, elementwise_affine=False, eps=eps, **kw)
            self.mlp = MLP(hidden, int(hidden * mlp_ratio), operations=operations, **kw)

    def init_weights(self) -> None:
        init_module(self)
        init_linear(self.modulation, zero=True)  # adaLN-zero: gates start at 0 -> the layer is identity

    def modulate(self, cond_act: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """shift / scale / gate vectors `[B, 1, hidden]` (`chunks` of them) from the SiLU'd conditioning vector."""
        return vector_linear(self.modulation, cond_act).view(cond_act.shape[0], self.chunks, 1, self.hidden).unbind(1)

    def project_qkv(self, x: torch.Tensor, mod: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Fused q, k, v projection `[B, N, 3 * hidden]` of the modulated tokens (Q/K not yet normalised)."""
        return self.qkv(modulated_norm(self.norm1, x, mod[0], 1 + mod[1]))

    def qk_norm_weight(self, like: torch.Tensor) -> torch.Tensor:
        """The Q and K RMS-norm weights stacked `[2, head_dim]`, fp32 on `like`'s device."""
        return torch.stack((norm_weight(self.q_norm, like), norm_weight(self.k_norm, like)))

    def attn_residual(self, x: torch.Tensor, attn_out: torch.Tensor, mod: tuple[torch.Tensor, ...]) -> torch.Tensor:
        # attn_out is this branch's token slice of the joint output: a view, strided when B > 1.
        # One explicit copy lets the Linear fuse its bias (a strided input costs copy + mm + add).
        return torch.addcmul(x, mod[2], self.proj(attn_out.contiguous()))

    def mlp_residual(
        self, x: torch.Tensor, mod: tuple[torch.Tensor, ...], x_is_temporary: bool = False
    ) -> torch.Tensor:
        """x + gate * MLP(modulated norm(x)); updates x in place when allowed (no autograd, x made by this layer)."""
        y = self.mlp(modulated_norm(self.norm2, x, mod[3], 1 + mod[4]))
        if x_is_temporary and not torch.is_grad_enabled():
            return x.addcmul_(mod[5], y)  # saves a fresh buffer: on CPU, page faults of new memory cost ~10%
        return torch.addcmul(x, mod[5], y)


class AudioCrossAttention(nn.Module):
    """The paper's ablation ("w/ Cross-Attention"): video tokens query the (never updated) audio tokens.

    Zero-initialised output, so it starts as identity. Q and K get the same RoPE as in the joint
    attention (video / audio positions) so the ablation has the same chance to align sound and mouth.
    """

    def __init__(self, hidden: int, heads: int, *, eps: float = 1e-6, operations=nn, device=None, dtype=None):
        super().__init__()
        self.hidden, self.heads, self.head_dim, self.eps = hidden, heads, hidden // heads, eps
        kw = dict(device=device, dtype=dtype)
        self.norm = operations.LayerNorm(hidden, elementwise_affine=True, eps=eps, **kw)
        self.q = operations.Linear(hidden, hidden, **kw)
        self.kv = operations.Linear(hidden, 2 * hidden, **kw)
        self.q_norm = make_rms_norm(self.head_dim, eps, operations, **kw)
        self.k_norm = make_rms_norm(self.head_dim, eps, operations, **kw)
        self.proj = operations.Linear(hidden, hidden, **kw)

    def init_weights(self) -> None:
        init_module(self)
        if getattr(self.norm, "weight", None) is not None:
            with torch.no_grad():
                nn.init.ones_(self.norm.weight)
                nn.init.zeros_(self.norm.bias)
        init_linear(self.proj, zero=True)

    def forward(self, x: torch.Tensor, audio: torch.Tensor | None, rope: Rope | None = None) -> torch.Tensor:
        if audio is None or audio.shape[1] == 0:
            return x  # no audio tokens: nothing to attend to (softmax over no keys would be NaN)
        B, N, _ = x.shape
        q = self.q(self.norm(x)).unflatten(-1, (self.heads, self.head_dim))
        q = rms_norm(q, norm_weight(self.q_norm, x), self.eps)
        kv = self.kv(audio).unflatten(-1, (2, self.heads, self.head_dim))
        k = rms_norm(kv[:, :, 0], norm_weight(self.k_norm, x), self.eps)
        if rope is not None:
            q, k = apply_rope(q, rope.video, x.dtype), apply_rope(k, rope.audio, x.dtype)
        else:
            q, k = q.to(x.dtype), k.to(x.dtype)
        out = attention(q.transpose(1, 2), k.transpose(1, 2), kv[:, :, 1].transpose(1, 2))
        return x + self.proj(out.transpose(1, 2).reshape(B, N, self.hidden))


class JointBlock(nn.Module):
    """One MMDiT layer: video, text and (in branch mode) audio branches sharing one joint attention.

    Standalone use (benchmarks): `JointBlock(hidden, heads)(video, text, audio, cond, rope, mask)` with
    streams `[B, N_s, hidden]`, `cond` `[B, hidden]` (timestep embedding, before SiLU), `rope` a `Rope`
    from `rope.build_rope` or None, `mask` a bool key mask `[B, 1, 1, N_joint]` or None.
    """

    def __init__(
        self,
        hidden: int,
        heads: int,
        mlp_ratio: float = 4.0,
        *,
        audio_mode: str = "branch",
        final: bool = False,
        eps: float = 1e-6,
        operations=nn,
        device=None,
        dtype=None,
    ):
        super().__init__()
        if hidden % heads:
            raise InputError(f"JointBlock: hidden {hidden} is not divisible by heads {heads}")
        if audio_mode not in ("branch", "cross_attention"):
            raise InputError(f"JointBlock: audio_mode must be 'branch' or 'cross_attention', got {audio_mode!r}")
        self.hidden, self.heads, self.final, self.audio_mode = hidden, heads, final, audio_mode
        self.head_dim, self.eps = hidden // heads, eps
        kw = dict(eps=eps, operations=operations, device=device, dtype=dtype)
        self.video = Branch(hidden, heads, mlp_ratio, **kw)
        self.text = Branch(hidden, heads, mlp_ratio, pre_only=final, **kw)
        if audio_mode == "branch":
            self.audio = Branch(hidden, heads, mlp_ratio, pre_only=final, **kw)
            self.audio_cross = None
        else:
            self.audio = None
            self.audio_cross = AudioCrossAttention(hidden, heads, **kw)
        self.init_weights()

    def init_weights(self) -> None:
        for m in (self.video, self.text, self.audio, self.audio_cross):
            if m is not None:
                m.init_weights()

    def forward(
        self,
        video: torch.Tensor,
        text: torch.Tensor,
        audio: torch.Tensor | None,
        cond: torch.Tensor,
        rope: Rope | None = None,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Returns the updated (video, text, audio) streams; pre-only and cross-attention audio pass through."""
        B, dtype = video.shape[0], video.dtype
        cond_act = F.silu(cond)
        streams = [(self.video, video), (self.text, text)]
        if self.audio is not None and audio is not None:
            streams.append((self.audio, audio))

        mods, qkvs, norm_weights = [], [], []
        for branch, x in streams:
            mod = branch.modulate(cond_act)
            mods.append(mod)
            qkvs.append(branch.project_qkv(x, mod))
            norm_weights.append(branch.qk_norm_weight(x).expand(x.shape[1], 2, self.head_dim))
        # Concatenate once; everything after works on all tokens at once or on views.
        qkv = torch.cat(qkvs, dim=1) if len(qkvs) > 1 else qkvs[0]
        n_joint = qkv.shape[1]
        qkv = qkv.view(B, n_joint, 3, self.heads, self.head_dim)
        # Per-head RMS norm of q and k in fp32 with each token's own branch weights `[N, 2, 1, head_dim]`.
        w = torch.cat(norm_weights) if len(norm_weights) > 1 else norm_weights[0]
        qk = rms_norm(qkv[:, :, :2], w[:, :, None], self.eps)
        v = qkv[:, :, 2]
        if rope is not None:
            if rope.joint.shape[0] != n_joint:
                raise InputError(f"JointBlock: rope table has {rope.joint.shape[0]} positions for {n_joint} tokens")
            qk = apply_rope(qk, rope.joint, dtype)
        else:
            qk = qk.to(dtype)
        # In the last layer only video rows are read afterwards: skip the text / audio queries.
        n_q = video.shape[1] if self.final else n_joint
        q = qk[:, :n_q, 0].transpose(1, 2)
        k = qk[:, :, 1].transpose(1, 2)
        out = attention(q, k, v.transpose(1, 2), mask).transpose(1, 2).reshape(B, n_q, self.hidden)

        results = []
        start = 0
        for (branch, x), mod in zip(streams, mods):
            n = x.shape[1]
            if branch.pre_only:
                results.append(x)
            else:
                x = branch.attn_residual(x, out[:, start : start + n], mod)
                if branch is self.video and self.audio_cross is not None:
                    x = self.audio_cross(x, audio, rope)
                results.append(branch.mlp_residual(x, mod, x_is_temporary=True))
            start += n
        new_audio = results[2] if len(results) > 2 else audio
        return results[0], results[1], new_audio


class FinalLayer(nn.Module):
    """Video tokens -> adaLN (shift, scale) -> Linear to patch values; zero-initialised output."""

    def __init__(self, hidden: int, out_dim: int, *, eps: float = 1e-6, operations=nn, device=None, dtype=None):
        super().__init__()
        self.hidden = hidden
        kw = dict(device=device, dtype=dtype)
        self.modulation = operations.Linear(hidden, 2 * hidden, **kw)
        self.norm = operations.LayerNorm(hidden, elementwise_affine=False, eps=eps, **kw)
        self.linear = operations.Linear(hidden, out_dim, **kw)

    def init_weights(self) -> None:
        init_linear(self.modulation, zero=True)
        init_linear(self.linear, zero=True)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        shift, scale = vector_linear(self.modulation, F.silu(cond)).view(cond.shape[0], 2, 1, self.hidden).unbind(1)
        return self.linear(modulated_norm(self.norm, x, shift, 1 + scale))
