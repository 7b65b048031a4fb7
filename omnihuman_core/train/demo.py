"""`train demo`: every shipped demo model in one command, within a time budget.

dataset (synth, made if missing) -> VAE -> latent cache -> base (text+video, text encoder jointly) ->
stage 1 (all branches) -> stage 2 (base text/video + stage-1 audio, fine-tuned) -> 2x upscaler, then the
fp16 files in OUT/ with their model cards. Every stage checkpoints into WORK/, so rerunning the same
command after an interruption resumes where it stopped; finished stages are skipped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

# Share of the time budget per stage (the cache is not budgeted: it is a fixed amount of encoding).
SPLIT = {"vae": 0.20, "base": 0.20, "stage1": 0.22, "stage2": 0.22, "upscaler": 0.08}


def run_demo(args) -> int:
    from ..synth import write_dataset
    from .cli import DEMO_RENDER_DEFAULTS
    from .mmdit_training import CacheConfig, TrainConfig, build_latent_cache, export, train_mmdit
    from .recipe import Recipe
    from .upscaler_training import train_upscaler
    from .vae_training import VAETrainConfig, train_vae

    budget = float(args.minutes_total)
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()

    def stage_done(name: str) -> bool:
        return (work / f"{name}.done").exists()

    def finish(name: str, info: dict) -> None:
        (work / f"{name}.done").write_text(json.dumps(info, default=str))

    if not (Path(args.data) / "index.json").exists():
        write_dataset(args.data, 800, seed=0, size=128, fps=24.0, frames=121)
    if not (Path(args.sr_data) / "index.json").exists():
        write_dataset(args.sr_data, 120, seed=1, size=256, fps=24.0, frames=49)

    vae_path = work / "vae.safetensors"
    if not stage_done("vae"):
        info = train_vae(args.data, vae_path, work / "vae", VAETrainConfig(minutes=budget * SPLIT["vae"]))
        finish("vae", info)
    cache = build_latent_cache(args.data, vae_path, work / "cache.safetensors",
                               CacheConfig(max_clips=args.cache_clips))
    text_path = work / "text_encoder.safetensors"
    recipe = Recipe()
    render = dict(DEMO_RENDER_DEFAULTS, reference_mode=recipe.reference_mode)
    paths = {s: work / f"mmdit_{s}.safetensors" for s in ("base", "stage1", "stage2")}
    for stage in ("base", "stage1", "stage2"):
        if stage_done(stage):
            continue
        cfg = TrainConfig(stage=stage, minutes=budget * SPLIT[stage])
        kwargs = {}
        if stage == "stage1":
            kwargs = dict(init=paths["base"], text_encoder_path=text_path)
        elif stage == "stage2":
            kwargs = dict(base=paths["base"], stage1=paths["stage1"], text_encoder_path=text_path)
        result = train_mmdit(cache, work / stage, cfg, recipe, **kwargs)
        export(result, paths[stage], text_path if stage == "base" else None,
               extra={"render_defaults": render, "recipe": recipe.to_dict(), "stage": stage})
        finish(stage, {k: result[k] for k in ("steps", "minutes", "final_loss")})
    up_path = work / "upscaler.safetensors"
    if not stage_done("upscaler"):
        info = train_upscaler(args.sr_data, vae_path, up_path, work / "upscaler", minutes=budget * SPLIT["upscaler"])
        finish("upscaler", info)

    # fp16 copies into OUT (the VAE is small and trained in fp32: stored as fp16 too, loaded as fp32).
    from ..weights import load_safetensors, read_metadata, save_safetensors

    for name, src in (("vae", vae_path), ("text_encoder", text_path), ("mmdit", paths["stage2"]),
                      ("upscaler", up_path)):
        state, config = load_safetensors(src)
        meta = read_metadata(src)
        kind = meta["omnihuman.kind"]
        extra = {k: v for k, v in meta.items() if not k.startswith("omnihuman.")}
        save_safetensors(out / f"{name}.safetensors", {k: v.half() if v.is_floating_point() else v
                                                       for k, v in state.items()}, kind, config, extra=extra)
    print(f"demo models in {out} after {(time.time() - t_start) / 60:.1f} min")
    return 0
