"""Super-resolution: the paper's "separate super-resolution model of the same architecture" (the MMDiT
with the low-res latent as extra input channels), tiled video upscaling, and its training data and loss."""

from .model import PRESETS, Upscaler, UpscalerConfig, load_upscaler, read_upscaler, sample_latent, save_upscaler, sr_sigmas
from .tiling import Axis, TilePlan, axis_tiles, bicubic_upscale, plan_tiles, spatial_multiple, upscale_video

__all__ = [
    "PRESETS",
    "Axis",
    "TilePlan",
    "Upscaler",
    "UpscalerConfig",
    "axis_tiles",
    "bicubic_upscale",
    "load_upscaler",
    "read_upscaler",
    "plan_tiles",
    "sample_latent",
    "save_upscaler",
    "spatial_multiple",
    "sr_sigmas",
    "upscale_video",
]
