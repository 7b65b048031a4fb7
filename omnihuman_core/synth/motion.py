"""Per-frame pose of a clip: actions in sequence, an emotion, a camera move, the mouth track and idle life.

Everything is computed up front as arrays over the clip's T frames (vectorised, no per-frame
Python), so the pose IS the ground truth: the renderer draws it and the labels store it.

Conventions (also in docs/SYNTH.md):
- yaw > 0: the head turns to the character's LEFT (its face moves toward the image's right);
  pitch > 0: chin down; roll > 0: clockwise in the image. Degrees.
- arm index 0 = the character's LEFT arm (on the image's right), 1 = its right arm.
- arm angles (radians) from hanging straight down: 0 down, pi/2 straight out sideways, pi up;
  negative = across the body. `alpha` is the upper arm, `beta` the forearm, both absolute.
- time is in seconds, so motion looks the same at any fps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .vocab import ACTION_ID, ACTIONS, CAMERA_ID, CAMERAS, EMOTION_ID, EMOTIONS

LEFT, RIGHT = 0, 1
RAMP_SECONDS = 0.35  # an action eases in and out over this long
IDLE_ALPHA, IDLE_BETA = 0.22, -0.4  # arms hanging, hands a little in front of the hips

# Emotion baselines: smile (-1 frown .. 1 smile), brow raise, brow tilt (+ inner ends down = angry,
# - inner ends up = sad), eye scale, head pitch (deg), mouth roundness (an "O" when surprised).
EMOTION_FACE = {
    "neutral": dict(smile=0.0, brow_raise=0.0, brow_tilt=0.0, eye_scale=1.0, pitch=0.0, round=0.0),
    "happy": dict(smile=0.65, brow_raise=0.25, brow_tilt=-0.1, eye_scale=0.92, pitch=-2.0, round=0.0),
    "sad": dict(smile=-0.55, brow_raise=0.15, brow_tilt=-0.9, eye_scale=0.88, pitch=7.0, round=0.0),
    "angry": dict(smile=-0.45, brow_raise=-0.35, brow_tilt=1.0, eye_scale=0.85, pitch=3.0, round=0.0),
    "surprised": dict(smile=0.0, brow_raise=1.0, brow_tilt=-0.2, eye_scale=1.3, pitch=-4.0, round=1.0),
}
FRAMING_ZOOM = 1.1  # static framing: a medium shot, head and hands large enough to read at 128 px
FRAMING_CENTER = (0.5, 0.5)  # world point at the frame centre of the static framing
CAMERA_ZOOM = 1.4  # zoom moves go this much tighter than the static framing
ZOOM_TARGET = (0.5, 0.4)  # zooms close in on the face
PAN_RANGE = 0.1  # pans move the view this far (world units) each side of centre


@dataclass
class ActionSegment:
    """One action over frames [start, end)."""

    action: str
    start: int
    end: int

    def to_list(self) -> list:
        return [self.action, int(self.start), int(self.end)]


def check_name(kind: str, value: str, allowed) -> str:
    if value not in allowed:
        raise InputError(f"{kind} {value!r} is not one of {', '.join(allowed)}")
    return value


def make_segments(actions, n_frames: int) -> list[ActionSegment]:
    """Actions as segments: names (split the clip evenly), ActionSegment or (name, start, end) items."""
    if isinstance(actions, str):
        actions = [actions]
    actions = list(actions) or ["idle"]
    if all(isinstance(a, str) for a in actions):
        bounds = np.round(np.linspace(0, n_frames, len(actions) + 1)).astype(int)
        segs = [ActionSegment(a, int(bounds[i]), int(bounds[i + 1])) for i, a in enumerate(actions)]
    else:
        segs = [a if isinstance(a, ActionSegment) else ActionSegment(str(a[0]), int(a[1]), int(a[2])) for a in actions]
    for s in segs:
        check_name("action", s.action, ACTIONS)
        if not 0 <= s.start < s.end <= n_frames:
            raise InputError(f"action {s.action!r} spans frames {s.start}..{s.end}, outside the clip's 0..{n_frames}")
    return segs


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _smooth_noise(rng: np.random.Generator, n: int, fps: float, seconds: float = 1.2) -> np.ndarray:
    """Slow random wiggle in about -1..1: white noise blurred over `seconds` (idle head sway)."""
    k = max(1, int(seconds * fps))
    x = rng.standard_normal(n + 2 * k)
    w = np.hanning(2 * k + 1)
    y = np.convolve(x, w / w.sum(), mode="same")[k: k + n]
    return y / (np.abs(y).max() + 1e-6) if n else y


@dataclass
class Pose:
    """Arrays over T frames (see the module docstring for units and signs)."""

    yaw: np.ndarray
    pitch: np.ndarray
    roll: np.ndarray
    lean: np.ndarray  # 0..1, 1 = leaned fully toward the camera
    alpha: np.ndarray  # [T, 2]
    beta: np.ndarray  # [T, 2]
    reach: np.ndarray  # [T, 2] arm length factor (foreshortening when pointing toward the camera side)
    finger: np.ndarray  # [T, 2] 0..1 index finger out (pointing)
    smile: np.ndarray
    brow_raise: np.ndarray
    brow_tilt: np.ndarray
    eye_open: np.ndarray  # 0 closed (blink) .. 1 open
    eye_scale: np.ndarray
    mouth: np.ndarray  # 0..1 opening
    mouth_round: np.ndarray
    breath: np.ndarray  # -1..1
    zoom: np.ndarray
    cam_x: np.ndarray  # world point at the frame centre
    cam_y: np.ndarray
    action: np.ndarray  # int16 [T]
    emotion: np.ndarray
    camera: np.ndarray

    @property
    def n_frames(self) -> int:
        return int(self.yaw.shape[0])

    def at(self, i: int) -> dict:
        """Frame i as plain floats (what the renderer draws)."""
        return {k: v[i] for k, v in self.__dict__.items()}


def neutral_pose(n_frames: int = 1) -> Pose:
    """Idle, facing the camera, mouth closed, eyes open, static camera: the reference pose."""
    return compute_pose(["idle"], "neutral", "static", np.zeros(n_frames, np.float32), 24.0, seed=None)


def compute_pose(actions, emotion: str, camera: str, mouth, fps: float, seed: int | None = 0) -> Pose:
    """The pose track of a clip. `seed=None` switches off idle life (breathing, sway, blinks)."""
    mouth = np.clip(np.asarray(mouth, np.float32), 0, 1)
    T = int(mouth.shape[0])
    if T < 1:
        raise InputError("a clip needs at least one frame (the mouth track is empty)")
    check_name("emotion", emotion, EMOTIONS)
    check_name("camera", camera, CAMERAS)
    segs = make_segments(actions, T)
    rng = np.random.default_rng(np.random.SeedSequence([0 if seed is None else int(seed), 0x90CE]))
    live = 0.0 if seed is None else 1.0
    t = np.arange(T) / fps
    f = np.arange(T, dtype=np.float64)
    z = np.zeros(T)

    face = EMOTION_FACE[emotion]
    yaw, pitch, roll, lean = z.copy(), z + face["pitch"], z.copy(), z.copy()
    alpha = np.full((T, 2), IDLE_ALPHA)
    beta = np.full((T, 2), IDLE_BETA)
    reach = np.ones((T, 2))
    finger = np.zeros((T, 2))
    smile, brow_raise, brow_tilt = z + face["smile"], z + face["brow_raise"], z + face["brow_tilt"]
    action_id = np.zeros(T, np.int16)

    # Speech envelope for speech-linked motion (gestures, head bob): slower than the mouth.
    k = max(1, int(0.15 * fps))
    env_speech = np.convolve(np.pad(mouth, k, mode="edge"), np.ones(2 * k + 1) / (2 * k + 1), mode="same")[k: k + T]

    for seg in segs:
        action_id[seg.start: seg.end] = ACTION_ID[seg.action]
        ramp = max(1.0, min(RAMP_SECONDS * fps, (seg.end - seg.start) / 3))
        env = _smoothstep((f - seg.start + 1) / ramp) * _smoothstep((seg.end - f) / ramp)
        env[: seg.start] = 0
        env[seg.end:] = 0
        ts = t - seg.start / fps  # seconds since the action began (oscillations start in phase)
        a = seg.action
        if a in ("wave_left", "wave_right"):
            side = LEFT if a == "wave_left" else RIGHT
            freq = rng.uniform(1.8, 2.6)
            _blend(alpha[:, side], 1.25 + rng.uniform(-0.1, 0.1), env)
            _blend(beta[:, side], np.pi - 0.25 + 0.45 * np.sin(2 * np.pi * freq * ts), env)
            roll += env * rng.uniform(-4, 4)
        elif a == "raise_arms":
            cheer = 0.12 * np.sin(2 * np.pi * rng.uniform(1.0, 1.6) * ts)
            for side in (LEFT, RIGHT):
                _blend(alpha[:, side], 2.65 + rng.uniform(-0.1, 0.1), env)
                _blend(beta[:, side], 2.95 + cheer, env)
            pitch -= 6 * env
        elif a in ("point_left", "point_right"):
            side = LEFT if a == "point_left" else RIGHT
            _blend(alpha[:, side], 1.3 + rng.uniform(-0.1, 0.15), env)
            _blend(beta[:, side], 1.42 + rng.uniform(-0.1, 0.1), env)
            _blend(reach[:, side], 0.72, env)
            finger[:, side] = np.maximum(finger[:, side], env)
            yaw += env * (18 if side == LEFT else -18)  # the head follows the pointing hand
        elif a == "nod":
            freq = rng.uniform(1.2, 1.8)
            pitch += env * 16 * (0.5 - 0.5 * np.cos(2 * np.pi * freq * ts))
        elif a == "shake_head":
            yaw += env * rng.uniform(18, 26) * np.sin(2 * np.pi * rng.uniform(1.4, 2.0) * ts)
        elif a in ("turn_left", "turn_right"):
            yaw += env * rng.uniform(32, 42) * (1 if a == "turn_left" else -1)
        elif a == "lean_in":
            lean += env
            pitch += 6 * env
        elif a == "smile":
            _blend(smile, 1.0, env)
            _blend(brow_raise, 0.3, env)
        elif a == "frown":
            _blend(smile, -0.9, env)
            _blend(brow_tilt, 0.9, env)
            _blend(brow_raise, -0.25, env)
        elif a == "gesture":
            # Talking hands: amplitude follows the speech, the two hands out of phase.
            g = env * (0.35 + 0.65 * np.clip(env_speech * 1.3, 0, 1))
            freq = rng.uniform(1.2, 2.0)
            for side, phase in ((LEFT, 0.0), (RIGHT, np.pi * rng.uniform(0.6, 1.0))):
                osc = np.sin(2 * np.pi * freq * ts + phase)
                _blend(alpha[:, side], 0.35 + 0.12 * osc * g, env)
                _blend(beta[:, side], -(1.35 + 0.45 * (0.5 + 0.5 * osc) * g), env)

    # Idle life: breathing, slow head sway, a nod-like bob while speaking, blinks every few seconds.
    breath = live * np.sin(2 * np.pi * rng.uniform(0.2, 0.3) * t + rng.uniform(0, 6.3))
    yaw += live * 3.0 * _smooth_noise(rng, T, fps)
    roll += live * 2.0 * _smooth_noise(rng, T, fps)
    pitch += live * (1.5 * _smooth_noise(rng, T, fps) + 4.0 * env_speech)
    eye_open = np.ones(T)
    if live:
        i = int(rng.uniform(0.3, 2.5) * fps)
        shape = np.interp(np.arange(int(0.2 * fps) + 1), [0, 0.05 * fps, 0.12 * fps, 0.2 * fps], [1, 0, 0, 1])
        while i < T:
            n = min(shape.size, T - i)
            eye_open[i: i + n] = np.minimum(eye_open[i: i + n], shape[:n])
            i += int(rng.uniform(2.0, 5.0) * fps)

    # Camera moves span the whole clip with an eased start and stop.
    u = _smoothstep(np.linspace(0, 1, T)) if T > 1 else np.zeros(1)
    fx0, fy0 = FRAMING_CENTER
    zoom, cx, cy = np.full(T, FRAMING_ZOOM), np.full(T, fx0), np.full(T, fy0)
    if camera in ("zoom_in", "zoom_out"):
        w = u if camera == "zoom_in" else 1 - u
        zoom = FRAMING_ZOOM * (1 + (CAMERA_ZOOM - 1) * w)
        cx = fx0 + (ZOOM_TARGET[0] - fx0) * w
        cy = fy0 + (ZOOM_TARGET[1] - fy0) * w
    elif camera in ("pan_left", "pan_right"):
        d = -1 if camera == "pan_left" else 1
        cx = fx0 + d * PAN_RANGE * (2 * u - 1)

    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    return Pose(
        yaw=f32(yaw), pitch=f32(pitch), roll=f32(roll), lean=f32(np.clip(lean, 0, 1)), alpha=f32(alpha), beta=f32(beta),
        reach=f32(reach), finger=f32(np.clip(finger, 0, 1)), smile=f32(np.clip(smile, -1, 1)), brow_raise=f32(brow_raise),
        brow_tilt=f32(brow_tilt), eye_open=f32(eye_open), eye_scale=f32(z + face["eye_scale"]), mouth=mouth,
        mouth_round=f32(z + face["round"]), breath=f32(breath), zoom=f32(zoom), cam_x=f32(cx), cam_y=f32(cy),
        action=action_id, emotion=np.full(T, EMOTION_ID[emotion], np.int16), camera=np.full(T, CAMERA_ID[camera], np.int16),
    )


def _blend(track: np.ndarray, target, env: np.ndarray) -> None:
    """In place: move `track` toward `target` by `env` (0 keeps it, 1 replaces it)."""
    track += env * (target - track)
