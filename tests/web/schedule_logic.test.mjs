// The schedule editor's pure logic: grid, snapping, validation by shot and field, edits, round trip.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import * as L from "../../web/js/schedule_logic.js";
import { assertTiles, planned } from "./helpers.mjs";

const messages = (v) => v.errors.map((e) => e.message);

describe("segment grid (mirrors segments.py)", () => {
  test("12.4 s at 24 fps: 298 frames in 3 segments, boundaries at segment ends", () => {
    const g = L.segmentGrid({ duration: 12.4, fps: 24 });
    assert.equal(g.frames, 298);
    assert.deepEqual(g.segments.map((s) => [s.start, s.end, s.newStart, s.renderFrames]),
      [[0, 121, 0, 121], [116, 237, 121, 121], [232, 298, 237, 69]]);
    assert.deepEqual(g.boundaries, [0, 121 / 24, 237 / 24, 298 / 24]);
    assert.equal(g.end, 298 / 24);
  });

  test("covers every frame once, for many lengths and settings (as test_segments.py)", () => {
    for (const n of [1, 2, 5, 100, 120, 121, 122, 237, 238, 1440, 14401]) {
      for (const [seg, motion] of [[121, 5], [33, 9], [97, 0], [9, 5]]) {
        const segments = L.planSegments(n, seg, motion);
        const covered = [];
        segments.forEach((s, i) => {
          assert.equal(s.index, i);
          assert.ok(s.end - s.start <= seg);
          assert.ok(s.renderFrames >= s.end - s.start && (s.renderFrames - 1) % 4 === 0 && s.renderFrames <= seg);
          if (i) assert.ok(s.start === segments[i - 1].end - motion && s.motionFrames === motion);
          for (let f = s.newStart; f < s.end; f++) covered.push(f);
        });
        assert.equal(covered.length, n);
        covered.forEach((f, i) => assert.equal(f, i));
      }
    }
  });

  test("frame count rounds like Python (halves to even)", () => {
    assert.equal(L.frameCount(12.4, 24), 298);
    assert.equal(L.frameCount(0.5, 1), 0); // Python: round(0.5) == 0
    assert.equal(L.frameCount(1.5, 1), 2);
    assert.equal(L.frameCount(2.5, 1), 2);
    assert.equal(L.frameCount(1 / 16 * 5, 16), 5);
    assert.equal(L.pyRound(-1.5), -2);
  });

  test("valid frame counts", () => {
    assert.deepEqual([0, 1, 2, 5, 6, 121].map((n) => L.validFrameCount(n)), [1, 1, 5, 5, 9, 121]);
  });

  test("bad settings say what to fix (same messages as Python)", () => {
    assert.throws(() => L.planSegments(0), /the video needs at least 1 frame, got 0; is the audio empty\?/);
    assert.throws(() => L.planSegments(10, 120), /segment_frames must be 1 \+ 4k \(e\.g\. 121, 97, 33\), got 120/);
    assert.throws(() => L.planSegments(10, 121, 4), /motion_frames must be 0 or 1 \+ 4k \(e\.g\. 5 or 9\), got 4/);
    assert.throws(() => L.planSegments(10, 9, 9), /motion_frames \(9\) must be smaller than segment_frames \(9\)/);
  });

  test("grid settings come from `grid`, else top-level keys, else the defaults", () => {
    assert.deepEqual(L.gridSettings({ fps: 16, duration: 3, grid: { segment_frames: 33, motion_frames: 9 } }),
      { fps: 16, duration: 3, segment_frames: 33, motion_frames: 9 });
    assert.deepEqual(L.gridSettings({ fps: 25, duration: 3, segment_frames: 97, motion_frames: 0 }),
      { fps: 25, duration: 3, segment_frames: 97, motion_frames: 0 });
    assert.deepEqual(L.gridSettings({ duration: 3 }), { fps: 24, duration: 3, segment_frames: 121, motion_frames: 5 });
  });
});

