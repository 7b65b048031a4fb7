"""Facts about the audio computed locally, for LLMs that cannot hear it (and to ground those that can).

Duration, speech/silence spans (the audio package's VAD), loudness per second and a pitch contour
summary per speech span. The Planner aligns speaking and idle shots to these spans; the offline
planner uses them alone.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import torch

from ..audio import SAMPLE_RATE, speech_activity, speech_spans

FACT_FPS = 100.0  # VAD resolution for the facts (10 ms); the grid is 24/25 fps, so this is finer
PITCH_FRAME_S = 0.04  # 40 ms analysis window: two periods of the lowest pitch searched
PITCH_HOP_S = 0.01
PITCH_MIN_HZ, PITCH_MAX_HZ = 70.0, 500.0  # adult and child speech, most singing
VOICING_THRESHOLD = 0.45  # normalised autocorrelation peak above which a frame is voiced
PITCH_CHUNK = 4096  # frames per FFT batch (bounds memory for 10-minute clips)
MAX_CONTOUR_POINTS = 120  # per-second loudness values listed for the LLM (longer clips are pooled)


@dataclass
class SpanFacts:
    """One speech span: when, how loud, what the voice's pitch does."""

    start: float
    end: float
    loudness_db: float  # mean RMS level, dBFS
    pitch_hz: float | None  # median F0 of voiced frames (None: no clear pitch)
    pitch_trend: str  # "rising" | "falling" | "flat" | "varied" | "unknown"


@dataclass
class AudioFacts:
    """What the Analyzer and Planner are told about the audio."""

    duration: float
    speech: list[SpanFacts] = field(default_factory=list)
    silences: list[tuple[float, float]] = field(default_factory=list)
    loudness_per_second: list[float] = field(default_factory=list)  # dBFS, pooled to <= MAX_CONTOUR_POINTS
    loudness_step_s: float = 1.0
    peak_db: float = -120.0
    pitch_median_hz: float | None = None
    pitch_range_hz: tuple[float, float] | None = None  # 10th..90th percentile

    def to_dict(self) -> dict:
        return asdict(self)

    def speech_fraction(self, start: float, end: float) -> float:
        """Share of [start, end) covered by speech spans."""
        if end <= start:
            return 0.0
        covered = sum(max(0.0, min(end, s.end) - max(start, s.start)) for s in self.speech)
        return covered / (end - start)

    def window(self, start: float, end: float) -> dict:
        """Speech share, loudness and pitch for one stretch of time (a segment of the grid)."""
        spans = [s for s in self.speech if min(end, s.end) > max(start, s.start)]
        loud = [v for i, v in enumerate(self.loudness_per_second)
                if min(end, (i + 1) * self.loudness_step_s) > max(start, i * self.loudness_step_s)]
        pitches = [s.pitch_hz for s in spans if s.pitch_hz]
        trends = sorted({s.pitch_trend for s in spans if s.pitch_trend != "unknown"})
        return {
            "speech": round(self.speech_fraction(start, end), 2),
            "loudness_db": round(float(np.mean(loud)), 1) if loud else None,
            "pitch_hz": round(float(np.median(pitches))) if pitches else None,
            "pitch_trend": "/".join(trends) or "none",
        }

    def to_text(self) -> str:
        """A compact plain-text summary for a prompt."""
        lines = [f"duration: {self.duration:.2f} s"]
        if self.speech:
            lines.append("speech spans (start-end s, loudness dBFS, median pitch Hz, pitch trend):")
            for s in self.speech:
                pitch = f"{s.pitch_hz:.0f} Hz" if s.pitch_hz else "no clear pitch"
                lines.append(f"  {s.start:.2f}-{s.end:.2f}: {s.loudness_db:.0f} dB, {pitch}, {s.pitch_trend}")
        else:
            lines.append("speech spans: none detected (music, noise or silence)")
        if self.silences:
            lines.append("silences (s): " + ", ".join(f"{a:.2f}-{b:.2f}" for a, b in self.silences))
        if self.pitch_median_hz:
            lo, hi = self.pitch_range_hz or (self.pitch_median_hz, self.pitch_median_hz)
            lines.append(f"voice pitch: median {self.pitch_median_hz:.0f} Hz, range {lo:.0f}-{hi:.0f} Hz")
        lines.append(f"peak level: {self.peak_db:.0f} dBFS")
        step = f"{self.loudness_step_s:g} s" if self.loudness_step_s != 1 else "second"
        lines.append(f"loudness per {step} (dBFS): " + " ".join(f"{v:.0f}" for v in self.loudness_per_second))
        return "\n".join(lines)


def _db(x: np.ndarray | float) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(x, 1e-12))


