"""The Schedule: lossless JSON, validation errors by shot and field, normalisation onto the segment
grid, one prompt per segment, and the JSON schema generated from the same field table."""

import json

import pytest

from omnihuman_core.errors import InputError
from omnihuman_core.pipeline.segments import frame_count, plan_segments
from omnihuman_core.schedule import (
    SCHEDULE_VERSION, SHOT_FIELDS, Revision, Schedule, Shot, ShotRevision, load_schedule, schedule_json_schema,
    shots_llm_schema,
)

FPS = 24


def example(duration=12.4, **kw) -> dict:
    d = {
        "version": 1, "fps": FPS, "duration": duration,
        "shots": [
            {"start": 0.0, "end": 5.0, "speaking": True, "expression": "warm smile", "action": "takes out a letter",
             "camera": "static medium shot", "prompt": "A woman takes a letter out of an envelope, smiling."},
            {"start": 5.0, "end": 9.0, "speaking": False, "expression": "curious", "action": "reads the letter",
             "camera": "slow push-in", "prompt": ""},
            {"start": 9.0, "end": duration, "speaking": True, "expression": "moved", "action": "holds it to her chest",
             "camera": "static", "prompt": "She holds the letter to her chest.", "speaker": "left",
             "rationale": "the letter matters to her"},
        ],
    }
    d.update(kw)
    return d


def grid(duration, seg=121, motion=5):
    return plan_segments(frame_count(duration, FPS), seg, motion)


# ------------------------------------------------------------------------------------ round trip


def test_round_trip_is_lossless():
    s = Schedule.from_dict(example(analysis={"persona": "a letter writer", "nested": {"a": [1, 2.5]}},
                                   rationale="why", planner={"kind": "llm", "model": "m"}, meta={"editor": {"x": 1}}))
    s.history.append(Revision(0, "reflection", "the letter is visible",
                              [ShotRevision(1, {"expression": "a", "action": "b", "camera": "c", "prompt": "d"},
                                            {"expression": "a2", "action": "b", "camera": "c", "prompt": "d2"}, "why")],
                              model="m"))
    s.history.append(Revision(1, error="timeout"))
    text = s.to_json()
    back = Schedule.from_json(text)
    assert back == s
    assert back.to_json() == text
    assert json.loads(text)["shots"][2]["speaker"] == "left" and "speaker" not in json.loads(text)["shots"][0]


def test_minimal_hand_written_schedule_gets_defaults():
    s = Schedule.from_dict({"version": 1, "fps": 25, "duration": 3, "shots": [{"start": 0, "end": 3}]})
    assert s.shots[0] == Shot(0.0, 3.0) and s.history == [] and s.analysis is None
    assert s.shots[0].text() == "Listening silently."


def test_save_and_load(tmp_path):
    s = Schedule.from_dict(example())
    path = s.save(tmp_path / "sub" / "plan.json")
    assert Schedule.load(path) == s
    assert not list((tmp_path / "sub").glob("*.tmp"))


# ------------------------------------------------------------------------------------ validation


def errors_of(data, **kw) -> str:
    with pytest.raises(InputError) as e:
        Schedule.from_dict(data, **kw)
    return str(e.value)


def test_end_past_the_audio_names_shot_and_field():
    d = example(duration=4.2, shots=[{"start": 0, "end": 3}, {"start": 3, "end": 7.5}])
    msg = errors_of(d, audio_duration=4.2)
    assert "shots[1].end: 7.5 s is past the audio's 4.2 s" in msg
    assert "shots[0]" not in msg
    d = example()
    d["shots"][2]["end"] = 14.0
    assert "shots[2].end: 14 s is past the schedule's duration (12.4 s)" in errors_of(d)


