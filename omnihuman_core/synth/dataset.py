"""Write the synthetic world as a dataset in the trainer's on-disk layout.

    out_dir/
      index.json                 settings, vocab, clips per split (id, path, identity, caption)
      train/<clip_id>/video.mp4  H.264 (with video_audio=True also an AAC copy of the audio, for watching)
                      audio.wav  16 kHz mono 16-bit PCM, exactly frames / fps seconds
                      caption.txt one line
                      schedule.json the clip's timed actions as a Schedule (one shot and prompt per action):
                                 the trainer captions each window with the shot covering most of it
                      labels.npz per-frame ground truth (synth only; numeric arrays, no pickle)
                      meta.json  character spec, actions, emotion, camera, speech phrases (synth only)
      test/<clip_id>/...         the held-out split: characters never seen in train

Deterministic by seed: every clip depends only on (seed, clip index) and the settings, so a run
can be interrupted and resumed (finished clips are kept and skipped) or spread over processes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InputError
from .character import CharacterSpec, sample_character
from .speech import SAMPLE_RATE, resolve_engine, write_wav
from .vocab import ACTIONS, CAMERAS, EMOTIONS
from .world import SYNTH_VERSION, Clip, action_schedule, generate_clip

SPLITS = ("train", "test")
INDEX_NAME = "index.json"
CLIP_FILES = ("video.mp4", "audio.wav", "caption.txt", "schedule.json", "labels.npz", "meta.json")


def derived_seed(*parts: int) -> int:
    """A 63-bit seed from integers (clip and identity seeds are independent of each other's counts)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def identity_plan(n_clips: int, seed: int, test_fraction: float, clips_per_identity: int) -> list[dict]:
    """Which identity and split each clip gets. Test identities are disjoint from train identities."""
    n_ids = max(1, math.ceil(n_clips / clips_per_identity))
    n_test = 0
    if test_fraction > 0 and n_ids >= 2:
        n_test = min(n_ids - 1, max(1, int(round(n_ids * test_fraction))))
    perm = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5117])).permutation(n_ids)
    test_ids = set(int(i) for i in perm[:n_test])
    plan = []
    for i in range(n_clips):
        ident = i % n_ids  # round robin: every identity gets clips_per_identity clips (+-1)
        plan.append({"index": i, "clip_id": f"clip_{i:06d}", "identity": ident,
                     "identity_seed": derived_seed(seed, 0x1D, ident),
                     "clip_seed": derived_seed(seed, 0xC1, i),
                     "split": "test" if ident in test_ids else "train"})
    return plan


