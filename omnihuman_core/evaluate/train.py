"""Training the probes on a synthetic dataset's ground truth (`evaluate train-probes`), within a time budget.

Phases, all inside `--minutes` of CPU time (this process, all threads; see `cpu_clock`):
1. load: decode a random subset of frames of every train clip (and every test clip) with their labels;
   a few train identities are held out as validation (they set the action probe's noise level);
2. frame probe: AdamW, a warm-up then cosine learning rate over the time left, light degradations (blur,
   down-and-up sampling, noise) so generated frames, softer than renders, read the same;
3. action probe: trained on the train clips' *label* sequences plus Gaussian noise as large as the frame
   probe's validation error on each feature (running the CNN over every train frame would not fit the
   budget, and noise of the right size is what makes a label-trained classifier work on probe read-outs);
4. report: probe accuracy on the test split (unseen identities), stored in the weights file's metadata.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from .probes import (LOGIT_HEADS, ActionProbe, FrameProbe, ProbeConfig, Probes, action_features,
                     cosine, label_targets, prepare_frames, target_matrix)

# Relative weight of each head in the frame probe's loss (per-head mean losses on standardised targets).
HEAD_WEIGHTS = {"mouth": 3.0, "head_pose": 1.0, "head_center": 1.0, "head_radius": 0.5, "hands": 1.5,
                "hands_visible": 0.5, "smile": 2.0, "brows": 2.0, "eyes_open": 0.5, "lean": 1.0, "identity": 1.0}
INVISIBLE_HAND_WEIGHT = 0.2  # a hand outside the frame can only be guessed from the arm
# The budget is CPU time of this process (all its threads), not wall time: on a shared machine the same
# --minutes then buys the same training whatever else runs, and "10 minutes of CPU" means what it says.
cpu_clock = time.process_time
REPLAN_STEP = 20  # steps after which the frame probe's time is fixed from the measured speed
INFER_COST = 0.4  # a test frame (forward only, no degradations) costs about this much of a training frame


def _log(progress, msg):
    if progress:
        progress(msg)


def dataset_clips(data_dir, split: str) -> list[Path]:
    """Clip folders of one split (see `run.dataset_split`); InputError if the split is missing or empty."""
    from .run import dataset_split

    return [c.dir for c in dataset_split(data_dir, split)]


def require_labels(clips: list[Path], what: str) -> None:
    missing = [c for c in clips if not (c / "labels.npz").exists()]
    if missing:
        raise InputError(
            f"{what} needs ground-truth labels, but {len(missing)} of {len(clips)} clips have no labels.npz "
            f"(e.g. {missing[0]}). Labels exist only in synthetic datasets (python -m omnihuman_core synth); "
            "real data in the same layout can be evaluated but not used to train or check the probes")


def _read_clip(clip: Path, idx: np.ndarray | None, size: int):
    from ..media import read_video_frames
    from ..synth.dataset import load_labels, load_meta

    frames = read_video_frames(clip / "video.mp4")
    labels = load_labels(clip)
    t = min(len(frames), labels["mouth"].shape[0])
    meta = load_meta(clip) if (clip / "meta.json").exists() else {}
    label_size = int(meta.get("size", frames.shape[2]))
    targets = label_targets({k: (v[:t] if np.ndim(v) and k != "identity_vector" else v) for k, v in labels.items()},
                            label_size)
    if idx is None:
        idx = np.arange(t)
    idx = idx[idx < t]
    x = frames[idx]
    if x.shape[1] != size or x.shape[2] != size:
        x = ((prepare_frames(x, size) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return x, {k: v[idx] for k, v in targets.items()}, labels, meta, t


def load_frames(clips: list[Path], per_clip: int, size: int, seed: int, progress=None, what="clips"):
    """A random subset of `per_clip` frames of every clip -> (uint8 [N, S, S, 3], targets [N, n_out], clip index [N])."""
    rng = np.random.default_rng(seed)
    frames, targets, owner = [], [], []
    cfg = ProbeConfig()
    t0 = time.monotonic()
    for i, clip in enumerate(clips):
        n = int(np.load(clip / "labels.npz")["mouth"].shape[0])
        idx = np.sort(rng.choice(n, size=min(per_clip, n), replace=False))
        x, tg, _, _, _ = _read_clip(clip, idx, size)
        frames.append(torch.from_numpy(np.ascontiguousarray(x)))
        targets.append(target_matrix(tg, cfg))
        owner.append(np.full(len(x), i))
        if (i + 1) % 100 == 0:
            _log(progress, f"  loaded {i + 1}/{len(clips)} {what} ({time.monotonic() - t0:.0f} s)")
    return torch.cat(frames), np.concatenate(targets), np.concatenate(owner)


def _degrade(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Blur, resolution loss or noise on a few samples of a (randomly ordered) batch, in place; float, -1..1.

    Light on purpose: a smile is a 2-3 px bend of the mouth at 128 px, and heavy blur would teach the
    probe that it cannot be seen. Fixed slices of the batch, since the batch order is random anyway.
    """
    n = x.shape[0]
    a, b, c = int(0.15 * n), int(0.3 * n), int(0.5 * n)
    if a:
        k = torch.tensor([1.0, 2.0, 1.0], dtype=x.dtype)
        k2 = (k[:, None] * k[None, :] / 16).expand(3, 1, 3, 3)
        x[:a] = F.conv2d(F.pad(x[:a], (1, 1, 1, 1), mode="replicate"), k2, groups=3)
    if b > a:
        s = x.shape[-1]
        small = F.interpolate(x[a:b], scale_factor=0.5, mode="bilinear", align_corners=False, antialias=True)
        x[a:b] = F.interpolate(small, size=(s, s), mode="bilinear", align_corners=False)
    if c > b:
        sd = 0.05 * torch.rand(c - b, 1, 1, 1, generator=gen, dtype=x.dtype)
        x[b:c] += sd * torch.randn(x[b:c].shape, generator=gen, dtype=x.dtype)
    return x


