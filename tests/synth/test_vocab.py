"""parse_prompt reads actions, emotion and camera out of varied phrasings, including every caption we write."""

import numpy as np
import pytest

from omnihuman_core.synth import ACTIONS, make_caption, parse_prompt, sample_character, sample_script
from omnihuman_core.synth.vocab import ACTION_PHRASES, CAMERA_PHRASES, EMOTION_PHRASES


@pytest.mark.parametrize("text, actions, emotion, camera", [
    ("a robot with a blue head waves its right hand and smiles, camera slowly zooms in",
     ["wave_right", "smile"], "neutral", "zoom_in"),
    ("She raises her left hand and waves hello", ["wave_left"], "neutral", "static"),
    ("left-hand wave", ["wave_left"], "neutral", "static"),
    ("Points to the left, then nods happily. Pan right.", ["point_left", "nod"], "happy", "pan_right"),
    ("turn to the left and shake your head", ["turn_left", "shake_head"], "neutral", "static"),
    ("Man looks surprised and throws his hands up; camera zooms out", ["raise_arms"], "surprised", "zoom_out"),
    ("the robot leans closer to the camera, angry", ["lean_in"], "angry", "static"),
    ("pan left while the bear frowns", ["frown"], "neutral", "pan_left"),
    ("a sad cat shakes its head no and then looks right", ["shake_head", "turn_right"], "sad", "static"),
    ("The character waves, then smiles, cheerful, warm smile, speaking. Slow push-in.",
     ["wave_right", "smile"], "happy", "zoom_in"),
    ("The character talks with natural hand gestures, friendly, engaged, speaking. Static camera.",
     ["gesture"], "happy", "static"),
    ("listens quietly, blinks, small natural head movements, attentive, relaxed, silent.", ["idle"], "neutral", "static"),
    ("RAISES BOTH ARMS -> turns right", ["raise_arms", "turn_right"], "neutral", "static"),
])
def test_phrasings(text, actions, emotion, camera):
    p = parse_prompt(text)
    assert (p.actions, p.emotion, p.camera) == (actions, emotion, camera)
    assert p.matched


def test_unknown_text_is_default():
    p = parse_prompt("lorem ipsum dolor")
    assert (p.actions, p.emotion, p.camera, p.matched) == (["idle"], "neutral", "static", False)
    assert parse_prompt("").actions == ["idle"]


def test_every_phrase_parses_alone():
    for action, phrases in ACTION_PHRASES.items():
        for ph in phrases:
            assert parse_prompt("The cat " + ph.format(pos="its")).actions == [action], ph
    for emotion, phrases in EMOTION_PHRASES.items():
        for ph in phrases:
            assert parse_prompt("a robot nods, " + ph).emotion == emotion, ph
    for camera, phrases in CAMERA_PHRASES.items():
        for ph in phrases:
            assert parse_prompt("a bear nods. " + ph).camera == camera, ph


def test_generated_captions_round_trip():
    for i in range(300):
        rng = np.random.default_rng(i)
        spec = sample_character(i)
        speaking = bool(i % 3)
        script = sample_script(rng, 121, speaking=speaking)
        caption = make_caption(spec, script, speaking, rng)
        p = parse_prompt(caption)
        assert p.actions == script.actions, caption
        assert (p.emotion, p.camera, p.speaking) == (script.emotion, script.camera, speaking), caption
        assert p.action_ids() == [ACTIONS.index(a) for a in script.actions]


def test_script_actions_are_back_to_back_bouts_of_their_stated_length():
    from omnihuman_core.synth.world import ACTION_SECONDS

    fps = 24.0
    lo, hi = (round(s * fps) for s in ACTION_SECONDS)
    counts = []
    for i in range(200):
        script = sample_script(np.random.default_rng(i), 121, speaking=bool(i % 2), fps=fps)
        segs = script.segments
        assert segs[0].start == 0 and segs[-1].end == 121
        assert all(a.end == b.start for a, b in zip(segs, segs[1:])), "gaps or overlaps"
        assert all(a.action != b.action for a, b in zip(segs, segs[1:])), "an action repeated back to back"
        for s in segs[:-1]:
            assert lo <= s.end - s.start <= hi
        # The last one takes what is left: at least 60 % of the minimum, at most the maximum plus that.
        assert 0.6 * lo <= segs[-1].end - segs[-1].start < hi + 0.6 * lo
        counts.append(len(segs))
    # A 5 s clip holds 2-4 actions, so most training windows see their pseudo last frame in another action.
    assert set(counts) <= {2, 3, 4} and 2.5 < np.mean(counts) < 3.5
