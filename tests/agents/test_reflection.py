"""Reflection: revises only the shots still to render, never the rendered ones or the timing grid,
records every step in the schedule's history, and plugs into the real SegmentChainer."""

import json

import numpy as np
import pytest

from omnihuman_core.agents import LLMClient, Reflection
from omnihuman_core.agents.llm import LLMInvalidReply
from omnihuman_core.pipeline.chainer import SegmentReport
from omnihuman_core.pipeline.segments import plan_segments
from omnihuman_core.schedule import Schedule, Shot

from .conftest import KEY_VAR, SECRET, agent_role, fake_mllm, files_containing, json_reply

FPS = 24
SEG, MOTION = 17, 5
N_FOUR = SEG + 3 * (SEG - MOTION)  # 53 frames -> 4 segments


def four_shot_schedule() -> Schedule:
    segments = plan_segments(N_FOUR, SEG, MOTION)
    actions = ["takes out a letter", "rubs the surface", "holds it to the chest", "lifts it to the eyes"]
    shots = [Shot(*seg.time_span(FPS), speaking=i % 2 == 0, expression="calm", action=a, camera="static",
                  prompt=f"A woman {a}.") for i, (seg, a) in enumerate(zip(segments, actions))]
    return Schedule(fps=FPS, duration=N_FOUR / FPS, shots=shots, analysis={"persona": "a letter reader"})


def report(index, schedule, prompts=None, value=100):
    segments = plan_segments(N_FOUR, SEG, MOTION)
    frames = np.full((MOTION, 16, 16, 3), value, np.uint8)
    prompts = prompts if prompts is not None else schedule.segment_prompts(segments, FPS)
    return SegmentReport(index, len(segments), segments, frames, list(prompts))


def test_revises_only_the_remaining_shots(llm_server, make_config, media, tmp_path):
    llm_server.default = fake_mllm
    schedule = four_shot_schedule()
    hook = Reflection(LLMClient(make_config(llm_server.url))).hook(schedule, media["pil"], save_to=tmp_path / "s.json")
    rep = report(0, schedule)
    new = hook(rep)
    assert new[0] == rep.prompts[0]
    assert new[1:] == [p + " She keeps holding the envelope." for p in rep.prompts[1:]]
    s = hook.schedule
    assert [(x.start, x.end, x.speaking) for x in s.shots] == [(x.start, x.end, x.speaking) for x in schedule.shots]
    assert s.shots[0] == schedule.shots[0]
    (rev,) = s.history
    assert rev.after_segment == 0 and rev.source == "reflection" and rev.model == "test-model"
    assert rev.observation == "the envelope is still in her hands"
    assert [c.shot for c in rev.changes] == [1, 2, 3]
    assert rev.changes[0].before["action"] == "rubs the surface"
    assert rev.changes[0].after["action"] == "rubs the surface (revised)"
    assert rev.changes[0].rationale == "keep the envelope visible"
    assert Schedule.load(tmp_path / "s.json") == s  # saved after the step, lossless

    (req,) = llm_server.chat_requests
    assert agent_role(req) == "reflection"
    assert [p["type"] for p in req.user_parts].count("image_url") == 3  # reference + 2 of the last frames
    plan = req.text()
    assert '"segment": 0, "status": "rendered"' in plan and '"segment": 1, "status": "to render"' in plan
    assert "a letter reader" in plan
    schema = req.body["response_format"]["json_schema"]["schema"]
    assert "start" not in schema["properties"]["shots"]["items"]["properties"]  # timing is not the model's to change

    # the next step sees the revised plan and revises what is left after segment 1
    new2 = hook(report(1, schedule, prompts=new, value=50))
    assert new2[:2] == new[:2] and len(hook.schedule.history) == 2
    assert [c.shot for c in hook.schedule.history[1].changes] == [2, 3]
    assert hook(report(3, schedule, prompts=new2)) is None  # after the last segment: nothing to do


def test_rewriting_rendered_shots_is_refused(llm_server, make_config, media):
    def rewrite_all(req):
        plan = [json.loads(line) for line in req.text().split("<<<BEGIN DATA: plan>>>\n")[1].split("\n<<<END")[0].splitlines()]
        return json_reply({"observation": "x", "shots": [
            {"segment": p["segment"], "expression": "e", "action": "a", "camera": "c", "prompt": "new", "rationale": "r"}
            for p in plan]})

    llm_server.default = rewrite_all
    schedule = four_shot_schedule()
    hook = Reflection(LLMClient(make_config(llm_server.url))).hook(schedule, media["pil"])
    rep = report(1, schedule)
    assert hook(rep) is None  # the plan is kept
    (rev,) = hook.schedule.history
    assert rev.error and "rendered segments cannot change" in rev.error and rev.changes == []
    assert hook.schedule.shots == schedule.per_segment(rep.segments, FPS).shots
    with pytest.raises(LLMInvalidReply, match="segments 2..3"):
        Reflection(LLMClient(make_config(llm_server.url, cache_dir=None))).hook(
            schedule, media["pil"], on_error="raise")(rep)


