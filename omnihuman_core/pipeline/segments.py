"""The segment grid: how a video of any length is cut into generation passes.

System 1 renders `segment_frames` frames per pass; every pass after the first starts with the last
`motion_frames` frames of the previous one (MotionFrames), so consecutive segments overlap by that
many frames. The schedule (System 2) is planned on this grid: one shot per segment, covering the
frames that segment adds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import InputError

TEMPORAL_FACTOR = 4  # frames per latent frame after the first (causal 4x VAE)


def valid_frame_count(n: int, temporal_factor: int = TEMPORAL_FACTOR) -> int:
    """Smallest frame count >= n of the form 1 + factor * k that a causal VAE can encode."""
    if n <= 1:
        return 1
    return 1 + temporal_factor * math.ceil((n - 1) / temporal_factor)


@dataclass(frozen=True)
class Segment:
    """One generation pass. Frame indices are in output (video) frames, end exclusive."""

    index: int
    start: int  # first frame this pass renders (includes the motion frames it starts from)
    end: int  # one past the last output frame this pass contributes
    render_frames: int  # frames the model renders (1 + 4k, >= end - start; the excess is trimmed)
    motion_frames: int  # leading frames taken over from the previous segment (0 for the first)

    @property
    def new_start(self) -> int:
        """First frame that this segment adds to the output."""
        return self.start + self.motion_frames

    def time_span(self, fps: float) -> tuple[float, float]:
        """Seconds of the video this segment adds: [new_start, end) / fps."""
        return self.new_start / fps, self.end / fps


def frame_count(duration: float, fps: float) -> int:
    """Frames of the output video: exactly round(duration * fps)."""
    return int(round(duration * fps))


def plan_segments(
    n_frames: int,
    segment_frames: int = 121,
    motion_frames: int = 5,
    temporal_factor: int = TEMPORAL_FACTOR,
) -> list[Segment]:
    """Cut `n_frames` output frames into overlapping segments.

    Every segment renders `segment_frames` frames except the last, which renders only what is
    left (rounded up to a frame count the VAE accepts, then trimmed).
    """
    if n_frames < 1:
        raise InputError(f"the video needs at least 1 frame, got {n_frames}; is the audio empty?")
    if segment_frames < 1 or (segment_frames - 1) % temporal_factor:
        raise InputError(
            f"segment_frames must be 1 + {temporal_factor}k (e.g. 121, 97, 33), got {segment_frames}"
        )
    if motion_frames < 0 or (motion_frames and (motion_frames - 1) % temporal_factor):
        raise InputError(
            f"motion_frames must be 0 or 1 + {temporal_factor}k (e.g. 5 or 9), got {motion_frames}"
        )
    if motion_frames >= segment_frames:
        raise InputError(
            f"motion_frames ({motion_frames}) must be smaller than segment_frames ({segment_frames})"
        )

    segments = [
        Segment(0, 0, min(n_frames, segment_frames),
                valid_frame_count(min(n_frames, segment_frames), temporal_factor), 0)
    ]
    while segments[-1].end < n_frames:
        start = segments[-1].end - motion_frames
        end = min(n_frames, start + segment_frames)
        segments.append(
            Segment(len(segments), start, end,
                    valid_frame_count(end - start, temporal_factor), motion_frames)
        )
    return segments
