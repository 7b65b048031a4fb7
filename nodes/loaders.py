"""Loader nodes: the System 1 model (MMDiT + VAE + text encoder) and the super-resolution model."""

from __future__ import annotations

from .models import files_of_kind, load_model, load_upscaler, resolve_model_file
from .types import MODEL, UPSCALER, category

DEMO_MODEL = "demo/mmdit.safetensors"
DEMO_VAE = "demo/vae.safetensors"
DEMO_TEXT = "demo/text_encoder.safetensors"
DEMO_UPSCALER = "demo/upscaler.safetensors"
WEIGHT_DTYPES = ["auto", "fp32", "fp16", "bf16"]


class OmniHumanModelLoader:
    DESCRIPTION = ("Loads System 1: the MMDiT, its video VAE and its text encoder (files in the 'omnihuman' model "
                   "folder: ComfyUI/models/omnihuman/ and the pack's models/). The model file carries its native "
                   "render settings (fps, segment length, resolution, steps), which other nodes use as defaults.")
    CATEGORY = category("loaders")
    FUNCTION = "load"
    RETURN_TYPES = (MODEL,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The OmniHuman model: MMDiT, VAE, text encoder and its render settings.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model_name": (files_of_kind("mmdit", DEMO_MODEL), {
                    "default": DEMO_MODEL,
                    "tooltip": "The MMDiT (.safetensors in the 'omnihuman' model folder). demo/mmdit.safetensors is "
                               "the pack's small demo model."}),
                "vae_name": (files_of_kind("vae", DEMO_VAE), {
                    "default": DEMO_VAE,
                    "tooltip": "The video VAE the MMDiT was trained with (ignored when a VAE is connected)."}),
                "text_encoder_name": (files_of_kind("text_encoder", DEMO_TEXT), {
                    "default": DEMO_TEXT,
                    "tooltip": "The text encoder the MMDiT was trained with (ignored when a CLIP is connected)."}),
                "weight_dtype": (WEIGHT_DTYPES, {
                    "default": "auto",
                    "tooltip": "Precision of the MMDiT's weights. auto: ComfyUI's choice for your GPU (fp32 on CPU); "
                               "weights your device cannot compute in are cast on the fly."}),
            },
            "optional": {
                "vae": ("VAE", {
                    "tooltip": "A ComfyUI video VAE (e.g. Wan 2.1) to use instead of vae_name, for models trained "
                               "on its latents (raw, unnormalised latents are passed to the model)."}),
                "clip": ("CLIP", {
                    "tooltip": "A ComfyUI text encoder (e.g. umT5) to use instead of text_encoder_name, for models "
                               "trained with it (its per-token conditioning is the text branch's input)."}),
            },
        }

    def load(self, model_name, vae_name, text_encoder_name, weight_dtype, vae=None, clip=None):
        expected = [DEMO_MODEL, DEMO_VAE, DEMO_TEXT]
        model_path = resolve_model_file(model_name, "model file", expected)
        vae_path = None if vae is not None else resolve_model_file(vae_name, "VAE file", expected)
        text_path = None if clip is not None else resolve_model_file(text_encoder_name, "text encoder file", expected)
        return (load_model(model_path, vae_path, text_path, weight_dtype, core_vae=vae, core_clip=clip),)


class OmniHumanUpscalerLoader:
    DESCRIPTION = ("Loads the super-resolution model (the paper's separate upscaler of the same MMDiT "
                   "architecture) from the 'omnihuman' model folder.")
    CATEGORY = category("loaders")
    FUNCTION = "load"
    RETURN_TYPES = (UPSCALER,)
    RETURN_NAMES = ("upscaler",)
    OUTPUT_TOOLTIPS = ("The upscaler, for the OmniHuman Upscaler node.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "upscaler_name": (files_of_kind("upscaler", DEMO_UPSCALER), {
                    "default": DEMO_UPSCALER,
                    "tooltip": "The upscaler (.safetensors in the 'omnihuman' model folder). "
                               "demo/upscaler.safetensors is the pack's 2x demo upscaler."}),
            },
        }

    def load(self, upscaler_name):
        path = resolve_model_file(upscaler_name, "upscaler file", [DEMO_UPSCALER])
        return (load_upscaler(path),)

