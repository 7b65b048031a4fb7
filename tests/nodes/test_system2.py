"""System 2 nodes: LLM settings without secrets, Analyzer, Planner (offline and LLM, cached), the Schedule
Editor's contract (docs/WIDGET.md), Reflection in the chainer, and the schedule as prompts."""

import json
from dataclasses import asdict

import pytest

from omnihuman_core.errors import InputError

from .helpers import features, image, offline_schedule, speech

SECRET = "sk-test-SECRET-0123456789abcdef"
KEY_VAR = "OMNIHUMAN_NODES_TEST_KEY"


def llm(nodes, url, **kw):
    args = dict(base_url=url, model="fake-vlm", api_key_env="", temperature=0.2, timeout=10.0, cache=True, vision=True)
    args.update(kw)
    return nodes.OmniHumanLLM().make(**args)[0]


# ---- planning ------------------------------------------------------------------------------------------
def test_offline_plan_has_one_shot_per_segment_of_the_model(nodes, model):
    audio = speech(3.5)
    schedule = offline_schedule(nodes, model, image(), audio)
    assert schedule.planner["kind"] == "offline"
    assert len(schedule.shots) == 3 and schedule.grid == {"segment_frames": 13, "motion_frames": 5}
    assert schedule.fps == 8 and schedule.duration == pytest.approx(3.5)
    assert "waves" in schedule.shots[0].text()


def test_planner_refuses_audio_other_than_the_analysed(nodes, model):
    analysis = nodes.OmniHumanAnalyzer().analyze(image(), speech(2.0), "")[0]
    with pytest.raises(InputError, match="same Load Audio"):
        nodes.OmniHumanPlanner().plan(analysis, speech(2.5), model)


def test_llm_plan_is_cached_so_a_requeue_sends_nothing(nodes, model, fake_llm):
    audio, img = speech(3.5), image()
    config = llm(nodes, fake_llm.base_url)
    analysis = nodes.OmniHumanAnalyzer().analyze(img, audio, "reads a letter", llm=config)[0]
    assert analysis.analysis is not None and analysis.llm_model == "fake-vlm"
    schedule = nodes.OmniHumanPlanner().plan(analysis, audio, model, llm=config)[0]
    assert fake_llm.calls == ["caption", "analysis", "plan"]
    assert schedule.planner["kind"] == "llm" and [s.prompt for s in schedule.shots] == [
        f"LLM shot {i}: talks to the camera" for i in range(3)]
    # Edit downstream and queue again: even a re-run Planner makes no new request.
    edited = json.loads(schedule.to_json())
    edited["shots"][1]["prompt"] = "my edit"
    nodes.OmniHumanScheduleEditor().edit(schedule, json.dumps(edited))
    again = nodes.OmniHumanPlanner().plan(
        nodes.OmniHumanAnalyzer().analyze(img, audio, "reads a letter", llm=config)[0], audio, model, llm=config)[0]
    assert fake_llm.calls == ["caption", "analysis", "plan"]
    assert again.to_dict() == schedule.to_dict()


# ---- secrets ---------------------------------------------------------------------------------------------
def test_the_key_comes_from_the_named_variable_and_goes_nowhere_else(nodes, model, fake_llm, monkeypatch):
    monkeypatch.setenv(KEY_VAR, SECRET)
    config = llm(nodes, fake_llm.base_url, api_key_env=KEY_VAR)
    audio = speech(2.0)
    analysis = nodes.OmniHumanAnalyzer().analyze(image(), audio, "", llm=config)[0]
    schedule = nodes.OmniHumanPlanner().plan(analysis, audio, model, llm=config)[0]
    assert fake_llm.auth and all(a == f"Bearer {SECRET}" for a in fake_llm.auth)  # used for the requests...
    for text in (repr(config), json.dumps(asdict(config), default=str), schedule.to_json(),
                 json.dumps(analysis.analysis.to_dict())):
        assert SECRET not in text  # ...and in nothing a node outputs or shows


def test_a_pasted_key_is_refused_without_repeating_it(nodes):
    with pytest.raises(InputError) as e:
        llm(nodes, "http://127.0.0.1:9/v1", api_key_env=SECRET)
    assert SECRET not in str(e.value) and "NAME of an environment variable" in str(e.value)


def test_an_unset_key_variable_is_reported_by_the_llm_node(nodes, monkeypatch):
    monkeypatch.delenv(KEY_VAR, raising=False)
    with pytest.raises(InputError, match=f"{KEY_VAR} is not set"):
        llm(nodes, "http://127.0.0.1:9/v1", api_key_env=KEY_VAR)
    with pytest.raises(InputError, match="http"):
        llm(nodes, "localhost:11434")


# ---- the Schedule Editor (docs/WIDGET.md) ----------------------------------------------------------------
def test_editor_passes_the_planners_schedule_through_when_there_are_no_edits(nodes, model):
    schedule = offline_schedule(nodes, model, image(), speech(3.5))
    result = nodes.OmniHumanScheduleEditor().edit(schedule, "")
    assert result["result"][0] is schedule
    ui = result["ui"]
    assert set(ui) == {"schedule", "planner_schedule"} and all(isinstance(v, list) and len(v) == 1 for v in ui.values())
    assert json.loads(ui["schedule"][0]) == json.loads(ui["planner_schedule"][0]) == schedule.to_dict()
    assert nodes.OmniHumanScheduleEditor.OUTPUT_NODE


