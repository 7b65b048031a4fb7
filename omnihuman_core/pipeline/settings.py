"""RenderSettings: every knob of a System 1 render in one dataclass, with its defaults visible here."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import InputError
from ..sampling.conditioning import DEFAULT_DELTA, REFERENCE_MODES
from ..sampling.flow import DEFAULT_SHIFT, DEFAULT_STEPS
from ..sampling.guidance import ANNEAL_MODES, Guidance
from ..sampling.solvers import SOLVERS
from .segments import plan_segments


@dataclass
class RenderSettings:
    """How System 1 renders: clip geometry, sampler, guidance, reference handling, audio window, size."""

    fps: float = 24.0  # the paper's frame rate
    segment_frames: int = 121  # frames per generation pass (paper: 120-frame clips; 1 + 4k for the VAE)
    motion_frames: int = 5  # frames carried into the next segment (OmniHuman-1: 5; InfiniteTalk: 9)
    steps: int = DEFAULT_STEPS
    shift: float = DEFAULT_SHIFT
    text_scale: float = 5.0  # InfiniteTalk's text / audio guidance scales
    audio_scale: float = 4.0
    guidance_anneal: str | None = None  # None | "linear" | "cosine" (OmniHuman-1 anneals)
    min_scale_fraction: float = 0.5  # scales at the last step, as a fraction, when annealing
    solver: str = "euler"
    reference_mode: str = "pseudo_last_frame"  # the paper's method; "reference" / "none" are ablations
    delta: float = DEFAULT_DELTA  # latent frames between the last frame and the pseudo last frame
    audio_window: int = 5  # video frames of audio context per frame
    short_side: int = 480  # output resolution (paper: 480p; a super-resolution model goes higher)
    # Also pin the reference as the very first frame (the video starts exactly on the image) instead
    # of letting the first frame be generated towards it.
    first_frame_from_reference: bool = False
    # Flow time of the noise added to the motion latents carried into each next segment (noise
    # augmentation; a model trained with Recipe.motion_noise stores half its range here). 0 = exact copies.
    motion_noise: float = 0.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise InputError naming every invalid field (cheap; runs before any model work)."""
        problems = []

        def positive_int(name):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                problems.append(f"{name} must be a positive integer, got {v!r}")
                return False
            return True

        if not isinstance(self.fps, (int, float)) or isinstance(self.fps, bool) or not math.isfinite(self.fps) \
                or not 0 < self.fps <= 240:
            problems.append(f"fps must be a number in (0, 240], got {self.fps!r}")
        grid_ok = positive_int("segment_frames")
        if isinstance(self.motion_frames, bool) or not isinstance(self.motion_frames, int) or self.motion_frames < 0:
            problems.append(f"motion_frames must be an integer >= 0, got {self.motion_frames!r}")
            grid_ok = False
        if grid_ok:
            try:
                plan_segments(1, self.segment_frames, self.motion_frames)
            except InputError as e:
                problems.append(str(e))
        positive_int("steps")
        if not isinstance(self.shift, (int, float)) or isinstance(self.shift, bool) or not math.isfinite(self.shift) \
                or self.shift <= 0:
            problems.append(f"shift must be a positive number (3-7 is usual at 480p), got {self.shift!r}")
        try:
            self.guidance()
        except InputError as e:
            problems.append(str(e))
        if self.solver not in SOLVERS:
            problems.append(f"solver must be one of {', '.join(sorted(SOLVERS))}, got {self.solver!r}")
        if self.reference_mode not in REFERENCE_MODES:
            problems.append(f"reference_mode must be one of {', '.join(REFERENCE_MODES)}, got {self.reference_mode!r}")
        if not isinstance(self.delta, (int, float)) or isinstance(self.delta, bool) or not math.isfinite(self.delta) \
                or self.delta <= 0:
            problems.append(f"delta must be a positive number of latent frames (default {DEFAULT_DELTA:g}), got {self.delta!r}")
        if not isinstance(self.motion_noise, (int, float)) or isinstance(self.motion_noise, bool) \
                or not math.isfinite(self.motion_noise) or not 0 <= self.motion_noise < 1:
            problems.append(f"motion_noise must be a flow time in [0, 1) (0 = off), got {self.motion_noise!r}")
        positive_int("audio_window")
        positive_int("short_side")
        if not isinstance(self.first_frame_from_reference, bool):
            problems.append(f"first_frame_from_reference must be True or False, got {self.first_frame_from_reference!r}")
        if problems:
            raise InputError("render settings: " + "; ".join(problems))

    def guidance(self) -> Guidance:
        """The Guidance these settings describe."""
        if self.guidance_anneal not in ANNEAL_MODES:
            raise InputError(f"guidance_anneal must be one of {ANNEAL_MODES}, got {self.guidance_anneal!r}")
        return Guidance(self.text_scale, self.audio_scale, self.guidance_anneal, self.min_scale_fraction)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (for the resume fingerprint and result metadata)."""
        return dataclasses.asdict(self)

    @classmethod
    def for_model(cls, model_path: str | os.PathLike | None, **overrides: Any) -> "RenderSettings":
        """The model's native settings (its file's `render_defaults`), then every override that is not None.

        A model trained at 128 px on 33-frame windows renders badly at the 480p / 121-frame defaults, so
        the trainer records what it was trained for and callers only override what the user set.
        """
        base = dataclasses.asdict(cls())
        if model_path is not None:
            base.update(model_render_defaults(model_path))
        given = {k: v for k, v in overrides.items() if v is not None}
        if given.get("reference_mode", "pseudo_last_frame") != "pseudo_last_frame" \
                and "first_frame_from_reference" not in given:
            # A model whose defaults pin the image as the first frame, asked for another reference mode (the
            # "reference" / "none" ablations), conditions on the image only that mode's way.
            base["first_frame_from_reference"] = False
        base.update(given)
        return cls.from_dict(base)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RenderSettings":
        """Inverse of `to_dict`; unknown keys are an InputError naming the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown render setting(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(data))


# Metadata key of a model file's native render settings (written by the trainer's export).
RENDER_DEFAULTS_KEY = "render_defaults"


def model_render_defaults(model_path: str | os.PathLike) -> dict[str, Any]:
    """The render settings stored in an MMDiT file's metadata ({} when it has none).

    Unknown keys are ignored (a newer trainer may record more), so an old pack still loads new files.
    """
    import json

    from ..weights import read_metadata

    raw = read_metadata(model_path).get(RENDER_DEFAULTS_KEY)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    known = {f.name for f in dataclasses.fields(RenderSettings)}
    return {k: v for k, v in data.items() if k in known}
