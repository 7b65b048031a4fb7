"""Training data and loss of the super-resolution model; the loop is the generic trainer's (train/loop.py).

Data: clips rendered at the high resolution (the synthetic world at 2x the demo size:
`synth.write_dataset(out, n, size=256, ...)`, or real videos in the same layout). Each sample is a
random crop (default 128 x 128 high-res px of a 17-frame window, randomly mirrored), its low-res
version by area downsampling, and both encoded with the VAE exactly as inference does (high-res:
`vae.encode`; low-res: `bicubic_upscale` then `vae.encode`). Crops keep a training step small enough
for a 2-core CPU (the MMDiT has no fixed input size, its positions are RoPE, so it runs on the larger
tiles of inference); encoding once into an `SRCache` makes every later step cost only the MMDiT.

Wiring into the trainer (CORE's train/loop.py):

    cache = build_sr_cache(data_dir, vae, samples=512, cache_path=out / "sr_cache.safetensors")
    upscaler = Upscaler.from_config("sr-demo")
    Trainer({"upscaler": upscaler}, sr_trainable_parameters(upscaler), functools.partial(sr_loss, upscaler),
            SRBatches(cache, batch_size=8, seed=0), config, out)
    ... then save_upscaler(path, ema_upscaler)  (kind "upscaler" + its config)
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..sampling import flow
from .model import Upscaler
from .tiling import bicubic_upscale

CACHE_KIND = "sr_cache"


def _log(progress: Callable[[str], None] | None, msg: str) -> None:
    if progress is not None:
        progress(msg)


# ---- degradation and encoding ------------------------------------------------------------------------
def downsample_area(video: torch.Tensor, scale: int) -> torch.Tensor:
    """`[..., 3, T, H, W]` -> `[..., 3, T, H/scale, W/scale]`: the mean of each scale x scale block (area resize)."""
    *lead, c, t, h, w = video.shape
    if h % scale or w % scale:
        raise InputError(f"frames of {h}x{w} px cannot be area-downsampled by {scale}: use multiples of {scale}")
    x = video.reshape(*lead, c, t, h // scale, scale, w // scale, scale)
    return x.mean(dim=(-3, -1))


@torch.no_grad()
def encode_pair(vae, hr: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """High-res video `[B, 3, T, H, W]` -> (high-res latent, low-res latent), float32 on the CPU.

    The low-res latent is what inference feeds the upscaler: the area-downsampled video, bicubic-upscaled
    back (`bicubic_upscale`), encoded by the same VAE.
    """
    low = downsample_area(hr.float(), scale)
    up = torch.stack([bicubic_upscale(v, scale) for v in low])
    return vae.encode(hr).float().cpu(), vae.encode(up).float().cpu()


# ---- clips --------------------------------------------------------------------------------------------
def clip_videos(data_dir, split: str | None = "train") -> list[Path]:
    """The `video.mp4` files of a dataset: the split's clips from index.json, else every sub-folder holding one."""
    from ..synth.dataset import INDEX_NAME, read_index

    data = Path(data_dir)
    if not data.is_dir():
        raise InputError(f"dataset folder {data} does not exist")
    if (data / INDEX_NAME).exists() and split is not None:
        splits = read_index(data).get("splits", {})
        if split not in splits:
            raise InputError(f"{data}/{INDEX_NAME} has no split '{split}' (it has: {', '.join(splits) or 'none'})")
        videos = [data / e["path"] / "video.mp4" for e in splits[split]]
    else:
        videos = sorted(p for p in data.rglob("video.mp4") if p.is_file())
    if not videos:
        raise InputError(f"no clips (folders with a video.mp4) found in {data}")
    return videos


# ---- the cache ------------------------------------------------------------------------------------------
@dataclass
class SRCache:
    """Pre-encoded training pairs: `hr` and `lr` latents `[N, C, t, h, w]` float32, and how they were made."""

    hr: torch.Tensor
    lr: torch.Tensor
    settings: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.hr.dim() != 5 or self.hr.shape != self.lr.shape or self.hr.shape[0] < 1:
            raise InputError(
                f"an SR cache needs hr and lr latents of one shape [N >= 1, C, t, h, w], got "
                f"{tuple(self.hr.shape)} and {tuple(self.lr.shape)}"
            )

    def __len__(self) -> int:
        return self.hr.shape[0]

    def save(self, path) -> Path:
        from ..weights import save_safetensors

        return save_safetensors(path, {"hr": self.hr, "lr": self.lr}, CACHE_KIND, self.settings)

    @classmethod
    def load(cls, path) -> "SRCache":
        from ..weights import load_safetensors

        state, settings = load_safetensors(path, CACHE_KIND)
        if set(state) != {"hr", "lr"}:
            raise InputError(f"{path} is not an SR cache (tensors {sorted(state)}); delete it to rebuild")
        return cls(state["hr"].float(), state["lr"].float(), settings)


