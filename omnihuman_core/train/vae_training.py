"""Training the causal video VAE (the latent space System 1 works in).

Loss = L1 reconstruction + an L1 on frame-to-frame differences (so the decoder keeps motion instead of
averaging it away: the mouth and the hands are small and move) + a small KL to N(0, 1) that keeps the
posterior well-conditioned without blurring. Trained on random spatial crops of short windows: the VAE is
convolutional (plus per-frame attention in the middle block at the latent resolution), so crops teach the
same local statistics at a fraction of the cost, which is what makes it trainable on a CPU. The latent
statistics (per-channel mean/std the MMDiT sees) are then measured on full-size windows.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError


@dataclass
class VAETrainConfig:
    preset: str = "demo"
    frames: int = 9  # 1 + 4k video frames per training window
    crop: int = 64  # square crop side in pixels (multiple of the VAE's spatial factor)
    batch_size: int = 4
    lr: float = 4e-4
    warmup: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    kl_weight: float = 1e-6
    motion_weight: float = 0.5
    max_clips: int = 400  # clips decoded into RAM (uint8)
    steps: int = 0  # 0 = until the time budget
    minutes: float = 15.0
    ckpt_every: int = 200
    log_every: int = 25
    seed: int = 0
    stats_windows: int = 24  # full-size 17-frame windows for the latent statistics

    def validate(self) -> None:
        problems = []
        if self.frames < 1 or (self.frames - 1) % 4:
            problems.append(f"frames must be 1 + 4k, got {self.frames}")
        if self.crop < 8 or self.crop % 8:
            problems.append(f"crop must be a positive multiple of 8, got {self.crop}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1, got {self.batch_size}")
        if self.steps <= 0 and self.minutes <= 0:
            problems.append("give a positive --steps or --minutes")
        if problems:
            raise InputError("VAE training: " + "; ".join(problems))


def list_clip_videos(data_dir: str | os.PathLike, split: str = "train") -> list[Path]:
    """The clips' video files: index.json's split when there is one, else every folder holding a video.mp4."""
    root = Path(data_dir)
    if not root.is_dir():
        raise InputError(f"dataset folder {root} does not exist")
    index = root / "index.json"
    if index.exists():
        data = json.loads(index.read_text())
        entries = data.get("splits", {}).get(split, [])
        paths = [root / e["path"] / "video.mp4" for e in entries]
    else:
        paths = sorted(root.rglob("video.mp4"))
    present = [p for p in paths if p.exists()]
    missing = [str(p.parent) for p in paths if not p.exists()]
    if missing:
        print(f"warning: {len(missing)} clip folder(s) without video.mp4 skipped, e.g. {missing[:3]}", flush=True)
    if not present:
        raise InputError(f"no clips with a video.mp4 found in {root} (split {split!r})")
    return present


def load_clips(paths: list[Path], max_clips: int, min_frames: int, seed: int) -> list[np.ndarray]:
    """Decode up to `max_clips` videos (uint8 [T, H, W, 3]); unreadable or too-short ones are named and skipped."""
    from ..media import read_video_frames

    order = list(paths)
    random.Random(seed).shuffle(order)
    clips, shape = [], None
    for p in order:
        if len(clips) >= max_clips:
            break
        try:
            frames = read_video_frames(p)
        except Exception as e:  # a broken file must not stop training on the rest
            print(f"warning: skipped {p}: {e}", flush=True)
            continue
        if frames.shape[0] < min_frames:
            print(f"warning: skipped {p}: {frames.shape[0]} frames < {min_frames}", flush=True)
            continue
        if shape is None:
            shape = frames.shape[1:]
        elif frames.shape[1:] != shape:
            print(f"warning: skipped {p}: frame size {frames.shape[1:3]} differs from {shape[:2]}", flush=True)
            continue
        clips.append(frames)
    if not clips:
        raise InputError("no usable clips (all unreadable, too short or of a different size); see the warnings")
    return clips


def sample_batch(clips, cfg: VAETrainConfig, rng: np.random.Generator) -> torch.Tensor:
    """[B, 3, frames, crop, crop] in -1..1 from random clips, windows, crops and horizontal flips."""
    out = []
    for _ in range(cfg.batch_size):
        v = clips[rng.integers(len(clips))]
        T, H, W, _ = v.shape
        s = rng.integers(T - cfg.frames + 1)
        c = min(cfg.crop, H, W)
        y, x = rng.integers(H - c + 1), rng.integers(W - c + 1)
        w = v[s:s + cfg.frames, y:y + c, x:x + c]
        if rng.random() < 0.5:
            w = w[:, :, ::-1]
        out.append(torch.from_numpy(np.ascontiguousarray(w)))
    batch = torch.stack(out).permute(0, 4, 1, 2, 3).float()
    return batch / 127.5 - 1.0


def vae_loss(vae, video: torch.Tensor, cfg: VAETrainConfig, generator: torch.Generator):
    """(loss, stats) for one batch: sampled posterior -> decode -> L1 + motion L1 + KL."""
    from ..vae.causal3d import gaussian_kl

    mean, logvar = vae.encode_distribution(video)
    noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device)
    z = mean + noise * (0.5 * logvar).exp()
    recon = vae.decode_raw(z)
    l1 = (recon - video).abs().mean()
    motion = ((recon[:, :, 1:] - recon[:, :, :-1]) - (video[:, :, 1:] - video[:, :, :-1])).abs().mean()
    kl = gaussian_kl(mean, logvar)
    loss = l1 + cfg.motion_weight * motion + cfg.kl_weight * kl
    return loss, {"loss": loss.item(), "l1": l1.item(), "motion": motion.item(), "kl": kl.item()}


def _lr(cfg: VAETrainConfig, step: int) -> float:
    return cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup))


def _save_ckpt(path: Path, vae, opt, step: int, rng: np.random.Generator, gen: torch.Generator, cfg) -> None:
    tmp = path.with_suffix(".tmp")
    # Our own checkpoint, read back with weights_only=True (no arbitrary unpickling).
    torch.save({"model": vae.state_dict(), "opt": opt.state_dict(), "step": step,
                "rng": json.dumps(rng.bit_generator.state), "gen": gen.get_state(),
                "config": json.dumps(asdict(cfg))}, tmp)
    os.replace(tmp, path)


def train_vae(data_dir, out_path, work_dir, cfg: VAETrainConfig, device="cpu") -> dict:
    """Train (resuming from `work_dir/vae.ckpt` when present), set the latent statistics, write `out_path`."""
    from ..vae import CausalVideoVAE
    from ..vae.causal3d import compute_latent_stats
    from ..weights import save_safetensors

    cfg.validate()
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    paths = list_clip_videos(data_dir)
    torch.manual_seed(cfg.seed)
    vae = CausalVideoVAE.from_config(cfg.preset, device=device)
    if cfg.crop % vae.spatial_factor:
        raise InputError(f"crop {cfg.crop} must be a multiple of the VAE's spatial factor {vae.spatial_factor}")
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    step = 0
    ckpt = work / "vae.ckpt"
    if ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        saved = json.loads(state["config"])
        mismatch = {k: (saved.get(k), v) for k, v in asdict(cfg).items()
                    if k not in ("steps", "minutes", "ckpt_every", "log_every") and saved.get(k) != v}
        if mismatch:
            raise InputError(f"{ckpt} was trained with different settings {mismatch} (saved, now); "
                             "use a new --work folder or the same settings")
        vae.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step = int(state["step"])
        rng.bit_generator.state = json.loads(state["rng"])
        gen.set_state(state["gen"])
        print(f"resumed from {ckpt} at step {step}", flush=True)
    clips = load_clips(paths, cfg.max_clips, cfg.frames, cfg.seed)
    print(f"VAE {cfg.preset}: {sum(p.numel() for p in vae.parameters()) / 1e6:.2f} M params, {len(clips)} clips "
          f"in RAM, {cfg.frames} frames x {cfg.crop}px crops, batch {cfg.batch_size}", flush=True)
    t0 = time.time()
    log = open(work / "vae_log.jsonl", "a")
    vae.train()
    last = {}
    while True:
        if cfg.steps > 0 and step >= cfg.steps:
            break
        if cfg.steps <= 0 and time.time() - t0 > cfg.minutes * 60:
            break
        for g in opt.param_groups:
            g["lr"] = _lr(cfg, step)
        video = sample_batch(clips, cfg, rng).to(device)
        loss, last = vae_loss(vae, video, cfg, gen)
        if not math.isfinite(last["loss"]):
            raise RuntimeError(f"VAE loss became {last['loss']} at step {step}; lower --lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        if step % cfg.log_every == 0:
            rec = {"step": step, "minutes": round((time.time() - t0) / 60, 2), **{k: round(v, 5) for k, v in last.items()}}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(json.dumps(rec), flush=True)
        if step % cfg.ckpt_every == 0:
            _save_ckpt(ckpt, vae, opt, step, rng, gen, cfg)
    _save_ckpt(ckpt, vae, opt, step, rng, gen, cfg)
    log.close()
    # Latent statistics on full-size windows, so the MMDiT sees unit-variance latents.
    vae.eval()
    stat_rng = np.random.default_rng(cfg.seed + 7)
    full = VAETrainConfig(**{**asdict(cfg), "crop": max(c.shape[1] for c in clips), "batch_size": 1, "frames": 17
                             if all(c.shape[0] >= 17 for c in clips) else cfg.frames})
    means = []
    with torch.no_grad():
        for _ in range(cfg.stats_windows):
            mean, _ = vae.encode_distribution(sample_batch(clips, full, stat_rng).to(device))
            means.append(mean)
        mu, sd = compute_latent_stats(means)
        vae.set_latent_stats(mu, sd)
        # Held-out style check on full windows: reconstruction L1 in -1..1 units.
        video = sample_batch(clips, full, stat_rng).to(device)
        recon_l1 = (vae.decode(vae.encode(video)) - video).abs().mean().item()
    minutes = (time.time() - t0) / 60
    info = {"steps": step, "minutes_this_run": round(minutes, 1), "final": last, "recon_l1_full_window": recon_l1,
            "train_config": asdict(cfg)}
    save_safetensors(out_path, vae.state_dict(), "vae", vae.config.to_dict(), extra={"training": info})
    print(f"wrote {out_path}: {json.dumps(info)}", flush=True)
    return info


def add_vae_train_arguments(p) -> None:
    d = VAETrainConfig()
    p.add_argument("--data", required=True, type=Path, help="dataset folder (synth layout or video.mp4 per clip)")
    p.add_argument("--out", required=True, type=Path, help="output .safetensors")
    p.add_argument("--work", required=True, type=Path, help="checkpoint + log folder (resumes when it holds one)")
    for name in ("preset", "frames", "crop", "batch_size", "lr", "kl_weight", "motion_weight", "max_clips", "steps",
                 "minutes", "seed", "ckpt_every"):
        default = getattr(d, name)
        p.add_argument("--" + name.replace("_", "-"), type=type(default), default=default, help=f"default {default}")
    p.add_argument("--device", default="cpu")


def run_from_args(args) -> int:
    cfg = VAETrainConfig(**{k: getattr(args, k) for k in ("preset", "frames", "crop", "batch_size", "lr", "kl_weight",
                                                           "motion_weight", "max_clips", "steps", "minutes", "seed",
                                                           "ckpt_every")})
    train_vae(args.data, args.out, args.work, cfg, device=args.device)
    return 0


if __name__ == "__main__":  # python -m omnihuman_core.train.vae_training --data ... (until the train CLI has it)
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_vae_train_arguments(parser)
    raise SystemExit(run_from_args(parser.parse_args()))