@pytest.mark.parametrize("edit,expected", [
    (lambda d: d["shots"][1].update(start=4.0), "shots[1].start: 4 s overlaps shots[0], which ends at 5 s"),
    (lambda d: d["shots"][0].update(start=-1.0), "shots[0].start: -1 is negative"),
    (lambda d: d["shots"][1].update(end=5.0), "shots[1].end: 5 s is not after its start 5 s"),
    (lambda d: d["shots"][2].update(start=13.0, end=14.0), "shots[2].start: 13 s is at or past the end"),
    (lambda d: d["shots"][1].update(speaking="yes"), "shots[1].speaking: expected true or false, got a string"),
    (lambda d: d["shots"][0].update(start="0"), "shots[0].start: expected a number, got a string"),
    (lambda d: d["shots"][0].update(end=True), "shots[0].end: expected a number, got true/false"),
    (lambda d: d["shots"][0].update(prompt=5), "shots[0].prompt: expected a string, got a number"),
    (lambda d: d["shots"][0].update(prompt="x" * 1001), "shots[0].prompt: 1001 characters is longer than the limit"),
    (lambda d: d["shots"][0].update(expresion="typo"), "shots[0]: unknown field 'expresion'"),
    (lambda d: d["shots"][0].pop("end"), "shots[0].end: missing"),
    (lambda d: d.update(shots=[]), "the schedule has no shots"),
    (lambda d: d.update(shots={"start": 0}), "schedule.shots: expected a list"),
    (lambda d: d.update(shots=[5]), "schedule.shots[0]: expected an object"),
    (lambda d: d.update(fps="24"), "schedule.fps: expected a number"),
    (lambda d: d.update(duration=float("nan")), "schedule.duration: nan is not a finite number"),
    (lambda d: d.update(history=[{"after_segment": "one"}]), "after_segment: expected a whole number"),
    (lambda d: d.update(grid={"segment_frames": 121}), "grid.motion_frames: missing"),
    (lambda d: d.update(colour="red"), "schedule: unknown field 'colour'"),
    (lambda d: d["shots"].reverse(), "list the shots in time order"),
])
def test_bad_hand_edits_are_named(edit, expected):
    d = example()
    edit(d)
    assert expected in errors_of(d)


def test_all_problems_are_listed_at_once():
    d = example()
    d["shots"][0]["speaking"] = 1
    d["shots"][1]["camera"] = None
    msg = errors_of(d)
    assert "shots[0].speaking" in msg and "shots[1].camera" in msg


@pytest.mark.parametrize("version,expected", [(2, "version 2 is not supported"), ("1", "version 1 is not supported"),
                                              (None, "version None is not supported")])
def test_unknown_version(version, expected):
    assert expected in errors_of(example(version=version))
    d = example()
    del d["version"]
    assert "'version' is missing" in errors_of(d)


def test_schedule_for_other_audio_is_refused():
    msg = errors_of(example(duration=12.4), audio_duration=9.0)
    assert "planned for 12.4 s of audio but this audio is 9 s" in msg


def test_not_json_and_missing_file(tmp_path):
    p = tmp_path / "plan.json"
    p.write_text('{"version": 1,')
    with pytest.raises(InputError, match="not valid JSON"):
        Schedule.load(p)
    with pytest.raises(InputError, match="does not exist"):
        Schedule.load(tmp_path / "nope.json")
    with pytest.raises(InputError, match="must be a JSON object"):
        Schedule.from_json("[1, 2]")


# ------------------------------------------------------------------------------ the segment grid


@pytest.mark.parametrize("duration", [0.05, 1.0, 4.99, 5.04, 12.4, 33.3, 61.0])
@pytest.mark.parametrize("seg,motion", [(121, 5), (33, 9), (97, 0)])
def test_exactly_one_prompt_per_segment(duration, seg, motion):
    segments = grid(duration, seg, motion)
    s = Schedule.from_dict(example(duration=max(duration, 9.5)))
    prompts = s.segment_prompts(segments)
    assert len(prompts) == len(segments) and all(isinstance(p, str) and p for p in prompts)
    per = s.per_segment(segments)
    assert len(per.shots) == len(segments) and per.segment_prompts(segments) == prompts
    assert [(x.start, x.end) for x in per.shots] == [seg_.time_span(FPS) for seg_ in segments]


def test_prompts_follow_the_shots_in_time():
    s = Schedule.from_dict(example(duration=30.0, shots=[
        {"start": 0, "end": 10, "prompt": "first"}, {"start": 10, "end": 30, "prompt": "second"}]))
    segments = grid(30.0)
    prompts = s.segment_prompts(segments)
    for seg, p in zip(segments, prompts):
        a, b = seg.time_span(FPS)
        assert p == ("first" if min(b, 10) - a > min(b, 30) - max(a, 10) else "second")
    assert prompts[0] == "first" and prompts[-1] == "second"


