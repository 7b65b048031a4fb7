"""The shipped example inputs exist, are small, and are what the generator writes."""

from pathlib import Path

import pytest
from PIL import Image

from omnihuman_core.synth import read_wav

EXAMPLES = Path(__file__).resolve().parents[2] / "example_inputs"


@pytest.mark.skipif(not (EXAMPLES / "speech.wav").exists(), reason="example_inputs/ not generated (synth-examples)")
def test_shipped_examples():
    files = {p.name: p for p in EXAMPLES.iterdir() if p.name in ("character.png", "robot.png", "speech.wav")}
    assert sorted(files) == ["character.png", "robot.png", "speech.wav"]
    assert sum(p.stat().st_size for p in files.values()) < 200_000
    for name in ("character.png", "robot.png"):
        with Image.open(files[name]) as im:
            assert im.size == (256, 256) and im.mode == "RGB"
    wav, rate = read_wav(files["speech.wav"])
    assert rate == 16000 and abs(wav.size / rate - 5.0) < 0.01
    # One pause: a silent stretch of at least 0.4 s between speech.
    import numpy as np

    frames = np.abs(wav[: wav.size // 160 * 160]).reshape(-1, 160).max(1) > 0.01
    runs, cur = [], 0
    for f in frames:
        cur = cur + 1 if not f else 0
        runs.append(cur)
    speech = np.flatnonzero(frames)
    inner = np.asarray(runs)[speech[0]: speech[-1]]
    assert inner.max() >= 40
    # The prompt scripts/demo.sh plans the example with: the generator's, opening with the character's description.
    from omnihuman_core.synth.character import describe
    from omnihuman_core.synth.examples import example_character, example_prompt

    prompt = (EXAMPLES / "prompt.txt").read_text(encoding="utf-8").strip()
    assert prompt == example_prompt("human")
    assert prompt.lower().startswith(describe(example_character("human")).lower())
