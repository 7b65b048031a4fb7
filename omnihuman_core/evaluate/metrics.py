"""The benchmark's metrics, computed from probe read-outs (definitions and units: docs/EVALUATION.md).

Pure numpy on arrays, so they can be checked on hand-made signals: no probes or videos needed here.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..errors import InputError
from ..synth.speech import SAMPLE_RATE, SPEECH_RMS_DBFS, frame_levels_db, mouth_track
from ..synth.vocab import ACTIONS, parse_prompt
from .probes import cosine

MAX_OFFSET = 5  # lip-sync search: audio shifted by -5..5 frames (about +-0.2 s at 24 fps)
MIN_OVERLAP = 8  # frames two tracks must share for a correlation to mean anything
FLAT_STD = 1e-4  # a track varying less than this is constant (a frozen or silent mouth)
HAND_VISIBLE = 0.5  # probability above which a hand counts as in the frame


def pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation; None when `b` (the reference) is constant, 0 when only `a` is."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if b.std() < FLAT_STD:
        return None
    if a.std() < FLAT_STD:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def audio_mouth(waveform, fps: float, n_frames: int, *, normalize: bool = False) -> np.ndarray:
    """The mouth track the audio implies (`synth.mouth_track`), [n_frames] in 0..1.

    `normalize`: first scale the speech to the synthetic world's level (SPEECH_RMS_DBFS over the frames
    within 30 dB of the loudest), for audio that was not made by `synth` (its thresholds are absolute dBFS).
    """
    x = np.asarray(waveform.detach().cpu().numpy() if hasattr(waveform, "detach") else waveform, np.float32)
    if normalize and n_frames > 0 and np.abs(x).max() > 0:
        db = frame_levels_db(x, fps, n_frames)
        loud = db[db > db.max() - 30.0]
        level = 10 * np.log10(np.mean(10 ** (loud / 10)) + 1e-12)
        x = x * np.float32(10 ** ((SPEECH_RMS_DBFS - level) / 20))
    return mouth_track(x, fps, n_frames, SAMPLE_RATE)


def lip_sync(video_mouth: np.ndarray, audio_mouth_track: np.ndarray, max_offset: int = MAX_OFFSET) -> dict:
    """Sync-C analogue: Pearson correlation of the mouth read from the video with the audio's mouth track.

    Tried at offsets k = -max_offset..max_offset, comparing video frame t with audio frame t + k over the
    frames both cover. `offset` is the k with the highest correlation: how many frames the sound comes
    after the mouth (0 = in sync; an audio track delayed by s frames gives s). `corr` is that maximum.
    Both are None when the audio is silent (a closed mouth has nothing to be in sync with).
    """
    v = np.asarray(video_mouth, np.float64).reshape(-1)
    a = np.asarray(audio_mouth_track, np.float64).reshape(-1)
    if v.shape != a.shape:
        raise InputError(f"the video's mouth track has {v.size} frames but the audio's has {a.size}; "
                         "they must cover the same frames")
    n = v.size
    by_offset: dict[int, float] = {}
    for k in range(-max_offset, max_offset + 1):
        lo, hi = max(0, -k), min(n, n - k)
        if hi - lo < MIN_OVERLAP:
            continue
        c = pearson(v[lo:hi], a[lo + k:hi + k])
        if c is not None:
            by_offset[k] = c
    if not by_offset:
        return {"corr": None, "offset": None, "corr_at_0": None, "by_offset": {},
                "reason": "the audio is silent or too short: nothing to be in sync with"}
    best = max(by_offset, key=lambda k: (by_offset[k], -abs(k)))
    return {"corr": by_offset[best], "offset": int(best), "corr_at_0": by_offset.get(0),
            "by_offset": {str(k): round(c, 4) for k, c in by_offset.items()}}


def identity_similarity(frame_embeddings: np.ndarray, reference_embedding: np.ndarray) -> dict:
    """Cosine similarity of every frame's identity embedding to the reference image's: mean, min, per frame."""
    sims = cosine(np.asarray(frame_embeddings), np.asarray(reference_embedding)[None, :])
    return {"mean": float(sims.mean()), "min": float(sims.min()), "per_frame": sims}


def hkv(hands: np.ndarray, visible: np.ndarray, threshold: float = HAND_VISIBLE) -> float | None:
    """HKV analogue: temporal variance of the hand centres, in (percent of the frame size)^2.

    Per hand and axis, the variance over the frames where that hand is visible (at least 2), averaged
    over the hand-axes that have them; None when no hand is visible twice.
    """
    h = np.asarray(hands, np.float64).reshape(-1, 2, 2) * 100.0
    vis = np.asarray(visible).reshape(-1, 2) > threshold
    out = []
    for side in range(2):
        pts = h[vis[:, side], side]
        if len(pts) >= 2:
            out.extend(pts.var(0).tolist())
    return float(np.mean(out)) if out else None


def frame_range(start_s: float, end_s: float, fps: float, n_frames: int) -> tuple[int, int]:
    a = min(n_frames, max(0, int(round(start_s * fps))))
    b = min(n_frames, max(a, int(round(end_s * fps))))
    return a, b


def action_units(action_probs: np.ndarray, spans: Sequence[tuple[float, float, str]], fps: float) -> list[dict]:
    """Text adherence: for every (start s, end s, prompt), the action(s) the prompt asks for vs the action read.

    `parse_prompt` gives the prompt's actions in order; a span asking for n actions is split into n equal
    parts and each part compared on its central half (the boundary inside a segment is not known).
    The action read from frames is the argmax of the action probe's mean probabilities over them.
    Prompts in which parse_prompt finds nothing are skipped (they ask for no action).
    """
    probs = np.asarray(action_probs, np.float64)
    n = probs.shape[0]
    units = []
    for i, (start_s, end_s, prompt) in enumerate(spans):
        parsed = parse_prompt(prompt)
        if not parsed.matched:
            continue
        a, b = frame_range(start_s, end_s, fps, n)
        k = len(parsed.actions)
        for j, expected in enumerate(parsed.actions):
            lo = a + (b - a) * j / k
            hi = a + (b - a) * (j + 1) / k
            if k > 1:
                lo, hi = lo + (hi - lo) / 4, hi - (hi - lo) / 4
            lo, hi = int(math.floor(lo)), int(math.ceil(hi))
            if hi <= lo:
                continue
            read = ACTIONS[int(probs[lo:hi].mean(0).argmax())]
            units.append({"span": i, "start": lo, "end": hi, "expected": expected, "read": read,
                          "correct": read == expected})
    return units


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float | None:
    """Frechet distance between Gaussians fitted to two feature sets `[N, D]` (FID's formula):
    |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2). None when either set has fewer than 2 rows.

    The paper reports FID / FVD; here the features are the frame probe's hidden layer, so it asks whether the
    frames look like the world's frames at all, which the read-outs (a mouth opening, an identity embedding)
    do not: a blotchy render in the right colours can read as the right character.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise InputError(f"frechet_distance needs two [N, D] feature sets of one width, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        return None
    mu = a.mean(0) - b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Tr((S_a S_b)^1/2) = Tr((R S_b R)^1/2) with R = S_a^1/2: a symmetric PSD matrix, so eigh is exact and stable.
    w, v = np.linalg.eigh(sa)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root @ sb @ root)
    return float(mu @ mu + np.trace(sa) + np.trace(sb) - 2 * np.sqrt(np.clip(inner, 0, None)).sum())


