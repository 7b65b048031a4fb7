"""The CLI end to end on tiny random models: init -> generate -> an MP4 as long as the audio."""

import json
import math
import wave

import numpy as np
import pytest
from PIL import Image

from omnihuman_core.cli import main
from omnihuman_core.media import probe_video


def _wav(path, seconds=1.3, rate=22050):
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.4 * np.sin(2 * math.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * math.pi * 3 * t))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes((tone * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    assert main(["init", "--kind", "mmdit", "--preset", "tiny", "--audio-dim", "400", "--out", str(d / "m.safetensors")]) == 0
    assert main(["init", "--kind", "vae", "--preset", "tiny", "--out", str(d / "v.safetensors")]) == 0
    assert main(["init", "--kind", "text_encoder", "--preset", "tiny", "--out", str(d / "t.safetensors")]) == 0
    Image.new("RGB", (90, 70), (180, 120, 90)).save(d / "img.png")
    _wav(d / "a.wav")
    return d


def _generate(d, *extra):
    return main(["generate", "--image", str(d / "img.png"), "--audio", str(d / "a.wav"),
                 "--weights", str(d / "m.safetensors"), "--vae", str(d / "v.safetensors"),
                 "--text-encoder", str(d / "t.safetensors"), "--steps", "1", "--short-side", "32",
                 "--segment-frames", "17", "--device", "cpu", *extra])


def test_generate_writes_mp4_matching_the_audio(files):
    out = files / "out.mp4"
    assert _generate(files, "--prompt", "a person talks", "--out", str(out)) == 0
    info = probe_video(out)
    assert info["video_codec"] == "h264" and info["audio_codec"] == "aac"
    assert info["frames"] == round(1.3 * 24)
    assert abs(info["audio_duration"] - info["frames"] / 24) < 1 / 24


@pytest.mark.parametrize("extra,message", [
    (["--steps", "0"], "steps must be a positive integer"),
    (["--image", "/nonexistent.png"], "does not exist"),
    (["--weights", "/nonexistent.safetensors"], "does not exist"),
])
def test_bad_input_exits_2_with_a_message(files, capsys, extra, message):
    assert _generate(files, "--out", str(files / "bad.mp4"), *extra) == 2
    assert message in capsys.readouterr().err
    assert not (files / "bad.mp4").exists()


def test_init_refuses_base(tmp_path, capsys):
    assert main(["init", "--preset", "base", "--out", str(tmp_path / "b.safetensors")]) == 2
    assert "meta device" in capsys.readouterr().err


def test_plan_offline_then_generate_with_the_schedule(files):
    plan = files / "plan.json"
    assert main(["plan", "--image", str(files / "img.png"), "--audio", str(files / "a.wav"),
                 "--prompt", "she waves", "--offline", "--segment-frames", "17", "--out", str(plan)]) == 0
    out = files / "scheduled.mp4"
    assert _generate(files, "--schedule", str(plan), "--out", str(out)) == 0
    assert probe_video(out)["frames"] == round(1.3 * 24)


def test_schedule_and_prompt_together_is_refused(files, capsys):
    plan = files / "plan.json"
    plan.write_text("{}")
    assert _generate(files, "--schedule", str(plan), "--prompt", "x", "--out", str(files / "b.mp4")) == 2
    assert "either --schedule or --prompt" in capsys.readouterr().err


def test_first_frame_from_reference_can_be_set_either_way(files):
    for flag, expected in (("--first-frame-from-reference", True), ("--no-first-frame-from-reference", False)):
        work = files / f"work{expected}"
        assert _generate(files, "--prompt", "a person talks", "--work-dir", str(work), flag,
                         "--out", str(files / f"ff{expected}.mp4")) == 0
        manifest = json.loads(next(work.rglob("manifest.json")).read_text())
        assert manifest["fingerprint"]["settings"]["first_frame_from_reference"] is expected