def test_unchanged_plan_is_still_recorded(llm_server, make_config, media):
    def keep(req):
        data = json.loads(fake_mllm(req).body["choices"][0]["message"]["content"])
        for s in data["shots"]:
            s["action"] = s["action"].replace(" (revised)", "")
            s["prompt"] = s["prompt"].replace(" She keeps holding the envelope.", "")
            s["rationale"] = "unchanged"
        return json_reply(data)

    llm_server.default = keep
    schedule = four_shot_schedule()
    hook = Reflection(LLMClient(make_config(llm_server.url))).hook(schedule, media["pil"])
    rep = report(0, schedule)
    assert hook(rep) == rep.prompts
    assert len(hook.schedule.history) == 1 and hook.schedule.history[0].changes == []


def test_unreachable_endpoint_keeps_the_plan(make_config, media, dead_url):
    schedule = four_shot_schedule()
    client = LLMClient(make_config(dead_url, max_retries=0))
    hook = Reflection(client).hook(schedule, media["pil"])
    assert hook(report(0, schedule)) is None
    assert "cannot reach" in hook.schedule.history[0].error


def test_same_frames_again_make_no_request(llm_server, make_config, media, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_VAR, SECRET)
    llm_server.default = fake_mllm
    schedule = four_shot_schedule()
    first = Reflection(LLMClient(make_config(llm_server.url, api_key_env=KEY_VAR))).hook(
        schedule, media["pil"], save_to=tmp_path / "a.json")(report(0, schedule))
    client = LLMClient(make_config(llm_server.url, api_key_env=KEY_VAR))
    again = Reflection(client).hook(schedule, media["pil"], save_to=tmp_path / "b.json")(report(0, schedule))
    assert again == first and client.requests == 0 and len(llm_server.chat_requests) == 1
    assert files_containing(tmp_path, SECRET) == []


def test_prompts_of_a_resumed_run_are_adopted(llm_server, make_config, media):
    llm_server.default = fake_mllm
    schedule = four_shot_schedule()
    hook = Reflection(LLMClient(make_config(llm_server.url))).hook(schedule, media["pil"])
    prompts = schedule.segment_prompts(plan_segments(N_FOUR, SEG, MOTION), FPS)
    prompts[1] = prompts[2] = "from an earlier Reflection"
    new = hook(report(1, schedule, prompts=prompts))
    sync, refl = hook.schedule.history
    assert sync.source == "sync" and [c.shot for c in sync.changes] == [1, 2]
    assert hook.schedule.shots[1].prompt == "from an earlier Reflection" == new[1]
    assert new[2] == "from an earlier Reflection She keeps holding the envelope."


def test_with_the_real_segment_chainer(llm_server, make_config, media, tmp_path):
    fakes = pytest.importorskip("tests.pipeline.fakes")
    from omnihuman_core.pipeline import RenderSettings, SegmentChainer

    llm_server.default = fake_mllm
    schedule = four_shot_schedule()
    settings = RenderSettings(segment_frames=SEG, motion_frames=MOTION, steps=1, shift=3.0, audio_window=5)
    text = fakes.FakeTextEncoder()
    chainer = SegmentChainer(fakes.FakeModel(record=False), fakes.FakeVAE(), text, settings)
    segments = chainer.plan(N_FOUR)
    prompts = schedule.segment_prompts(segments, FPS)
    hook = Reflection(LLMClient(make_config(llm_server.url))).hook(schedule, media["pil"], fps=settings.fps)
    import torch

    result = chainer.run(N_FOUR, prompts, reference_latent=torch.zeros(1, fakes.C, 1, 2, 2),
                         audio_frames=torch.zeros(N_FOUR, 5, 2), seed=1, on_frames=lambda f: None,
                         work_dir=tmp_path / "work", hook=hook)
    assert len(llm_server.chat_requests) == 3  # after segments 0, 1, 2
    assert result.prompts[0] == prompts[0]
    assert result.prompts[1].endswith("She keeps holding the envelope.")
    assert result.prompts[3].count("She keeps holding the envelope.") == 3
    assert [len(r.changes) for r in hook.schedule.history] == [3, 2, 1]
    assert [s.text() for s in hook.schedule.shots] == result.prompts
