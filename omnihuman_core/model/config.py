"""MMDiT configuration: one dataclass whose defaults are all visible here, plus named presets.

The config is plain JSON (`to_dict` / `from_dict`) so it can live in a safetensors file's metadata.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from ..config import ModelConfig
from ..errors import InputError

AUDIO_MODES = ("branch", "cross_attention")


def default_rope_axes(head_dim: int) -> tuple[int, int, int]:
    """Wan's t/h/w split of the head dim (44/42/42 of 128), scaled to `head_dim`; every part even."""
    hw = 2 * (head_dim // 6)
    return (head_dim - 2 * hw, hw, hw)


@dataclass
class MMDiTConfig(ModelConfig):
    """Shape of the System 1 MMDiT. The defaults are the `demo` model (but `audio_subframes`, see there)."""

    LABEL: ClassVar[str] = "MMDiT"

    # Latent space: channels of the VAE latent (the model adds one mask channel on input).
    latent_channels: int = 16
    # Patch (t, h, w) in latent cells; (1, 2, 2) is what Wan / HunyuanVideo / Seaweed use.
    patch_size: tuple[int, int, int] = (1, 2, 2)
    hidden: int = 256
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    # Feature sizes of the conditions: built-in text encoder (256), mel front end (80 mels x 5 frames).
    text_dim: int = 256
    audio_dim: int = 400
    # "branch": the paper's symmetric audio branch in the joint attention.
    # "cross_attention": the paper's ablation, audio injected by a cross-attention from video.
    audio_mode: str = "branch"
    # Head-dim split over the (t, h, w) RoPE axes; None = default_rope_axes(head_dim).
    rope_axes: tuple[int, int, int] | None = None
    rope_theta: float = 10000.0
    # Audio tokens at the time of their own video frame within a latent frame (model/rope.py). Every preset
    # sets True; the False default is what files written before this option were trained with (all tokens
    # of a latent frame at one position), so they load and render as they were trained.
    audio_subframes: bool = False
    norm_eps: float = 1e-6
    # Timestep embedding: sinusoid of `timestep_scale * t` with `timestep_freq_dim` features.
    timestep_freq_dim: int = 256
    timestep_scale: float = 1000.0
    # Extra latent channels concatenated to `x` before patchify (`forward(..., cond=)`): 0 for System 1;
    # the super-resolution model (upscale/) feeds the low-res video's latent here.
    cond_channels: int = 0
    # Pooled text in the shared conditioning (SD3's MMDiT adds a pooled text vector to the timestep embedding
    # that drives every adaLN modulation): the masked mean of the text features, through an MLP whose output
    # layer starts at zero, added to the timestep vector when the prompt is not null. A global path for what
    # the whole clip should do, beside the per-token joint attention. False = timestep only (every file
    # written before this option).
    pooled_text: bool = False

    def __post_init__(self) -> None:
        self.patch_size = tuple(int(p) for p in self.patch_size)
        if self.rope_axes is not None:
            self.rope_axes = tuple(int(a) for a in self.rope_axes)
        self._validate()

    def _validate(self) -> None:
        problems = []
        if len(self.patch_size) != 3 or min(self.patch_size) < 1:
            problems.append(f"patch_size must be three positive ints (pt, ph, pw), got {self.patch_size}")
        for name in ("latent_channels", "hidden", "depth", "heads", "text_dim", "audio_dim", "timestep_freq_dim"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if isinstance(self.cond_channels, bool) or not isinstance(self.cond_channels, int) or self.cond_channels < 0:
            problems.append(f"cond_channels must be an integer >= 0, got {self.cond_channels!r}")
        if self.timestep_freq_dim % 2:
            problems.append(f"timestep_freq_dim must be even, got {self.timestep_freq_dim}")
        if self.heads >= 1 and self.hidden % self.heads:
            problems.append(f"hidden {self.hidden} is not divisible by heads {self.heads}")
        elif self.heads >= 1 and self.head_dim % 2:
            problems.append(f"head dim {self.head_dim} (hidden / heads) must be even for RoPE")
        if self.audio_mode not in AUDIO_MODES:
            problems.append(f"audio_mode must be one of {AUDIO_MODES}, got {self.audio_mode!r}")
        if self.mlp_ratio <= 0:
            problems.append(f"mlp_ratio must be > 0, got {self.mlp_ratio}")
        if self.rope_axes is not None and not problems:
            axes = self.rope_axes
            if len(axes) != 3 or sum(axes) != self.head_dim or any(a < 0 or a % 2 for a in axes):
                problems.append(
                    f"rope_axes {axes} must be three even ints summing to the head dim {self.head_dim} "
                    f"(or None for the default {default_rope_axes(self.head_dim)})"
                )
        if problems:
            raise InputError("invalid MMDiTConfig: " + "; ".join(problems))

    # Derived sizes, never stored.
    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def mlp_hidden(self) -> int:
        return int(self.hidden * self.mlp_ratio)

    @property
    def resolved_rope_axes(self) -> tuple[int, int, int]:
        return self.rope_axes if self.rope_axes is not None else default_rope_axes(self.head_dim)

    @property
    def in_channels(self) -> int:
        """Channels of the model input `x`: latent channels + the mask channel."""
        return self.latent_channels + 1

    @property
    def embed_channels(self) -> int:
        """Channels the patch embedding reads: `x`'s channels plus the cond channels."""
        return self.in_channels + self.cond_channels

    @property
    def patch_volume(self) -> int:
        pt, ph, pw = self.patch_size
        return pt * ph * pw

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; rope_axes is written resolved so a saved model never depends on the default rule."""
        d = dataclasses.asdict(self)
        d["patch_size"] = list(self.patch_size)
        d["rope_axes"] = list(self.resolved_rope_axes)
        return d




# Presets hold only what differs from the dataclass defaults (= demo).
PRESETS: dict[str, dict[str, Any]] = {
    # Unit tests: ~0.4 M parameters, runs in milliseconds.
    "tiny": dict(latent_channels=4, hidden=64, depth=2, heads=2, text_dim=32, audio_dim=24, audio_subframes=True),
    # The shipped demo model: trained on the synthetic world on a 2-core CPU (docs/TRAINING.md). 128x128 px
    # -> 16x16 latents -> 64 tokens per latent frame; ~13 M parameters (26 MB in fp16, so the four demo
    # files fit the 40 MB budget), ~0.3 s per training sample (forward + backward) at 33 frames.
    # Width 256 x depth 4 rather than 384 x 6: 3.4x fewer parameters for the same wall time per sample
    # would be ideal, but per-op overheads dominate at this size (192 x 4 is no faster than 256 x 4).
    "demo": dict(audio_subframes=True),
    # Paper scale, Seaweed-7B-like trunk (hidden 3584, 32 layers, head dim 128); built only on the meta
    # device to report parameters and FLOPs. Text: umT5-XXL features (4096). Audio: wav2vec2-large
    # features (1024) with a 5-frame window per video frame -> 5120 per audio token, 4 tokens per latent frame.
    # ~22 B parameters: three full branches of ~7.3 B each, a third of it the per-branch adaLN Linears
    # (6 * hidden^2 per branch and layer). A 7 B model at this width must share weights between streams
    # or layers, which the symmetric-branch design here does not. FLOPs barely change: video tokens
    # dominate and the modulation runs once per sample, not per token.
    "base": dict(
        latent_channels=16,
        hidden=3584,
        depth=32,
        heads=28,
        text_dim=4096,
        audio_dim=1024 * 5,
        audio_subframes=True,
    ),
}
