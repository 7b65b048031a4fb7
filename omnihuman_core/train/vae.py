"""Training the causal video VAE, the latent space System 1 works in.

Loss (`vae_loss`) = L1 reconstruction + an L1 on frame-to-frame differences, so the decoder keeps motion
instead of averaging it away (the mouth and the hands are small and move), + a small KL to N(0, 1) that
keeps the posterior well-conditioned without blurring. The latent is sampled from the posterior (the
decoder must tolerate the noise the MMDiT's outputs carry). Trained on random crops of short windows:
the VAE is convolutional plus per-frame attention at the latent resolution, so crops teach the same local
statistics at a fraction of the cost, which is what makes it trainable on a CPU. Afterwards the EMA
weights' per-channel latent mean / std are measured on full-size windows (`compute_latent_stats`) and
stored in the VAE (`set_latent_stats`), so the MMDiT sees unit-variance latents.

The defaults: 9-frame windows, 64 px crops,
lr 4e-4 with 100 warm-up steps, KL weight 1e-6, motion weight 0.5.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from ..errors import InputError
from . import distributed as D
from .data import VideoWindows, scan_dataset
from .loop import TrainConfig, Trainer, TrainResult


@dataclass
class VAESettings:
    """What a VAE run trains on and with (its identity in the checkpoint)."""

    preset: str = "demo"
    frames: int = 9  # 1 + 4k video frames per training window
    crop: int = 64  # square crop side in px (a multiple of the VAE's spatial factor)
    kl_weight: float = 1e-6
    motion_weight: float = 0.5
    max_clips: int = 400  # clips decoded into RAM (uint8; 128x128x121 is 6 MB each)
    split: str | None = "train"
    # Share of crops placed over a face box (clips with labels.npz face_box); see VideoWindows.
    face_crops: float = 0.0
    stats_windows: int = 24  # full-size windows for the latent statistics
    stats_frames: int = 17


def vae_loss(vae, video: torch.Tensor, generator: torch.Generator | None = None, *, kl_weight: float = 1e-6,
             motion_weight: float = 0.5) -> tuple[torch.Tensor, dict[str, float]]:
    """(loss, stats) for video `[B, 3, T, H, W]` in -1..1: sampled posterior -> decode -> L1 + motion L1 + KL."""
    from ..vae.causal3d import gaussian_kl

    video = video.to(device=vae.device, dtype=vae.dtype)
    mean, logvar = vae.encode_distribution(video)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    noise = torch.randn(mean.shape, generator=generator, device=gen_device, dtype=torch.float32).to(mean.device)
    z = (mean.float() + noise * (0.5 * logvar.float()).exp()).to(mean.dtype)
    recon = vae.decode_raw(z).float()
    video = video.float()
    l1 = (recon - video).abs().mean()
    if video.shape[2] > 1:
        motion = ((recon[:, :, 1:] - recon[:, :, :-1]) - (video[:, :, 1:] - video[:, :, :-1])).abs().mean()
    else:
        motion = recon.new_zeros(())
    kl = gaussian_kl(mean, logvar)
    loss = l1 + motion_weight * motion + kl_weight * kl
    return loss, {"loss": float(loss.detach()), "l1": float(l1.detach()), "motion": float(motion.detach()),
                  "kl": float(kl.detach())}


@torch.no_grad()
def finish_vae(vae, windows: VideoWindows, settings: VAESettings, seed: int) -> dict[str, float]:
    """Set the latent statistics of (EMA) `vae` from full-size windows; returns the reconstruction check."""
    from ..vae.causal3d import compute_latent_stats

    vae.eval()
    samples = windows.full_windows(settings.stats_windows + 1, settings.stats_frames, seed)
    means = [vae.encode_distribution(v)[0] for v in samples[:-1]]
    mu, sd = compute_latent_stats(means)
    vae.set_latent_stats(mu, sd)
    held = samples[-1].to(device=vae.device, dtype=vae.dtype)
    latent = vae.encode(held)
    recon = vae.decode(latent).float()
    return {"recon_l1_full_window": round(float((recon - held.float()).abs().mean()), 5),
            "latent_std_after_norm": round(float(latent.float().std()), 4)}


def train_vae(
    data_dir,
    out_path,
    work_dir,
    settings: VAESettings | None = None,
    config: TrainConfig | None = None,
    *,
    max_minutes: float | None = None,
    device=None,
    dist: D.DistInfo | None = None,
    export_dtype: torch.dtype | None = torch.float16,
    extra: dict | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[TrainResult, Path | None]:
    """Train (resuming from `work_dir`), then set the latent statistics and write `out_path` (kind "vae").

    Returns the run's result and the written file (None while the run is only paused / interrupted).
    """
    from ..vae import CausalVAEConfig, CausalVideoVAE
    from ..weights import save_safetensors

    settings = settings or VAESettings()
    config = config or TrainConfig(lr=4e-4, warmup=100, minutes=15.0, batch_size=4, ema_decay=0.999)
    dist = dist or D.DistInfo(device=torch.device(device or "cpu"))
    say = log if log is not None else (lambda m: D.is_main_print(m, dist))
    vae_config = CausalVAEConfig.preset(settings.preset)
    if settings.crop % vae_config.spatial_factor:
        raise InputError(f"crop {settings.crop} must be a multiple of the VAE's spatial factor {vae_config.spatial_factor}")
    if settings.frames < 1 or (settings.frames - 1) % vae_config.temporal_factor:
        raise InputError(f"frames must be 1 + {vae_config.temporal_factor}k (5, 9, 17, ...), got {settings.frames}")
    clips = scan_dataset(data_dir, settings.split, need_audio=False, need_caption=False, min_frames=settings.frames,
                         max_clips=settings.max_clips, seed=config.seed, log=say if dist.is_main else None)
    torch.manual_seed(config.seed)
    vae = CausalVideoVAE(vae_config, device=dist.device)
    # The loss calls encode_distribution / decode_raw, not forward, so no DDP wrapper: the Trainer averages
    # the gradients of unwrapped modules itself.
    windows = VideoWindows(clips, frames=settings.frames, crop=settings.crop, batch_size=config.batch_size,
                           seed=config.seed, rank=dist.rank, world=dist.world, face_crops=settings.face_crops,
                           log=say if dist.is_main else None)
    run_info = {"model": "vae", "vae_config": vae_config.to_dict(), "settings": asdict(settings),
                "data": str(Path(data_dir).resolve()), "world": dist.world}
    loss_fn = functools.partial(_loss, vae, kl_weight=settings.kl_weight, motion_weight=settings.motion_weight)
    trainer = Trainer({"vae": vae}, vae.parameters(), loss_fn, windows, config, work_dir, run_info=run_info,
                      dist=dist, log=say)
    trainer.resume()
    n_params = sum(p.numel() for p in vae.parameters())
    say(f"VAE {settings.preset}: {n_params / 1e6:.2f} M parameters, {len(windows.videos)} clips, "
        f"{settings.frames} frames x {settings.crop} px crops, batch {config.batch_size} x {dist.world}")
    result = trainer.run(max_minutes=max_minutes)
    if not result.done:
        return result, None
    ema = trainer.ema_module("vae")
    check = finish_vae(ema, windows, settings, config.seed + 7)
    written = None
    if dist.is_main:
        state = ema.state_dict()
        if export_dtype is not None:
            state = {k: v.to(export_dtype) if v.is_floating_point() else v for k, v in state.items()}
        record = {"steps": result.step, "minutes": result.minutes, "final_loss": result.final_loss, **check,
                  "settings": asdict(settings), "train_config": config.to_dict()}
        written = save_safetensors(out_path, state, "vae", vae_config.to_dict(),
                                   extra={"training": record, **(extra or {})})
        say(f"wrote {written}: {json.dumps(record)}")
    D.barrier(dist)
    return result, written


def _loss(vae, batch, generator, *, kl_weight, motion_weight):
    return vae_loss(vae, batch, generator, kl_weight=kl_weight, motion_weight=motion_weight)