def test_empty_prompt_is_made_from_the_other_fields():
    shot = Shot(0, 1, speaking=False, expression="curious", action="reads the letter.", camera="slow push-in")
    assert shot.text() == "Reads the letter. Curious. Slow push-in. Listening silently."


def test_normalize_fills_gaps_snaps_and_clips():
    d = example(duration=12.4, shots=[
        {"start": 1.0, "end": 4.0, "speaking": True, "prompt": "talks"},
        {"start": 4.0, "end": 4.2, "prompt": "blink"},  # shorter than a segment: absorbed
        {"start": 6.5, "end": 12.6, "speaking": True, "prompt": "talks again"},  # past the end by 0.2 s: clipped
    ])
    segments = grid(12.4)
    s, notes = Schedule.from_dict(d).normalize(segments, FPS, 12.4)
    spans = [seg.time_span(FPS) for seg in segments]
    bounds = {a for a, _ in spans} | {b for _, b in spans}
    assert s.shots[0].start == 0.0 and s.shots[-1].end == pytest.approx(frame_count(12.4, FPS) / FPS)
    assert all(x.start in bounds and x.end in bounds for x in s.shots)
    assert all(a.end == b.start for a, b in zip(s.shots, s.shots[1:]))
    assert any("gap 4.2-6.5 s" in n for n in notes) and any("shots[1]" in n and "merged" in n for n in notes)
    assert any("clipped" in n for n in notes) and any("gap 0-1 s" in n for n in notes)
    assert len(s.segment_prompts(segments)) == len(segments)
    assert s.grid == {"segment_frames": 121, "motion_frames": 5}
    # normalising a normalised schedule changes nothing
    again, notes2 = s.normalize(segments, FPS, 12.4)
    assert again == s and notes2 == []


def test_load_schedule_for_generate(tmp_path):
    p = Schedule.from_dict(example()).save(tmp_path / "plan.json")
    segments = grid(12.4)
    s, _ = load_schedule(p, segments, FPS, 12.4)
    assert len(s.segment_prompts(segments, FPS)) == len(segments)
    with pytest.raises(InputError, match="re-plan it"):
        load_schedule(p, grid(30.0), FPS, 30.0)


# ---------------------------------------------------------------------------------------- schema


def test_json_schema_comes_from_the_field_table():
    schema = schedule_json_schema()
    shot = schema["properties"]["shots"]["items"]
    assert set(shot["properties"]) == {f.name for f in SHOT_FIELDS}
    assert shot["required"] == ["start", "end"] and shot["additionalProperties"] is False
    assert shot["properties"]["prompt"]["maxLength"] == 1000
    assert schema["properties"]["version"]["enum"] == [SCHEDULE_VERSION]
    json.dumps(schema)


def test_llm_schema_is_strict_and_portable():
    schema = shots_llm_schema(["start", "end", "speaking", "prompt"])
    assert schema["required"] == ["start", "end", "speaking", "prompt"] and schema["additionalProperties"] is False
    text = json.dumps(schema)
    assert "maxLength" not in text and "minimum" not in text  # limits are checked locally instead
    assert "at most 1000 characters" in schema["properties"]["prompt"]["description"]


def test_defaults_are_not_shared():
    a = Schedule.from_dict({"version": 1, "fps": 24, "duration": 1, "shots": [{"start": 0, "end": 1}]})
    a.planner["kind"] = "manual"
    a.meta["x"] = 1
    b = Schedule.from_dict({"version": 1, "fps": 24, "duration": 1, "shots": [{"start": 0, "end": 1}]})
    assert b.planner == {} and b.meta == {}


def test_normalize_keeps_a_valid_grid_for_audio_shorter_than_one_segment():
    from omnihuman_core.pipeline.segments import plan_segments
    from omnihuman_core.schedule import Schedule

    fps, duration = 24, 3.0
    segments = plan_segments(round(duration * fps), 121, 5)
    plan = Schedule.from_dict({"version": 1, "fps": fps, "duration": duration,
                               "shots": [{"start": 0.0, "end": duration, "speaking": True, "prompt": "talks"}]})
    out, _ = plan.normalize(segments, fps, duration)
    grid = out.grid
    plan_segments(72, grid["segment_frames"], grid["motion_frames"])  # a grid the renderer accepts
    assert (grid["segment_frames"] - 1) % 4 == 0
