"""Integration tests against a real ComfyUI: skipped unless COMFYUI_PATH points at a ComfyUI checkout.

One server per session, on a free port of 127.0.0.1, with the pack linked into a throw-away base
directory (custom_nodes/, models/, input/, output/ live there; the checkout is never written to).
Its Python is $COMFYUI_PYTHON, else the checkout's venv/.venv, else this one; the pack's
requirements must be installed in it (`pip install -r requirements.txt`, as for any user).

Model files: the pack's demo files (models/demo/) when present; otherwise tiny random-weight
files made with `python -m omnihuman_core init` under the same names in models/omnihuman/demo/
(renders are noise; these tests check the plumbing, not the pictures).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(HERE))

from comfyui_harness import (ComfyUIServer, copy_inputs, demo_files_present, make_tiny_models,  # noqa: E402
                             prepare_base_dir)

COMFYUI_PATH = os.environ.get("COMFYUI_PATH")
MINUTE_AUDIO = "speech_minute.wav"  # what workflow 3's LoadAudio names
EXAMPLE_INPUTS = {"character.png": ROOT / "example_inputs" / "character.png", "speech.wav": ROOT / "example_inputs" / "speech.wav"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.comfyui)
            if not COMFYUI_PATH:
                item.add_marker(pytest.mark.skip(reason="set COMFYUI_PATH to a ComfyUI checkout to run the integration tests"))


def write_minute_of_speech(path: Path, seconds: float = 60.0) -> Path:
    """Speech-like babble (no eSpeak needed), the length workflow 3 is about."""
    from omnihuman_core.synth.speech import synthesize_speech, write_wav

    track = synthesize_speech(np.random.default_rng(7), seconds, engine="babble", silent_prob=0.0)
    return write_wav(path, track.waveform)


class Comfy:
    """The running server plus what the tests need to know about its setup."""

    def __init__(self, server: ComfyUIServer, base: Path, tiny: bool, startup_s: float):
        self.server = server
        self.startup_log = server.log_text()  # up to "server ready": what loading the pack printed
        self.base = base
        self.tiny = tiny  # True: random tiny model files (no demo weights in the pack)
        self.startup_s = startup_s
        self._object_info = None

    @property
    def object_info(self) -> dict:
        if self._object_info is None:
            self._object_info = self.server.object_info()
        return self._object_info


@pytest.fixture(scope="session")
def comfy(tmp_path_factory):
    base = prepare_base_dir(tmp_path_factory.mktemp("comfyui-base"))
    tiny = not demo_files_present()
    if tiny:
        make_tiny_models(base / "models" / "omnihuman" / "demo", python=sys.executable)
    copy_inputs(base, EXAMPLE_INPUTS)
    write_minute_of_speech(base / "input" / MINUTE_AUDIO)
    env = dict(os.environ)
    # The LLM answer cache and the chainer's resume folders stay inside this run's base directory.
    env["OMNIHUMAN_CACHE_DIR"] = str(base / "cache")
    server = ComfyUIServer(COMFYUI_PATH, base, env=env)
    t0 = time.monotonic()
    server.start()
    try:
        yield Comfy(server, base, tiny, time.monotonic() - t0)
    finally:
        server.stop()