def _module_fingerprint(module: torch.nn.Module) -> str:
    """Hash of a module's weights: a cache built with other VAE weights must not be reused."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _check_crop(vae, crop: int, frames: int, scale: int) -> None:
    tf, sf = int(vae.temporal_factor), int(vae.spatial_factor)
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1 or (frames - 1) % tf:
        raise InputError(f"frames must be 1 + {tf}k (e.g. {1 + 4 * tf}), got {frames!r}")
    unit = math.lcm(sf * 2, scale * sf)  # whole latent patches (2 cells) at both resolutions
    if isinstance(crop, bool) or not isinstance(crop, int) or crop < unit or crop % unit:
        raise InputError(f"crop must be a multiple of {unit} high-res px (whole latent patches), got {crop!r}")


def build_sr_cache(
    data_dir,
    vae,
    *,
    samples: int = 512,
    crop: int = 128,
    frames: int = 17,
    scale: int = 2,
    split: str | None = "train",
    crops_per_clip: int = 4,
    flip: bool = True,
    seed: int = 0,
    batch: int = 4,
    cache_path=None,
    progress: Callable[[str], None] | None = None,
) -> SRCache:
    """Encode `samples` random high-res crops (`crop` px, `frames` frames) of the dataset and their low-res pairs.

    Clips are visited in a seeded shuffled order, `crops_per_clip` crops each (decoding a clip costs more
    than cropping it); clips smaller than a crop are skipped. With `cache_path`, a cache file written with
    the same settings, dataset and VAE weights is loaded instead, and a new one is saved there.
    """
    _check_crop(vae, crop, frames, scale)
    for name, value in (("samples", samples), ("crops_per_clip", crops_per_clip), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    videos = clip_videos(data_dir, split)
    settings = {
        "samples": samples, "crop": crop, "frames": frames, "scale": scale, "split": split,
        "crops_per_clip": crops_per_clip, "flip": bool(flip), "seed": int(seed),
        "clips": [str(v.relative_to(data_dir)) for v in videos], "vae": _module_fingerprint(vae),
    }
    if cache_path is not None and Path(cache_path).exists():
        cached = SRCache.load(cache_path)
        if cached.settings == settings:
            _log(progress, f"SR cache: {len(cached)} pairs from {cache_path}")
            return cached
        _log(progress, f"SR cache {cache_path} was built with other settings, data or VAE; rebuilding")

    from ..media import read_video_frames

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5E]))
    order = rng.permutation(len(videos))
    pending: list[torch.Tensor] = []
    hr_parts, lr_parts = [], []
    done, visited, skipped = 0, 0, []

    def flush() -> None:
        nonlocal done
        hr, lr = encode_pair(vae, torch.stack(pending), scale)
        hr_parts.append(hr)
        lr_parts.append(lr)
        done += len(pending)
        pending.clear()
        _log(progress, f"SR cache: encoded {done}/{samples} pairs")

    while done + len(pending) < samples:
        if visited >= len(order):
            if not hr_parts and not pending:
                raise InputError(
                    f"no clip in {data_dir} holds {frames} frames of {crop}x{crop} px; render the data at a higher "
                    f"resolution (synth --size) or lower crop / frames"
                )
            order = np.concatenate([order, rng.permutation(len(videos))])
        video = videos[order[visited]]
        visited += 1
        clip = read_video_frames(video)  # uint8 [T, H, W, 3]
        T, H, W, _ = clip.shape
        if T < frames or H < crop or W < crop:
            if video not in skipped:
                skipped.append(video)
                _log(progress, f"SR cache: skipping {video} ({T} frames of {W}x{H} px < {frames} of {crop}x{crop})")
            continue
        for _ in range(min(crops_per_clip, samples - done - len(pending))):
            t0 = int(rng.integers(0, T - frames + 1))
            y0, x0 = int(rng.integers(0, H - crop + 1)), int(rng.integers(0, W - crop + 1))
            x = torch.from_numpy(np.ascontiguousarray(clip[t0 : t0 + frames, y0 : y0 + crop, x0 : x0 + crop]))
            x = x.permute(3, 0, 1, 2).float() / 127.5 - 1.0
            if flip and rng.random() < 0.5:
                x = x.flip(-1)
            pending.append(x)
            if len(pending) == batch:
                flush()
    if pending:
        flush()
    cache = SRCache(torch.cat(hr_parts), torch.cat(lr_parts), settings)
    if cache_path is not None:
        cache.save(cache_path)
    return cache


# ---- batches ---------------------------------------------------------------------------------------------
class SRBatches:
    """Endless seeded batches `{"hr": [B, C, t, h, w], "lr": ...}` drawn from an `SRCache`.

    Each epoch is a fresh permutation of the cache; `batch(step)` is a pure function of (seed, step), so a
    resumed run continues the same data order with `iterate(start=step)`.
    """

    def __init__(self, cache: SRCache, batch_size: int, seed: int = 0):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= len(cache):
            raise InputError(f"batch_size must be an integer in 1..{len(cache)} (the cache size), got {batch_size!r}")
        self.cache, self.batch_size, self.seed = cache, batch_size, int(seed)
        self.per_epoch = len(cache) // batch_size  # a partial last batch is dropped: constant batch shapes

    def _permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % 2**63)
        return torch.randperm(len(self.cache), generator=g)

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        epoch, i = divmod(int(step), self.per_epoch)
        idx = self._permutation(epoch)[i * self.batch_size : (i + 1) * self.batch_size]
        return {"hr": self.cache.hr[idx], "lr": self.cache.lr[idx]}

    def iterate(self, start: int = 0) -> Iterator[dict[str, torch.Tensor]]:
        step = int(start)
        while True:
            yield self.batch(step)
            step += 1

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return self.iterate(0)


# ---- parameters ------------------------------------------------------------------------------------------
def sr_trainable_parameters(upscaler: Upscaler) -> list[torch.nn.Parameter]:
    """The video and shared (timestep) branches, which are all the upscaler's output depends on.

    The text and audio branches never receive a token (null text, no audio), so they are frozen
    (`requires_grad=False`): weight decay would otherwise drift them for nothing, and DDP would stop on
    parameters without gradients.
    """
    keep = {id(p) for branch in ("video", "shared") for p in upscaler.mmdit.branch_parameters(branch)}
    for p in upscaler.parameters():
        p.requires_grad_(id(p) in keep)
    return [p for p in upscaler.parameters() if id(p) in keep]


# ---- loss ------------------------------------------------------------------------------------------------
def sr_loss(
    model: Upscaler,
    batch: dict[str, torch.Tensor],
    generator: torch.Generator | None = None,
    *,
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Flow-matching loss of the upscaler on a batch `{"hr", "lr"}` -> (scalar loss, stats).

    t ~ logit-normal(mean, std) per sample (SD3), `x_t = (1 - t) hr + t noise`, MSE between
    `model.velocity(x_t, t, lr)` (the conditioning sampling uses) and `noise - hr`. Noise and t are drawn
    with `generator` on its device (CPU by default), so a seeded generator makes the loss reproducible.
    """
    hr, lr = batch["hr"], batch["lr"]
    if hr.dim() != 5 or hr.shape != lr.shape:
        raise InputError(f"batch 'hr' and 'lr' must be latents of one shape [B, C, t, h, w], got "
                         f"{tuple(hr.shape)} and {tuple(lr.shape)}")
    device = model.device
    gen_device = generator.device if generator is not None else torch.device("cpu")
    B = hr.shape[0]
    t = torch.sigmoid(logit_mean + logit_std * torch.randn(B, generator=generator, device=gen_device)).to(device)
    noise = torch.randn(hr.shape, generator=generator, device=gen_device).to(device)
    hr = hr.to(device=device, dtype=torch.float32)
    x_t = flow.noised(hr, noise, t.view(B, 1, 1, 1, 1))
    v = model.velocity(x_t, t, lr.to(device))
    loss = F.mse_loss(v, flow.velocity_target(hr, noise))
    return loss, {"loss": float(loss.detach()), "t_mean": float(t.mean())}