def relative_drop(first: float | None, last: float | None) -> float | None:
    """(first - last) / |first|: the share of a metric lost from the start of a video to its end."""
    if first is None or last is None or abs(first) < 1e-6:
        return None
    return (first - last) / abs(first)


def mean_of(values) -> float | None:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(vals)) if vals else None


def ratio(value: float | None, ceiling: float | None) -> float | None:
    if value is None or ceiling is None or abs(ceiling) < 1e-9:
        return None
    return value / ceiling


def paired_bootstrap(numerators: np.ndarray, denominators: np.ndarray | None = None, *, level: float = 0.9,
                     resamples: int = 10000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of per-clip paired differences and its `level` percentile-bootstrap interval over clips.

    `numerators` holds one difference per clip (row minus baseline). With `denominators` the statistic is a
    pooled ratio, sum(num) / sum(den), as action accuracy pools spans over clips. Clips are what a table
    samples, so they are what is resampled; the render seed's own noise is not in the interval.
    """
    num = np.asarray(numerators, np.float64)
    den = np.ones_like(num) if denominators is None else np.asarray(denominators, np.float64)
    if num.ndim != 1 or num.shape != den.shape or len(num) == 0 or den.sum() <= 0:
        raise InputError("paired_bootstrap needs one value per clip (and a positive total)")
    idx = np.random.default_rng(seed).integers(0, len(num), size=(resamples, len(num)))
    dens = den[idx].sum(1)
    stats = num[idx].sum(1) / np.where(dens > 0, dens, np.nan)
    lo, hi = np.nanpercentile(stats, [50 * (1 - level), 50 * (1 + level)])
    return float(num.sum() / den.sum()), float(lo), float(hi)