def frame_loss(model: FrameProbe, raw: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Weighted sum of per-head losses; `target` in real units, standardised here."""
    slices = model.config.head_slices()
    z = (target - model.target_mean) / model.target_std
    total = raw.new_zeros(())
    stats = {}
    vis = target[:, slices["hands_visible"]]
    for name, s in slices.items():
        if name in LOGIT_HEADS:
            loss = F.binary_cross_entropy_with_logits(raw[:, s], target[:, s])
        elif name == "hands":
            w = (INVISIBLE_HAND_WEIGHT + (1 - INVISIBLE_HAND_WEIGHT) * vis).repeat_interleave(2, 1)
            loss = (F.smooth_l1_loss(raw[:, s], z[:, s], reduction="none", beta=0.5) * w).sum() / w.sum()
        else:
            loss = F.smooth_l1_loss(raw[:, s], z[:, s], beta=0.5)
        total = total + HEAD_WEIGHTS[name] * loss
        stats[name] = float(loss.detach())
    return total, stats


def _jittered_box(config: ProbeConfig, target: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The labelled head box, moved and scaled a little: at test time the box is the probe's own estimate."""
    s = config.head_slices()
    box = torch.cat([target[:, s["head_center"]], target[:, s["head_radius"]]], 1).clone()
    j = torch.rand(box.shape[0], 3, generator=gen) * 2 - 1
    box[:, :2] += 0.15 * box[:, 2:3] * j[:, :2]
    box[:, 2] *= 1 + 0.1 * j[:, 2]
    return box


def _set_target_stats(model: FrameProbe, targets: np.ndarray) -> None:
    slices = model.config.head_slices()
    mean = targets.mean(0)
    std = targets.std(0)
    floor = np.full_like(std, 1e-3)
    floor[slices["identity"]] = 0.05  # rare one-hot attributes would otherwise be blown up into noise
    std = np.maximum(std, floor)
    for name in LOGIT_HEADS:
        mean[slices[name]], std[slices[name]] = 0.0, 1.0
    model.target_mean.copy_(torch.from_numpy(mean))
    model.target_std.copy_(torch.from_numpy(std))


def _lr_at(frac: float, peak: float) -> float:
    warm = 0.03
    if frac < warm:
        return peak * frac / warm
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, (frac - warm) / (1 - warm))))


