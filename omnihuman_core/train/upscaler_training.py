"""Training the 2x super-resolution model (`upscale/`): cached crop pairs, AdamW + EMA, resumable.

The data and the loss live with the model (`upscale/training.py`: `build_sr_cache`, `SRBatches`,
`sr_loss`); this is the loop around them, with the same checkpoint rules as the MMDiT trainer.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import torch

from ..errors import InputError


def train_upscaler(data_dir, vae_path, out_path, work_dir, *, preset: str = "sr-demo", samples: int = 256,
                   batch_size: int = 8, lr: float = 3e-4, ema_decay: float = 0.995, minutes: float = 8.0,
                   steps: int = 0, seed: int = 0, device: str = "cpu", log=print) -> dict:
    from ..upscale import Upscaler
    from ..upscale.model import save_upscaler
    from ..upscale.training import SRBatches, build_sr_cache, sr_loss, sr_trainable_parameters
    from ..vae import CausalVideoVAE
    from ..weights import load_into, load_safetensors

    if steps <= 0 and minutes <= 0:
        raise InputError("give a positive steps or minutes budget")
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    state, vcfg = load_safetensors(vae_path, "vae")
    vae = CausalVideoVAE.from_config(vcfg, device=device)
    load_into(vae, state, vae_path)
    vae.eval()
    cache = build_sr_cache(data_dir, vae, samples=samples, seed=seed, cache_path=work / "sr_cache.safetensors",
                           progress=log)
    torch.manual_seed(seed)
    model = Upscaler.from_config(preset, device=device)
    params = sr_trainable_parameters(model)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, betas=(0.9, 0.99))
    ema = {k: v.detach().float().clone() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(seed + 11)
    data = SRBatches(cache, batch_size, seed)
    step = 0
    ckpt = work / "upscaler.pt"
    run_id = json.dumps({"preset": preset, "samples": samples, "batch_size": batch_size, "lr": lr,
                         "ema_decay": ema_decay, "seed": seed})
    if ckpt.exists():
        saved = torch.load(ckpt, map_location="cpu", weights_only=True)
        if saved["run_id"] != run_id:
            raise InputError(f"{ckpt} belongs to a different run ({saved['run_id']}, now {run_id}); "
                             "use a new work folder or the same settings")
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        ema, step = saved["ema"], int(saved["step"])
        gen.set_state(saved["gen"])
        log(f"resumed {ckpt} at step {step}")

    def save_ckpt():
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "ema": ema, "step": step,
                    "gen": gen.get_state(), "run_id": run_id}, tmp)
        os.replace(tmp, ckpt)

    model.train()
    t0, losses = time.time(), []
    while (steps > 0 and step < steps) or (steps <= 0 and time.time() - t0 < minutes * 60):
        loss, stats = sr_loss(model, data.batch(step), gen)
        if not math.isfinite(stats["loss"]):
            save_ckpt()
            raise RuntimeError(f"upscaler loss became {stats['loss']} at step {step}; lower lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        with torch.no_grad():
            for k, v in model.state_dict().items():
                ema[k].mul_(ema_decay).add_(v.float(), alpha=1 - ema_decay)
        losses.append(stats["loss"])
        if step % 20 == 0:
            log(json.dumps({"step": step, "min": round((time.time() - t0) / 60, 2),
                            "loss": round(sum(losses[-20:]) / len(losses[-20:]), 5)}))
        if step % 100 == 0:
            save_ckpt()
    save_ckpt()
    model.load_state_dict({k: v.to(model.state_dict()[k].dtype) for k, v in ema.items()})
    record = {"steps": step, "minutes": round((time.time() - t0) / 60, 1),
              "final_loss": round(sum(losses[-50:]) / max(1, len(losses[-50:])), 5) if losses else None,
              "samples": len(cache)}
    save_upscaler(out_path, model.half(), extra={"training": record})
    log(f"wrote {out_path}: {record}")
    return record
