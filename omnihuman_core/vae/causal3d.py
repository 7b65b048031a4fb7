"""The pack's own causal 3D convolutional video VAE (4x temporal, 8x spatial by default).

Causal in time, end to end: every temporal convolution looks only at the current and past frames
(the first frame is replicate-padded into the past), normalisation is per voxel, attention is per
frame. So the first `1 + 4j` video frames alone give exactly the first `1 + j` latent frames, the
decoder likewise, and long videos can be encoded/decoded in temporal chunks that carry each
convolution's last input frames forward (`chunk_latent_frames=`) with the same result as one pass.

Temporal down/upsampling keeps the first frame alone, as in the Wan / HunyuanVideo causal VAEs:
the encoder duplicates frame 0 and folds pairs of frames into channels ((x0, x0), (x1, x2), ...),
the decoder unfolds channels into pairs of frames and drops the duplicate. `1 + 4k` frames thus
map to `1 + k` latent frames and back, exactly. Every resampling step also has a parameter-free
shortcut (DC-AE style), which is what makes the small model trainable in minutes on a CPU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from ..errors import InputError
from .base import VideoVAE

# Chunked runs keep, per module, the state the next chunk needs (past input frames, "first chunk
# done"). Keyed by the module object itself; a fresh dict per encode/decode call.
StreamCache = dict

# logvar is clamped before exp() so an untrained or diverging encoder cannot overflow.
LOGVAR_RANGE = (-30.0, 20.0)


# ------------------------------------------------------------------------------------------------
# Config
# ------------------------------------------------------------------------------------------------
@dataclass
class CausalVAEConfig(ModelConfig):
    """Shape of the causal VAE. The defaults are the `demo` model."""

    LABEL: ClassVar[str] = "VAE"

    latent_channels: int = 16
    # Space-to-channel patch at the input (and channel-to-space at the output), as Wan 2.2's VAE does:
    # p x p pixels become 3 p^2 channels before the first convolution. Full-resolution convolutions are
    # most of a small VAE's cost; with p = 2 the first level already runs at half resolution.
    patch: int = 1
    # Channels of each resolution level, the (patched) input resolution first. Between consecutive levels
    # the resolution halves: the spatial factor is patch * 2^(levels - 1), e.g. 1 x 2^3 = 8.
    channels: tuple[int, ...] = (16, 32, 64, 64)
    # Between level i and i+1: also halve time? Two True entries give the 4x temporal factor.
    temporal_downsample: tuple[bool, ...] = (False, True, True)
    # Residual blocks per level; the decoder gets one more per level (it has the harder job:
    # inventing detail), as in the SD / Wan VAEs.
    res_blocks: int = 1
    decoder_extra_res_blocks: int = 1
    # Per-frame self-attention in the lowest-resolution (middle) block.
    mid_attention: bool = True
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        self.temporal_downsample = tuple(bool(t) for t in self.temporal_downsample)
        self._validate()

    def _validate(self) -> None:
        problems = []
        if self.latent_channels < 1:
            problems.append(f"latent_channels must be >= 1, got {self.latent_channels}")
        if len(self.channels) < 1 or min(self.channels) < 1:
            problems.append(f"channels must be positive ints, one per level, got {self.channels}")
        if len(self.temporal_downsample) != max(len(self.channels) - 1, 0):
            problems.append(
                f"temporal_downsample needs one entry per level transition ({len(self.channels) - 1}), "
                f"got {len(self.temporal_downsample)}"
            )
        if isinstance(self.patch, bool) or not isinstance(self.patch, int) or self.patch < 1:
            problems.append(f"patch must be an integer >= 1, got {self.patch!r}")
        if self.res_blocks < 1 or self.decoder_extra_res_blocks < 0:
            problems.append(
                f"res_blocks must be >= 1 and decoder_extra_res_blocks >= 0, got "
                f"{self.res_blocks} / {self.decoder_extra_res_blocks}"
            )
        if problems:
            raise InputError("invalid CausalVAEConfig: " + "; ".join(problems))

    @property
    def spatial_factor(self) -> int:
        return self.patch * 2 ** (len(self.channels) - 1)

    @property
    def temporal_factor(self) -> int:
        return 2 ** sum(self.temporal_downsample)





# Presets hold only what differs from the dataclass defaults (= demo).
PRESETS: dict[str, dict[str, Any]] = {
    # Unit tests: ~0.14 M parameters, milliseconds per call on 9 x 16 x 16 clips.
    "tiny": dict(latent_channels=4, channels=(8, 8, 16, 16), decoder_extra_res_blocks=0),
    # Trainable on a 2-core CPU at 128x128 px (16 x 16 x 16 latents): ~2.7 M parameters; one AdamW
    # step on 2 clips of 9 x 64 x 64 px (random crops; the model is fully convolutional) takes
    # ~0.5 s, 1 clip of 17 x 128 x 128 ~2.5 s, so 20-30 min is ~3000 small steps. A 121-frame
    # 128x128 clip encodes in ~3 s and decodes in ~5 s with chunk_latent_frames=8 (one pass: ~6-8 s,
    # ~1.5 GB peak). A 32-channel full-resolution level (32/64/64/64) was 2.7x slower per step:
    # full-resolution convolutions dominate the cost, so the first level is kept narrow.
    "demo": dict(),
}


# ------------------------------------------------------------------------------------------------
# Building blocks
# ------------------------------------------------------------------------------------------------
def _triple(k: int | Sequence[int]) -> tuple[int, int, int]:
    return (k, k, k) if isinstance(k, int) else tuple(k)  # type: ignore[return-value]


class CausalConv3d(nn.Conv3d):
    """3D convolution that sees only current and past frames: time is padded on the past side only.

    Without a cache the past of frame 0 is frame 0 repeated; with a `StreamCache` the last
    `kernel_t - 1` input frames of the previous chunk are used instead, so chunks join seamlessly.
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, device=None, dtype=None):
        kt, kh, kw = _triple(kernel_size)
        super().__init__(
            in_channels, out_channels, (kt, kh, kw), padding=(0, kh // 2, kw // 2), device=device, dtype=dtype
        )
        self.time_pad = kt - 1

    def forward(self, x: torch.Tensor, cache: StreamCache | None = None) -> torch.Tensor:
        if self.time_pad:
            past = cache.get(self) if cache is not None else None
            if past is None:
                past = x[:, :, :1].expand(-1, -1, self.time_pad, -1, -1)
            x = torch.cat([past, x], dim=2)
            if cache is not None:
                # clone: a view would keep this whole chunk's activation alive until the next chunk.
                cache[self] = x[:, :, -self.time_pad :].clone()
        return super().forward(x)


class ChannelRMSNorm(nn.Module):
    """RMS norm over channels at each voxel. GroupNorm would pool statistics over time and break causality."""

    def __init__(self, channels: int, eps: float = 1e-6, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()  # statistics in fp32: bf16 sums of squares lose too much precision
        y = xf * torch.rsqrt(xf.pow(2).mean(dim=1, keepdim=True) + self.eps)
        return (y * self.weight.float().view(1, -1, 1, 1, 1)).to(x.dtype)


class ResBlock(nn.Module):
    """Pre-norm residual block of two causal 3x3x3 convolutions."""

    def __init__(self, in_channels: int, out_channels: int, eps: float, device=None, dtype=None):
        super().__init__()
        fk = dict(device=device, dtype=dtype)
        self.norm1 = ChannelRMSNorm(in_channels, eps, **fk)
        self.conv1 = CausalConv3d(in_channels, out_channels, 3, **fk)
        self.norm2 = ChannelRMSNorm(out_channels, eps, **fk)
        self.conv2 = CausalConv3d(out_channels, out_channels, 3, **fk)
        self.skip = nn.Conv3d(in_channels, out_channels, 1, **fk) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor, cache: StreamCache | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)), cache)
        h = self.conv2(F.silu(self.norm2(h)), cache)
        return (x if self.skip is None else self.skip(x)) + h


