"""One synthetic clip end to end: pick actions / emotion / camera, speak, render, caption.

`generate_clip(spec, seed, ...)` is a pure function of its arguments (and the eSpeak NG build when
the espeak engine is used): the dataset writer, the evaluator and tests all call it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from .character import CharacterSpec, describe, pronoun
from .motion import ActionSegment, compute_pose
from .render import Rig, render_pose
from .speech import SAMPLE_RATE, SpeechTrack, mouth_track, synthesize_speech
from .vocab import (ACTION_PHRASES, ACTIONS, CAMERA_PHRASES, CAMERAS, EMOTION_PHRASES, EMOTIONS,
                    SILENT_PHRASES, SPEAKING_PHRASES)

# bump when rendering, speech or sampling change what a seed produces. 2: actions last 1.2-2.4 s each, back
# to back (version 1: one or two actions spanning the whole clip).
SYNTH_VERSION = 2

# Sampling weights (same order as the vocab tuples). Idle is common but not dominant; talking
# gestures are likelier when there is speech (set in sample_script).
ACTION_WEIGHTS = {a: 1.0 for a in ACTIONS} | {"idle": 0.6}
EMOTION_WEIGHTS = {"neutral": 0.3, "happy": 0.175, "sad": 0.175, "angry": 0.175, "surprised": 0.175}
CAMERA_WEIGHTS = {"static": 0.5, "zoom_in": 0.125, "zoom_out": 0.125, "pan_left": 0.125, "pan_right": 0.125}
# How long one action lasts, in seconds: a clip is a run of actions of this length, back to back, each different
# from the one before (the last one absorbs a remainder shorter than 60 % of the minimum). Gestures in talking
# videos last a second or two; and the length decides what the pseudo-last-frame recipe teaches. The trainer
# conditions a 33-frame window on the real frame 16 frames past its end, where inference puts an idle reference
# image: with actions spanning the whole clip (SYNTH_VERSION 1) that frame showed the window's own action in 81 %
# of windows, so the model learnt to copy the action from it and ignored the prompt (BENCHMARKS.md, "Why the demo
# model ignores the action in its prompt"); at 1.2-2.4 s it shows it in about a quarter (scripts/action_leak.py).
ACTION_SECONDS = (1.2, 2.4)

@dataclass
class ClipScript:
    """What happens in a clip (before rendering)."""

    segments: list  # [ActionSegment]
    emotion: str = "neutral"
    camera: str = "static"

    @property
    def actions(self) -> list[str]:
        return [s.action for s in self.segments]


@dataclass
class Clip:
    """A rendered clip: frames, 16 kHz audio, per-frame labels, caption and metadata (JSON-ready)."""

    frames: np.ndarray  # uint8 [T, H, W, 3]
    waveform: np.ndarray  # float32 [N] mono 16 kHz, N = T / fps * 16000
    labels: dict  # numpy arrays (see docs/SYNTH.md)
    caption: str
    meta: dict = field(default_factory=dict)


def _choice(rng: np.random.Generator, weights: dict) -> str:
    names = list(weights)
    p = np.asarray([weights[n] for n in names], np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def sample_script(rng: np.random.Generator, n_frames: int, speaking: bool = True, fps: float = 24.0) -> ClipScript:
    """Actions back to back, ACTION_SECONDS each, no two neighbours alike; one emotion, one camera move."""
    weights = dict(ACTION_WEIGHTS)
    if speaking:
        weights["gesture"] = 1.5
    lo, hi = (max(1, int(round(s * fps))) for s in ACTION_SECONDS)
    segments: list[ActionSegment] = []
    start = 0
    while start < n_frames:
        length = int(rng.integers(lo, hi + 1))
        end = n_frames if n_frames - (start + length) < 0.6 * lo else start + length
        previous = segments[-1].action if segments else None
        action = _choice(rng, {k: v for k, v in weights.items() if k != previous})
        segments.append(ActionSegment(action, start, end))
        start = end
    return ClipScript(segments, _choice(rng, EMOTION_WEIGHTS), _choice(rng, CAMERA_WEIGHTS))

def _phrase(rng: np.random.Generator, options, pos: str) -> str:
    return options[int(rng.integers(len(options)))].format(pos=pos)


def make_caption(spec: CharacterSpec, script: ClipScript, speaking: bool, rng: np.random.Generator) -> str:
    """ "A blue robot with a boxy head waves its right hand, then nods, looking happy, while talking.
    Camera slowly zooms in." (phrasings vary with `rng`; `parse_prompt` reads every variant back)."""
    pos = pronoun(spec)
    acts = [_phrase(rng, ACTION_PHRASES[a], pos) for a in script.actions]
    body = ", then ".join(acts)
    emotion = _phrase(rng, EMOTION_PHRASES[script.emotion], pos)
    talk = _phrase(rng, SPEAKING_PHRASES if speaking else SILENT_PHRASES, pos)
    cam = _phrase(rng, CAMERA_PHRASES[script.camera], pos)
    text = f"{describe(spec)} {body}, {emotion}, {talk}. {cam[0].upper() + cam[1:]}."
    return text[0].upper() + text[1:]


