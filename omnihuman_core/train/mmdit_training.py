"""Training the MMDiT (and the built-in text encoder) on a dataset of clips: latent cache, loop, export.

1. `build_latent_cache`: every clip is VAE-encoded once; a training window (`frames` video frames,
   1 + 4k) comes with the pseudo-last-frame target (the clip's real frame `delta` latent frames past
   the window, encoded as a single image exactly like a reference image at inference), a random other
   frame of the clip (the reference-image ablation), the window's audio tokens (computed from the
   whole clip's features and sliced, as the chainer does) and the caption. Training then never touches
   the VAE, which is what makes a CPU run affordable.
2. `train_mmdit`: AdamW + linear warm-up, grad-norm clipping, EMA of the trained weights, atomic
   checkpoints holding every piece of state (weights, EMA, optimiser, step, data RNG, loss RNG), so a
   killed run resumes to the same result as an uninterrupted one; a time budget (`--minutes`) ends a
   run cleanly with a checkpoint. torchrun: DDP over gloo (CPU) or NCCL (CUDA), rank 0 writes.
3. `export`: the EMA weights in fp16 safetensors with the config, the model's render defaults and the
   training record.
"""

from __future__ import annotations

import hashlib
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
from .recipe import STAGES, Recipe, build_stage2, flow_matching_loss, trainable_parameters


# ---- dataset -------------------------------------------------------------------------------------------
def list_clips(data_dir, split: str = "train") -> list[Path]:
    """Clip folders of a split: index.json's list when present, else every folder with a video.mp4."""
    root = Path(data_dir)
    if not root.is_dir():
        raise InputError(f"dataset folder {root} does not exist")
    index = root / "index.json"
    if index.exists():
        entries = json.loads(index.read_text()).get("splits", {}).get(split, [])
        folders = [root / e["path"] for e in entries]
    else:
        folders = sorted(p.parent for p in root.rglob("video.mp4"))
    if not folders:
        raise InputError(f"no clips found in {root} (split {split!r}): expected <clip>/video.mp4 + audio.wav + caption.txt")
    return folders


def check_clip(folder: Path) -> str | None:
    """Why a clip folder cannot be used (None = usable)."""
    missing = [n for n in ("video.mp4", "audio.wav", "caption.txt") if not (folder / n).exists()]
    if missing:
        return f"missing {', '.join(missing)}"
    if not (folder / "caption.txt").read_text(encoding="utf-8", errors="replace").strip():
        return "empty caption.txt"
    return None


@dataclass
class CacheConfig:
    frames: int = 33  # video frames per training window (1 + 4k)
    delta: float = 4.0  # latent frames from the window's last frame to the pseudo-last-frame target
    audio_window: int = 5
    fps: float = 24.0
    max_clips: int = 0  # 0 = all
    seed: int = 0


def _vae_fingerprint(vae_path) -> str:
    from ..weights import file_fingerprint

    return file_fingerprint(vae_path)


