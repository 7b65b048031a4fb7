"""The offline fallback planner (deterministic, aligned to speech) and the audio facts it stands on."""

import socket

import pytest
import torch

from omnihuman_core.agents import PlanInputs, compute_audio_facts, plan_schedule
from omnihuman_core.agents.offline import OFFLINE_NOTE, prompt_clauses
from omnihuman_core.agents.system2 import plan_grid
from omnihuman_core.errors import InputError
from omnihuman_core.schedule import Schedule

from .conftest import SR, speechy


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection attempt fails the test: the offline planner must not touch the network."""
    def refuse(*a, **k):
        raise AssertionError("the offline planner tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_offline_plan_is_deterministic_and_aligned(media, no_network):
    def run():
        inputs = PlanInputs.load(media["image"], media["audio"], prompt="Takes out a letter, then reads it. Smiles!")
        return plan_schedule(inputs)

    a, b = run(), run()
    assert a.to_json() == b.to_json()
    assert a.planner["kind"] == "offline" and a.rationale == OFFLINE_NOTE
    segments = plan_grid(a.duration)
    assert len(a.shots) == len(segments) == 3
    assert [s.speaking for s in a.shots] == [True, False, True]
    assert a.shots[0].action.startswith("takes out a letter")
    assert a.shots[2].action.startswith("reads it, then smiles")
    assert "listens" in a.shots[1].action
    assert all(s.expression == "cheerful, warm smile" for s in a.shots)
    assert Schedule.from_json(a.to_json(), audio_duration=a.duration) == a


def test_offline_without_prompt_or_speech(no_network):
    from PIL import Image

    quiet = torch.zeros(SR * 3)
    quiet[: SR // 2] = 0.001 * torch.randn(SR // 2)
    inputs = PlanInputs(Image.new("RGB", (8, 8)), quiet)
    s = plan_schedule(inputs, fps=25)
    assert all(not shot.speaking and "listens" in shot.action for shot in s.shots)
    assert s.fps == 25.0


@pytest.mark.parametrize("prompt,clauses", [
    ("Takes out a letter, then reads it. Holds it to the chest -> looks up; smiles",
     ["takes out a letter", "reads it", "holds it to the chest", "looks up", "smiles"]),
    ("", []), ("waves and then points at the camera", ["waves", "points at the camera"]),
    ("I wave at the TV", ["I wave at the TV"]),
])
def test_prompt_clauses(prompt, clauses):
    assert prompt_clauses(prompt) == clauses


def test_audio_facts():
    facts = compute_audio_facts(speechy())
    assert facts.duration == pytest.approx(13.0)
    assert len(facts.speech) == 2
    first, second = facts.speech
    assert first.start == pytest.approx(0.5, abs=0.1) and first.end == pytest.approx(4.5, abs=0.1)
    assert second.start == pytest.approx(9.0, abs=0.1) and second.end == pytest.approx(12.5, abs=0.1)
    assert first.pitch_trend == "rising" and second.pitch_trend == "falling"
    assert 150 < first.pitch_hz < 230 and 140 <= facts.pitch_range_hz[0] < facts.pitch_range_hz[1] <= 245
    assert [round(a, 1) for a, _ in facts.silences] == [0.0, 4.5, 12.5]
    assert len(facts.loudness_per_second) == 13
    text = facts.to_text()
    assert "speech spans" in text and "rising" in text and "silences" in text
    assert facts.window(5.5, 8.5)["speech"] == 0.0 and facts.window(1, 4)["speech"] == 1.0


def test_long_audio_facts_stay_short():
    facts = compute_audio_facts(speechy().repeat(20))  # 260 s
    assert len(facts.loudness_per_second) <= 120 and facts.loudness_step_s == 3.0
    assert len(facts.to_text()) < 10_000


def test_bad_inputs(media):
    with pytest.raises(InputError, match="the prompt is 4001 characters"):
        PlanInputs.load(media["image"], media["audio"], prompt="x" * 4001)
    with pytest.raises(InputError, match="does not exist"):
        PlanInputs.load(media["image"], media["audio"].with_name("missing.wav"))
    with pytest.raises(InputError, match="Whisper folder"):
        PlanInputs.load(media["image"], media["audio"], whisper_folder=media["audio"].with_name("nope"))
    with pytest.raises(InputError, match="must be a file path or a PIL image"):
        PlanInputs.load(42, media["audio"])
    inputs = PlanInputs.load(media["image"], media["audio"], prompt="ok\x00\x07 fine")
    assert inputs.prompt == "ok fine"


@pytest.mark.parametrize("prompt,subject,clauses,whole", [
    ("A blue robot with a boxy head waves its right hand, then nods",
     "A blue robot with a boxy head", ["waves its right hand", "nods"], False),
    ("She waves -> she smiles", "She", ["waves", "smiles"], False),
    ("Anna waves hello; nods", "Anna", ["waves hello", "nods"], False),
    ("a woman in a red coat is waving", "A woman in a red coat", ["is waving"], False),
    ("Takes out a letter, then she reads it", None, ["takes out a letter", "reads it"], False),
    ("I wave at the TV, then smile", None, ["I wave at the TV", "smile"], True),
    ("The camera turns, then she waves", None, ["The camera turns", "waves"], True),
    ("A dragon roars fire", None, ["A dragon roars fire"], True),
    ("", None, [], False), ("waves", None, ["waves"], False),
])
def test_prompt_subject(prompt, subject, clauses, whole):
    from omnihuman_core.agents.offline import prompt_subject

    assert prompt_subject(prompt) == (subject, clauses, whole)


def test_offline_shots_name_the_prompts_subject(media, no_network):
    """Every shot says who acts, as the prompt names it; the demo model was trained on captions that open with the
    character's description (BENCHMARKS.md: without it the characters move less)."""
    inputs = PlanInputs.load(media["image"], media["audio"], prompt="A grey bear in a green shirt waves, then she nods")
    s = plan_schedule(inputs)
    assert [shot.prompt.split(",")[0] for shot in s.shots] == [
        "A grey bear in a green shirt waves", "A grey bear in a green shirt listens quietly",
        "A grey bear in a green shirt nods"]
    assert s.shots[0].action.startswith("waves") and s.analysis["subject"] == "A grey bear in a green shirt"
    own = plan_schedule(PlanInputs.load(media["image"], media["audio"], prompt="I wave at the TV, then smile"))
    assert own.shots[0].prompt.startswith("I wave at the TV, ") and own.shots[2].prompt.startswith("The character smile")
