"""Video VAEs: the `VideoVAE` interface and the pack's own causal 3D VAE (4x temporal, 8x spatial)."""

from .base import VideoVAE
from .causal3d import (
    PRESETS,
    CausalVAEConfig,
    CausalVideoVAE,
    compute_latent_stats,
    gaussian_kl,
    parameter_count,
)

__all__ = [
    "VideoVAE",
    "CausalVAEConfig",
    "CausalVideoVAE",
    "PRESETS",
    "compute_latent_stats",
    "gaussian_kl",
    "parameter_count",
]