def build_latent_cache(data_dir, vae_path, cache_path, cfg: CacheConfig, device="cpu", log=print) -> Path:
    """Encode every clip once; reused when the dataset, VAE and settings are unchanged.

    Per clip: the causal latents of the whole clip and single-image latents of every 4th frame (the
    frames that start a latent frame). A window starting at video frame 4j is then
    `[single(4j), clip[j+1 : j+t]]`: its first latent frame is a lone frame, as when the chainer encodes
    motion frames or a reference image, and the rest are the clip's own latents (they also saw the
    frames before the window through the causal convolutions: a small, documented difference from
    encoding the window alone, which would cost ~20x more VAE time for the same number of windows).
    """
    from ..audio import load_audio
    from ..audio.encoders import MelEncoder
    from ..media import read_video_frames
    from ..vae import CausalVideoVAE
    from ..weights import load_into, load_safetensors, save_safetensors

    if cfg.frames < 5 or (cfg.frames - 1) % 4:
        raise InputError(f"frames must be 1 + 4k (>= 5), got {cfg.frames}")
    cache_path = Path(cache_path)
    folders = list_clips(data_dir)
    if cfg.max_clips:
        folders = folders[: cfg.max_clips]
    key = hashlib.sha256(json.dumps({"cfg": asdict(cfg), "vae": _vae_fingerprint(vae_path),
                                     "clips": [str(f) for f in folders]}, sort_keys=True).encode()).hexdigest()[:16]
    if cache_path.exists():
        from ..weights import read_metadata

        if read_metadata(cache_path).get("cache_key") == key:
            log(f"latent cache {cache_path} is up to date")
            return cache_path
    state, vcfg = load_safetensors(vae_path, "vae")
    vae = CausalVideoVAE.from_config(vcfg, device=device)
    load_into(vae, state, vae_path)
    vae.eval()
    tf = vae.temporal_factor
    mel = MelEncoder()
    t_window = 1 + (cfg.frames - 1) // tf
    reach = t_window - 1 + int(round(cfg.delta))  # latent frames from a window's start to its target
    tensors, captions, clip_ids, skipped, windows = {}, [], [], [], []
    first_size = None
    t0 = time.time()
    for i, folder in enumerate(folders):
        why = check_clip(folder)
        if why is None:
            try:
                video = read_video_frames(folder / "video.mp4")
                sound = load_audio(folder / "audio.wav")
            except Exception as e:  # one broken clip must not stop the rest
                why = f"unreadable ({e})"
        if why is None:
            T = 1 + (video.shape[0] - 1) // tf * tf
            if (T - 1) // tf < reach:
                why = f"{video.shape[0]} frames, needs >= {reach * tf + 1} (window + pseudo-last-frame distance)"
            elif sound.duration + 0.5 / cfg.fps < (T - 1) / cfg.fps:
                why = f"audio {sound.duration:.2f} s shorter than the video {(T - 1) / cfg.fps:.2f} s"
            elif first_size is not None and video.shape[1:3] != first_size:
                why = f"frame size {video.shape[1:3]} differs from the first clip's {first_size}"
        if why is not None:
            skipped.append(f"{folder.name}: {why}")
            continue
        first_size = video.shape[1:3]
        clip = torch.from_numpy(video[:T]).permute(3, 0, 1, 2).float() / 127.5 - 1.0  # [3, T, H, W]
        with torch.no_grad():
            lat = vae.encode(clip.unsqueeze(0).to(device))[0]  # [C, t, h, w]
            singles = vae.encode(clip[:, ::tf].transpose(0, 1).unsqueeze(2).to(device))  # [t, C, 1, h, w]
        n = len(captions)
        tensors[f"clip{n}.latents"] = lat.half().cpu()
        tensors[f"clip{n}.singles"] = singles[:, :, 0].half().cpu()
        tensors[f"clip{n}.audio"] = mel.encode(sound.waveform).half()
        captions.append((folder / "caption.txt").read_text(encoding="utf-8").strip())
        clip_ids.append(folder.name)
        windows += [[n, j] for j in range(lat.shape[1] - reach)]
        if (i + 1) % 20 == 0:
            log(f"cache: {i + 1}/{len(folders)} clips, {len(windows)} windows, {time.time() - t0:.0f} s")
    for s in skipped:
        log(f"warning: skipped {s}")
    if not captions:
        raise InputError(f"no usable clips in {data_dir}; reasons: {skipped[:5]}")
    save_safetensors(cache_path, tensors, "latent_cache", asdict(cfg),
                     extra={"cache_key": key, "captions": captions, "clip_ids": clip_ids, "skipped": skipped,
                            "windows": windows, "temporal_factor": tf, "feature_rate": mel.feature_rate})
    log(f"wrote {cache_path}: {len(windows)} windows from {len(captions)} clips ({len(skipped)} skipped) "
        f"in {time.time() - t0:.0f} s")
    return cache_path


