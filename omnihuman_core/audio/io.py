"""Audio input: decode any file FFmpeg reads (via PyAV) or an in-memory array into mono 16 kHz.

Every check that can fail on bad input runs before the expensive steps (full decode, resampling,
encoders), and each error says what to do about it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError

SAMPLE_RATE = 16000  # every encoder in this package works at 16 kHz (wav2vec2, Whisper, mel)
MAX_SECONDS = 600.0  # default length limit: 10 minutes
SILENCE_DBFS = -60.0  # a peak below this is treated as "no sound at all"
MIN_SOURCE_RATE = 4000  # below this there is no intelligible speech left to animate
MAX_SOURCE_RATE = 768000


@dataclass
class Audio:
    """Mono float32 waveform `[N]` at `SAMPLE_RATE`, plus what the source looked like."""

    waveform: torch.Tensor
    source_rate: int
    source_channels: int
    path: str | None = None

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def duration(self) -> float:
        """Length in seconds (derived from the waveform, so it can never disagree with it)."""
        return self.waveform.shape[-1] / SAMPLE_RATE

    def __len__(self) -> int:
        return int(self.waveform.shape[-1])


def _fmt_seconds(s: float) -> str:
    m, sec = divmod(s, 60.0)
    return f"{int(m)} min {sec:.1f} s" if m else f"{sec:.2f} s"


def _check_length(seconds: float, max_seconds: float | None, what: str) -> None:
    if max_seconds is not None and seconds > max_seconds + 1e-6:
        raise InputError(
            f"{what} is {_fmt_seconds(seconds)} long; the limit is {_fmt_seconds(max_seconds)} "
            f"(max_seconds={max_seconds:g}). Split the audio into shorter parts, or pass a larger "
            f"max_seconds if you have the time and memory for a longer video."
        )


def _check_rate(sample_rate, what: str) -> int:
    try:
        rate = int(sample_rate)
    except (TypeError, ValueError):
        raise InputError(f"{what}: sample rate must be a positive integer in Hz, got {sample_rate!r}")
    if rate != sample_rate or not MIN_SOURCE_RATE <= rate <= MAX_SOURCE_RATE:
        raise InputError(
            f"{what}: sample rate {sample_rate!r} Hz is not usable; expected an integer between "
            f"{MIN_SOURCE_RATE} and {MAX_SOURCE_RATE} Hz (speech is usually 16000, 44100 or 48000)"
        )
    return rate


def _finish(
    channels: torch.Tensor, rate: int, *, path: str | None, allow_silent: bool, what: str
) -> Audio:
    """Shared tail of both entry points: validate samples, mix to mono, resample to 16 kHz."""
    n_channels, n = channels.shape
    if n == 0:
        raise InputError(f"{what} contains no samples (0 s of audio); give a clip with speech in it")
    if not torch.isfinite(channels).all():
        bad = int((~torch.isfinite(channels)).sum())
        raise InputError(
            f"{what} has {bad} NaN/inf sample(s); the file or array is damaged. Re-export the audio "
            f"(e.g. `ffmpeg -i in.wav -c:a pcm_s16le out.wav`)"
        )
    # Mixing by the mean keeps the level of a centred voice; phase-inverted stereo would cancel, but
    # that is not what speech recordings look like.
    mono = channels.mean(dim=0) if n_channels > 1 else channels[0]
    peak = float(mono.abs().max())
    if peak > 1.0:
        # Float sources may overshoot +-1; scale down so the loudest sample is 1 and the written
        # video's AAC track does not clip. Encoders normalise their input, so features do not change.
        mono = mono / peak
    if not allow_silent:
        peak_db = 20.0 * math.log10(peak) if peak > 0 else -math.inf
        if peak_db < SILENCE_DBFS:
            raise InputError(
                f"{what} is silent (peak {peak_db:.0f} dBFS, below {SILENCE_DBFS:.0f} dBFS); the "
                f"character is driven by the sound, so give a recording of real speech or singing "
                f"(or pass allow_silent=True for a deliberately silent clip)"
            )
    if rate != SAMPLE_RATE:
        import torchaudio.functional as AF  # lazy: torchaudio import is slow-ish and only needed here

        mono = AF.resample(mono.unsqueeze(0), rate, SAMPLE_RATE).squeeze(0)
    return Audio(mono.contiguous().to(torch.float32), rate, n_channels, path)


def load_audio(
    path: str | os.PathLike,
    max_seconds: float | None = MAX_SECONDS,
    *,
    allow_silent: bool = False,
) -> Audio:
    """Decode an audio (or video) file with PyAV, mix to mono and resample to 16 kHz.

    Reads anything FFmpeg reads (WAV, MP3, FLAC, OGG, M4A, the audio track of MP4/MKV...).
    `max_seconds=None` lifts the length limit.
    """
    import av  # lazy: keeps `import omnihuman_core.audio` cheap

    p = Path(path)
    what = f"audio file '{p}'"
    if not p.exists():
        raise InputError(f"{what} does not exist; check the path (relative paths start at {os.getcwd()})")
    if p.is_dir():
        raise InputError(f"{what} is a folder; give the path of an audio file inside it")
    if p.stat().st_size == 0:
        raise InputError(f"{what} is empty (0 bytes); the export or download probably failed")

    try:
        container = av.open(str(p), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise InputError(
            f"{what} cannot be read as audio ({e}); it is corrupt or not a media file. Try "
            f"re-exporting it as WAV, MP3 or FLAC"
        ) from None
    with container:
        if not container.streams.audio:
            kinds = sorted({s.type for s in container.streams}) or ["nothing"]
            raise InputError(
                f"{what} has no audio stream (it contains: {', '.join(kinds)}); give a speech "
                f"recording (WAV/MP3/FLAC) or a video with a sound track"
            )
        stream = container.streams.audio[0]
        rate = _check_rate(stream.rate or stream.sample_rate, what)
        codec = stream.codec_context.name
        stream_duration = None  # exact for containers that store it (MP4, WAV); None for raw streams
        if stream.duration is not None and stream.time_base is not None:
            stream_duration = float(stream.duration * stream.time_base)
        declared = stream_duration
        if declared is None and container.duration is not None:
            declared = container.duration / 1e6  # may be a bitrate estimate: used only for the limit
        if declared is not None:  # refuse over-long audio from the header, before decoding it all
            _check_length(declared, max_seconds, what)

        # Keep channels and rate; only convert to planar float so every codec looks the same.
        # Resampling is left to torchaudio (one well-tested filter for every input).
        resampler = av.AudioResampler(format="fltp")
        chunks: list[np.ndarray] = []
        total = 0
        limit = None if max_seconds is None else int(max_seconds * rate) + rate  # +1 s slack
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    arr = out.to_ndarray()
                    chunks.append(arr)
                    total += arr.shape[1]
                if limit is not None and total > limit:  # header lied or had no duration
                    _check_length(total / rate, max_seconds, what)
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
        except av.error.FFmpegError as e:
            if not chunks:
                raise InputError(
                    f"{what} could not be decoded ({e}); it is corrupt. Re-export it as WAV, MP3 or FLAC"
                ) from None
            # A damaged tail after good audio: keep what decoded (players do the same).
    if not chunks:
        raise InputError(f"{what} contains no samples (0 s of audio); give a clip with speech in it")
    n_ch = max(c.shape[0] for c in chunks)
    chunks = [c if c.shape[0] == n_ch else np.repeat(c[:1], n_ch, axis=0) for c in chunks]
    channels = torch.from_numpy(np.concatenate(chunks, axis=1).astype(np.float32, copy=False))
    if stream_duration and codec == "aac":
        # AAC decodes whole 1024-sample frames; the container's duration says where the sound
        # really ends (e.g. our own VideoWriter trims audio to the video), so honour it.
        channels = channels[:, : max(1, round(stream_duration * rate))]
    _check_length(channels.shape[1] / rate, max_seconds, what)
    return _finish(channels, rate, path=str(p), allow_silent=allow_silent, what=what)


def _to_channels(waveform) -> torch.Tensor:
    """Any of [N], [C, N], [N, C] (C <= 8), [1, C, N] as float32 [C, N]; integers scaled to +-1."""
    if isinstance(waveform, np.ndarray):
        if waveform.dtype == object or waveform.dtype.kind not in "fiub":
            raise InputError(f"audio array has dtype {waveform.dtype}; expected float or integer samples")
        t = torch.from_numpy(np.ascontiguousarray(waveform))
    elif isinstance(waveform, torch.Tensor):
        t = waveform.detach().cpu()
    else:
        raise InputError(
            f"audio must be a numpy array or torch tensor, got {type(waveform).__name__}"
        )
    if t.dtype == torch.bool or t.is_complex():
        raise InputError(f"audio array has dtype {t.dtype}; expected float or integer samples")
    if not t.is_floating_point():
        # Integer PCM: scale by the type's full range (int16 -> /32768), unsigned centred first.
        if t.dtype == torch.uint8:
            t = (t.float() - 128.0) / 128.0
        else:
            t = t.double() / float(-torch.iinfo(t.dtype).min)
    t = t.float()
    if t.dim() == 3:
        if t.shape[0] != 1:
            raise InputError(
                f"audio batch has {t.shape[0]} clips (shape {tuple(t.shape)}); pass one clip at a time"
            )
        t = t[0]
    if t.dim() == 1:
        t = t.unsqueeze(0)
    elif t.dim() == 2:
        # [N, C] as soundfile returns it: a long first axis and a short second one.
        if t.shape[1] <= 8 and t.shape[0] > t.shape[1]:
            t = t.t()
    else:
        raise InputError(
            f"audio array has shape {tuple(t.shape)}; expected [samples], [channels, samples] or "
            f"ComfyUI's [1, channels, samples]"
        )
    if t.shape[0] > 64:
        raise InputError(
            f"audio array has shape {tuple(t.shape)}: {t.shape[0]} channels is implausible; is it "
            f"transposed? expected [channels, samples]"
        )
    return t.contiguous()


def audio_from_array(
    waveform,
    sample_rate: int,
    *,
    max_seconds: float | None = MAX_SECONDS,
    allow_silent: bool = False,
    path: str | None = None,
) -> Audio:
    """In-memory audio (numpy or torch; ComfyUI AUDIO's `[1, C, N]` + rate) with load_audio's checks."""
    what = f"audio '{path}'" if path else "the audio"
    rate = _check_rate(sample_rate, what)
    channels = _to_channels(waveform)
    _check_length(channels.shape[1] / rate, max_seconds, what)
    return _finish(channels, rate, path=path, allow_silent=allow_silent, what=what)
