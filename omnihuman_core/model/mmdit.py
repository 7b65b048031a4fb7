"""System 1: the MMDiT that predicts the flow velocity of a video latent from text, audio and clean frames.

Parameter names follow the branches, so a training recipe can take branches from different checkpoints
(METHOD section 7, MM-branch warm-up):
  video:  patch_embed.*, blocks.{i}.video.*, final.*
  text:   text_embed.*,  blocks.{i}.text.*, text_pool.* (config.pooled_text)
  audio:  audio_embed.*, blocks.{i}.audio.* (branch mode) or blocks.{i}.audio_cross.* (cross-attention mode)
  shared: time_embed.*   (the timestep conditioning every branch reads)
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn as nn

from ..errors import InputError, WeightsError
from .blocks import FinalLayer, JointBlock, init_module
from .config import MMDiTConfig
from .layers import TimestepEmbedding, TokenEmbed
from .rope import Rope, build_rope

BRANCHES = ("video", "text", "audio", "shared")
_TOP_LEVEL_BRANCH = {
    "patch_embed": "video",
    "final": "video",
    "text_embed": "text",
    "text_pool": "text",
    "audio_embed": "audio",
    "time_embed": "shared",
}
_BLOCK_BRANCH = {"video": "video", "text": "text", "audio": "audio", "audio_cross": "audio"}


def branch_of_param(name: str) -> str:
    """Which branch ('video', 'text', 'audio', 'shared') a parameter / state-dict key belongs to."""
    parts = name.split(".")
    if parts[0] == "blocks" and len(parts) > 2 and parts[2] in _BLOCK_BRANCH:
        return _BLOCK_BRANCH[parts[2]]
    if parts[0] in _TOP_LEVEL_BRANCH:
        return _TOP_LEVEL_BRANCH[parts[0]]
    raise KeyError(f"{name!r} is not an MMDiT parameter name")


def is_audio_branch_param(name: str) -> bool:
    """True for parameters of the audio branch (`audio_embed.*`, `blocks.{i}.audio.*`, `blocks.{i}.audio_cross.*`)."""
    return branch_of_param(name) == "audio"


def merge_branches(
    base_state: Mapping[str, torch.Tensor], audio_state: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """MM-branch warm-up stage 2: text, video and shared weights from `base_state`, the audio branch from `audio_state`.

    Any audio-branch keys in `base_state` are replaced; non-audio keys of `audio_state` are ignored.
    """
    audio = {k: v for k, v in audio_state.items() if is_audio_branch_param(k)}
    if not audio:
        raise WeightsError(
            "merge_branches: the audio checkpoint has no audio-branch weights (audio_embed.*, blocks.N.audio.*); "
            "pass the stage-1 model's state dict as audio_state"
        )
    merged = {k: v for k, v in base_state.items() if not is_audio_branch_param(k)}
    merged.update(audio)
    return merged


class MMDiT(nn.Module):
    """Three-branch MMDiT (video, text, audio) with one joint attention per layer; predicts velocity."""

    def __init__(self, config: MMDiTConfig, operations=nn, device=None, dtype=None):
        super().__init__()
        self.config = config
        c = config
        kw = dict(operations=operations, device=device, dtype=dtype)
        self.patch_embed = operations.Linear(c.embed_channels * c.patch_volume, c.hidden, device=device, dtype=dtype)
        self.text_embed = TokenEmbed(c.text_dim, c.hidden, **kw)
        self.audio_embed = TokenEmbed(c.audio_dim, c.hidden, **kw)
        self.time_embed = TimestepEmbedding(c.hidden, c.timestep_freq_dim, c.timestep_scale, **kw)
        self.text_pool = TokenEmbed(c.text_dim, c.hidden, **kw) if c.pooled_text else None
        self.blocks = nn.ModuleList(
            JointBlock(
                c.hidden,
                c.heads,
                c.mlp_ratio,
                audio_mode=c.audio_mode,
                final=(i == c.depth - 1),
                eps=c.norm_eps,
                **kw,
            )
            for i in range(c.depth)
        )
        self.final = FinalLayer(c.hidden, c.latent_channels * c.patch_volume, eps=c.norm_eps, **kw)
        self.init_weights()

    def init_weights(self) -> None:
        """DiT init: Xavier linears, N(0, 0.02) timestep MLP, zero adaLN-zero modulations and output layer.

        Building on `torch.device("meta")` and loading with `load_state_dict(assign=True)` skips this cost.
        """
        for m in (self.patch_embed, self.text_embed, self.audio_embed):
            init_module(m)
        for lin in (self.time_embed.fc1, self.time_embed.fc2):
            with torch.no_grad():
                nn.init.normal_(lin.weight, std=0.02)
                nn.init.zeros_(lin.bias)
        if self.text_pool is not None:
            # Zero output: a model gaining the pooled path starts as the model it was (see pooled_text).
            init_module(self.text_pool)
            with torch.no_grad():
                nn.init.zeros_(self.text_pool.fc2.weight)
                nn.init.zeros_(self.text_pool.fc2.bias)
        for block in self.blocks:
            block.init_weights()
        self.final.init_weights()

    # ---- branches -------------------------------------------------------------------------------
    def branch_state_dict(self, branch: str) -> dict[str, torch.Tensor]:
        """State-dict entries of one branch ('video', 'text', 'audio', 'shared')."""
        if branch not in BRANCHES:
            raise InputError(f"unknown branch {branch!r}; choose one of {BRANCHES}")
        return {k: v for k, v in self.state_dict().items() if branch_of_param(k) == branch}

    def branch_parameters(self, branch: str) -> list[nn.Parameter]:
        """Parameters of one branch, e.g. for per-branch learning rates or freezing."""
        if branch not in BRANCHES:
            raise InputError(f"unknown branch {branch!r}; choose one of {BRANCHES}")
        return [p for n, p in self.named_parameters() if branch_of_param(n) == branch]

    # ---- forward --------------------------------------------------------------------------------
    def _check_inputs(self, x, timestep, text, audio, frame_positions, text_mask, cond) -> None:
        c = self.config
        pt, ph, pw = c.patch_size
        if x.dim() != 5 or x.shape[1] != c.in_channels:
            raise InputError(
                f"MMDiT input x must be [B, {c.in_channels}, t, h, w] ({c.latent_channels} latent channels + 1 mask "
                f"channel), got {tuple(x.shape)}"
            )
        B, _, T, H, W = x.shape
        if c.cond_channels and cond is None:
            raise InputError(
                f"this MMDiT has cond_channels={c.cond_channels}: pass cond [B, {c.cond_channels}, t, h, w] "
                "(e.g. the low-res latent of the super-resolution model)"
            )
        if not c.cond_channels and cond is not None:
            raise InputError("this MMDiT has cond_channels=0 and takes no cond; pass cond=None")
        if cond is not None and tuple(cond.shape) != (B, c.cond_channels, T, H, W):
            raise InputError(
                f"cond must be [B, cond_channels, t, h, w] = {(B, c.cond_channels, T, H, W)} (the grid of x), "
                f"got {tuple(cond.shape)}"
            )
        if T % pt or H % ph or W % pw:
            raise InputError(f"latent size (t={T}, h={H}, w={W}) must be divisible by the patch size {c.patch_size}")
        if timestep.dim() > 1 or (timestep.dim() == 1 and timestep.shape[0] not in (1, B)):
            raise InputError(f"timestep must be [B={B}] (or a scalar), got {tuple(timestep.shape)}")
        if frame_positions.shape != (T,):
            raise InputError(
                f"frame_positions must be [t_all={T}] (one position per latent frame), "
                f"got {tuple(frame_positions.shape)}"
            )
        if text.dim() != 3 or text.shape[0] != B or text.shape[2] != c.text_dim:
            raise InputError(f"text must be [B={B}, L, text_dim={c.text_dim}], got {tuple(text.shape)}")
        if text_mask is not None and (text_mask.shape != text.shape[:2] or text_mask.dtype != torch.bool):
            raise InputError(
                f"text_mask must be a bool tensor [B, L]={tuple(text.shape[:2])}, "
                f"got {text_mask.dtype} {tuple(text_mask.shape)}"
            )
        if audio is not None:
            if audio.dim() != 4 or audio.shape[0] != B or audio.shape[3] != c.audio_dim:
                raise InputError(
                    f"audio must be [B={B}, t_audio, A, audio_dim={c.audio_dim}], got {tuple(audio.shape)}"
                )
            if audio.shape[1] > T:
                raise InputError(
                    f"audio covers {audio.shape[1]} latent frames but x has only {T}; trim the audio features"
                )

    def rope(
        self,
        frame_positions: torch.Tensor,
        grid: tuple[int, int],
        text_tokens: int,
        audio_frames: int,
        audio_per_frame: int,
    ) -> Rope:
        """Rotation tables of one forward (built once, shared by all layers)."""
        c = self.config
        return build_rope(
            frame_positions,
            grid,
            text_tokens,
            audio_frames,
            audio_per_frame,
            c.resolved_rope_axes,
            c.rope_theta,
            temporal_patch=c.patch_size[0],
            audio_in_joint=c.audio_mode == "branch",
            audio_subframes=c.audio_subframes,
        )

    def forward(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        text: torch.Tensor,
        audio: torch.Tensor | None,
        *,
        frame_positions: torch.Tensor,
        text_mask: torch.Tensor | None = None,
        cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Velocity `[B, C, t_all, h, w]` for `x` `[B, C + 1, t_all, h, w]` (latents + mask channel).

        `audio` `[B, t_audio <= t_all, A, audio_dim]` covers the first t_audio latent frames (None = no audio
        tokens; the null audio condition is all zeros). `text_mask` False = padded / dropped token.
        `cond` `[B, cond_channels, t_all, h, w]`: required iff `config.cond_channels > 0`; concatenated to `x`
        (after the mask channel) before patchify.
        """
        timestep = torch.as_tensor(timestep, device=x.device)
        self._check_inputs(x, timestep, text, audio, frame_positions, text_mask, cond)
        c = self.config
        if cond is not None:
            x = torch.cat([x, cond.to(device=x.device, dtype=x.dtype)], dim=1)
        B, Cin, T, H, W = x.shape
        pt, ph, pw = c.patch_size
        tp, hp, wp = T // pt, H // ph, W // pw
        dtype, device = x.dtype, x.device

        # Patchify with one copy: [B, C, (tp pt), (hp ph), (wp pw)] -> [B, tp*hp*wp, C*pt*ph*pw].
        patches = x.reshape(B, Cin, tp, pt, hp, ph, wp, pw).permute(0, 2, 4, 6, 1, 3, 5, 7)
        video = self.patch_embed(patches.reshape(B, tp * hp * wp, Cin * pt * ph * pw))
        text = text.to(device=device, dtype=dtype)
        text_tokens = self.text_embed(text)
        if audio is not None:
            t_audio, per_frame = audio.shape[1], audio.shape[2]
            audio = audio.to(device=device, dtype=dtype).reshape(B, t_audio * per_frame, c.audio_dim)
            audio_tokens = self.audio_embed(audio)
        else:
            t_audio, per_frame, audio_tokens = 0, 0, None
        cond = self.time_embed(timestep.reshape(-1).expand(B), dtype)
        if self.text_pool is not None:
            cond = cond + self._pooled_text(text, text_mask)

        rope = self.rope(frame_positions.to(device), (hp, wp), text.shape[1], t_audio, per_frame)
        mask = self._key_mask(text_mask, video.shape[1], t_audio * per_frame, device)

        for block in self.blocks:
            video, text_tokens, audio_tokens = block(video, text_tokens, audio_tokens, cond, rope, mask)

        out = self.final(video, cond)  # [B, tp*hp*wp, C*pt*ph*pw]
        out = out.reshape(B, tp, hp, wp, c.latent_channels, pt, ph, pw).permute(0, 4, 1, 5, 2, 6, 3, 7)
        return out.reshape(B, c.latent_channels, T, H, W)

    def _pooled_text(self, text: torch.Tensor, text_mask: torch.Tensor | None) -> torch.Tensor:
        """`[B, hidden]`: the MLP of the mean of the valid text features; exactly 0 for a null prompt (no valid
        token), so the null-text passes of guidance see the timestep alone."""
        if text_mask is None:
            valid = torch.ones(text.shape[:2], device=text.device, dtype=text.dtype)
        else:
            valid = text_mask.to(device=text.device, dtype=text.dtype)
        count = valid.sum(dim=1, keepdim=True)
        mean = (text * valid.unsqueeze(-1)).sum(dim=1) / count.clamp(min=1)
        return self.text_pool(mean) * (count > 0).to(text.dtype)

    def _key_mask(self, text_mask: torch.Tensor | None, n_video: int, n_audio: int, device) -> torch.Tensor | None:
        """Bool key mask `[B, 1, 1, N_joint]` hiding dropped text, or None when every token is valid.

        Video keys are always present, so no query row is ever fully masked (a null text is fine).
        """
        if text_mask is None or bool(text_mask.all()):
            return None
        B = text_mask.shape[0]
        parts = [torch.ones(B, n_video, dtype=torch.bool, device=device), text_mask.to(device)]
        if self.config.audio_mode == "branch" and n_audio:
            parts.append(torch.ones(B, n_audio, dtype=torch.bool, device=device))
        return torch.cat(parts, dim=1)[:, None, None, :]