def write_clip(clip: Clip, clip_dir, *, identity_id: int = -1, video_audio: bool = False, crf: int = 18) -> Path:
    """Write one clip's files (CLIP_FILES) into `clip_dir` (created)."""
    from ..media import VideoWriter  # imports torch and PyAV: only when video is written

    d = Path(clip_dir)
    d.mkdir(parents=True, exist_ok=True)
    T, H, W, _ = clip.frames.shape
    audio = (clip.waveform, SAMPLE_RATE) if video_audio else None
    with VideoWriter(d / "video.mp4", clip.meta["fps"], W, H, audio=audio, crf=crf, preset="medium") as vw:
        vw.write(clip.frames)
    write_wav(d / "audio.wav", clip.waveform)
    (d / "caption.txt").write_text(clip.caption + "\n", encoding="utf-8")
    action_schedule(CharacterSpec.from_dict(clip.meta["character"]), clip.meta).save(d / "schedule.json")
    labels = dict(clip.labels)
    labels["identity_id"] = np.asarray(identity_id, np.int32)
    np.savez_compressed(d / "labels.npz", **{k: np.asarray(v) for k, v in labels.items()})
    meta = dict(clip.meta, identity_id=int(identity_id))
    (d / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return d


def load_labels(clip_dir) -> dict:
    """A clip's labels.npz as a dict of numpy arrays (no pickle)."""
    p = Path(clip_dir) / "labels.npz"
    if not p.exists():
        raise InputError(f"{p} does not exist; labels exist only for synthetic clips (python -m omnihuman_core synth)")
    with np.load(p, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def load_meta(clip_dir) -> dict:
    return json.loads((Path(clip_dir) / "meta.json").read_text(encoding="utf-8"))


def read_index(out_dir) -> dict:
    p = Path(out_dir) / INDEX_NAME
    if not p.exists():
        raise InputError(f"{p} does not exist; write the dataset first (python -m omnihuman_core synth --out {out_dir})")
    return json.loads(p.read_text(encoding="utf-8"))


def _settings(n_clips, seed, size, fps, frames, test_fraction, clips_per_identity, engine) -> dict:
    return {"n_clips": int(n_clips), "seed": int(seed), "size": int(size), "fps": float(fps), "frames": int(frames),
            "test_fraction": float(test_fraction), "clips_per_identity": int(clips_per_identity),
            "speech": engine, "synth_version": SYNTH_VERSION, "sample_rate": SAMPLE_RATE}


def _fingerprint(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _clip_done(clip_dir: Path, fingerprint: str) -> bool:
    if not all((clip_dir / f).exists() for f in CLIP_FILES):
        return False
    try:
        return load_meta(clip_dir).get("dataset_fingerprint") == fingerprint
    except (OSError, ValueError):
        return False


def _make_one(job: dict) -> dict:
    """Generate and write one clip (runs in a worker process when workers > 1)."""
    out, entry, st = Path(job["out"]), job["entry"], job["settings"]
    final = out / entry["split"] / entry["clip_id"]
    if not _clip_done(final, job["fingerprint"]):
        spec = sample_character(entry["identity_seed"])
        clip = generate_clip(spec, entry["clip_seed"], n_frames=st["frames"], fps=st["fps"], size=st["size"],
                             speech=st["speech"])
        clip.meta.update(clip_id=entry["clip_id"], split=entry["split"], dataset_fingerprint=job["fingerprint"])
        tmp = final.parent / f".{entry['clip_id']}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        write_clip(clip, tmp, identity_id=entry["identity"], video_audio=job["video_audio"], crf=job["crf"])
        shutil.rmtree(final, ignore_errors=True)  # a stale clip from other settings
        os.replace(tmp, final)  # all files appear at once: an interrupted run leaves no half clip
        caption = clip.caption
    else:
        caption = (final / "caption.txt").read_text(encoding="utf-8").strip()
    return {"id": entry["clip_id"], "path": f"{entry['split']}/{entry['clip_id']}", "identity": entry["identity"],
            "frames": st["frames"], "caption": caption}


def write_dataset(out_dir, n_clips: int, seed: int = 0, size: int = 128, fps: float = 24.0, frames: int = 121, *,
                  test_fraction: float = 0.1, clips_per_identity: int = 4, speech: str = "auto", workers: int = 1,
                  video_audio: bool = False, crf: int = 18,
                  progress: Callable[[int, int, str], None] | None = None) -> dict:
    """Generate `n_clips` clips into `out_dir` (layout in the module docstring); returns the index.

    Identities: ceil(n_clips / clips_per_identity) characters, each in several clips (different
    speech, actions, camera); `test_fraction` of the identities (at least one when there are two or
    more) form the test split. Rerunning with the same settings resumes; other settings in a folder
    that already has a dataset raise InputError.
    """
    for name, value, lo in (("n_clips", n_clips, 1), ("clips_per_identity", clips_per_identity, 1),
                            ("frames", frames, 1), ("workers", workers, 1)):
        if isinstance(value, bool) or int(value) != value or value < lo:
            raise InputError(f"{name} must be an integer >= {lo}, got {value!r}")
    if not 0 <= test_fraction < 1:
        raise InputError(f"test_fraction must be in [0, 1), got {test_fraction!r}")
    if not fps > 0:
        raise InputError(f"fps must be positive, got {fps!r}")
    from .render import Rig

    Rig(CharacterSpec(), size)  # validates size now, before any work
    engine = resolve_engine(speech)
    out = Path(out_dir)
    settings = _settings(n_clips, seed, size, fps, frames, test_fraction, clips_per_identity, engine)
    fp = _fingerprint(settings)
    index_path = out / INDEX_NAME
    if index_path.exists():
        old = read_index(out)
        if old.get("fingerprint") != fp:
            raise InputError(f"{out} already holds a synthetic dataset written with other settings "
                             f"({old.get('settings')}); choose a new --out folder or delete this one")
    for split in SPLITS:
        (out / split).mkdir(parents=True, exist_ok=True)

    plan = identity_plan(int(n_clips), seed, test_fraction, int(clips_per_identity))
    jobs = [{"out": str(out), "entry": e, "settings": settings, "fingerprint": fp, "video_audio": video_audio,
             "crf": int(crf)} for e in plan]
    results: list[dict | None] = [None] * len(jobs)
    if workers == 1:
        for i, job in enumerate(jobs):
            results[i] = _make_one(job)
            if progress:
                progress(i + 1, len(jobs), job["entry"]["clip_id"])
    else:
        with ProcessPoolExecutor(max_workers=int(workers), mp_context=get_context("spawn")) as ex:
            for i, res in enumerate(ex.map(_make_one, jobs, chunksize=4)):
                results[i] = res
                if progress:
                    progress(i + 1, len(jobs), res["id"])

    index = {
        "format": "omnihuman-synth",
        "version": SYNTH_VERSION,
        "fingerprint": fp,
        "settings": settings,
        "layout": {"video": "video.mp4", "audio": "audio.wav", "caption": "caption.txt",
                   "schedule": "schedule.json", "labels": "labels.npz",
                   "meta": "meta.json"},
        "vocab": {"actions": list(ACTIONS), "emotions": list(EMOTIONS), "cameras": list(CAMERAS)},
        "identities": {s: sorted({e["identity"] for e in plan if e["split"] == s}) for s in SPLITS},
        "splits": {s: [r for r, e in zip(results, plan) if e["split"] == s] for s in SPLITS},
    }
    tmp = out / (INDEX_NAME + ".tmp")
    tmp.write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, index_path)
    return index
