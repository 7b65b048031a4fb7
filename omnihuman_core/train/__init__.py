"""Training: dataset scanning and caches (data), the generic loop (loop), torchrun (distributed), the VAE
(vae), the built-in text encoder's pretraining (text), the MMDiT objective and warm-up stages (objective,
stages), the MMDiT stage runs (mmdit), the upscaler (upscaler), and the one command that rebuilds the demo
models (demo). docs/TRAINING.md walks through them.

Importing this package is cheap (the CLI registers `train` from it); the submodules import torch.
"""

_EXPORTS = {
    "TrainConfig": ".loop", "Trainer": ".loop", "TrainResult": ".loop", "TrainingDiverged": ".loop",
    "ClipInfo": ".data", "scan_dataset": ".data", "VideoWindows": ".data", "build_latent_cache": ".data",
    "LatentCache": ".data", "LatentBatches": ".data",
    "VAESettings": ".vae", "vae_loss": ".vae", "train_vae": ".vae",
    "TextSettings": ".text", "train_text_encoder": ".text", "text_feature_spread": ".text",
    "MMDiTSettings": ".mmdit", "train_mmdit": ".mmdit",
    "train_upscaler": ".upscaler", "train_demo": ".demo",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