def pitch_track(wave: np.ndarray, sr: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """F0 per 10 ms hop by normalised autocorrelation: (times s, f0 Hz with NaN where unvoiced)."""
    n = int(PITCH_FRAME_S * sr)
    hop = int(PITCH_HOP_S * sr)
    if wave.size < n:
        return np.zeros(0), np.zeros(0)
    n_frames = 1 + (wave.size - n) // hop
    lag_min, lag_max = int(sr / PITCH_MAX_HZ), min(n - 1, int(sr / PITCH_MIN_HZ))
    nfft = 1 << (2 * n - 1).bit_length()
    window = np.hanning(n).astype(np.float32)
    f0 = np.full(n_frames, np.nan, dtype=np.float64)
    for c0 in range(0, n_frames, PITCH_CHUNK):
        idx = np.arange(c0, min(n_frames, c0 + PITCH_CHUNK))
        frames = np.lib.stride_tricks.as_strided(
            wave[idx[0] * hop:], shape=(idx.size, n), strides=(hop * wave.strides[0], wave.strides[0]))
        frames = (frames - frames.mean(axis=1, keepdims=True)) * window
        spec = np.fft.rfft(frames, nfft, axis=1)
        ac = np.fft.irfft(spec * np.conj(spec), nfft, axis=1)[:, :n]
        energy = ac[:, 0]
        ok = energy > 1e-8
        seg = ac[:, lag_min:lag_max + 1]
        best = seg.argmax(axis=1)
        peak = seg[np.arange(idx.size), best] / np.where(ok, energy, 1.0)
        voiced = ok & (peak > VOICING_THRESHOLD)
        f0[idx[voiced]] = sr / (best[voiced] + lag_min)
    times = (np.arange(n_frames) * hop + n / 2) / sr
    return times, f0


def _trend(times: np.ndarray, f0: np.ndarray) -> str:
    """Direction of the pitch over a span: slope of log-pitch in semitones over the span."""
    ok = ~np.isnan(f0)
    if ok.sum() < 5:
        return "unknown"
    t, semis = times[ok], 12 * np.log2(f0[ok])
    slope, _ = np.polyfit(t - t.mean(), semis, 1)
    change = slope * (t[-1] - t[0])
    spread = float(np.std(semis - np.polyval([slope, 0], t - t.mean()) - semis.mean()))
    if abs(change) >= 2.0:
        return "rising" if change > 0 else "falling"
    return "varied" if spread > 3.0 else "flat"


def compute_audio_facts(waveform, sample_rate: int = SAMPLE_RATE) -> AudioFacts:
    """Facts for a mono waveform (torch or numpy, 16 kHz as `load_audio` returns it)."""
    w = waveform.detach().cpu().float() if isinstance(waveform, torch.Tensor) else torch.as_tensor(
        np.asarray(waveform, dtype=np.float32))
    if w.dim() != 1:
        w = w.reshape(-1)
    duration = w.numel() / sample_rate
    n = max(1, int(round(duration * FACT_FPS)))
    active = speech_activity(w, FACT_FPS, n, sample_rate=sample_rate)
    spans = speech_spans(active, FACT_FPS)
    wave = w.numpy().astype(np.float32, copy=False)

    # Loudness per second (pooled so the list stays short for long clips).
    step = max(1.0, math.ceil(duration / MAX_CONTOUR_POINTS))
    hop = int(step * sample_rate)
    loud = [float(_db(np.mean(wave[i:i + hop] ** 2))) for i in range(0, wave.size, hop)] if wave.size else []
    peak = float(20 * np.log10(max(float(np.abs(wave).max(initial=0.0)), 1e-6)))

    times, f0 = pitch_track(wave, sample_rate)
    speech = []
    for a, b in spans:
        part = wave[int(a * sample_rate):int(b * sample_rate)]
        m = (times >= a) & (times < b)
        voiced = f0[m][~np.isnan(f0[m])]
        speech.append(SpanFacts(
            round(a, 3), round(b, 3), round(float(_db(np.mean(part ** 2))) if part.size else -120.0, 1),
            round(float(np.median(voiced)), 1) if voiced.size >= 3 else None, _trend(times[m], f0[m])))
    silences, cursor = [], 0.0
    for a, b in spans:
        if a - cursor > 1e-6:
            silences.append((round(cursor, 3), round(a, 3)))
        cursor = b
    if duration - cursor > 1e-6:
        silences.append((round(cursor, 3), round(duration, 3)))

    in_speech = np.zeros_like(times, dtype=bool)
    for a, b in spans:
        in_speech |= (times >= a) & (times < b)
    voiced_all = f0[in_speech & ~np.isnan(f0)]
    median = rng = None
    if voiced_all.size >= 3:
        median = round(float(np.median(voiced_all)), 1)
        rng = (round(float(np.percentile(voiced_all, 10)), 1), round(float(np.percentile(voiced_all, 90)), 1))
    return AudioFacts(round(duration, 3), speech, silences, [round(v, 1) for v in loud], float(step),
                      round(peak, 1), median, rng)


def segment_table(facts: AudioFacts, spans: Sequence[tuple[float, float]]) -> list[dict]:
    """Per-segment facts: index, time span, whether the character speaks (speech share >= 50 %)."""
    rows = []
    for i, (a, b) in enumerate(spans):
        w = facts.window(a, b)
        rows.append({"segment": i, "start": round(a, 3), "end": round(b, 3), "speaking": w["speech"] >= 0.5, **w})
    return rows
