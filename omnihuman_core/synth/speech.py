"""Speech for the synthetic world, and the mouth track it implies.

Two engines, both deterministic for a given seed:
- `espeak`: eSpeak NG (`apt-get install espeak-ng`) speaking random sentences from a small word
  list with a random voice, variant, speed and pitch, one speaker per clip;
- `babble`: a built-in numpy formant synthesiser (voiced syllables with formant-shaped harmonics,
  noise-burst consonants, pitch contours, word gaps). Not words, but speech-like rhythm and
  loudness, which is all the mouth needs; tests and CI use it when eSpeak is absent.
Phrases are separated by pauses; some clips are silent. The mouth opening of every video frame
comes from the audio's loudness envelope (`mouth_track`), so silence means a closed mouth.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError

SAMPLE_RATE = 16000  # == omnihuman_core.audio.SAMPLE_RATE (not imported: that package pulls in torch)
ENGINES = ("auto", "espeak", "babble")
ESPEAK_INSTALL = "install it with `apt-get install espeak-ng` (Debian/Ubuntu) or `brew install espeak-ng` (macOS)"

# Loudness policy: phrases are normalised to this speech level, so the mouth track below can use
# absolute dBFS thresholds (clips differ by a few dB of random gain, like real recordings).
SPEECH_RMS_DBFS = -20.0
GAIN_JITTER_DB = 4.0
MOUTH_FLOOR_DBFS = -46.0  # quieter frames are silence: mouth closed (label exactly 0)
MOUTH_FULL_DBFS = -12.0  # this loud or louder: mouth fully open (label 1)
NOISE_DBFS = (-78.0, -62.0)  # room-noise floor added to every clip (well under MOUTH_FLOOR_DBFS)

ESPEAK_VOICES = ("en", "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
                   "klatt3", "croak", "")

_WORDS = {
    "det": "the a my your our this that every one some".split(),
    "adj": ("big small happy old new red blue green quiet loud bright dark warm cold fast slow little "
            "tall short funny strange lovely tired busy clever gentle brave").split(),
    "noun": ("cat dog robot bear house garden tree river city window morning evening music story friend "
             "teacher doctor letter picture table bottle apple road mountain boat train idea question "
             "answer weekend party kitchen coffee sandwich computer camera planet rocket forest").split(),
    "verb": ("sees likes finds takes makes brings needs wants opens reads paints builds moves watches "
             "follows keeps hears").split(),
    "ivb": "sleeps runs sings waits laughs works dances jumps talks listens smiles travels".split(),
    "adv": "today tomorrow again quickly slowly together outside inside tonight here there now".split(),
    "prep": "near behind under over inside beside across".split(),
    "open": ["well", "so", "listen", "okay", "look", "hello", "yes", "no", "actually", "you know", "of course"],
    "pron": "I you we they she he".split(),
    "ivb_base": "sleep run sing wait laugh work dance jump talk listen smile travel".split(),
}


def random_sentence(rng: np.random.Generator) -> str:
    """A short grammatical nonsense sentence ("the quiet robot opens a letter tomorrow")."""
    w = {k: (lambda k=k: _WORDS[k][int(rng.integers(len(_WORDS[k])))]) for k in _WORDS}
    form = int(rng.integers(6))
    if form == 0:
        s = f"{w['det']()} {w['adj']()} {w['noun']()} {w['verb']()} {w['det']()} {w['noun']()}"
    elif form == 1:
        s = f"{w['det']()} {w['noun']()} {w['ivb']()} {w['prep']()} {w['det']()} {w['noun']()} {w['adv']()}"
    elif form == 2:
        s = f"{w['open']()}, {w['pron']()} {w['ivb_base']()} {w['adv']()}"
    elif form == 3:
        s = f"do you like {w['det']()} {w['adj']()} {w['noun']()}?"
    elif form == 4:
        s = f"{w['pron']()} {w['ivb_base']()} with {w['det']()} {w['adj']()} {w['noun']()}"
    else:
        s = f"{w['det']()} {w['noun']()} is {w['adj']()} and {w['adj']()}"
    return s[0].upper() + s[1:]


# ---------------------------------------------------------------------------------- utilities


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling by FFT (exact, deterministic, no SciPy). Zero-padded against wrap-around."""
    if rate_in == rate_out:
        return x.astype(np.float32)
    pad = rate_in // 10
    xp = np.concatenate([x.astype(np.float64), np.zeros(pad)])
    n_in = xp.size
    n_out = int(round(n_in * rate_out / rate_in))
    spec = np.fft.rfft(xp)
    keep = min(spec.size, n_out // 2 + 1)
    out_spec = np.zeros(n_out // 2 + 1, np.complex128)
    out_spec[:keep] = spec[:keep]
    y = np.fft.irfft(out_spec, n_out) * (n_out / n_in)
    return y[: int(round(x.size * rate_out / rate_in))].astype(np.float32)


def _rms_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def _normalise_speech(x: np.ndarray, target_dbfs: float) -> np.ndarray:
    """Scale so the RMS over the voiced part (frames within 30 dB of the loudest) is `target_dbfs`."""
    if x.size == 0 or not np.any(x):
        return x
    hop = SAMPLE_RATE // 100
    n = x.size // hop
    if n == 0:
        return x
    frames = x[: n * hop].reshape(n, hop).astype(np.float64)
    db = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)
    active = frames[db > db.max() - 30]
    level = 10 * np.log10(np.mean(active ** 2) + 1e-12)
    return (x * 10 ** ((target_dbfs - level) / 20)).astype(np.float32)


def write_wav(path, waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Mono 16-bit PCM WAV (clipped to -1..1)."""
    path = Path(path)
    pcm = np.round(np.clip(np.asarray(waveform, np.float64), -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    return path


def read_wav(path) -> tuple[np.ndarray, int]:
    """A 16-bit PCM WAV written by `write_wav` -> (float32 mono waveform, rate)."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise InputError(f"{path}: expected 16-bit PCM WAV, got {8 * w.getsampwidth()}-bit")
        data = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32767.0
        ch = w.getnchannels()
        rate = w.getframerate()
    if ch > 1:
        data = data.reshape(-1, ch).mean(1)
    return data, rate


# ------------------------------------------------------------------------------------ espeak


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def require_espeak() -> str:
    """Path of the espeak-ng binary, or an InputError that says how to install it."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise InputError(f"espeak-ng was not found on PATH; {ESPEAK_INSTALL}, or use the built-in "
                         "synthesiser with --speech babble")
    return exe


def _parse_espeak_wav(data: bytes) -> tuple[np.ndarray, int]:
    # espeak-ng --stdout writes a streaming header whose sizes are placeholders: read the fmt chunk
    # for the rate and take everything after the data chunk id as samples.
    if data[:4] != b"RIFF" or b"data" not in data[:200]:
        raise InputError("espeak-ng produced no WAV data; check that `espeak-ng --stdout hello` works")
    rate = int.from_bytes(data[24:28], "little")
    start = data.index(b"data", 12) + 8
    pcm = np.frombuffer(data[start: start + (len(data) - start) // 2 * 2], "<i2")
    return pcm.astype(np.float32) / 32767.0, rate


def espeak_say(text: str, voice: str = "en", variant: str = "", speed: int = 160, pitch: int = 50,
               word_gap: int = 0) -> np.ndarray:
    """Speak `text` with eSpeak NG -> float32 mono 16 kHz (leading/trailing silence trimmed)."""
    exe = require_espeak()
    v = f"{voice}+{variant}" if variant else voice
    cmd = [exe, "-v", v, "-s", str(int(speed)), "-p", str(int(pitch)), "-g", str(int(word_gap)), "--stdout", text]
    try:
        res = subprocess.run(cmd, capture_output=True, timeout=60, check=True)
    except subprocess.CalledProcessError as e:
        raise InputError(f"espeak-ng failed on voice {v!r}: {e.stderr.decode(errors='replace').strip()}") from None
    x, rate = _parse_espeak_wav(res.stdout)
    x = resample(x, rate, SAMPLE_RATE)
    return _trim(x)


def _trim(x: np.ndarray, threshold_db: float = -50.0) -> np.ndarray:
    """Cut leading and trailing silence (so phrase spans and pauses are exactly where we put them)."""
    if x.size == 0:
        return x
    thr = 10 ** (threshold_db / 20) * max(float(np.abs(x).max()), 1e-9)
    idx = np.flatnonzero(np.abs(x) > thr)
    if idx.size == 0:
        return x[:0]
    return x[max(0, idx[0] - 80): idx[-1] + 160]


# ------------------------------------------------------------------------------------ babble

# (F1, F2, F3) in Hz for a handful of vowels: enough for speech-like timbre changes.
_VOWELS = ((730, 1090, 2440), (530, 1840, 2480), (270, 2290, 3010), (570, 840, 2410), (300, 870, 2240),
           (660, 1720, 2410), (490, 1350, 1690))


def _formant_gain(freqs: np.ndarray, formants, bandwidths=(90.0, 110.0, 170.0)) -> np.ndarray:
    g = np.zeros_like(freqs)
    for f, b in zip(formants, bandwidths):
        g += 1.0 / (1.0 + ((freqs - f) / b) ** 2)
    return g * np.exp(-freqs / 3500.0)  # spectral tilt of the glottal source


def _noise_burst(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    """Band-passed white noise (a fricative / plosive release), shaped in the FFT domain."""
    x = rng.standard_normal(n)
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spec[(f < lo) | (f > hi)] = 0
    y = np.fft.irfft(spec, n)
    return (y / (np.abs(y).max() + 1e-9)).astype(np.float32)


@dataclass
class BabbleVoice:
    f0: float = 130.0  # mean pitch (Hz)
    rate: float = 4.5  # syllables per second
    breathiness: float = 0.05
    formant_scale: float = 1.0  # >1 shorter vocal tract (child / small character)


def babble_say(rng: np.random.Generator, n_words: int, voice: BabbleVoice | None = None) -> np.ndarray:
    """A phrase of `n_words` pseudo-words (1-3 syllables each) -> float32 mono 16 kHz."""
    voice = voice or BabbleVoice()
    pieces: list[np.ndarray] = []
    n_syll_total = 0
    for wi in range(n_words):
        for _ in range(int(rng.integers(1, 4))):
            n_syll_total += 1
            dur = float(np.clip(rng.normal(1.0 / voice.rate, 0.04), 0.09, 0.4))
            n = int(dur * SAMPLE_RATE)
            t = np.arange(n) / SAMPLE_RATE
            # Pitch: declines over the phrase, with a per-syllable wobble (intonation).
            f0 = voice.f0 * (1.0 - 0.12 * n_syll_total / (3 * n_words)) * (1 + 0.06 * rng.standard_normal())
            f0_t = f0 * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(2, 5) * t + rng.uniform(0, 6.28)))
            phase = 2 * np.pi * np.cumsum(f0_t) / SAMPLE_RATE
            formants = np.asarray(_VOWELS[int(rng.integers(len(_VOWELS)))], float) * voice.formant_scale
            k = np.arange(1, int(3800 // f0) + 1)
            amp = _formant_gain(k * f0, formants)
            voiced = (amp[:, None] * np.sin(k[:, None] * phase[None, :])).sum(0)
            voiced /= np.abs(voiced).max() + 1e-9
            voiced += voice.breathiness * rng.standard_normal(n)
            # Syllable envelope: fast attack, slower decay, like an opening and closing jaw.
            env = np.sin(np.pi * np.clip(t / dur, 0, 1)) ** 0.7 * np.exp(-1.2 * t / dur)
            syl = voiced * env * rng.uniform(0.6, 1.0)
            if rng.random() < 0.6:  # a consonant onset: short noise burst before the vowel
                m = int(rng.uniform(0.03, 0.08) * SAMPLE_RATE)
                lo = rng.choice([1500.0, 2500.0, 4000.0])
                burst = _noise_burst(rng, m, lo, min(7500.0, lo * 2.5)) * 0.35 * np.hanning(m)
                syl = np.concatenate([burst, syl])
            pieces.append(syl.astype(np.float32))
        if wi < n_words - 1:  # short gap between words (sometimes none, as in running speech)
            gap = int(rng.choice([0.0, 0.03, 0.06, 0.1]) * SAMPLE_RATE)
            pieces.append(np.zeros(gap, np.float32))
    return np.concatenate(pieces).astype(np.float32)


# ------------------------------------------------------------------------------------ clips


@dataclass
class SpeechTrack:
    """A clip's sound: the waveform and where the phrases are (seconds), and what made it."""

    waveform: np.ndarray  # float32 [N] mono 16 kHz
    phrases: list = field(default_factory=list)  # [(start_s, end_s, text)]
    engine: str = "babble"
    voice: dict = field(default_factory=dict)

    def meta(self) -> dict:
        return {"engine": self.engine, "voice": self.voice, "sample_rate": SAMPLE_RATE,
                "phrases": [[round(a, 4), round(b, 4), t] for a, b, t in self.phrases]}

    def speaking(self, fps: float, n_frames: int) -> np.ndarray:
        """bool [T]: a phrase overlaps frame i's time span [i / fps, (i + 1) / fps)."""
        t = np.arange(n_frames) / fps
        out = np.zeros(n_frames, bool)
        for a, b, _ in self.phrases:
            out |= (t + 1 / fps > a) & (t < b)
        return out


def resolve_engine(engine: str) -> str:
    """"auto" -> espeak when installed, else babble; "espeak" without the binary -> clear InputError."""
    if engine not in ENGINES:
        raise InputError(f"speech engine {engine!r} is not one of {', '.join(ENGINES)}")
    if engine == "auto":
        return "espeak" if espeak_available() else "babble"
    if engine == "espeak":
        require_espeak()
    return engine


def random_voice(rng: np.random.Generator, engine: str) -> dict:
    if engine == "espeak":
        return {"voice": ESPEAK_VOICES[int(rng.integers(len(ESPEAK_VOICES)))],
                "variant": ESPEAK_VARIANTS[int(rng.integers(len(ESPEAK_VARIANTS)))],
                "speed": int(rng.integers(130, 200)), "pitch": int(rng.integers(25, 85)),
                "word_gap": int(rng.choice([0, 0, 1, 3, 6]))}
    return asdict(BabbleVoice(f0=float(rng.choice([rng.uniform(95, 140), rng.uniform(170, 260)])),
                              rate=float(rng.uniform(3.5, 6.0)), breathiness=float(rng.uniform(0.01, 0.1)),
                              formant_scale=float(rng.uniform(0.9, 1.2))))


def say(rng: np.random.Generator, engine: str, voice: dict) -> tuple[np.ndarray, str]:
    """One phrase with `voice` -> (waveform, text). Babble text is "<babble N words>"."""
    n_words = int(rng.integers(2, 8))
    if engine == "espeak":
        words = random_sentence(rng)
        return espeak_say(words, **voice), words
    return babble_say(rng, n_words, BabbleVoice(**voice)), f"<babble {n_words} words>"


def synthesize_speech(rng: np.random.Generator, duration: float, engine: str = "auto",
                      silent_prob: float = 0.08, pause=(0.25, 1.1), lead=(0.0, 0.8)) -> SpeechTrack:
    """`duration` seconds of one speaker: phrases separated by pauses, sometimes all silence.

    The phrase list is ground truth (when the character speaks); the last phrase may be cut at the
    clip end (with a 10 ms fade, as if cut from a longer recording).
    """
    engine = resolve_engine(engine)
    n = int(round(duration * SAMPLE_RATE))
    out = np.zeros(n, np.float32)
    voice = random_voice(rng, engine)
    phrases = []
    gain_db = SPEECH_RMS_DBFS + float(rng.uniform(-GAIN_JITTER_DB, GAIN_JITTER_DB))
    if rng.random() >= silent_prob:
        t = float(rng.uniform(*lead))
        while t < duration - 0.3:
            x, text = say(rng, engine, voice)
            x = _normalise_speech(x, gain_db + float(rng.uniform(-2, 2)))
            s = int(t * SAMPLE_RATE)
            e = min(n, s + x.size)
            seg = x[: e - s].copy()
            if e - s < x.size:
                fade = min(160, seg.size)
                seg[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
            out[s:e] += seg
            phrases.append((s / SAMPLE_RATE, e / SAMPLE_RATE, text))
            t = e / SAMPLE_RATE + float(rng.uniform(*pause))
    noise_db = float(rng.uniform(*NOISE_DBFS))
    out += (10 ** (noise_db / 20) * rng.standard_normal(n)).astype(np.float32)
    peak = float(np.abs(out).max()) if n else 0.0
    if peak > 0.99:
        out *= 0.99 / peak
    return SpeechTrack(np.clip(out, -1, 1).astype(np.float32), phrases, engine, voice)


def frame_levels_db(waveform: np.ndarray, fps: float, n_frames: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """RMS level (dBFS) around each video frame: a Hann window 2 frames wide centred on (i + 0.5) / fps."""
    x = np.asarray(waveform, np.float64)
    half = int(round(sample_rate / fps))
    win = np.hanning(2 * half + 1)
    win /= win.sum()
    centres = np.round((np.arange(n_frames) + 0.5) * sample_rate / fps).astype(np.int64)
    padded = np.concatenate([np.zeros(half), x, np.zeros(half + 2 * half + 1)])
    idx = centres[:, None] + np.arange(2 * half + 1)[None, :]  # window start = centre - half, +half padding
    idx = np.clip(idx, 0, padded.size - 1)
    power = (padded[idx] ** 2 * win[None, :]).sum(1)
    return (10 * np.log10(power + 1e-12)).astype(np.float32)


def mouth_track(waveform: np.ndarray, fps: float, n_frames: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mouth opening 0..1 per video frame implied by the audio: its loudness envelope.

    Frame level in dBFS mapped linearly from MOUTH_FLOOR_DBFS (closed) to MOUTH_FULL_DBFS (open), then
    lightly smoothed (a jaw cannot snap shut within one frame). Frames below the floor stay exactly
    0, so silent stretches are a closed mouth. This is the ground truth the renderer draws and the
    lip-sync metric compares against; it assumes speech at about SPEECH_RMS_DBFS (the synthetic
    audio is), so normalise other audio first.
    """
    if n_frames <= 0:
        return np.zeros(0, np.float32)
    db = frame_levels_db(waveform, fps, n_frames, sample_rate)
    m = np.clip((db - MOUTH_FLOOR_DBFS) / (MOUTH_FULL_DBFS - MOUTH_FLOOR_DBFS), 0.0, 1.0)
    sm = m.copy()
    if n_frames > 2:
        sm[1:-1] = 0.25 * m[:-2] + 0.5 * m[1:-1] + 0.25 * m[2:]
    sm[db < MOUTH_FLOOR_DBFS] = 0.0
    return sm.astype(np.float32)
