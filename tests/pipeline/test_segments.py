"""The segment grid: exact frame counts, overlaps of motion_frames, VAE-valid render lengths."""

import pytest

from omnihuman_core.errors import InputError
from omnihuman_core.pipeline.segments import frame_count, plan_segments, valid_frame_count


@pytest.mark.parametrize("n", [1, 2, 5, 100, 120, 121, 122, 237, 238, 1440, 14401])
@pytest.mark.parametrize("seg,motion", [(121, 5), (33, 9), (97, 0), (9, 5)])
def test_grid_covers_every_frame_once(n, seg, motion):
    segments = plan_segments(n, seg, motion)
    covered = []
    for i, s in enumerate(segments):
        assert s.index == i
        assert s.end - s.start <= seg
        assert s.render_frames >= s.end - s.start and (s.render_frames - 1) % 4 == 0
        assert s.render_frames <= seg
        if i:
            assert s.start == segments[i - 1].end - motion and s.motion_frames == motion
        covered.extend(range(s.new_start, s.end))
    assert covered == list(range(n))


def test_time_spans_tile_the_duration():
    fps = 24
    n = frame_count(12.4, fps)
    assert n == 298
    spans = [s.time_span(fps) for s in plan_segments(n)]
    assert spans[0][0] == 0 and spans[-1][1] == pytest.approx(n / fps)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))


def test_valid_frame_count():
    assert [valid_frame_count(n) for n in (0, 1, 2, 5, 6, 121)] == [1, 1, 5, 5, 9, 121]


@pytest.mark.parametrize(
    "args,match",
    [((0,), "at least 1 frame"), ((10, 120), "1 \\+ 4k"), ((10, 121, 4), "motion_frames must be 0 or"),
     ((10, 9, 9), "must be smaller")],
)
def test_bad_settings_say_what_to_fix(args, match):
    with pytest.raises(InputError, match=match):
        plan_segments(*args)
