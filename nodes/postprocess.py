"""Post-processing: the super-resolution model over a whole video, tile by tile."""

from __future__ import annotations

import torch

from omnihuman_core.errors import Cancelled, InputError

from . import _comfy
from .models import core_vae_adapter
from .sampling import SEED_MAX
from .types import MODEL, UPSCALER, category, image_to_video, video_to_image


class OmniHumanUpscaler:
    DESCRIPTION = ("Upscales a video with the super-resolution model (the paper's upscaler of the same MMDiT "
                   "architecture, conditioned on the low-res video's latent): overlapping tiles in time and space, "
                   "cross-faded, one noise for the whole video so the tiling does not show. Any frame count and "
                   "size.")
    CATEGORY = category("postprocess")
    FUNCTION = "upscale"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("The upscaled frames (the upscaler's scale, 2x for the demo model).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "upscaler": (UPSCALER, {"tooltip": "The super-resolution model (OmniHuman Upscaler Loader)."}),
                "images": ("IMAGE", {"tooltip": "The video's frames, e.g. from the Segment Chainer."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": SEED_MAX, "tooltip": "Seed of the noise."}),
                "steps": ("INT", {"default": 0, "min": 0, "max": 100,
                                  "tooltip": "Denoising steps; 0 = the upscaler's own setting."}),
                "strength": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.05,
                                       "tooltip": "How much is re-generated: the flow time the low-res video is "
                                                  "noised to (1 = from pure noise); 0 = the upscaler's own setting."}),
                "tile_frames": ("INT", {"default": 33, "min": 0, "max": 1025,
                                        "tooltip": "Frames per tile (1 + 4k); 0 = all frames in one tile."}),
                "tile_overlap_frames": ("INT", {"default": 8, "min": 0, "max": 512,
                                                "tooltip": "Frames consecutive tiles share (a multiple of 4)."}),
                "tile_size": ("INT", {"default": 128, "min": 0, "max": 4096,
                                      "tooltip": "Tile side in low-res pixels; 0 = the whole frame in one tile."}),
                "tile_overlap": ("INT", {"default": 16, "min": 0, "max": 2048,
                                         "tooltip": "Pixels neighbouring tiles share, cross-faded."}),
            },
            "optional": {
                "model": (MODEL, {"tooltip": "An OmniHuman model whose VAE the upscaler works in (the demo "
                                             "upscaler: the demo model's VAE)."}),
                "vae": ("VAE", {"tooltip": "A ComfyUI video VAE instead, for upscalers trained on its latents; "
                                           "used when connected."}),
            },
        }

    def upscale(self, upscaler, images, seed, steps, strength, tile_frames, tile_overlap_frames, tile_size,
                tile_overlap, model=None, vae=None):
        from omnihuman_core.upscale import upscale_video

        if vae is not None:
            video_vae = core_vae_adapter(vae)
        elif model is not None:
            video_vae = model.vae
        else:
            raise InputError("the OmniHuman Upscaler needs the VAE its model works in: connect the OmniHuman model "
                             "(its VAE is used) or a ComfyUI VAE")
        video = image_to_video(images)
        bar = _comfy.Progress(1)
        upscaler.load()
        try:
            with torch.inference_mode():
                out = upscale_video(upscaler.module, video_vae, video, steps=int(steps) or None, seed=int(seed),
                                    tile_frames=int(tile_frames), tile_overlap_frames=int(tile_overlap_frames),
                                    tile_size=int(tile_size), tile_overlap=int(tile_overlap),
                                    strength=float(strength) or None, progress=lambda done, total: bar.update(done, total),
                                    cancel=_comfy.interrupted)
        except Cancelled as e:
            _comfy.raise_interrupted(e)
        return (video_to_image(out),)
