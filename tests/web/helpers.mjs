// Shared fixtures for the widget tests.
import assert from "node:assert/strict";

import { segmentGrid, tiling } from "../../web/js/schedule_logic.js";

/** A planner-like schedule: one shot per segment, with the fields the node sends and some extras. */
export function planned({ duration = 12.4, fps = 24, segment_frames = 121, motion_frames = 5 } = {}) {
  const base = {
    version: 1, fps, duration, shots: [], grid: { segment_frames, motion_frames },
    analysis: { persona: "a calm narrator", emotion: ["warm"] }, rationale: "one shot per segment",
    planner: { kind: "offline" }, history: [], meta: { note: "kept as-is" },
  };
  const g = segmentGrid(base);
  base.shots = g.segments.map((seg, i) => ({
    start: seg.t0, end: seg.t1, speaking: i % 2 === 0, expression: `expression ${i}`,
    action: `action ${i}`, camera: "static medium shot", prompt: `prompt ${i}`,
    ...(i === 0 ? { speaker: "A" } : {}),
  }));
  return base;
}

/** Shots tile [0, video end] on the grid: no gaps, no overlaps, each at least one segment. */
export function assertTiles(schedule) {
  const g = segmentGrid(schedule);
  const t = tiling(schedule, g);
  assert.ok(t, `shots do not tile the grid: ${JSON.stringify(schedule.shots.map((s) => [s.start, s.end]))}`);
  const shots = schedule.shots;
  assert.equal(shots[0].start, 0);
  for (let i = 1; i < shots.length; i++) assert.equal(shots[i].start, shots[i - 1].end, `seam ${i}`);
  for (const s of shots) {
    assert.ok(s.end > s.start);
    assert.ok(g.boundaries.includes(s.start), `start ${s.start} is on the grid`);
  }
  assert.ok(Math.abs(shots[shots.length - 1].end - g.end) <= 0.5 / g.fps + 1e-9);
  assert.ok(Math.abs(g.end - schedule.duration) <= 0.5 / g.fps + 1e-9, "the video's end is the audio's, to half a frame");
  return t;
}