def train_frame_probe(model: FrameProbe, frames: torch.Tensor, targets: np.ndarray, seconds: float, *,
                      batch: int = 64, lr: float = 2e-3, seed: int = 0, progress=None,
                      replan: Callable[[float], float] | None = None) -> dict:
    """Train until `seconds` have passed (at least one step).

    `replan(seconds per training frame) -> seconds`: called once after a few steps, when the speed of
    this machine (shared, so not known in advance) is measured, to set the phase's final length.
    """
    _set_target_stats(model, targets)
    gen = torch.Generator().manual_seed(seed)
    tgt = torch.from_numpy(targets)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    model.train()
    t0 = cpu_clock()
    step, seen, last_log = 0, 0, time.monotonic()
    n = frames.shape[0]
    order = torch.randperm(n, generator=gen)
    pos = 0
    stats: dict = {}
    while True:
        frac = (cpu_clock() - t0) / max(seconds, 1e-6)
        if step > 0 and frac >= 1.0:
            break
        for g in opt.param_groups:
            g["lr"] = _lr_at(frac, lr)
        if pos + batch > n:
            order, pos = torch.randperm(n, generator=gen), 0
        idx = order[pos:pos + batch]
        pos += batch
        x = frames[idx].permute(0, 3, 1, 2).float() / 127.5 - 1.0
        x = _degrade(x, gen)
        raw = model(x, _jittered_box(model.config, tgt[idx], gen))
        loss, stats = frame_loss(model, raw, tgt[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        opt.step()
        step += 1
        seen += len(idx)
        if replan is not None and step == REPLAN_STEP:
            seconds = max(cpu_clock() - t0, replan((cpu_clock() - t0) / seen))
            _log(progress, f"  {seen / (cpu_clock() - t0):.0f} frames per CPU second: training for {seconds:.0f} "
                           "CPU seconds in all")
        if time.monotonic() - last_log > 30:
            last_log = time.monotonic()
            _log(progress, f"  frame probe step {step}, {seen / n:.1f} epochs, loss {float(loss.detach()):.3f} "
                           f"(mouth {stats['mouth']:.3f}, hands {stats['hands']:.3f}, identity {stats['identity']:.3f})")
    model.eval()
    return {"steps": step, "frames_seen": seen, "epochs": round(seen / n, 2), "cpu_seconds": round(cpu_clock() - t0, 1),
            "final_loss": {k: round(v, 4) for k, v in stats.items()}}


def _label_sequences(clips: list[Path]):
    from ..synth.dataset import load_labels, load_meta

    feats, acts = [], []
    for clip in clips:
        labels = load_labels(clip)
        size = int(load_meta(clip).get("size", 128)) if (clip / "meta.json").exists() else 128
        feats.append(action_features(label_targets(labels, size)))
        acts.append(labels["action"].astype(np.int64))
    return feats, acts


def train_action_probe(model: ActionProbe, feats: list[np.ndarray], acts: list[np.ndarray], noise_std: np.ndarray,
                       seconds: float, *, batch: int = 32, lr: float = 3e-3, seed: int = 0) -> dict:
    """Train on label feature sequences + noise of the frame probe's size, for `seconds` (at least one step)."""
    allf = np.concatenate(feats)
    model.feature_mean.copy_(torch.from_numpy(allf.mean(0)))
    model.feature_std.copy_(torch.from_numpy(np.maximum(allf.std(0), 1e-3)))
    rng = np.random.default_rng(seed)
    noise = torch.from_numpy(np.asarray(noise_std, np.float32))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    model.train()
    t0 = cpu_clock()
    step = 0
    loss = torch.zeros(())
    while step == 0 or cpu_clock() - t0 < seconds:
        for g in opt.param_groups:
            g["lr"] = _lr_at((cpu_clock() - t0) / max(seconds, 1e-6), lr)
        pick = rng.integers(len(feats), size=batch)
        t_min = min(len(feats[i]) for i in pick)
        length = int(rng.integers(min(49, t_min), t_min + 1))
        xs, ys = [], []
        for i in pick:
            s = int(rng.integers(0, len(feats[i]) - length + 1))
            xs.append(feats[i][s:s + length])
            ys.append(acts[i][s:s + length])
        x = torch.from_numpy(np.stack(xs))
        y = torch.from_numpy(np.stack(ys))
        gen_noise = torch.from_numpy(rng.standard_normal(x.shape).astype(np.float32))
        bias = torch.from_numpy(rng.standard_normal((x.shape[0], 1, x.shape[2])).astype(np.float32))
        x = x + noise * (gen_noise + 0.5 * bias)
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
    model.eval()
    return {"steps": step, "cpu_seconds": round(cpu_clock() - t0, 1), "final_loss": round(float(loss.detach()), 4)}


def frame_accuracy(read: dict, targets: np.ndarray, config: ProbeConfig) -> dict:
    """Per-frame probe errors against label targets (units: mouth 0..1, degrees, fraction of the frame)."""
    s = config.head_slices()
    t = {name: targets[:, sl] for name, sl in s.items()}
    vis = t["hands_visible"] > 0.5
    hand_err = np.linalg.norm(read["hands"] - t["hands"].reshape(-1, 2, 2), axis=-1)
    mouth = read["mouth"]
    mouth_t = t["mouth"][:, 0]
    mouth_corr = float(np.corrcoef(mouth, mouth_t)[0, 1]) if mouth.std() > 0 and mouth_t.std() > 0 else 0.0
    return {
        "frames": int(len(mouth)),
        "mouth_mae": round(float(np.abs(mouth - mouth_t).mean()), 4),
        "mouth_corr": round(mouth_corr, 4),
        "yaw_pitch_roll_mae_deg": [round(float(v), 2) for v in np.abs(read["head_pose"] - t["head_pose"]).mean(0)],
        "head_center_err": round(float(np.linalg.norm(read["head_center"] - t["head_center"], axis=-1).mean()), 4),
        "hand_err_visible": round(float(hand_err[vis].mean()), 4) if vis.any() else None,
        "hand_visible_acc": round(float(((read["hands_visible"] > 0.5) == vis).mean()), 4),
        "smile_mae": round(float(np.abs(read["smile"] - t["smile"][:, 0]).mean()), 4),
        "lean_mae": round(float(np.abs(read["lean"] - t["lean"][:, 0]).mean()), 4),
    }


def identity_accuracy(emb: np.ndarray, owner_ids: np.ndarray) -> dict:
    """Same-identity vs different-identity cosine of frame embeddings, and nearest-identity retrieval."""
    ids = np.unique(owner_ids)
    cent = np.stack([emb[owner_ids == i].mean(0) for i in ids])
    sims = cosine(emb[:, None, :], cent[None, :, :])  # [N, n_ids]
    own = sims[np.arange(len(emb)), np.searchsorted(ids, owner_ids)]
    other = (sims.sum(1) - own) / max(1, len(ids) - 1)
    return {"identities": int(len(ids)), "same_cos": round(float(own.mean()), 4),
            "other_cos": round(float(other.mean()), 4),
            "retrieval_top1": round(float((ids[sims.argmax(1)] == owner_ids).mean()), 4)}


def test_report(probes: Probes, clips: list[Path]) -> dict:
    """Probe accuracy on whole clips of a labelled split: per-frame errors, identity, actions per span."""
    from ..synth.dataset import load_meta
    from ..synth.vocab import ACTIONS

    cfg = probes.config
    reads, targets, owners, correct_frames, total_frames, span_hits = [], [], [], 0, 0, []
    for clip in clips:
        x, tg, labels, meta, t = _read_clip(clip, None, cfg.size)
        r = probes.read(x)
        reads.append(r.as_dict())
        targets.append(target_matrix(tg, cfg))
        owners.append(np.full(len(x), int(labels["identity_id"]) if "identity_id" in labels else len(owners)))
        pred = r.action_probs.argmax(1)
        gt = labels["action"][:t].astype(np.int64)
        correct_frames += int((pred == gt).sum())
        total_frames += t
        for name, a, b in (meta.get("actions") or []):
            span_hits.append(int(ACTIONS[int(r.action_probs[a:b].mean(0).argmax())] == name))
    read = {k: np.concatenate([d[k] for d in reads]) for k in reads[0]}
    rep = frame_accuracy(read, np.concatenate(targets), cfg)
    rep["identity"] = identity_accuracy(read["identity"], np.concatenate(owners))
    rep["action_frame_acc"] = round(correct_frames / max(total_frames, 1), 4)
    rep["action_span_acc"] = round(float(np.mean(span_hits)), 4) if span_hits else None
    rep["clips"] = len(clips)
    return rep


def train_probes(data_dir, out, minutes: float = 10.0, *, frames_per_clip: int = 32, batch: int = 64,
                 threads: int | None = 1, seed: int = 0, val_identities: float = 0.05, test_clips: int | None = None,
                 progress: Callable[[str], None] | None = print) -> dict:
    """Train both probes on `data_dir`'s train split within `minutes`, test on its test split, save to `out`."""
    t_start, cpu_start = time.monotonic(), cpu_clock()
    if not (isinstance(minutes, (int, float)) and minutes > 0):
        raise InputError(f"--minutes must be a positive number, got {minutes!r}")
    if frames_per_clip < 1 or batch < 2:
        raise InputError("frames_per_clip must be >= 1 and batch >= 2")
    out = Path(out)
    if out.suffix != ".safetensors":
        raise InputError(f"--out {out} must end in .safetensors")
    train_clips = dataset_clips(data_dir, "train")
    test = dataset_clips(data_dir, "test")
    require_labels(train_clips + test, "train-probes")
    if test_clips is not None:
        test = test[:test_clips]
    out.parent.mkdir(parents=True, exist_ok=True)
    budget = 60.0 * minutes
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    torch.manual_seed(seed)
    try:
        config = ProbeConfig()
        # Validation identities: a few train characters the frame probe never sees.
        from ..synth.dataset import read_index

        index = read_index(data_dir)
        ids = sorted({e["identity"] for e in index["splits"]["train"]})
        rng = np.random.default_rng(seed + 1)
        n_val = max(1, int(round(len(ids) * val_identities))) if len(ids) > 1 else 0
        val_ids = set(rng.choice(ids, size=n_val, replace=False).tolist()) if n_val else set()
        entries = index["splits"]["train"]
        fit_clips = [c for c, e in zip(train_clips, entries) if e["identity"] not in val_ids]
        val_clips = [c for c, e in zip(train_clips, entries) if e["identity"] in val_ids]

        _log(progress, f"loading {frames_per_clip} frames from each of {len(fit_clips)} train clips "
                       f"(+{len(val_clips)} validation clips of {n_val} held-out identities)")
        frames, targets, _ = load_frames(fit_clips, frames_per_clip, config.size, seed, progress, "train clips")
        val = load_frames(val_clips, 16, config.size, seed + 2) if val_clips else None
        load_s = cpu_clock() - cpu_start
        _log(progress, f"loaded {len(frames)} frames in {load_s:.0f} s")

        # The rest of the budget: the action probe and the test pass get what they need (the test pass's
        # cost is estimated once the training speed is known), the frame probe the remainder.
        left = budget - load_s
        action_s = min(60.0, max(1.0, 0.1 * left))
        decode_per_clip = load_s / max(1, len(fit_clips) + len(val_clips))
        test_frames = sum(int(np.load(c / "labels.npz")["mouth"].shape[0]) for c in test)

        def replan(per_frame: float) -> float:
            test_s = len(test) * decode_per_clip + test_frames * per_frame * INFER_COST
            return max(1.0, left - action_s - test_s - 5.0)

        frame_s = max(1.0, 0.8 * left - action_s)
        frame_probe = FrameProbe(config)
        _log(progress, f"training the frame probe ({sum(p.numel() for p in frame_probe.parameters()):,} parameters)")
        frame_info = train_frame_probe(frame_probe, frames, targets, frame_s, batch=batch, seed=seed,
                                       progress=progress, replan=replan)
        del frames
        probes = Probes(config, frame_probe)

        # Noise level of each action feature: the frame probe's error on the validation identities.
        feats, acts = _label_sequences(train_clips)
        if val is not None:
            vframes, vtargets, _ = val
            vread = probes.read_frames(vframes.numpy())
            s = config.head_slices()
            vt = {name: vtargets[:, sl] for name, sl in s.items()}
            noise = (action_features(vread) - action_features(vt)).std(0)
            val_rep = frame_accuracy(vread, vtargets, config)
        else:
            noise = np.full(feats[0].shape[1], 0.05, np.float32)
            val_rep = None
        _log(progress, f"training the action probe for {action_s:.0f} s on {len(feats)} label sequences")
        action_info = train_action_probe(probes.action, feats, acts, noise, action_s, seed=seed)

        _log(progress, f"testing on {len(test)} clips of unseen identities")
        test_rep = test_report(probes, test)
        probes.report = {
            "data": str(Path(data_dir)), "train_clips": len(fit_clips), "validation_clips": len(val_clips),
            "frames_per_clip": frames_per_clip, "minutes_budget": minutes,
            "wall_seconds": round(time.monotonic() - t_start, 1), "cpu_seconds": round(cpu_clock() - cpu_start, 1),
            "threads": torch.get_num_threads(),
            "load_cpu_seconds": round(load_s, 1), "frame_probe": frame_info, "action_probe": action_info,
            "action_noise_std": [round(float(v), 4) for v in noise], "validation": val_rep, "test": test_rep,
        }
        probes.save(out, note=f"evaluate train-probes --minutes {minutes:g}, seed {seed}")
        _log(progress, f"wrote {out} after {cpu_clock() - cpu_start:.0f} CPU seconds "
                       f"({time.monotonic() - t_start:.0f} s wall)")
        return probes.report
    finally:
        torch.set_num_threads(old_threads)
