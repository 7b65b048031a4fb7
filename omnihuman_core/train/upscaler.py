"""Training the 2x super-resolution model: upscale/training.py's cached crop pairs and loss in the generic Trainer.

The data (`build_sr_cache`: random high-res crops and their area-downsampled, bicubic-upscaled low-res
versions, both VAE-encoded as inference does), the batches (`SRBatches`) and the loss (`sr_loss`) live
with the model in `upscale/`; this module only runs them with AdamW, EMA, resumable checkpoints and a
time budget, and exports the EMA weights (kind "upscaler") with the validation it measured.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable

import torch

from . import distributed as D
from .loop import TrainConfig, Trainer, TrainResult


def train_upscaler(
    data_dir,
    vae,
    out_path,
    work_dir,
    config: TrainConfig,
    *,
    preset: str = "sr-demo",
    samples: int = 256,
    crop: int = 128,
    frames: int = 17,
    split: str | None = "train",
    max_minutes: float | None = None,
    deadline: float | None = None,
    dist: D.DistInfo | None = None,
    export_dtype: torch.dtype | None = torch.float16,
    extra: dict | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[TrainResult, Path | None]:
    """Train (resuming from `work_dir`) and write `out_path`; None as the path while paused / interrupted.

    `deadline` (a `time.time()`): training time is cut so that it ends by then, so a caller with a wall-clock
    budget (`train demo`) also pays for building the crop cache out of it.
    """
    from ..upscale import Upscaler
    from ..upscale.training import SRBatches, build_sr_cache, sr_loss, sr_trainable_parameters, sr_validation
    from .data import load_vae

    dist = dist or D.DistInfo(device=torch.device("cpu"))
    say = log if log is not None else (lambda m: D.is_main_print(m, dist))
    work_dir = Path(work_dir)
    cache_path = work_dir / "sr_cache.safetensors"
    vae_module, vae_fp = load_vae(vae, device=dist.device)
    if dist.is_main:
        build_sr_cache(data_dir, vae_module, samples=samples, crop=crop, frames=frames, split=split, seed=config.seed,
                       cache_path=cache_path, progress=say)
    D.barrier(dist)
    cache = build_sr_cache(data_dir, vae_module, samples=samples, crop=crop, frames=frames, split=split,
                           seed=config.seed, cache_path=cache_path)  # now a load of the file rank 0 wrote
    del vae_module
    if deadline is not None:
        left = (deadline - time.time()) / 60
        config = dataclasses.replace(config, minutes=round(max(min(config.minutes or left, left), 0.05), 3))
    torch.manual_seed(config.seed)
    upscaler = Upscaler.from_config(preset, device=dist.device)
    params = sr_trainable_parameters(upscaler)
    # The loss calls `velocity`, not `forward`, so no DDP wrapper: the Trainer averages the gradients.
    # Each rank draws its own order (seed + rank) from the shared cache.
    batches = SRBatches(cache, config.batch_size, config.seed + 7919 * dist.rank)

    def loss_fn(batch, generator):
        return sr_loss(upscaler, batch, generator)

    run_info = {"model": "upscaler", "config": upscaler.config.to_dict(), "vae": vae_fp, "samples": samples,
                "crop": crop, "frames": frames, "data": str(Path(data_dir).resolve()), "world": dist.world}
    trainer = Trainer({"upscaler": upscaler}, params, loss_fn, batches, config, work_dir, run_info=run_info,
                      dist=dist, log=say)
    trainer.resume()
    say(f"upscaler {preset}: {sum(p.numel() for p in params) / 1e6:.2f} M trained parameters, {len(cache)} crop "
        f"pairs, batch {config.batch_size} x {dist.world}")
    result = trainer.run(max_minutes=max_minutes)
    if not result.done:
        return result, None
    ema = trainer.ema_module("upscaler").eval()
    validation = sr_validation(ema, cache, max_samples=8, seed=config.seed)
    say(f"upscaler validation (latent MSE; 'input' = the low-res latent itself): {validation}")
    path = trainer.export(out_path, "upscaler", "upscaler", upscaler.config.to_dict(),
                          extra={"validation": validation, "train_config": config.to_dict(), **(extra or {})},
                          dtype=export_dtype)
    if dist.is_main:
        say(f"wrote {path} ({result.step} steps, {result.minutes:.1f} min, final loss {result.final_loss})")
    return result, path
