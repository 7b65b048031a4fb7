"""Analytic cost of the MMDiT: FLOPs of one forward (matmuls + attention) and the `base` model report.

A multiply-add counts as 2 FLOPs, like `torch.utils.flop_counter`. Elementwise work (norms, RoPE,
activations, softmax) is left out: it is a few percent of the total and not what the hardware is rated on.
Paper-scale numbers: `print(format_report(base_report()))`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import MMDiTConfig


def _linear(tokens: int, d_in: int, d_out: int) -> int:
    return 2 * tokens * d_in * d_out


def _attn(q_tokens: int, k_tokens: int, hidden: int) -> int:
    # QK^T and AV, each 2 * Nq * Nk * head_dim per head.
    return 4 * q_tokens * k_tokens * hidden


def forward_flops(config: MMDiTConfig, video_tokens: int, text_tokens: int, audio_tokens: int, batch: int = 1) -> int:
    """FLOPs of one MMDiT forward for the given token counts (audio tokens = t_audio * tokens per frame)."""
    c = config
    h, m = c.hidden, c.mlp_hidden
    nv, nt, na = video_tokens, text_tokens, audio_tokens
    branch_mode = c.audio_mode == "branch"

    f = _linear(nv, c.embed_channels * c.patch_volume, h)
    f += _linear(nt, c.text_dim, h) + _linear(nt, h, h)
    f += _linear(na, c.audio_dim, h) + _linear(na, h, h)
    f += _linear(1, c.timestep_freq_dim, h) + _linear(1, h, h)

    def full_branch(n: int) -> int:
        return _linear(1, h, 6 * h) + _linear(n, h, 3 * h) + _linear(n, h, h) + _linear(n, h, m) + _linear(n, m, h)

    def pre_only_branch(n: int) -> int:
        return _linear(1, h, 2 * h) + _linear(n, h, 3 * h)

    n_joint = nv + nt + (na if branch_mode else 0)
    for i in range(c.depth):
        final = i == c.depth - 1
        context = pre_only_branch if final else full_branch
        f += full_branch(nv) + context(nt)
        if branch_mode:
            f += context(na)
        f += _attn(nv if final else n_joint, n_joint, h)
        if not branch_mode and na:
            f += _linear(nv, h, h) + _linear(na, h, 2 * h) + _attn(nv, na, h) + _linear(nv, h, h)

    f += _linear(1, h, 2 * h) + _linear(nv, h, c.latent_channels * c.patch_volume)
    return batch * f


@dataclass
class Geometry:
    """Clip geometry of a generation step; defaults: 480p x 121 frames, Wan-like 16ch 4x8x8 VAE, umT5 text."""

    frames: int = 121
    height: int = 480
    width: int = 832
    vae_temporal: int = 4
    vae_spatial: int = 8
    text_tokens: int = 512
    audio_tokens_per_frame: int = 4
    pseudo_last_frame: bool = True


def token_counts(config: MMDiTConfig, geometry: Geometry | None = None) -> dict[str, int]:
    """Tokens of one forward: video (incl. the pseudo last frame), text, audio (one set per generated latent frame)."""
    g = geometry or Geometry()
    pt, ph, pw = config.patch_size
    latent_frames = 1 + (g.frames - 1) // g.vae_temporal
    t_all = latent_frames + (1 if g.pseudo_last_frame else 0)
    h, w = g.height // g.vae_spatial, g.width // g.vae_spatial
    video = (t_all // pt) * (h // ph) * (w // pw)
    return {
        "latent_frames": latent_frames,
        "video": video,
        "text": g.text_tokens,
        "audio": latent_frames * g.audio_tokens_per_frame,
    }


def parameter_counts(config: MMDiTConfig) -> dict[str, int]:
    """Parameters per branch and in total, counted on a meta-device model (no memory is allocated)."""
    from .mmdit import MMDiT, branch_of_param

    model = MMDiT(config, device=torch.device("meta"))
    counts = {"video": 0, "text": 0, "audio": 0, "shared": 0}
    for name, p in model.named_parameters():
        counts[branch_of_param(name)] += p.numel()
    counts["total"] = sum(counts.values())
    return counts


def flops_per_step(config: MMDiTConfig, geometry: Geometry | None = None, guidance_passes: int = 3) -> int:
    """FLOPs of one denoising step: `guidance_passes` forwards (3 for text + audio CFG, 1 without guidance)."""
    n = token_counts(config, geometry)
    return guidance_passes * forward_flops(config, n["video"], n["text"], n["audio"])


def base_report(
    geometry: Geometry | None = None, guidance_passes: int = 3, steps: int = 40, config: MMDiTConfig | None = None
) -> dict:
    """Parameters, tokens and FLOPs of the paper-scale `base` model for one clip."""
    cfg = config or MMDiTConfig.preset("base")
    g = geometry or Geometry()
    n = token_counts(cfg, g)
    one = forward_flops(cfg, n["video"], n["text"], n["audio"])
    return {
        "config": cfg.to_dict(),
        "geometry": g.__dict__.copy(),
        "parameters": parameter_counts(cfg),
        "tokens": n,
        "flops_per_forward": one,
        "guidance_passes": guidance_passes,
        "flops_per_step": guidance_passes * one,
        "steps": steps,
        "flops_per_clip": steps * guidance_passes * one,
    }


def format_report(report: dict) -> str:
    """Human-readable summary of `base_report`."""
    p, n = report["parameters"], report["tokens"]
    g = report["geometry"]
    return "\n".join(
        [
            f"parameters: {p['total'] / 1e9:.2f} B (video {p['video'] / 1e9:.2f} B, text {p['text'] / 1e9:.2f} B, "
            f"audio {p['audio'] / 1e9:.2f} B, shared {p['shared'] / 1e6:.1f} M)",
            f"clip: {g['frames']} frames at {g['width']}x{g['height']} -> {n['latent_frames']} latent frames; "
            f"tokens per forward: video {n['video']}, text {n['text']}, audio {n['audio']}",
            f"per forward: {report['flops_per_forward'] / 1e15:.1f} PFLOP; per step "
            f"({report['guidance_passes']} guidance passes): {report['flops_per_step'] / 1e15:.1f} PFLOP; "
            f"per clip ({report['steps']} steps): {report['flops_per_clip'] / 1e18:.2f} EFLOP",
        ]
    )