class LatentWindows:
    """Batches of cached windows in a seeded order. `batch(position)` is a pure function of
    (seed, position, rank), so resuming needs no data-loader state."""

    def __init__(self, cache_path, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        from ..weights import load_safetensors, read_metadata

        self.tensors, self.cfg = load_safetensors(cache_path, "latent_cache")
        meta = read_metadata(cache_path)
        self.captions = json.loads(meta["captions"])
        self.clip_ids = json.loads(meta["clip_ids"])
        self.windows = json.loads(meta["windows"])
        self.tf = int(meta["temporal_factor"])
        self.feature_rate = float(meta["feature_rate"])
        self.n = len(self.windows)
        if batch_size > self.n:
            raise InputError(f"batch size {batch_size} exceeds the {self.n} cached windows")
        self.batch_size, self.seed, self.rank, self.world = batch_size, seed, rank, world
        self.t_window = 1 + (int(self.cfg["frames"]) - 1) // self.tf
        self.audio_dim = int(self.tensors["clip0.audio"].shape[-1]) * int(self.cfg["audio_window"])

    def window(self, index: int, rng: np.random.Generator) -> dict:
        from ..audio import audio_tokens_for_segment

        c, j = self.windows[index]
        t = self.t_window
        lat, singles = self.tensors[f"clip{c}.latents"], self.tensors[f"clip{c}.singles"]
        latents = torch.cat([singles[j].unsqueeze(1), lat[:, j + 1:j + t]], dim=1).float()
        target = j + t - 1 + int(round(self.cfg["delta"]))
        outside = [k for k in range(singles.shape[0]) if not j <= k < j + t]
        ref = int(rng.choice(outside)) if outside else j
        audio = audio_tokens_for_segment(self.tensors[f"clip{c}.audio"].float(), self.feature_rate,
                                         float(self.cfg["fps"]), j * self.tf, 1 + (t - 1) * self.tf,
                                         int(self.cfg["audio_window"]))
        return {"latents": latents, "last_latent": singles[target].unsqueeze(1).float(),
                "reference_latent": singles[ref].unsqueeze(1).float(), "audio": audio,
                "caption": self.captions[c], "clip_id": self.clip_ids[c]}

    def batch(self, position: int) -> dict:
        per_epoch = max(1, self.n // (self.batch_size * self.world))
        epoch, k = divmod(position, per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        start = (k * self.world + self.rank) * self.batch_size
        rng = np.random.default_rng([self.seed, position, self.rank, 7])
        items = [self.window(int(i), rng) for i in order[start:start + self.batch_size]]
        out = {name: torch.stack([it[name] for it in items])
               for name in ("latents", "last_latent", "reference_latent", "audio")}
        out["captions"] = [it["caption"] for it in items]
        out["clip_ids"] = [it["clip_id"] for it in items]
        return out


# ---- the loop ------------------------------------------------------------------------------------------
@dataclass
class TrainConfig:
    stage: str = "base"
    preset: str = "demo"
    audio_mode: str = "branch"
    text_preset: str = "demo"
    batch_size: int = 6
    lr: float = 3e-4
    warmup: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ema_decay: float = 0.995
    steps: int = 0  # 0 = until the time budget
    minutes: float = 10.0
    ckpt_every: int = 100
    log_every: int = 10
    seed: int = 0

    # Settings that define the run; changing them against an existing checkpoint is refused.
    IDENTITY = ("stage", "preset", "audio_mode", "text_preset", "batch_size", "lr", "warmup", "weight_decay",
                "grad_clip", "ema_decay", "seed")


def _dist() -> tuple[int, int]:
    """(rank, world) — initialises torch.distributed when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world


def _ema_update(ema: dict[str, torch.Tensor], module_states: dict[str, torch.Tensor], decay: float) -> None:
    with torch.no_grad():
        for k, v in module_states.items():
            ema[k].mul_(decay).add_(v.detach().float(), alpha=1 - decay)


def _load_state(path, kind):
    from ..weights import load_safetensors

    return load_safetensors(path, kind)


def train_mmdit(cache_path, work_dir, cfg: TrainConfig, recipe: Recipe, *, init=None, base=None, stage1=None,
                text_encoder_path=None, device="cpu", log=print) -> dict:
    """One stage. `init`: MMDiT weights to start from; stage2 takes `base` + `stage1` instead."""
    from ..model import MMDiT, MMDiTConfig
    from ..text import BuiltinTextEncoder
    from ..text.builtin import BuiltinTextConfig
    from ..weights import load_into

    if cfg.stage not in STAGES:
        raise InputError(f"stage must be one of {STAGES}, got {cfg.stage!r}")
    if cfg.stage == "stage2" and (base is None or stage1 is None):
        raise InputError("stage2 needs --base (the text+video base) and --stage1 (the stage-1 model)")
    if cfg.stage == "stage1" and init is None:
        raise InputError("stage1 starts from the text+video base: pass --init base.safetensors")
    if cfg.stage in ("stage1", "stage2") and text_encoder_path is None:
        raise InputError(f"{cfg.stage} keeps the base's text encoder: pass --text-encoder")
    rank, world = _dist()
    data = LatentWindows(cache_path, cfg.batch_size, cfg.seed, rank, world)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)

    # Model + text encoder, from their starting points.
    if cfg.stage == "stage2":
        bstate, bconf = _load_state(base, "mmdit")
        sstate, _ = _load_state(stage1, "mmdit")
        mcfg = MMDiTConfig.from_dict(bconf)
        state = build_stage2(bstate, sstate)
    elif init is not None:
        state, iconf = _load_state(init, "mmdit")
        mcfg = MMDiTConfig.from_dict(iconf)
        if mcfg.audio_mode != cfg.audio_mode:
            # The cross-attention ablation reuses the base's text/video weights; its audio path is new.
            mcfg = MMDiTConfig.from_dict({**mcfg.to_dict(), "audio_mode": cfg.audio_mode})
    else:
        # Audio tokens are the cache's features x window (mel: 80 x 5 = 400), whatever the preset says.
        state, mcfg = None, MMDiTConfig.preset(cfg.preset, audio_mode=cfg.audio_mode, audio_dim=data.audio_dim)
    model = MMDiT(mcfg, device=device)
    if state is not None:
        own = model.state_dict()
        usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        if cfg.audio_mode == mcfg.audio_mode and len(usable) == len(own) == len(state):
            load_into(model, state, init or base)
        else:  # architecture switch (audio mode): copy what matches, keep fresh init for the rest
            own.update({k: v.float() for k, v in usable.items()})
            model.load_state_dict(own)
            log(f"initialised {len(usable)}/{len(own)} tensors from the starting weights (audio mode {cfg.audio_mode})")
    if text_encoder_path is not None:
        tstate, tconf = _load_state(text_encoder_path, "text_encoder")
        text_encoder = BuiltinTextEncoder.from_config(tconf, device=device)
        load_into(text_encoder, tstate, text_encoder_path)
    else:
        text_encoder = BuiltinTextEncoder.from_config(BuiltinTextConfig.preset(cfg.text_preset), device=device,
                                                      seed=cfg.seed)
    params = trainable_parameters(model, text_encoder, cfg.stage)
    train_text = any(p.requires_grad for p in text_encoder.parameters())
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, find_unused_parameters=cfg.stage == "base")
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))

    def states() -> dict[str, torch.Tensor]:
        out = {f"mmdit.{k}": v for k, v in model.state_dict().items()}
        if train_text:
            out.update({f"text.{k}": v for k, v in text_encoder.state_dict().items()})
        return out

    ema = {k: v.detach().float().clone() for k, v in states().items()}
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + rank + 1)
    step = 0
    ckpt = work / "checkpoint.pt"
    run_id = {"train": {k: getattr(cfg, k) for k in TrainConfig.IDENTITY}, "recipe": recipe.to_dict(),
              "model": mcfg.to_dict()}
    if ckpt.exists():
        saved = torch.load(ckpt, map_location="cpu", weights_only=True)
        old = json.loads(saved["run_id"])
        if old != json.loads(json.dumps(run_id)):
            diff = {k: (old.get(k), v) for k, v in json.loads(json.dumps(run_id)).items() if old.get(k) != v}
            raise InputError(f"{ckpt} belongs to a different run; differences (checkpoint, now): {diff}. "
                             "Use a new --work folder, or the checkpoint's settings")
        model.load_state_dict(saved["model"])
        if train_text:
            text_encoder.load_state_dict(saved["text"])
        opt.load_state_dict(saved["opt"])
        ema = saved["ema"]
        step = int(saved["step"])
        gen.set_state(saved["gen"])
        log(f"resumed {ckpt} at step {step}")

    def save_ckpt() -> None:
        if rank != 0:
            return
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "text": text_encoder.state_dict(), "opt": opt.state_dict(),
                    "ema": ema, "step": step, "gen": gen.get_state(), "run_id": json.dumps(run_id)}, tmp)
        os.replace(tmp, ckpt)

    model.train()
    text_encoder.train(train_text)
    logf = open(work / "log.jsonl", "a") if rank == 0 else None
    n_params = sum(p.numel() for p in params)
    log(f"{cfg.stage}: {n_params / 1e6:.2f} M trainable params, {data.n} windows, batch {cfg.batch_size} x {world}, "
        f"recipe {recipe.reference_mode}, audio {mcfg.audio_mode}")
    t0 = time.time()
    losses: list[float] = []
    while True:
        if cfg.steps > 0 and step >= cfg.steps:
            break
        if cfg.steps <= 0 and time.time() - t0 > cfg.minutes * 60:
            break
        for g in opt.param_groups:
            g["lr"] = cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup))
        batch = data.batch(step)
        loss, stats = flow_matching_loss(net, text_encoder, batch, recipe, cfg.stage, gen)
        if not math.isfinite(stats["loss"]):
            save_ckpt()
            raise RuntimeError(f"loss became {stats['loss']} at step {step}; lower --lr (checkpoint kept)")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if train_text and world > 1:  # the text encoder is outside DDP: average its grads by hand
            import torch.distributed as dist

            for p in text_encoder.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= world
        gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip).item()
        opt.step()
        step += 1
        _ema_update(ema, states(), cfg.ema_decay if step > cfg.warmup else 0.0)
        losses.append(stats["loss"])
        if logf and step % cfg.log_every == 0:
            rec = {"step": step, "min": round((time.time() - t0) / 60, 2),
                   "loss": round(float(np.mean(losses[-cfg.log_every:])), 5), "gnorm": round(gnorm, 3)}
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
            log(json.dumps(rec))
        if step % cfg.ckpt_every == 0:
            save_ckpt()
    save_ckpt()
    if logf:
        logf.close()
    return {"steps": step, "minutes": round((time.time() - t0) / 60, 1),
            "final_loss": round(float(np.mean(losses[-50:])), 5) if losses else None,
            "model_config": mcfg.to_dict(), "ema": ema, "train_text": train_text,
            "text_config": text_encoder.config.to_dict()}


def export(result: dict, mmdit_out, text_out=None, *, dtype=torch.float16, extra: dict | None = None) -> None:
    """Write the EMA weights (fp16 by default) of the MMDiT and, if it was trained, the text encoder."""
    from ..weights import save_safetensors

    ema = result["ema"]
    record = {k: result[k] for k in ("steps", "minutes", "final_loss")}
    mm = {k[len("mmdit."):]: v.to(dtype) for k, v in ema.items() if k.startswith("mmdit.")}
    save_safetensors(mmdit_out, mm, "mmdit", result["model_config"], extra={"training": record, **(extra or {})})
    if text_out is not None and result["train_text"]:
        tx = {k[len("text."):]: v.to(dtype) for k, v in ema.items() if k.startswith("text.")}
        save_safetensors(text_out, tx, "text_encoder", result["text_config"], extra={"training": record})
