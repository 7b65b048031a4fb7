"""System 2 in one call: inputs -> Analyzer -> Planner -> Schedule (or the offline fallback planner)."""

from __future__ import annotations

from ..pipeline.segments import frame_count, plan_segments
from ..schedule import Schedule
from .defaults import DEFAULT_FPS, DEFAULT_MOTION_FRAMES, DEFAULT_SEGMENT_FRAMES
from .inputs import PlanInputs
from .llm import LLMClient


def plan_grid(duration: float, fps: float = DEFAULT_FPS, segment_frames: int = DEFAULT_SEGMENT_FRAMES,
              motion_frames: int = DEFAULT_MOTION_FRAMES):
    """The segment grid System 1 will render this audio on (what the shots are planned against)."""
    return plan_segments(frame_count(duration, fps), segment_frames, motion_frames)


def plan_schedule(
    inputs: PlanInputs,
    client: LLMClient | None = None,
    *,
    fps: float = DEFAULT_FPS,
    segment_frames: int = DEFAULT_SEGMENT_FRAMES,
    motion_frames: int = DEFAULT_MOTION_FRAMES,
) -> Schedule:
    """Plan one Shot per segment. `client=None` uses the deterministic offline planner (no network)."""
    segments = plan_grid(inputs.duration, fps, segment_frames, motion_frames)
    grid = {"segment_frames": int(segment_frames), "motion_frames": int(motion_frames)}
    if client is None:
        from .offline import OfflinePlanner

        schedule = OfflinePlanner().plan(inputs, segments, fps, grid)
    else:
        from .analyzer import Analyzer
        from .planner import Planner

        analysis = Analyzer(client).analyze(inputs)
        schedule = Planner(client).plan(analysis, inputs, segments, fps, grid)
    # The result must be a valid schedule file; this also guards against a planner bug.
    return schedule.validate(inputs.duration)
