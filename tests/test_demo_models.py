"""The shipped demo models (models/demo/): present, within the 40 MB budget, loadable as a Renderer, and
documented. A short render with them is checked too (one 33-frame segment at 4 steps, a few seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from omnihuman_core.weights import load_safetensors, read_metadata

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "models" / "demo"
FILES = {"mmdit": "mmdit", "vae": "vae", "text_encoder": "text_encoder", "upscaler": "upscaler"}


def test_demo_files_are_shipped_within_budget():
    sizes = {name: (DEMO / f"{name}.safetensors").stat().st_size for name in FILES}
    assert sum(sizes.values()) <= 40 * 1024 * 1024, sizes
    for name, kind in FILES.items():
        state, _config = load_safetensors(DEMO / f"{name}.safetensors", kind)
        floats = [v.dtype for v in state.values() if v.is_floating_point()]
        assert floats and all(str(d) == "torch.float16" for d in floats), name
        record = json.loads(read_metadata(DEMO / f"{name}.safetensors")["demo"])
        assert record["command"].startswith("python -m omnihuman_core train demo"), record
        assert record["steps"] > 0 and record["train_minutes"] > 0, record


def test_model_card_names_every_file_and_its_command():
    card = (DEMO / "README.md").read_text()
    for name in FILES:
        assert f"{name}.safetensors" in card
    assert "train demo" in card and "evaluate run" in card


def test_mmdit_carries_render_defaults_the_cli_uses():
    from omnihuman_core.pipeline.settings import RenderSettings

    settings = RenderSettings.for_model(DEMO / "mmdit.safetensors")
    assert (settings.fps, settings.segment_frames, settings.short_side) == (24.0, 33, 128)
    assert settings.reference_mode == "pseudo_last_frame"
    # The shipped file renders with the guidance the recipe writes into new files (train/cli.py).
    from omnihuman_core.train.cli import DEMO_RENDER_DEFAULTS

    assert (settings.text_scale, settings.audio_scale) == (DEMO_RENDER_DEFAULTS["text_scale"],
                                                           DEMO_RENDER_DEFAULTS["audio_scale"])
    assert settings.first_frame_from_reference is DEMO_RENDER_DEFAULTS["first_frame_from_reference"] is True


def test_demo_models_render_the_example(tmp_path):
    """The CLI's defaults are the demo files: a 1.5 s excerpt of the example speech renders, with sound."""
    import subprocess
    import sys

    import wave

    with wave.open(str(ROOT / "example_inputs" / "speech.wav"), "rb") as src:
        params, rate = src.getparams(), src.getframerate()
        pcm = src.readframes(int(1.375 * rate))  # 33 frames at 24 fps
    clip = tmp_path / "short.wav"
    with wave.open(str(clip), "wb") as dst:
        dst.setparams(params)
        dst.writeframes(pcm)
    out = tmp_path / "out.mp4"
    proc = subprocess.run(
        [sys.executable, "-m", "omnihuman_core", "generate", "--image", str(ROOT / "example_inputs" / "character.png"),
         "--audio", str(clip), "--steps", "4", "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    from omnihuman_core.media import probe_video, read_video_frames

    info = probe_video(out)
    assert info["fps"] == pytest.approx(24.0) and info["frames"] == 33 and info["audio_codec"] is not None
    frames = read_video_frames(out).astype(np.float32)
    assert frames.std() > 5, "the render is flat"
