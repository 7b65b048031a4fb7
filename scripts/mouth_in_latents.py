"""How much of the mouth a VAE's latents carry: one line of JSON per latent cache.

Two demo runs with the same MMDiT steps and different VAEs learnt lip sync at different speeds (BENCHMARKS.md,
"The same split on the shipped run's VAE"). The MMDiT learns the mouth from the flow loss on the cached latents
(normalised, as the MMDiT sees them), so this reads, on the same training windows of each cache:

- `mouth_motion`: the mean over the mouth cells (objective.mouth_cells of the cached face masks) and channels of
  the latent's standard deviation over the window's latent frames: how far the mouth's latents move in a
  window; `all_motion` the same over every cell, and `mouth_share` their ratio;
- `mouth_r2`: how much of the ground-truth mouth opening (labels.npz, averaged over the frames each latent frame
  covers; causal VAE: frame 0, then 4 frames each) a ridge regression reads from the mouth cells' latents
  (per channel: mean and std over the mouth cells, both centred per window), fitted on the even windows and
  scored (R^2) on the odd ones. Windows without speech are left out.

    python scripts/mouth_in_latents.py --data data/synth --windows 512 runs/demo/latent_cache runs/other/latent_cache
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from omnihuman_core.errors import InputError  # noqa: E402
from omnihuman_core.train.objective import mouth_cells  # noqa: E402


def frame_groups(latent_frames: int, temporal_factor: int) -> list[slice]:
    """The video frames each latent frame of a causal VAE covers: frame 0 alone, then `temporal_factor` each."""
    return [slice(0, 1)] + [slice(1 + temporal_factor * (k - 1), 1 + temporal_factor * k)
                            for k in range(1, latent_frames)]


def read_cache(cache: Path, limit: int):
    manifest_file = cache / "manifest.json"
    if not manifest_file.is_file():
        raise InputError(f"{cache}: no manifest.json; pass a latent cache folder written by `train mmdit`/`train demo`")
    manifest = json.loads(manifest_file.read_text())
    split = manifest["settings"]["split"]
    rows = []
    for shard in manifest["shards"]:
        with safe_open(str(cache / shard["file"]), "pt") as f:
            latents, face = f.get_tensor("latents").float(), f.get_tensor("face").float()
        for j, window in enumerate(shard["windows"]):
            rows.append((window["clip_id"], int(window["start"]), latents[j], face[j]))
            if len(rows) >= limit:
                return manifest, split, rows
    return manifest, split, rows


def measure(cache: Path, data: Path, limit: int) -> dict:
    manifest, split, rows = read_cache(cache, limit)
    frames = int(manifest["settings"]["frames"])
    feats, targets, mouth_sd, all_sd = [], [], [], []
    for clip_id, start, lat, face in rows:
        labels = np.load(data / split / clip_id / "labels.npz")
        t = lat.shape[1]
        groups = frame_groups(t, (frames - 1) // (t - 1))
        speaking = labels["speaking"][start:start + frames]
        if speaking.max() <= 0:
            continue
        mouth = labels["mouth"][start:start + frames]
        target = np.array([mouth[g].mean() for g in groups])
        cells = mouth_cells(face) > 0  # [t, h, w]
        if cells.sum(dim=(1, 2)).min() == 0:
            continue  # a latent frame without a face box: no mouth cells to read
        per_frame = []
        for k in range(t):
            v = lat[:, k][:, cells[k]]  # [C, n cells]
            per_frame.append(torch.cat([v.mean(dim=1), v.std(dim=1, unbiased=False)]))
        x = torch.stack(per_frame).numpy()  # [t, 2C]
        feats.append(x - x.mean(axis=0, keepdims=True))
        targets.append(target - target.mean())
        mouth_sd.append(float(lat.std(dim=1)[:, cells.any(dim=0)].mean()))
        all_sd.append(float(lat.std(dim=1).mean()))
    if len(feats) < 8:
        raise InputError(f"{cache}: only {len(feats)} windows with speech and a face box; raise --windows")
    fit, test = slice(0, None, 2), slice(1, None, 2)
    X_fit, y_fit = np.concatenate(feats[fit]), np.concatenate(targets[fit])
    X_test, y_test = np.concatenate(feats[test]), np.concatenate(targets[test])
    scale = X_fit.std(axis=0) + 1e-6
    A = X_fit / scale
    w = np.linalg.solve(A.T @ A + 1.0 * np.eye(A.shape[1]), A.T @ y_fit)
    pred = (X_test / scale) @ w
    r2 = 1.0 - float(((y_test - pred) ** 2).sum() / (y_test ** 2).sum())
    return {"cache": str(cache), "vae": manifest.get("vae_file") or manifest.get("vae"), "windows": len(feats),
            "mouth_motion": round(float(np.mean(mouth_sd)), 4), "all_motion": round(float(np.mean(all_sd)), 4),
            "mouth_share": round(float(np.mean(mouth_sd) / np.mean(all_sd)), 4), "mouth_r2": round(r2, 4)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("caches", nargs="+", type=Path, help="latent cache folders")
    p.add_argument("--data", type=Path, required=True, help="the dataset the caches were built from (labels.npz)")
    p.add_argument("--windows", type=int, default=512, help="the first N windows of each cache")
    args = p.parse_args(argv)
    try:
        for cache in args.caches:
            print(json.dumps(measure(cache, args.data, args.windows)), flush=True)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
