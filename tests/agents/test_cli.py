"""`plan` and the options `generate` shares (`--schedule`, `--reflect`, `--llm-*`), driven through argparse."""

import argparse
from pathlib import Path

import pytest

from omnihuman_core.agents.cli import (
    add_generate_arguments, add_plan_parser, reflection_from_args, schedule_prompts_from_args,
)
from omnihuman_core.agents.llm import LLMInvalidReply, LLMUnreachable
from omnihuman_core.agents.reflection import ReflectionHook
from omnihuman_core.errors import InputError
from omnihuman_core.pipeline.segments import frame_count, plan_segments
from omnihuman_core.schedule import Schedule

from .conftest import KEY_VAR, SECRET, completion, fake_mllm, files_containing


def plan(argv):
    parser = argparse.ArgumentParser()
    add_plan_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["plan", *map(str, argv)])
    return args.func(args)


def base(media, tmp_path, *extra):
    return ["--image", media["image"], "--audio", media["audio"], "--out", tmp_path / "out" / "plan.json", *extra]


def llm(server, tmp_path, *extra):
    return ["--llm-base-url", server.url, "--llm-model", "test-model", "--llm-cache", tmp_path / "cache",
            "--llm-retries", "0", "--llm-timeout", "5", *extra]


def test_plan_offline(media, tmp_path, capsys):
    assert plan(base(media, tmp_path, "--offline", "--prompt", "waves, then smiles")) == 0
    out = capsys.readouterr().out
    assert "OFFLINE fallback planner" in out and "[2]" in out
    s = Schedule.load(tmp_path / "out" / "plan.json")
    assert len(s.shots) == 3 and s.planner["kind"] == "offline"


def test_plan_with_llm_then_from_cache(llm_server, media, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(KEY_VAR, SECRET)
    llm_server.default = fake_mllm
    transcript = tmp_path / "t.txt"
    transcript.write_text("Dear Anna, I found it.", encoding="utf-8")
    argv = base(media, tmp_path, *llm(llm_server, tmp_path, "--llm-api-key-env", KEY_VAR),
                "--transcript-file", transcript, "--fps", "25")
    assert plan(argv) == 0
    assert "3 request(s), 0 answer(s) from the cache" in capsys.readouterr().out
    assert "Dear Anna, I found it." in llm_server.chat_requests[1].text()
    assert plan(argv) == 0
    assert "0 request(s), 3 answer(s) from the cache" in capsys.readouterr().out
    s = Schedule.load(tmp_path / "out" / "plan.json")
    assert s.planner["model"] == "test-model" and s.fps == 25.0
    assert files_containing(tmp_path, SECRET) == []


@pytest.mark.parametrize("extra,match", [
    ((), "needs an LLM endpoint .* or --offline"),
    (("--offline", "--llm-base-url", "http://127.0.0.1:9/v1"), "either --offline or"),
    (("--llm-base-url", "http://127.0.0.1:9/v1"), "both --llm-base-url and --llm-model"),
    (("--llm-base-url", "http://127.0.0.1:9/v1", "--llm-model", "m", "--llm-api-key-env", "NOT_SET_ANYWHERE_VAR"),
     "NOT_SET_ANYWHERE_VAR is not set"),
    (("--offline", "--fps", "0"), "--fps must be positive"),
    (("--offline", "--segment-frames", "120"), "segment_frames must be 1 \\+ 4k"),
    (("--offline", "--transcript", "a", "--transcript-file", "b"), "either --transcript or --transcript-file"),
])
def test_plan_option_errors(media, tmp_path, extra, match):
    with pytest.raises(InputError, match=match):
        plan(base(media, tmp_path, *extra))


def test_plan_unreachable_endpoint(media, tmp_path, dead_url):
    with pytest.raises(LLMUnreachable, match=rf"cannot reach the LLM endpoint at {dead_url}.*--offline"):
        plan(base(media, tmp_path, "--llm-base-url", dead_url, "--llm-model", "m", "--llm-retries", "0",
                  "--no-llm-cache"))
    assert not (tmp_path / "out" / "plan.json").exists()


def test_plan_invalid_model_saves_the_reply_next_to_the_output(llm_server, media, tmp_path):
    llm_server.default = lambda req: completion("I cannot produce JSON today.")
    with pytest.raises(LLMInvalidReply) as e:
        plan(base(media, tmp_path, *llm(llm_server, tmp_path)))
    assert e.value.raw_path.parent == tmp_path / "out"
    assert "I cannot produce JSON today." in e.value.raw_path.read_text()


def generate_args(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--out")
    add_generate_arguments(parser)
    return parser.parse_args(list(map(str, argv)))


def test_generate_schedule_and_reflect_options(llm_server, media, tmp_path, dead_url):
    plan(base(media, tmp_path, "--offline"))
    path = tmp_path / "out" / "plan.json"
    duration = Schedule.load(path).duration
    segments = plan_segments(frame_count(duration, 24))

    schedule, prompts, notes = schedule_prompts_from_args(generate_args(["--schedule", path]), segments, 24, duration)
    assert len(prompts) == len(segments) and notes == []
    assert reflection_from_args(generate_args(["--schedule", path]), schedule, media["pil"]) is None
    assert schedule_prompts_from_args(generate_args([]), segments, 24, duration) == (None, None, [])

    with pytest.raises(InputError, match="--reflect needs --schedule"):
        schedule_prompts_from_args(generate_args(["--reflect"]), segments, 24, duration)
    with pytest.raises(InputError, match="--reflect needs an LLM endpoint"):
        reflection_from_args(generate_args(["--schedule", path, "--reflect"]), schedule, media["pil"])
    with pytest.raises(InputError, match="re-plan it"):
        schedule_prompts_from_args(generate_args(["--schedule", path]), plan_segments(500), 24, 500 / 24)

    args = generate_args(["--schedule", path, "--reflect", *llm(llm_server, tmp_path)])
    hook = reflection_from_args(args, schedule, media["pil"], fps=24, out_path=tmp_path / "video.mp4")
    assert isinstance(hook, ReflectionHook) and hook.save_to == tmp_path / "video.mp4.schedule.json"
    assert [r.method for r in llm_server.requests] == ["GET"]  # reachability checked before rendering
    with pytest.raises(LLMUnreachable, match="--offline"):
        reflection_from_args(generate_args(["--schedule", path, "--reflect", "--llm-base-url", dead_url,
                                            "--llm-model", "m"]), schedule, media["pil"])


def test_plan_defaults_match_the_render_defaults():
    from omnihuman_core.agents.defaults import DEFAULT_FPS, DEFAULT_MOTION_FRAMES, DEFAULT_SEGMENT_FRAMES
    from omnihuman_core.pipeline import RenderSettings

    s = RenderSettings()
    assert (s.fps, s.segment_frames, s.motion_frames) == (DEFAULT_FPS, DEFAULT_SEGMENT_FRAMES, DEFAULT_MOTION_FRAMES)


def test_importing_the_cli_is_cheap():
    import subprocess
    import sys

    code = "import sys, omnihuman_core.agents.cli; print(sorted({'torch', 'openai', 'numpy'} & set(sys.modules)))"
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=root)
    assert out.stdout.strip() == "[]", out.stderr