def test_editor_renders_the_edits_and_snaps_them_to_the_grid(nodes, model):
    schedule = offline_schedule(nodes, model, image(), speech(3.5))
    data = json.loads(schedule.to_json())
    data["shots"][1]["prompt"] = "she laughs"
    data["shots"][1]["end"] = 2.3  # off the grid: the nearest segment boundary is 2.625 s
    data["shots"][2]["start"] = 2.3
    data["meta"] = {"note": "kept"}
    result = nodes.OmniHumanScheduleEditor().edit(schedule, json.dumps(data, indent=2))
    out = result["result"][0]
    assert out.shots[1].prompt == "she laughs" and out.meta == {"note": "kept"}
    assert [(s.start, s.end) for s in out.shots] == [(s.start, s.end) for s in schedule.shots]
    assert json.loads(result["ui"]["planner_schedule"][0]) == schedule.to_dict()
    assert json.loads(result["ui"]["schedule"][0])["shots"][1]["prompt"] == "she laughs"
    prompts = nodes.OmniHumanScheduleToPrompts().convert(out)[0]
    assert prompts[1] == "she laughs"


@pytest.mark.parametrize("change, message", [
    (lambda d: d["shots"][1].update(end=9.0), "shots[1].end: 9 s is past the audio's 3.5 s"),
    (lambda d: d["shots"][0].update(speaking="yes"), "shots[0].speaking: expected true or false"),
    (lambda d: d["shots"][2].update(camera=7), "shots[2].camera: expected a string"),
    (lambda d: d["shots"][0].update(mood="happy"), "shots[0]: unknown field 'mood'"),
])
def test_editor_errors_name_the_shot_and_the_field(nodes, model, change, message):
    schedule = offline_schedule(nodes, model, image(), speech(3.5))
    data = json.loads(schedule.to_json())
    change(data)
    with pytest.raises(InputError) as e:
        nodes.OmniHumanScheduleEditor().edit(schedule, json.dumps(data))
    assert message in str(e.value) and "Use planner's version" in str(e.value)


def test_editor_reports_broken_json_with_its_position(nodes, model):
    schedule = offline_schedule(nodes, model, image(), speech(2.0))
    with pytest.raises(InputError, match="not valid JSON \\(line 2, column"):
        nodes.OmniHumanScheduleEditor().edit(schedule, '{"version": 1,\n "shots": [}')


# ---- schedule to prompts ------------------------------------------------------------------------------
def test_schedule_to_prompts_gives_one_string_per_segment(nodes, model):
    schedule = offline_schedule(nodes, model, image(), speech(3.5), prompt="Waves. Smiles. Nods.")
    prompts, text = nodes.OmniHumanScheduleToPrompts().convert(schedule)
    assert isinstance(prompts, list) and len(prompts) == 3 and all(isinstance(p, str) and p for p in prompts)
    assert nodes.OmniHumanScheduleToPrompts.OUTPUT_IS_LIST == (True, False)
    assert text == "\n".join(prompts)
    merged = json.loads(schedule.to_json())  # one shot over the whole audio: the same prompt 3 times, once in text
    merged["shots"] = [{**merged["shots"][0], "end": merged["shots"][-1]["end"]}]
    one = nodes.OmniHumanScheduleEditor().edit(schedule, json.dumps(merged))["result"][0]
    prompts, text = nodes.OmniHumanScheduleToPrompts().convert(one)
    assert len(prompts) == 3 and len(set(prompts)) == 1 and text == prompts[0]


# ---- Reflection in the chainer ------------------------------------------------------------------------
def test_reflection_revises_the_shots_still_to_render(nodes, model, fake_llm):
    feats, audio = features(nodes, model, 3.5)
    schedule = offline_schedule(nodes, model, image(), audio)
    reflection = nodes.OmniHumanReflection().make(True, 1, "raise", llm=llm(nodes, fake_llm.base_url))[0]
    images, _, _, rendered = nodes.OmniHumanSegmentChainer().render(
        model, image(), feats, schedule, 0, 0, 0.0, -1.0, -1.0, 0.0, reflection=reflection)
    assert fake_llm.calls == ["reflection", "reflection"]  # after segments 1 and 2 of 3
    assert images.shape[0] == 28
    assert rendered.shots[0].prompt == schedule.shots[0].prompt
    assert [s.prompt for s in rendered.shots[1:]] == ["reflected shot 1", "reflected shot 2"]
    assert [r.after_segment for r in rendered.history] == [0, 1]


def test_reflection_needs_an_llm_when_enabled(nodes):
    with pytest.raises(InputError, match="needs an LLM"):
        nodes.OmniHumanReflection().make(True, 2, "keep")
    assert nodes.OmniHumanReflection().make(False, 2, "keep")[0].llm is None
