"""The pack's example inputs: a character image, a robot image, about 5 s of speech with one pause, and a prompt
for the character."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..errors import InputError
from .character import describe, sample_character
from .render import render_reference
from .speech import (SAMPLE_RATE, SPEECH_RMS_DBFS, BabbleVoice, _normalise_speech, babble_say, espeak_say,
                     resolve_engine, write_wav)

EXAMPLE_SIZE = 256
EXAMPLE_SECONDS = 5.0
# Fixed picks (seed, kind), chosen by eye: a clear face, plain backdrop (small PNG).
CHARACTER_SEED, ROBOT_SEED = 6, 1
SENTENCES = ("Hello! I am a little cartoon character.", "Watch me talk and wave.")
LEAD, PAUSE = 0.3, 0.7  # seconds of silence before the first sentence and between the two
# What the example character does (the speech says "Watch me talk and wave").
EXAMPLE_ACTIONS = "waves, then nods"


def example_character(kind: str = "human"):
    """The example character spec (human or robot), with a solid backdrop."""
    spec = sample_character(CHARACTER_SEED if kind == "human" else ROBOT_SEED, kind)
    return dataclasses.replace(spec, background="solid")


def example_subject(kind: str = "human") -> str:
    """The example character's description as a prompt's subject ("A cartoon person with ...")."""
    text = describe(example_character(kind))
    return text[0].upper() + text[1:]


def example_prompt(kind: str = "human") -> str:
    """The example character's prompt, opening with its description: the demo model was trained on captions
    that do, and moves more with them (BENCHMARKS.md, "Why the demo model ignores the action in its prompt")."""
    return f"{example_subject(kind)} {EXAMPLE_ACTIONS}."


def example_speech(speech: str = "auto") -> tuple[np.ndarray, dict]:
    """EXAMPLE_SECONDS of speech: two sentences with a pause between them -> (waveform, info)."""
    engine = resolve_engine(speech)
    if engine == "espeak":
        parts = None
        for speed in (150, 160, 170, 185, 200, 220):  # fastest natural-sounding rate that fits
            parts = [espeak_say(s, voice="en-us", variant="m3", speed=speed, pitch=55) for s in SENTENCES]
            if LEAD + PAUSE + sum(p.size for p in parts) / SAMPLE_RATE <= EXAMPLE_SECONDS - 0.2:
                break
        info = {"engine": "espeak", "voice": "en-us+m3", "speed": speed, "text": " ".join(SENTENCES)}
    else:
        rng = np.random.default_rng(5)
        voice = BabbleVoice(f0=140.0, rate=4.5)
        parts = [babble_say(rng, 6, voice), babble_say(rng, 7, voice)]
        info = {"engine": "babble", "text": "<babble>"}
    n = int(EXAMPLE_SECONDS * SAMPLE_RATE)
    out = np.zeros(n, np.float32)
    t = int(LEAD * SAMPLE_RATE)
    spans = []
    for p in parts:
        p = _normalise_speech(p, SPEECH_RMS_DBFS)[: max(0, n - t)]
        out[t: t + p.size] = p
        spans.append((t / SAMPLE_RATE, (t + p.size) / SAMPLE_RATE))
        t += p.size + int(PAUSE * SAMPLE_RATE)
    info["phrases"] = [[round(a, 3), round(b, 3)] for a, b in spans]
    return np.clip(out, -1, 1), info


def write_examples(out_dir, speech: str = "auto") -> dict:
    """Write character.png, robot.png, speech.wav and prompt.txt (for character.png) into `out_dir`; returns
    {name: path}."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder (e.g. example_inputs/)")
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, kind in (("character.png", "human"), ("robot.png", "robot")):
        render_reference(example_character(kind), EXAMPLE_SIZE).save(out / name, optimize=True)
        paths[name] = out / name
    wav, info = example_speech(speech)
    paths["speech.wav"] = write_wav(out / "speech.wav", wav)
    (out / "prompt.txt").write_text(example_prompt("human") + "\n", encoding="utf-8")
    paths["prompt.txt"] = out / "prompt.txt"
    paths["info"] = info
    return paths
