"""Synthetic audio for the audio tests: tones, noise, WAV/MP3/FLAC files written in code."""

import shutil
import struct
import subprocess

import numpy as np
import pytest


def tone(seconds, rate, freq=440.0, amp=0.3, phase=0.0):
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


def write_wav(path, data, rate, float32=False):
    """[N] or [C, N] float -> WAV (PCM16, or IEEE float so NaN survives)."""
    data = np.atleast_2d(np.asarray(data, dtype=np.float32))
    channels = data.shape[0]
    if float32:
        fmt, bits, payload = 3, 32, data.T.astype("<f4").tobytes()
    else:
        fmt, bits = 1, 16
        payload = (np.clip(data, -1, 1) * 32767).round().astype("<i2").T.tobytes()
    block = channels * bits // 8
    header = (b"RIFF" + struct.pack("<I", 36 + len(payload)) + b"WAVE" + b"fmt "
              + struct.pack("<IHHIIHH", 16, fmt, channels, rate, rate * block, block, bits)
              + b"data" + struct.pack("<I", len(payload)))
    with open(path, "wb") as f:
        f.write(header + payload)
    return path


def encode_file(path, data, rate, codec):
    """[N] or [C, N] float -> a compressed file (mp3 / flac) through PyAV."""
    import av

    data = np.atleast_2d(np.asarray(data, dtype=np.float32))
    layout = "stereo" if data.shape[0] == 2 else "mono"
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format="fltp", layout=layout)
        frame.sample_rate, frame.pts = rate, 0
        c.mux(s.encode(frame))
        c.mux(s.encode(None))
    return path


@pytest.fixture
def wav(tmp_path):
    """Factory: wav(data, rate, name=..., float32=False) -> path."""
    counter = iter(range(10**6))

    def make(data, rate, name=None, float32=False):
        return write_wav(tmp_path / (name or f"a{next(counter)}.wav"), data, rate, float32)

    return make


@pytest.fixture(scope="session")
def espeak():
    """Factory text -> 16 kHz-ish WAV via espeak-ng (SSML allowed); skips when it is not installed."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")

    def say(text, path):
        subprocess.run([exe, "-m", "-w", str(path), text], check=True, capture_output=True, timeout=30)
        return path

    return say


@pytest.fixture
def make_tone():
    return tone


@pytest.fixture
def encode(tmp_path):
    """Factory: encode(data, rate, codec, suffix) -> path of an mp3/flac file."""
    def make(data, rate, codec, suffix):
        return encode_file(tmp_path / f"clip.{suffix}", data, rate, codec)

    return make