describe("snapping", () => {
  const B = L.segmentGrid({ duration: 12.4, fps: 24 }).boundaries; // 0, 5.0417, 9.875, 12.4167
  test("a time snaps to the nearest segment boundary", () => {
    assert.equal(L.snapTime(4.9, B), 121 / 24);
    assert.equal(L.snapTime(2.4, B), 0);
    assert.equal(L.snapTime(2.6, B), 121 / 24);
    assert.equal(L.snapTime(100, B), 298 / 24);
    assert.equal(L.snapTime(-3, B), 0);
    assert.equal(L.snapIndex(9.8, B), 2);
  });
  test("exact ties go to the earlier boundary", () => {
    assert.equal(L.snapIndex(1, [0, 2, 4]), 0);
    assert.equal(L.snapIndex(3, [0, 2, 4]), 1);
  });
});

describe("validation: errors by shot and field, as schedule.py words them", () => {
  test("a planner's schedule is valid and tiles the grid", () => {
    const s = planned();
    const v = L.validateSchedule(s);
    assert.deepEqual(messages(v), []);
    assert.deepEqual(v.warnings, []);
    assertTiles(s);
  });

  test("end past the audio names the shot and the field", () => {
    const s = planned({ duration: 4.2 });
    s.shots[0].end = 7.5;
    const v = L.validateSchedule(s);
    assert.deepEqual(messages(v), ["shots[0].end: 7.5 s is past the schedule's duration (4.2 s)"]);
    assert.equal(v.errors[0].shot, 0);
    assert.equal(v.errors[0].field, "end");
  });

  test("overlaps, order, empty shots, start past the end", () => {
    const s = planned();
    s.shots[1].start = 4;
    assert.deepEqual(messages(L.validateSchedule(s)), ["shots[1].start: 4 s overlaps shots[0], which ends at 5.042 s"]);
    const t = planned();
    t.shots = [t.shots[1], t.shots[0], t.shots[2]];
    assert.match(messages(L.validateSchedule(t))[0], /^shots\[1\]\.start: 0 s is before shots\[0\]'s start; list the shots in time order$/);
    const u = planned();
    u.shots[2].end = u.shots[2].start;
    assert.deepEqual(messages(L.validateSchedule(u)), ["shots[2].end: 9.875 s is not after its start 9.875 s"]);
    const w = planned();
    w.shots[2].start = 13;
    w.shots[2].end = 13.5;
    assert.deepEqual(messages(L.validateSchedule(w)),
      ["shots[2].start: 13 s is at or past the end (the schedule's duration (12.4 s))"]);
    const x = planned();
    x.shots = [];
    assert.deepEqual(messages(L.validateSchedule(x)), ["schedule.shots: the schedule has no shots; plan at least one"]);
  });

  test("wrong types and limits, field by field", () => {
    const s = planned();
    s.shots[1].speaking = "yes";
    s.shots[2].start = "9.8";
    s.shots[0].camera = "x".repeat(201);
    s.shots[2].speaker = 3;
    s.shots[1].start = -1;
    const v = L.validateSchedule(s);
    assert.deepEqual(messages(v), [
      "schedule.shots[0].camera: 201 characters is longer than the limit of 200",
      "schedule.shots[1].start: -1 is negative",
      "schedule.shots[1].speaking: expected true or false, got a string",
      "schedule.shots[2].start: expected a number, got a string",
      "schedule.shots[2].speaker: expected a string, got a number",
    ]);
    assert.deepEqual(v.errors.map((e) => [e.shot, e.field]),
      [[0, "camera"], [1, "start"], [1, "speaking"], [2, "start"], [2, "speaker"]]);
  });

  test("missing and unknown fields (unknown keys are usually typos)", () => {
    const s = planned();
    delete s.shots[0].end;
    s.shots[1].promt = "typo";
    s.extra = 1;
    const v = L.validateSchedule(s);
    assert.deepEqual(messages(v), [
      "schedule: unknown field 'extra' (known: analysis, duration, fps, grid, history, meta, planner, rationale, shots, version)",
      "schedule.shots[0].end: missing",
      "schedule.shots[1]: unknown field 'promt' (known: action, camera, end, expression, prompt, rationale, speaker, speaking, start)",
    ]);
    assert.deepEqual(v.errors.map((e) => [e.shot, e.field]), [[null, null], [0, "end"], [1, null]]);
  });

  test("version, top-level types, grid settings", () => {
    assert.deepEqual(messages(L.validateSchedule({ ...planned(), version: 2 })),
      ["schedule version 2 is not supported; this build reads version 1 (re-plan with `python -m omnihuman_core plan`, or update the pack)"]);
    const noVersion = planned();
    delete noVersion.version;
    assert.deepEqual(messages(L.validateSchedule(noVersion)), ["schedule: 'version' is missing (this build reads version 1)"]);
    assert.deepEqual(messages(L.validateSchedule([])), ["a schedule must be a JSON object, got a list"]);
    const v = L.validateSchedule({ ...planned(), duration: "12", fps: 0 });
    assert.deepEqual(messages(v), ["schedule.duration: expected a number, got a string", "schedule.fps: must be positive"]);
    assert.deepEqual(v.errors.map((e) => e.field), ["duration", "fps"]);
    const g = planned();
    g.grid.segment_frames = 120;
    assert.deepEqual(messages(L.validateSchedule(g)), ["segment_frames must be 1 + 4k (e.g. 121, 97, 33), got 120"]);
    const g2 = planned();
    g2.grid.motion_frames = 2.5;
    assert.deepEqual(messages(L.validateSchedule(g2)), ["grid.motion_frames: expected a whole number, got a number"]);
  });

  test("history entries are checked like Reflection writes them", () => {
    const s = planned();
    s.history = [{ after_segment: 0, source: "magic", changes: [{ shot: 1, before: { prompt: "a" }, after: {} }] }];
    assert.deepEqual(messages(L.validateSchedule(s)), [
      "schedule.history[0].source: 'magic' is not one of reflection, sync",
      "history[0].changes[0].before.expression: missing",
      "history[0].changes[0].before.action: missing",
      "history[0].changes[0].before.camera: missing",
      "history[0].changes[0].after.expression: missing",
      "history[0].changes[0].after.action: missing",
      "history[0].changes[0].after.camera: missing",
      "history[0].changes[0].after.prompt: missing",
    ]);
  });

  test("gaps and off-grid times are warnings: the node fills and snaps them", () => {
    const s = planned();
    s.shots[1].start = 6; // gap 5.04 - 6
    const v = L.validateSchedule(s);
    assert.deepEqual(messages(v), []);
    const w = v.warnings.map((x) => x.message);
    assert.ok(w.includes("gap 5.042-6 s before shots[1]: filled with an idle shot"), w.join("\n"));
    assert.ok(w.includes("shots[1].start: 6 s is not on the segment grid; it snaps to 5.042 s"));
    assert.ok(v.warnings.every((x) => x.severity === "warning"));
    assert.equal(v.warnings.find((x) => x.message.startsWith("gap")).shot, 1);
  });

  test("the last shot may end at the audio's end or the video's (half a frame apart)", () => {
    const s = planned();
    s.shots[2].end = 12.4;
    const v = L.validateSchedule(s);
    assert.deepEqual(messages(v), []);
    assert.deepEqual(v.warnings, []);
    assert.ok(L.tiling(s, v.grid));
  });

  test("broken JSON is reported with line and column", () => {
    const r = L.parseScheduleText('{\n  "version": 1,\n  "fps": 24,,\n}');
    assert.equal(r.data, null);
    assert.match(r.error, /^schedule is not valid JSON \(line 3, column \d+: .+\)$/);
  });

  test("numbers in messages look like Python's", () => {
    assert.equal(L.formatSeconds(7.5), "7.5");
    assert.equal(L.formatSeconds(121 / 24), "5.042");
    assert.equal(L.formatSeconds(0.0625), "0.062"); // round(0.0625, 3) == 0.062 in Python
    assert.equal(L.formatSeconds(0.1875), "0.188");
    assert.equal(L.formatSeconds(12), "12");
    assert.equal(L.formatSeconds(1234567.25), "1.23457e+06");
    assert.equal(L.formatG(0.00001), "1e-05");
  });
});

describe("edits keep the shots tiling [0, duration] on the grid", () => {
  const settings = [
    { duration: 12.4, fps: 24 },
    { duration: 30, fps: 25, segment_frames: 97, motion_frames: 9 },
    { duration: 61.3, fps: 16, segment_frames: 81, motion_frames: 5 },
    { duration: 3, fps: 24 },
  ];

  test("split, merge, add, delete on every shot of several grids", () => {
    for (const cfg of settings) {
      const base = planned(cfg);
      const n = base.shots.length;
      // merge everything into one shot, then split back
      let s = base;
      while (s.shots.length > 1) {
        const r = L.mergeShots(s, 0);
        assert.equal(r.error, null);
        s = r.schedule;
        assertTiles(s);
      }
      assert.equal(s.shots[0].prompt, "prompt 0", "merged shot keeps the first shot's fields");
      for (let k = 1; k < n; k++) {
        const r = L.splitShot(s, s.shots.length - 1);
        if (r.error) break;
        s = r.schedule;
        assertTiles(s);
      }
      for (let i = 0; i < base.shots.length; i++) {
        const d = L.deleteShot(base, i);
        if (n === 1) {
          assert.match(d.error, /only shot cannot be deleted/);
          continue;
        }
        assert.equal(d.error, null);
        assert.equal(d.schedule.shots.length, n - 1);
        assertTiles(d.schedule);
        if (i < n - 1) assertTiles(L.mergeShots(base, i).schedule);
      }
      // one-segment shots cannot be split or take a new shot
      assert.match(L.splitShot(base, 0).error, /spans one segment/);
      assert.match(L.addShot(base, 0).error, /no room for a new shot/);
    }
  });

  test("split cuts at the boundary nearest the middle, or where asked; both halves keep the fields", () => {
    const base = planned({ duration: 30, fps: 24 }); // boundaries every ~4.8 s after the first
    let s = base;
    for (let i = 0; i < 3; i++) s = L.mergeShots(s, 0).schedule;
    const B = L.segmentGrid(s).boundaries;
    const r = L.splitShot(s, 0);
    assert.equal(r.schedule.shots[0].end, B[2]);
    assert.equal(r.schedule.shots[1].prompt, "prompt 0");
    assert.equal(r.schedule.shots[1].speaker, "A");
    const at = L.splitShot(s, 0, 5.2);
    assert.equal(at.schedule.shots[0].end, B[1]);
    assertTiles(at.schedule);
  });

  test("add: a blank shot takes the second half of the selected shot; first shot of an empty schedule", () => {
    let s = L.mergeShots(planned(), 0).schedule;
    const r = L.addShot(s, 0);
    assert.equal(r.error, null);
    assert.equal(r.schedule.shots.length, 3);
    assert.deepEqual(
      { ...r.schedule.shots[1], start: 0, end: 0 },
      { start: 0, end: 0, speaking: false, expression: "", action: "", camera: "", prompt: "" });
    assertTiles(r.schedule);
    s = { ...planned(), shots: [] };
    const e = L.addShot(s);
    assert.equal(e.schedule.shots.length, 1);
    assertTiles(e.schedule);
  });

  test("delete gives the time to the previous shot (the next one for the first)", () => {
    const s = planned({ duration: 30 });
    const d = L.deleteShot(s, 2);
    assert.equal(d.schedule.shots[1].end, s.shots[2].end);
    assert.equal(d.schedule.shots[1].prompt, "prompt 1");
    const f = L.deleteShot(s, 0);
    assert.equal(f.schedule.shots[0].start, 0);
    assert.equal(f.schedule.shots[0].prompt, "prompt 1");
  });

  test("moving a boundary snaps it and moves the neighbour; shots keep at least one segment", () => {
    const s = L.mergeShots(planned({ duration: 30 }), 0).schedule; // shot 0 spans two segments
    const B = L.segmentGrid(s).boundaries;
    const r = L.setShotTime(s, 0, "end", "5.3");
    assert.equal(r.error, null);
    assert.equal(r.schedule.shots[0].end, B[1]);
    assert.equal(r.schedule.shots[1].start, B[1]);
    assertTiles(r.schedule);
    const far = L.setShotTime(s, 0, "end", 1000);
    assert.equal(far.schedule.shots[0].end, B[2], "shot 1 keeps its one segment");
    assert.match(far.note, /kept between/);
    assertTiles(far.schedule);
    const start = L.setShotTime(s, 1, "start", 0);
    assert.equal(start.schedule.shots[1].start, B[1]);
    assertTiles(start.schedule);
    const first = L.setShotTime(s, 0, "start", 3);
    assert.equal(first.schedule.shots[0].start, 0);
    assert.match(first.note, /first shot starts at 0 s/);
    const last = s.shots.length - 1;
    const lastEnd = L.setShotTime(s, last, "end", 3);
    assert.equal(lastEnd.schedule.shots[last].end, s.shots[last].end);
    assert.match(L.setShotTime(s, 0, "end", "abc").error, /"abc" is not a number of seconds/);
    assert.match(L.setShotTime(s, 0, "end", "").error, /is not a number of seconds/);
  });

  test("a random walk of edits never breaks the tiling", () => {
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    for (const cfg of settings) {
      let s = planned(cfg);
      for (let step = 0; step < 200; step++) {
        const i = Math.floor(rand() * s.shots.length);
        const g = L.segmentGrid(s);
        const ops = [
          () => L.splitShot(s, i),
          () => L.mergeShots(s, i),
          () => L.deleteShot(s, i),
          () => L.addShot(s, i),
          () => L.setShotTime(s, i, rand() < 0.5 ? "start" : "end", rand() * g.end * 1.2 - 1),
        ];
        const r = ops[Math.floor(rand() * ops.length)]();
        if (r.error) continue;
        s = r.schedule;
        assertTiles(s);
        assert.deepEqual(L.validateSchedule(s).errors, []);
      }
    }
  });

  test("fill gaps: snaps to the grid, fills with idle shots, merges short shots (Schedule.normalize)", () => {
    const s = planned({ duration: 30 });
    s.shots = [
      { start: 0, end: 3, speaking: true, expression: "", action: "waves", camera: "", prompt: "" },
      { start: 11, end: 12, speaking: false, expression: "", action: "nods", camera: "", prompt: "", extra_note: "kept" },
      { start: 12, end: 29.5, speaking: true, expression: "", action: "talks", camera: "", prompt: "" },
    ];
    const v = L.validateSchedule({ ...s, shots: s.shots.map(({ extra_note, ...x }) => x) });
    assert.deepEqual(messages(v), []);
    const r = L.fillGaps({ ...s, shots: s.shots.map(({ extra_note, ...x }) => x) });
    assert.equal(r.error, null);
    assertTiles(r.schedule);
    assert.ok(r.notes.some((n) => n.startsWith("gap 3-11 s before shots[1]: filled with an idle shot")), r.notes.join("\n"));
    assert.ok(r.schedule.shots.some((x) => x.action.startsWith("listens quietly")), "idle shot");
    assert.deepEqual(r.schedule.grid, { segment_frames: 121, motion_frames: 5 });
    assert.deepEqual(r.schedule.analysis, s.analysis);
    // unknown shot fields survive normalize (the JS side never drops data)
    const n = L.normalizeSchedule(s);
    assert.ok(n.schedule.shots.every((x) => x.action !== "nods" || x.extra_note === "kept"));
    // invalid schedules are not normalised
    assert.match(L.fillGaps({ ...s, duration: -1 }).error, /^fix the errors first: schedule\.duration: -1 is negative$/);
  });

  test("a new schedule is one blank shot over the whole video", () => {
    const s = L.newSchedule({ duration: 12.4 });
    assertTiles(s);
    assert.deepEqual(L.validateSchedule(s).errors, []);
    assert.equal(s.shots.length, 1);
  });

  test("edits on a shot that is not an object fail with a message, not an exception", () => {
    const s = planned();
    s.shots[1] = "not a shot";
    assert.match(L.setShotField(s, 1, "prompt", "x").error, /shots\[1\] is not an object/);
    assert.match(L.setShotTime(s, 1, "end", 3).error, /shots\[1\] is not an object/);
    assert.match(L.splitShot(s, 0).error, /do not tile/);
    assert.equal(L.setShotTime(s, 0, "end", 3).error, null);
  });

  test("text and speaking edits touch one field of one shot", () => {
    const s = planned();
    const r = L.setShotField(s, 1, "prompt", "she lifts the letter");
    assert.equal(r.schedule.shots[1].prompt, "she lifts the letter");
    assert.deepEqual({ ...r.schedule, shots: null }, { ...s, shots: null });
    assert.deepEqual(r.schedule.shots[0], s.shots[0]);
    assert.equal(L.setShotField(s, 0, "speaker", "").schedule.shots[0].speaker, undefined);
    assert.match(L.setShotField(s, 9, "prompt", "x").error, /there is no shot 9/);
  });
});

describe("JSON round trip", () => {
  test("unknown and optional fields survive parse -> edit -> serialize, in their order", () => {
    const s = planned();
    s.history = [{ after_segment: 0, source: "reflection", observation: "ok", changes: [], model: "m" }];
    s.shots[1].rationale = "why";
    s.shots[1].custom_tool_field = { nested: [1, 2] };
    s.zzz_unknown = "still here";
    const text = L.serializeSchedule(s);
    const back = L.parseScheduleText(text).data;
    assert.deepEqual(back, s);
    assert.equal(L.serializeSchedule(back), text);
    const edited = L.setShotField(back, 2, "action", "bows").schedule;
    const again = L.parseScheduleText(L.serializeSchedule(edited)).data;
    assert.deepEqual(Object.keys(again), Object.keys(s));
    assert.deepEqual(again.shots[1], s.shots[1]);
    assert.equal(again.zzz_unknown, "still here");
    assert.deepEqual(again.analysis, s.analysis);
    assert.deepEqual(again.history, s.history);
    assert.equal(again.shots[0].speaker, "A");
    for (const op of [(x) => L.splitShot(L.mergeShots(x, 0).schedule, 0), (x) => L.deleteShot(x, 1), (x) => L.setShotTime(x, 0, "end", 5)]) {
      const out = op(back).schedule;
      assert.equal(out.zzz_unknown, "still here");
      assert.deepEqual(out.history, s.history);
      assert.deepEqual(out.analysis, s.analysis);
    }
  });

  test("shot times keep full precision (grid times are frames / fps)", () => {
    const s = planned();
    const back = L.parseScheduleText(L.serializeSchedule(s)).data;
    assert.equal(back.shots[1].start, 121 / 24);
  });
});

describe("timeline geometry", () => {
  test("percent positions against the duration, segment ticks, audio end", () => {
    const s = planned({ duration: 12.4 });
    const g = L.segmentGrid(s);
    const t = L.timelineGeometry(s, g);
    assert.equal(t.scale, g.end);
    assert.equal(t.shots.length, 3);
    assert.equal(t.shots[0].left, 0);
    assert.ok(Math.abs(t.shots[0].width - (121 / 298) * 100) < 1e-9);
    assert.ok(Math.abs(t.shots[2].left + t.shots[2].width - 100) < 1e-9);
    assert.deepEqual(t.ticks.map((x) => x.index), [0, 1, 2, 3]);
    assert.ok(Math.abs(t.audioEnd - (12.4 / g.end) * 100) < 1e-9);
    assert.equal(t.shots[0].speaking, true);
    assert.equal(t.shots[0].label, "action 0");
  });

  test("a shot past the audio widens the scale so nothing is drawn off the bar", () => {
    const s = planned({ duration: 4.2 });
    s.shots[0].end = 7.5;
    const t = L.timelineGeometry(s, null);
    assert.equal(t.scale, 7.5);
    assert.equal(t.shots[0].width, 100);
    assert.ok(t.audioEnd < 100);
  });

  test("no duration, no geometry (and no exception)", () => {
    assert.deepEqual(L.timelineGeometry({}, null), { scale: 0, shots: [], ticks: [], audioEnd: null });
    assert.deepEqual(L.timelineGeometry(null, null).shots, []);
    assert.equal(L.timelineGeometry({ duration: 5, shots: [null, { start: "a" }] }).shots.length, 2);
  });
});

describe("editor state (what the widget shows and sends)", () => {
  const plannerText = L.serializeSchedule(planned());

  test("empty: no schedule, nothing sent, no error", () => {
    const st = L.createEditorState();
    const v = L.editorView(st);
    assert.equal(v.mode, "empty");
    assert.equal(st.value, "");
    assert.deepEqual(v.errors, []);
    assert.equal(v.canUsePlanner, false);
    assert.equal(L.editorApply(st, { type: "split", index: 0 }).error,
      "there is no schedule to edit yet: run the workflow, or paste one in the JSON view");
    for (const v0 of [undefined, null, "", "   "]) assert.equal(L.createEditorState(v0).value, "");
  });

  test("after a run the planner's schedule shows; the value stays empty until the artist edits", () => {
    let st = L.editorExecuted(L.createEditorState(), { schedule: [plannerText], planner_schedule: [plannerText] });
    assert.equal(st.value, "");
    let v = L.editorView(st);
    assert.equal(v.mode, "planner");
    assert.equal(v.rows.length, 3);
    const r = L.editorApply(st, { type: "field", index: 1, field: "prompt", value: "new words" });
    assert.equal(r.error, null);
    st = r.state;
    v = L.editorView(st);
    assert.equal(v.mode, "edited");
    assert.equal(JSON.parse(st.value).shots[1].prompt, "new words");
    assert.equal(v.plannerDiffers, true);
    // a later run keeps the edits
    st = L.editorExecuted(st, { schedule: [st.value], planner_schedule: [plannerText] });
    assert.equal(JSON.parse(st.value).shots[1].prompt, "new words");
    // use the planner's version, then restore the edits
    const back = L.editorUsePlanner(st);
    assert.equal(back.value, "");
    assert.equal(L.editorView(back).mode, "planner");
    assert.equal(L.editorView(back).canUndo, true);
    assert.equal(L.editorUndo(back).value, st.value);
  });

  test("ui values may be objects or strings, and missing keys keep what was known", () => {
    const obj = planned();
    let st = L.editorExecuted(L.createEditorState(), { planner_schedule: [obj] });
    assert.deepEqual(JSON.parse(st.planner), obj);
    st = L.editorExecuted(st, { text: ["unrelated"] });
    assert.deepEqual(JSON.parse(st.planner), obj);
    st = L.editorExecuted(L.createEditorState(), { schedule: [plannerText] });
    assert.equal(L.editorView(st).mode, "planner");
    assert.equal(L.editorExecuted(L.createEditorState(), null).planner, null);
    assert.equal(L.editorExecuted(L.createEditorState(), { schedule: [] }).output, null);
  });

  test("raw text is sent as typed; broken JSON shows an error instead of the table", () => {
    let st = L.editorSetText(L.createEditorState(), '{"version": 1,');
    const v = L.editorView(st);
    assert.equal(v.mode, "edited");
    assert.match(v.parseError, /^schedule is not valid JSON/);
    assert.equal(v.rows.length, 0);
    assert.equal(st.value, '{"version": 1,');
    st = L.editorSetText(st, "");
    assert.equal(L.editorView(st).mode, "empty");
  });

  test("the view marks fields with their problems and says which actions work", () => {
    const s = planned();
    s.shots[1].speaking = "no";
    const v = L.editorView(L.editorSetValue(L.createEditorState(), L.serializeSchedule(s)), 1);
    assert.equal(v.rows[1].fieldIssues.speaking.message, "schedule.shots[1].speaking: expected true or false, got a string");
    assert.equal(v.actions.split.ok, false);
    const ok = L.editorView(L.editorSetValue(L.createEditorState(), plannerText), 0);
    assert.equal(ok.actions.merge.ok, true);
    assert.equal(ok.actions.delete.ok, true);
    assert.equal(ok.actions.split.ok, false);
    assert.match(ok.actions.split.why, /one segment/);
    assert.equal(ok.actions.fill.ok, false);
    assert.equal(L.editorView(L.editorSetValue(L.createEditorState(), plannerText), 2).actions.merge.ok, false);
    assert.equal(ok.tiled, true);
  });

  test("setValue accepts what a workflow may hold", () => {
    assert.equal(L.editorSetValue(L.createEditorState(), planned()).value, L.serializeSchedule(planned()));
    assert.equal(L.editorSetValue(L.createEditorState(), plannerText).value, plannerText);
    assert.equal(L.editorSetValue(L.createEditorState(), undefined).value, "");
  });
});
