"""Queue workflows 1 and 3 (their API form, derived from the UI files) and check the saved videos."""

from __future__ import annotations

import json
import time
from pathlib import Path

import av
import pytest

from comfyui_harness import output_files
from workflow_format import ui_to_api

ROOT = Path(__file__).resolve().parents[2]
# Render settings the test lowers so a minute of audio stays cheap on a CPU (widget name -> value).
CHEAP = {"steps": 2}


def api_prompt(comfy, filename: str) -> dict:
    workflow = json.loads((ROOT / "workflows" / filename).read_text())
    prompt = ui_to_api(workflow, comfy.object_info)
    for entry in prompt.values():
        for name, value in CHEAP.items():
            if name in entry["inputs"] and not isinstance(entry["inputs"][name], list):
                entry["inputs"][name] = value
    (comfy.base / f"api_{filename}").write_text(json.dumps(prompt, indent=1))  # for a look after a failure
    return prompt


def audio_seconds(comfy, prompt: dict) -> float:
    name = next(e["inputs"]["audio"] for e in prompt.values() if e["class_type"] == "LoadAudio")
    with av.open(str(comfy.base / "input" / name)) as f:
        s = f.streams.audio[0]
        return float(s.duration * s.time_base)


def probe(path: Path) -> dict:
    with av.open(str(path)) as f:
        v = f.streams.video[0]
        frames = sum(1 for _ in f.decode(video=0))
        return {"frames": frames, "fps": float(v.average_rate), "audio": len(f.streams.audio),
                "size": (v.codec_context.width, v.codec_context.height)}


@pytest.mark.parametrize("filename", ["01_image_audio_to_video.json", "03_long_video_one_minute.json"])
def test_workflow_renders_a_video(comfy, filename):
    prompt = api_prompt(comfy, filename)
    seconds = audio_seconds(comfy, prompt)
    t0 = time.monotonic()
    entry = comfy.server.wait(comfy.server.queue(prompt), timeout=900)
    took = time.monotonic() - t0
    videos = [p for p in output_files(entry, comfy.base) if p.suffix == ".mp4"]
    assert len(videos) == 1, output_files(entry, comfy.base)
    info = probe(videos[0])
    print(f"\n{filename}: {seconds:.1f} s of audio -> {info} in {took:.1f} s "
          f"({'tiny random' if comfy.tiny else 'demo'} weights)")
    assert info["audio"] == 1, "the video has no sound"
    # The pack's contract: round(duration * fps) frames, so the video is as long as the audio.
    assert info["frames"] == round(seconds * info["fps"]), (info, seconds)
    assert min(info["size"]) >= 16