# ---- validation ------------------------------------------------------------------------------------------
@torch.no_grad()
def sr_validation(
    upscaler: Upscaler,
    cache: SRCache,
    *,
    strengths=(0.4, 0.6, 0.8, 1.0),
    steps: int | None = None,
    seed: int = 0,
    max_samples: int = 32,
) -> dict[str, float]:
    """Latent MSE to the high-res latent of upscaling held-out pairs at each strength, and of the input itself.

    Keys: "input" (the low-res latent as the answer: what the upscaler must beat) and "strength=<s>".
    Cheap (no VAE decode), so a training run can pick the strength it writes into the exported config.
    """
    from .model import sample_latent

    n = min(len(cache), int(max_samples))
    hr, lr = cache.hr[:n], cache.lr[:n]
    noise = torch.randn(hr.shape, generator=torch.Generator().manual_seed(int(seed)))
    result = {"input": float(F.mse_loss(lr, hr))}
    for s in strengths:
        out = sample_latent(upscaler, lr, noise, steps=steps, strength=s).cpu()
        result[f"strength={s:g}"] = float(F.mse_loss(out, hr))
    return result


__all__ = [
    "CACHE_KIND",
    "SRBatches",
    "SRCache",
    "build_sr_cache",
    "clip_videos",
    "downsample_area",
    "encode_pair",
    "sr_loss",
    "sr_trainable_parameters",
    "sr_validation",
]