def action_schedule(spec: CharacterSpec, meta: dict, fps: float | None = None, duration: float | None = None):
    """A clip's plan as a `Schedule`: one shot per timed action, its prompt a caption of that action alone.

    Written next to every clip as `schedule.json`: the trainer captions each training window with the shot
    that covers most of it (as a render segment gets its prompt), and the evaluator prompts its renders
    with it. `spec` is who the prompts describe (the drift video speaks other clips' audio).
    """
    from ..schedule import Schedule, Shot

    src_fps = float(meta.get("fps", 24.0))
    fps = float(fps or src_fps)
    duration = float(duration if duration is not None else meta["frames"] / src_fps)
    phrases = (meta.get("speech") or {}).get("phrases") or []
    shots = []
    for name, a, b in meta["actions"]:
        start, end = a / src_fps, min(duration, b / src_fps)
        if end <= start:
            continue
        speaking = any(p0 < end and p1 > start for p0, p1, *_ in phrases)
        script = ClipScript([ActionSegment(name, 0, max(1, b - a))], meta.get("emotion", "neutral"),
                            meta.get("camera", "static"))
        prompt = make_caption(spec, script, speaking, clip_rng(int(meta.get("seed", 0)), 3))
        shots.append(Shot(start, end, speaking, prompt=prompt))
    return Schedule(fps=fps, duration=duration, shots=shots)


def clip_rng(seed: int, stream: int) -> np.random.Generator:
    """Independent random streams per clip (speech, script, caption, motion) from one clip seed."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), 0xC11B, int(stream)]))


def generate_clip(spec: CharacterSpec, seed: int, *, n_frames: int = 121, fps: float = 24.0, size: int = 128,
                  speech: str = "auto", script: ClipScript | None = None, track: SpeechTrack | None = None,
                  rig: Rig | None = None) -> Clip:
    """A complete random clip of `spec` from `seed`: speech, script, frames, labels, caption.

    Pass `script` and/or `track` to fix what happens / what is said instead of sampling it.
    """
    if isinstance(n_frames, bool) or int(n_frames) != n_frames or n_frames < 1:
        raise InputError(f"n_frames must be a positive integer, got {n_frames!r}")
    if not fps > 0:
        raise InputError(f"fps must be positive, got {fps!r}")
    n_frames = int(n_frames)
    duration = n_frames / fps
    if track is None:
        track = synthesize_speech(clip_rng(seed, 1), duration, speech)
    n_samples = int(round(duration * SAMPLE_RATE))
    wav = np.zeros(n_samples, np.float32)
    wav[: min(n_samples, track.waveform.size)] = track.waveform[:n_samples]
    speaking = track.speaking(fps, n_frames)
    if script is None:
        script = sample_script(clip_rng(seed, 2), n_frames, speaking=bool(speaking.any()), fps=fps)
    mouth = mouth_track(wav, fps, n_frames)
    pose = compute_pose(script.segments, script.emotion, script.camera, mouth, fps, seed=int(seed))
    frames, labels = render_pose(spec, pose, size, rig=rig)
    labels["speaking"] = speaking
    caption = make_caption(spec, script, bool(speaking.any()), clip_rng(seed, 3))
    meta = {
        "seed": int(seed),
        "frames": n_frames,
        "fps": float(fps),
        "size": int(size),
        "sample_rate": SAMPLE_RATE,
        "character": spec.to_dict(),
        "description": describe(spec),
        "actions": [s.to_list() for s in script.segments],
        "emotion": script.emotion,
        "camera": script.camera,
        "caption": caption,
        "speech": track.meta(),
        "vocab": {"actions": list(ACTIONS), "emotions": list(EMOTIONS), "cameras": list(CAMERAS)},
        "synth_version": SYNTH_VERSION,
    }
    return Clip(frames, wav, labels, caption, meta)