class FrameAttention(nn.Module):
    """Single-head self-attention over the pixels of each frame: mixes space, never time."""

    def __init__(self, channels: int, eps: float, device=None, dtype=None):
        super().__init__()
        fk = dict(device=device, dtype=dtype)
        self.norm = ChannelRMSNorm(channels, eps, **fk)
        self.qkv = nn.Conv3d(channels, 3 * channels, 1, **fk)
        self.proj = nn.Conv3d(channels, channels, 1, **fk)
        # Zero output projection: the block starts as the identity and training opens it up.
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, cache: StreamCache | None = None) -> torch.Tensor:
        b, c, t, h, w = x.shape
        qkv = self.qkv(self.norm(x))
        # [B, 3C, T, H, W] -> 3 x [B*T, 1, H*W, C]
        qkv = qkv.reshape(b, 3, c, t, h * w).permute(1, 0, 3, 4, 2).reshape(3, b * t, 1, h * w, c)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        out = out.reshape(b, t, h, w, c).permute(0, 4, 1, 2, 3)
        return x + self.proj(out)


def _first_chunk(module: nn.Module, cache: StreamCache | None) -> bool:
    """True on a plain call and on the first chunk of a chunked call (marks the module as started)."""
    if cache is None:
        return True
    first = module not in cache
    cache[module] = True
    return first


