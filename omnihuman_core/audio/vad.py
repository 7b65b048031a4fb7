"""Energy-based speech activity per video frame: when the character speaks and when it listens.

No model: frame energy in dB against an adaptive threshold set between the clip's own noise floor
and its loud level, with hysteresis and minimum durations so the pauses between words do not
flicker to silence. Good enough to plan speaking vs. listening shots; not a phoneme aligner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import InputError
from .io import SAMPLE_RATE


@dataclass(frozen=True)
class VADConfig:
    noise_percentile: float = 10.0  # frames this quiet estimate the noise floor
    loud_percentile: float = 95.0  # ... and these the speech level (robust to a few clicks)
    onset_fraction: float = 0.5  # speech starts this far up from the floor to the loud level
    max_below_loud_db: float = 30.0  # ... but never more than this below the loud level
    hysteresis_db: float = 6.0  # speech continues until energy drops this far below the onset level
    min_dynamic_db: float = 10.0  # less floor-to-loud range than this: no pauses, all one state
    absolute_floor_dbfs: float = -55.0  # nothing quieter than this is speech
    min_silence_s: float = 0.3  # shorter gaps between speech are pauses between words
    min_speech_s: float = 0.1  # shorter bursts are clicks/breaths


def _frame_energy_db(waveform: torch.Tensor, sample_rate: int, fps: float, n_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """RMS level (dBFS) of each video frame's span of samples, and which frames contain audio."""
    w = waveform.detach().to("cpu", torch.float64)
    cs = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(w * w, 0)])
    k = torch.arange(n_frames + 1, dtype=torch.float64)
    bounds = torch.round(k * sample_rate / fps).long().clamp(max=w.numel())
    s, e = bounds[:-1], bounds[1:]
    count = (e - s).clamp(min=1).double()
    ms = (cs[e] - cs[s]) / count
    db = 10.0 * torch.log10(ms.clamp_min(1e-12))  # -120 dBFS stands for digital silence
    return db, e > s


def _runs(mask: torch.Tensor) -> list[tuple[int, int, bool]]:
    """Maximal runs of equal values: (start, end exclusive, value)."""
    vals = mask.tolist()
    runs, i = [], 0
    while i < len(vals):
        j = i
        while j < len(vals) and vals[j] == vals[i]:
            j += 1
        runs.append((i, j, vals[i]))
        i = j
    return runs


def speech_activity(
    waveform: torch.Tensor,
    fps: float,
    n_frames: int,
    sample_rate: int = SAMPLE_RATE,
    config: VADConfig = VADConfig(),
) -> torch.Tensor:
    """Bool `[n_frames]`: True where video frame k (samples [k/fps, (k+1)/fps)) contains speech."""
    if not isinstance(waveform, torch.Tensor) or waveform.dim() != 1:
        shape = tuple(waveform.shape) if isinstance(waveform, torch.Tensor) else type(waveform).__name__
        raise InputError(f"speech_activity needs a mono waveform tensor [N], got {shape}")
    if not fps > 0 or not math.isfinite(fps):
        raise InputError(f"fps must be a positive number, got {fps!r}")
    if isinstance(n_frames, bool) or int(n_frames) != n_frames or n_frames < 0:
        raise InputError(f"n_frames must be an integer >= 0, got {n_frames!r}")
    if not sample_rate > 0:
        raise InputError(f"sample_rate must be positive, got {sample_rate!r}")
    n_frames = int(n_frames)
    if n_frames == 0 or waveform.numel() == 0:
        return torch.zeros(n_frames, dtype=torch.bool)

    db, has_audio = _frame_energy_db(waveform, sample_rate, fps, n_frames)
    inside = db[has_audio]
    if inside.numel() == 0:
        return torch.zeros(n_frames, dtype=torch.bool)
    floor = float(torch.quantile(inside, config.noise_percentile / 100.0))
    loud = float(torch.quantile(inside, config.loud_percentile / 100.0))
    if loud - floor < config.min_dynamic_db:
        # No quiet stretches to learn a floor from: the clip is all speech or all noise.
        active = has_audio & (db > config.absolute_floor_dbfs) if loud > config.absolute_floor_dbfs \
            else torch.zeros(n_frames, dtype=torch.bool)
    else:
        onset = max(floor + config.onset_fraction * (loud - floor), loud - config.max_below_loud_db,
                    config.absolute_floor_dbfs)
        release = max(onset - config.hysteresis_db, floor + 0.5 * config.hysteresis_db)
        states, speaking = [], False
        for level in db.tolist():
            speaking = level >= (release if speaking else onset)
            states.append(speaking)
        active = torch.tensor(states, dtype=torch.bool) & has_audio

    # Minimum durations: first close short pauses between words, then drop isolated clicks.
    min_gap = max(1, round(config.min_silence_s * fps))
    for s, e, v in _runs(active):
        if not v and s > 0 and e < n_frames and e - s < min_gap and bool(has_audio[e - 1]):
            active[s:e] = True
    min_run = max(1, round(config.min_speech_s * fps))
    for s, e, v in _runs(active):
        if v and e - s < min_run:
            active[s:e] = False
    return active


def speech_spans(activity: torch.Tensor, fps: float) -> list[tuple[float, float]]:
    """Runs of True in a per-frame activity mask as `(start_s, end_s)` seconds, end exclusive."""
    if not isinstance(activity, torch.Tensor) or activity.dim() != 1:
        raise InputError("speech_spans needs a 1-D bool tensor from speech_activity")
    if not fps > 0:
        raise InputError(f"fps must be a positive number, got {fps!r}")
    return [(s / fps, e / fps) for s, e, v in _runs(activity.bool().cpu()) if v]
