"""System 1 orchestration: the segment grid, the SegmentChainer (MotionFrames continuation, resume,
Reflection between segments) and generate(), the whole job in one call."""

# Eager on purpose: `generate` is both a submodule and the function exported here; importing it
# eagerly binds the name to the function once, whatever is imported later.
from .chainer import (
    ChainProgress,
    ChainResult,
    SegmentChainer,
    SegmentReport,
    WorkFolder,
    fingerprint_diff,
    segment_seed,
)
from .generate import GenerateResult, Renderer, generate, module_identity
from .segments import Segment, frame_count, plan_segments, valid_frame_count
from .settings import RenderSettings

__all__ = [
    "ChainProgress", "ChainResult", "GenerateResult", "RenderSettings", "Renderer", "Segment",
    "SegmentChainer", "SegmentReport", "WorkFolder", "fingerprint_diff", "frame_count", "generate",
    "module_identity", "plan_segments", "segment_seed", "valid_frame_count",
]