def _resize_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Parameter-free channel change: average groups of channels down, or repeat channels up."""
    c = x.shape[1]
    if c == channels:
        return x
    if c % channels == 0:
        b, _, *rest = x.shape
        return x.reshape(b, channels, c // channels, *rest).mean(dim=2)
    return x.repeat_interleave(channels // c, dim=1)


def _shortcut_ok(c_in: int, c_out: int) -> bool:
    return c_in % c_out == 0 or c_out % c_in == 0


def _to_channels(x: torch.Tensor, p: int) -> torch.Tensor:
    """[B, C, T, H, W] -> [B, C*p*p, T, H/p, W/p]: each p x p pixel block side by side in channels."""
    if p == 1:
        return x
    b, c, t, h, w = x.shape
    x = x.reshape(b, c, t, h // p, p, w // p, p).permute(0, 1, 4, 6, 2, 3, 5)
    return x.reshape(b, c * p * p, t, h // p, w // p)


def _to_space(x: torch.Tensor, p: int) -> torch.Tensor:
    """Inverse of `_to_channels`."""
    if p == 1:
        return x
    b, cpp, t, h, w = x.shape
    c = cpp // (p * p)
    x = x.reshape(b, c, p, p, t, h, w).permute(0, 1, 4, 5, 2, 6, 3)
    return x.reshape(b, c, t, h * p, w * p)


def _fold_time(x: torch.Tensor) -> torch.Tensor:
    """[B, C, 2t, H, W] -> [B, 2C, t, H, W]: each pair of frames side by side in channels."""
    b, c, t, h, w = x.shape
    return x.reshape(b, c, t // 2, 2, h, w).permute(0, 3, 1, 2, 4, 5).reshape(b, 2 * c, t // 2, h, w)


def _unfold_time(x: torch.Tensor) -> torch.Tensor:
    """Inverse of `_fold_time`: [B, 2C, t, H, W] -> [B, C, 2t, H, W]."""
    b, c2, t, h, w = x.shape
    return x.reshape(b, 2, c2 // 2, t, h, w).permute(0, 2, 3, 1, 4, 5).reshape(b, c2 // 2, 2 * t, h, w)


# Every resampling step below adds a parameter-free shortcut (average-pool down, repeat up) to its
# learned path, as in DC-AE (Chen et al. 2024, "residual autoencoding"): the untrained VAE already
# passes a blurred copy of the input through the latent and back, so training refines detail instead
# of first discovering how to move colour through eight resampling layers. Without them a small VAE
# sat at "predict grey" for hundreds of CPU steps.
class Downsample(nn.Module):
    """Halve H and W and, optionally, time (fold frame pairs into channels, first frame alone)."""

    def __init__(self, channels: int, temporal: bool, device=None, dtype=None):
        super().__init__()
        fk = dict(device=device, dtype=dtype)
        self.spatial = nn.Conv3d(channels, channels, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), **fk)
        self.temporal = temporal
        if temporal:
            self.time_conv = CausalConv3d(2 * channels, channels, (3, 1, 1), **fk)

    def forward(self, x: torch.Tensor, cache: StreamCache | None = None) -> torch.Tensor:
        b, c, t, h, w = x.shape
        # 2x2 average pool by reshape: avg_pool3d has no bf16 CPU kernel.
        x = self.spatial(x) + x.reshape(b, c, t, h // 2, 2, w // 2, 2).mean(dim=(4, 6))
        if not self.temporal:
            return x
        if _first_chunk(self, cache):
            # Frame 0 pairs with itself, so it becomes latent frame 0 alone: (x0, x0), (x1, x2), ...
            x = torch.cat([x[:, :, :1], x], dim=2)
        if x.shape[2] % 2:
            raise InputError(
                f"a temporal chunk reached a 2x downsample with {x.shape[2]} frames: the first chunk must hold "
                "1 + 4k frames and every later one a multiple of 4 (use CausalVideoVAE.encode's chunking)"
            )
        pair_mean = 0.5 * (x[:, :, 0::2] + x[:, :, 1::2])
        return self.time_conv(_fold_time(x), cache) + pair_mean


class Upsample(nn.Module):
    """Optionally double time (unfold channels into frame pairs, drop frame 0's twin), then double H and W."""

    def __init__(self, in_channels: int, out_channels: int, temporal: bool, device=None, dtype=None):
        super().__init__()
        fk = dict(device=device, dtype=dtype)
        self.temporal = temporal
        if temporal:
            self.time_conv = CausalConv3d(in_channels, 2 * in_channels, (3, 1, 1), **fk)
        # Nearest upsampling then a conv that also reduces channels: cheaper than convolving at full
        # width on the doubled grid.
        self.spatial = nn.Conv3d(in_channels, out_channels, (1, 3, 3), padding=(0, 1, 1), **fk)
        self.out_channels = out_channels
        self.shortcut = _shortcut_ok(in_channels, out_channels)

    def forward(self, x: torch.Tensor, cache: StreamCache | None = None) -> torch.Tensor:
        if self.temporal:
            x = _unfold_time(self.time_conv(x, cache) + x.repeat(1, 2, 1, 1, 1))  # + both frames = input
            if _first_chunk(self, cache):
                x = x[:, :, 1:]  # latent frame 0 decodes to video frame 0 alone
        x = x.repeat_interleave(2, dim=3).repeat_interleave(2, dim=4)
        out = self.spatial(x)
        return out + _resize_channels(x, self.out_channels) if self.shortcut else out


class _MidBlock(nn.Module):
    def __init__(self, channels: int, attention: bool, eps: float, device=None, dtype=None):
        super().__init__()
        fk = dict(device=device, dtype=dtype)
        self.res1 = ResBlock(channels, channels, eps, **fk)
        self.attn = FrameAttention(channels, eps, **fk) if attention else None
        self.res2 = ResBlock(channels, channels, eps, **fk)

    def forward(self, x, cache=None):
        x = self.res1(x, cache)
        if self.attn is not None:
            x = self.attn(x)
        return self.res2(x, cache)


class CausalEncoder(nn.Module):
    """Video `[B, 3, T, H, W]` -> `[B, 2 * latent_channels, t, h, w]` (mean and logvar stacked)."""

    def __init__(self, cfg: CausalVAEConfig, device=None, dtype=None):
        super().__init__()
        fk = dict(device=device, dtype=dtype)
        ch, eps = cfg.channels, cfg.norm_eps
        self.patch = cfg.patch
        self.conv_in = CausalConv3d(3 * cfg.patch ** 2, ch[0], 3, **fk)
        self.levels = nn.ModuleList()
        prev = ch[0]
        for i, c in enumerate(ch):
            level = nn.Module()
            level.blocks = nn.ModuleList(
                [ResBlock(prev if j == 0 else c, c, eps, **fk) for j in range(cfg.res_blocks)]
            )
            level.down = Downsample(c, cfg.temporal_downsample[i], **fk) if i < len(ch) - 1 else None
            self.levels.append(level)
            prev = c
        self.mid = _MidBlock(prev, cfg.mid_attention, eps, **fk)
        self.norm_out = ChannelRMSNorm(prev, eps, **fk)
        self.conv_out = CausalConv3d(prev, 2 * cfg.latent_channels, 3, **fk)
        self.latent_channels = cfg.latent_channels
        self.shortcut = _shortcut_ok(prev, cfg.latent_channels)

    def forward(self, x: torch.Tensor, cache: StreamCache | None = None) -> torch.Tensor:
        x = self.conv_in(_to_channels(x, self.patch), cache)
        for level in self.levels:
            for block in level.blocks:
                x = block(x, cache)
            if level.down is not None:
                x = level.down(x, cache)
        x = self.mid(x, cache)
        moments = self.conv_out(F.silu(self.norm_out(x)), cache)
        if self.shortcut:
            # Shortcut into the mean only: the features, channel-averaged down to the latent width.
            mean, logvar = moments.chunk(2, dim=1)
            moments = torch.cat([mean + _resize_channels(x, self.latent_channels), logvar], dim=1)
        return moments


class CausalDecoder(nn.Module):
    """Latent `[B, latent_channels, t, h, w]` -> video `[B, 3, T, H, W]` (unclamped)."""

    def __init__(self, cfg: CausalVAEConfig, device=None, dtype=None):
        super().__init__()
        fk = dict(device=device, dtype=dtype)
        ch, eps = cfg.channels, cfg.norm_eps
        n_blocks = cfg.res_blocks + cfg.decoder_extra_res_blocks
        self.conv_in = CausalConv3d(cfg.latent_channels, ch[-1], 3, **fk)
        self.shortcut = _shortcut_ok(cfg.latent_channels, ch[-1])
        self.mid = _MidBlock(ch[-1], cfg.mid_attention, eps, **fk)
        self.levels = nn.ModuleList()
        prev = ch[-1]
        for i in reversed(range(len(ch))):
            c = ch[i]
            level = nn.Module()
            level.blocks = nn.ModuleList(
                [ResBlock(prev if j == 0 else c, c, eps, **fk) for j in range(n_blocks)]
            )
            # Upsampling into level i-1 already switches to that level's width.
            level.up = Upsample(c, ch[i - 1], cfg.temporal_downsample[i - 1], **fk) if i > 0 else None
            self.levels.append(level)
            prev = ch[i - 1] if i > 0 else c
        self.norm_out = ChannelRMSNorm(ch[0], eps, **fk)
        self.patch = cfg.patch
        self.conv_out = CausalConv3d(ch[0], 3 * cfg.patch ** 2, 3, **fk)

    def forward(self, z: torch.Tensor, cache: StreamCache | None = None) -> torch.Tensor:
        x = self.conv_in(z, cache)
        if self.shortcut:
            x = x + _resize_channels(z, x.shape[1])  # the latent repeated up to the decoder width
        x = self.mid(x, cache)
        for level in self.levels:
            for block in level.blocks:
                x = block(x, cache)
            if level.up is not None:
                x = level.up(x, cache)
        return _to_space(self.conv_out(F.silu(self.norm_out(x)), cache), self.patch)


# ------------------------------------------------------------------------------------------------
# The VAE
# ------------------------------------------------------------------------------------------------
def compute_latent_stats(
    latents: torch.Tensor | Sequence[torch.Tensor], min_std: float = 1e-4
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (float32, `[C]`) of raw latents `[B, C, t, h, w]` (or a list of them).

    Feed the unnormalised means from `encode_distribution` over a representative set of clips, then
    pass the result to `set_latent_stats`.
    """
    if isinstance(latents, torch.Tensor):
        latents = [latents]
    if not latents:
        raise InputError("compute_latent_stats needs at least one latent tensor")
    c = latents[0].shape[1]
    flat = []
    for z in latents:
        if z.dim() != 5 or z.shape[1] != c:
            raise InputError(f"latents must all be [B, {c}, t, h, w], got shape {tuple(z.shape)}")
        flat.append(z.detach().float().transpose(0, 1).reshape(c, -1).cpu())
    allz = torch.cat(flat, dim=1)
    return allz.mean(dim=1), allz.std(dim=1, unbiased=False).clamp_min(min_std)


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Mean over elements of KL(N(mean, exp(logvar)) || N(0, 1)), in float32, for VAE training."""
    mean, logvar = mean.float(), logvar.float()
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()


class CausalVideoVAE(VideoVAE):
    """The pack's causal 3D VAE: `1 + 4k` frames at H x W -> `1 + k` latent frames at H/8 x W/8.

    `encode`/`decode` work on normalised latents (what the MMDiT sees); `encode_distribution` and
    `decode_raw` on raw ones, for training (reconstruction + KL). Inputs are moved to the VAE's
    device and dtype; gradients follow the caller's grad mode.
    """

    kind = "vae"  # weights-file kind (omnihuman_core.weights)

    def __init__(self, config: CausalVAEConfig | None = None, device=None, dtype=None):
        super().__init__()
        self.config = config = config or CausalVAEConfig()
        self.latent_channels = config.latent_channels
        self.temporal_factor = config.temporal_factor
        self.spatial_factor = config.spatial_factor
        self.encoder = CausalEncoder(config, device=device, dtype=dtype)
        self.decoder = CausalDecoder(config, device=device, dtype=dtype)
        # Per-channel normalisation of the latent; identity until set_latent_stats is called.
        # Buffers, so they travel in the state dict with the weights.
        c = config.latent_channels
        self.register_buffer("latent_mean", torch.zeros(c, device=device, dtype=dtype))
        self.register_buffer("latent_std", torch.ones(c, device=device, dtype=dtype))

    @classmethod
    def from_config(
        cls, config: CausalVAEConfig | Mapping[str, Any] | str, device=None, dtype=None
    ) -> "CausalVideoVAE":
        """Build from a config, its `to_dict()` form (e.g. a weights file's metadata) or a preset name."""
        if isinstance(config, str):
            config = CausalVAEConfig.preset(config)
        elif not isinstance(config, CausalVAEConfig):
            config = CausalVAEConfig.from_dict(config)
        return cls(config, device=device, dtype=dtype)

    # ---- device / dtype -------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.latent_mean.device

    @property
    def dtype(self) -> torch.dtype:
        return self.encoder.conv_in.weight.dtype

    # ---- normalisation ----------------------------------------------------------------------------
    def set_latent_stats(self, mean: torch.Tensor | Sequence[float], std: torch.Tensor | Sequence[float]) -> None:
        """Set the per-channel latent mean/std (`[C]` each) that `encode` removes and `decode` restores."""
        mean = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std = torch.as_tensor(std, dtype=torch.float32).flatten()
        c = self.latent_channels
        if mean.numel() != c or std.numel() != c:
            raise InputError(f"latent stats need {c} values each, got mean {mean.numel()} / std {std.numel()}")
        if not torch.isfinite(mean).all() or not (std > 0).all() or not torch.isfinite(std).all():
            raise InputError("latent stats must be finite and std strictly positive")
        with torch.no_grad():
            self.latent_mean.copy_(mean)
            self.latent_std.copy_(std)

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        view = (1, -1, 1, 1, 1)
        m = self.latent_mean.to(device=like.device, dtype=torch.float32).view(view)
        s = self.latent_std.to(device=like.device, dtype=torch.float32).view(view)
        return m, s

    def normalize(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw latent -> normalised latent (per channel, computed in fp32)."""
        m, s = self._stats(raw)
        return ((raw.float() - m) / s).to(raw.dtype)

    def denormalize(self, latent: torch.Tensor) -> torch.Tensor:
        """Normalised latent -> raw latent."""
        m, s = self._stats(latent)
        return (latent.float() * s + m).to(latent.dtype)

    # ---- chunked running ----------------------------------------------------------------------------
    @staticmethod
    def _chunks(n: int, first: int, step: int) -> list[tuple[int, int]]:
        bounds, start, end = [], 0, first
        while start < n:
            bounds.append((start, min(end, n)))
            start, end = end, end + step
        return bounds

    def _check_chunk(self, chunk_latent_frames: int | None) -> None:
        if chunk_latent_frames is not None and int(chunk_latent_frames) < 1:
            raise InputError(f"chunk_latent_frames must be >= 1 (or None for one pass), got {chunk_latent_frames}")

    # ---- training API ---------------------------------------------------------------------------------
    def encode_distribution(
        self, video: torch.Tensor, chunk_latent_frames: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Video -> raw (unnormalised) posterior `(mean, logvar)`, each `[B, C, t, h, w]`.

        `chunk_latent_frames=N` encodes N latent frames at a time (the first chunk 1 + 4(N-1) video
        frames, then 4N), bounding memory for long clips; by causality the result equals one pass.
        """
        self.check_video(video)
        self._check_chunk(chunk_latent_frames)
        video = video.to(device=self.device, dtype=self.dtype)
        if chunk_latent_frames is None:
            moments = self.encoder(video)
        else:
            n, tf = int(chunk_latent_frames), self.temporal_factor
            cache: StreamCache = {}
            bounds = self._chunks(video.shape[2], 1 + tf * (n - 1), tf * n)
            moments = torch.cat([self.encoder(video[:, :, a:b], cache) for a, b in bounds], dim=2)
        mean, logvar = moments.chunk(2, dim=1)
        return mean, logvar.clamp(*LOGVAR_RANGE)

    def decode_raw(self, raw_latent: torch.Tensor, chunk_latent_frames: int | None = None) -> torch.Tensor:
        """Raw (unnormalised) latent -> video, unclamped (for reconstruction losses)."""
        self.check_latent(raw_latent)
        self._check_chunk(chunk_latent_frames)
        z = raw_latent.to(device=self.device, dtype=self.dtype)
        if chunk_latent_frames is None:
            return self.decoder(z)
        n = int(chunk_latent_frames)
        cache: StreamCache = {}
        return torch.cat([self.decoder(z[:, :, a:b], cache) for a, b in self._chunks(z.shape[2], n, n)], dim=2)

    # ---- inference API ---------------------------------------------------------------------------------
    def encode(
        self,
        video: torch.Tensor,
        sample: bool = False,
        generator: torch.Generator | None = None,
        chunk_latent_frames: int | None = None,
    ) -> torch.Tensor:
        """Video `[B, 3, T, H, W]` in -1..1 -> normalised latent; the posterior mean unless `sample`."""
        mean, logvar = self.encode_distribution(video, chunk_latent_frames)
        z = mean
        if sample:
            # Noise for the whole latent at once, so chunked and one-pass sampling agree too.
            noise_device = generator.device if generator is not None else mean.device
            noise = torch.randn(mean.shape, generator=generator, device=noise_device, dtype=torch.float32)
            z = (mean.float() + torch.exp(0.5 * logvar.float()) * noise.to(mean.device)).to(mean.dtype)
        return self.normalize(z)

    def decode(self, latent: torch.Tensor, chunk_latent_frames: int | None = None) -> torch.Tensor:
        """Normalised latent `[B, C, t, h, w]` -> video `[B, 3, 1 + 4(t-1), 8h, 8w]` in -1..1."""
        self.check_latent(latent)
        return self.decode_raw(self.denormalize(latent), chunk_latent_frames).clamp(-1.0, 1.0)


def parameter_count(module: nn.Module) -> int:
    """Number of parameters (buffers excluded)."""
    return sum(p.numel() for p in module.parameters())


__all__ = [
    "CausalVAEConfig",
    "CausalVideoVAE",
    "CausalConv3d",
    "PRESETS",
    "compute_latent_stats",
    "gaussian_kl",
    "parameter_count",
    "LOGVAR_RANGE",
]
