// The schedule editor's logic: parse and validate a schedule, the segment grid, snapping, the
// shot edits (add / delete / split / merge / fill gaps), timeline geometry and the editor's state.
//
// Pure ES module: no DOM, no ComfyUI. It mirrors two Python modules and must stay in step with them:
//   omnihuman_core/pipeline/segments.py  (frame_count, plan_segments, Segment.time_span)
//   omnihuman_core/schedule.py           (field table, validation messages, normalize)
// so the widget shows the same errors, by shot and field, that the node raises when it runs.

export const SCHEDULE_VERSION = 1;
export const TEMPORAL_FACTOR = 4; // frames per latent frame after the first (causal 4x VAE)
export const DEFAULT_GRID = Object.freeze({ fps: 24, segment_frames: 121, motion_frames: 5 });
// A shot may end this far past the audio (rounded times in a hand-edited file); it is clipped.
export const TIME_TOLERANCE_S = 0.5;
export const MAX_SHOTS = 5000;
export const MAX_HISTORY = 10000;
export const CONTENT_FIELDS = Object.freeze(["expression", "action", "camera", "prompt"]);
const EPS = 1e-6;

// ------------------------------------------------------------------------------ Python numbers

/** Python's round(x) for floats: halves go to the even neighbour. */
export function pyRound(x) {
  const f = Math.floor(x);
  const diff = x - f;
  if (diff === 0.5) return f % 2 === 0 ? f : f + 1;
  return Math.round(x);
}

/** Python's round(x, 3), halves to even (k/16 s times are exact ties). */
function round3(x) {
  const y = x * 1000;
  return pyRound(y) / 1000;
}

/** Python's f"{x:g}" (6 significant digits, trailing zeros dropped). */
export function formatG(x) {
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return "0";
  const p = Number(x.toPrecision(6));
  const exp = Math.floor(Math.log10(Math.abs(p)));
  if (exp < -4 || exp >= 6) {
    let [mant, e] = p.toExponential(5).split("e");
    if (mant.includes(".")) mant = mant.replace(/0+$/, "").replace(/\.$/, "");
    const sign = e[0] === "-" ? "-" : "+";
    const digits = e.replace(/^[+-]/, "").padStart(2, "0");
    return `${mant}e${sign}${digits}`;
  }
  let s = p.toPrecision(6);
  if (s.includes(".")) s = s.replace(/0+$/, "").replace(/\.$/, "");
  return s;
}

/** Seconds for messages, as schedule.py's _num: 7.5, 4.2, 12.43 (no float noise). */
export function formatSeconds(x) {
  return formatG(round3(Number(x)));
}

/** Python's repr() of a short string. */
function pyRepr(s) {
  const q = s.includes("'") && !s.includes('"') ? '"' : "'";
  const body = s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/\t/g, "\\t")
    .replace(q === "'" ? /'/g : /"/g, q === "'" ? "\\'" : '\\"');
  return q + body + q;
}

/** Python's str() of a parsed JSON value (close enough for messages). */
function pyStr(v) {
  if (v === null || v === undefined) return "None";
  if (v === true) return "True";
  if (v === false) return "False";
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

function typeName(v) {
  if (v === null || v === undefined) return "null";
  if (typeof v === "boolean") return "true/false";
  if (typeof v === "number") return "a number";
  if (typeof v === "string") return "a string";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "an object";
  return typeof v;
}

function isPlainObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

// ----------------------------------------------------------------------------- the field table
// The same table as schedule.py's SHOT_FIELDS / SCHEDULE_FIELDS (names, kinds, limits, defaults).

function field(name, kind, opts = {}) {
  return Object.freeze({
    name, kind, required: true, default: null, maxLength: null, minimum: null, nullable: false,
    items: null, enumValues: null, ...opts,
  });
}

export const SHOT_FIELDS = Object.freeze([
  field("start", "number", { minimum: 0 }),
  field("end", "number", { minimum: 0 }),
  field("speaking", "boolean", { required: false, default: false }),
  field("expression", "string", { required: false, default: "", maxLength: 300 }),
  field("action", "string", { required: false, default: "", maxLength: 500 }),
  field("camera", "string", { required: false, default: "", maxLength: 200 }),
  field("prompt", "string", { required: false, default: "", maxLength: 1000 }),
  field("speaker", "string", { required: false, default: null, nullable: true, maxLength: 100 }),
  field("rationale", "string", { required: false, default: "", maxLength: 300 }),
]);
export const SHOT_FIELD = Object.freeze(Object.fromEntries(SHOT_FIELDS.map((f) => [f.name, f])));

const CONTENT_OBJECT = Object.freeze(CONTENT_FIELDS.map((k) => ({ ...SHOT_FIELD[k], required: true })));
const SHOT_REVISION_FIELDS = Object.freeze([
  field("shot", "integer", { minimum: 0 }),
  field("before", "object"),
  field("after", "object"),
  field("rationale", "string", { required: false, default: "", maxLength: 300 }),
]);
const REVISION_FIELDS = Object.freeze([
  field("after_segment", "integer", { minimum: 0 }),
  field("source", "string", { required: false, default: "reflection", enumValues: ["reflection", "sync"] }),
  field("observation", "string", { required: false, default: "", maxLength: 2000 }),
  field("changes", "array", { required: false, default: [], items: SHOT_REVISION_FIELDS, maxLength: MAX_SHOTS }),
  field("model", "string", { required: false, default: "", maxLength: 200 }),
  field("error", "string", { required: false, nullable: true, maxLength: 2000 }),
]);
export const GRID_FIELDS = Object.freeze([
  field("segment_frames", "integer", { minimum: 1 }),
  field("motion_frames", "integer", { minimum: 0 }),
]);
export const SCHEDULE_FIELDS = Object.freeze([
  field("version", "integer"),
  field("fps", "number", { minimum: 0 }),
  field("duration", "number", { minimum: 0 }),
  field("shots", "array", { items: SHOT_FIELDS, maxLength: MAX_SHOTS }),
  field("grid", "object", { required: false, nullable: true }),
  field("analysis", "object", { required: false, nullable: true }),
  field("rationale", "string", { required: false, default: "", maxLength: 20000 }),
  field("planner", "object", { required: false, default: {} }),
  field("history", "array", { required: false, default: [], items: REVISION_FIELDS, maxLength: MAX_HISTORY }),
  field("meta", "object", { required: false, default: {} }),
]);

function checkValue(value, f, where, errors) {
  if (value === null && f.nullable) return null;
  const want = {
    string: "a string", number: "a number", integer: "a whole number", boolean: "true or false",
    array: "a list", object: "an object",
  }[f.kind];
  const bad = `${where}: expected ${want}, got ${typeName(value)}`;
  if (f.kind === "string") {
    if (typeof value !== "string") return void errors.push(bad);
    const length = [...value].length; // code points, as Python's len()
    if (f.maxLength !== null && length > f.maxLength) {
      return void errors.push(`${where}: ${length} characters is longer than the limit of ${f.maxLength}`);
    }
    if (f.enumValues && !f.enumValues.includes(value)) {
      return void errors.push(`${where}: ${pyRepr([...value].slice(0, 40).join(""))} is not one of ${f.enumValues.join(", ")}`);
    }
    return value;
  }
  if (f.kind === "number" || f.kind === "integer") {
    if (typeof value !== "number") return void errors.push(bad);
    if (!Number.isFinite(value)) return void errors.push(`${where}: ${value} is not a finite number`);
    if (f.kind === "integer" && !Number.isInteger(value)) return void errors.push(bad);
    if (f.minimum !== null && value < f.minimum) {
      const what = f.minimum === 0 ? "negative" : `below ${formatG(f.minimum)}`;
      return void errors.push(`${where}: ${formatSeconds(value)} is ${what}`);
    }
    return value;
  }
  if (f.kind === "boolean") {
    if (typeof value !== "boolean") return void errors.push(bad);
    return value;
  }
  if (f.kind === "object") {
    if (!isPlainObject(value)) return void errors.push(bad);
    return value;
  }
  if (!Array.isArray(value)) return void errors.push(bad);
  if (f.maxLength !== null && value.length > f.maxLength) {
    return void errors.push(`${where}: ${value.length} items is more than the limit of ${f.maxLength}`);
  }
  return value.map((item, i) => checkObject(item, f.items || [], `${where}[${i}]`, errors));
}

function checkObject(obj, fields, where, errors) {
  if (!isPlainObject(obj)) {
    errors.push(`${where}: expected an object, got ${typeName(obj)}`);
    return {};
  }
  const known = new Set(fields.map((f) => f.name));
  for (const key of Object.keys(obj)) {
    if (!known.has(key)) {
      errors.push(`${where}: unknown field ${pyRepr(key.slice(0, 40))} (known: ${[...known].sort().join(", ")})`);
    }
  }
  const out = {};
  for (const f of fields) {
    if (!(f.name in obj)) {
      if (f.required) errors.push(`${where}.${f.name}: missing`);
      out[f.name] = f.default;
      continue;
    }
    out[f.name] = checkValue(obj[f.name], f, `${where}.${f.name}`, errors);
  }
  return out;
}

// ------------------------------------------------------------------------------ the segment grid

export class GridError extends Error {}

/** Smallest frame count >= n of the form 1 + factor * k that a causal VAE can encode. */
export function validFrameCount(n, temporalFactor = TEMPORAL_FACTOR) {
  if (n <= 1) return 1;
  return 1 + temporalFactor * Math.ceil((n - 1) / temporalFactor);
}

/** Frames of the output video: exactly Python's int(round(duration * fps)). */
export function frameCount(duration, fps) {
  return pyRound(duration * fps);
}

/** Cut n output frames into overlapping segments, exactly as segments.py's plan_segments. */
export function planSegments(nFrames, segmentFrames = 121, motionFrames = 5, temporalFactor = TEMPORAL_FACTOR) {
  if (!(nFrames >= 1)) {
    throw new GridError(`the video needs at least 1 frame, got ${nFrames}; is the audio empty?`);
  }
  if (!Number.isInteger(segmentFrames) || segmentFrames < 1 || (segmentFrames - 1) % temporalFactor) {
    throw new GridError(
      `segment_frames must be 1 + ${temporalFactor}k (e.g. 121, 97, 33), got ${segmentFrames}`);
  }
  if (!Number.isInteger(motionFrames) || motionFrames < 0 || (motionFrames && (motionFrames - 1) % temporalFactor)) {
    throw new GridError(
      `motion_frames must be 0 or 1 + ${temporalFactor}k (e.g. 5 or 9), got ${motionFrames}`);
  }
  if (motionFrames >= segmentFrames) {
    throw new GridError(
      `motion_frames (${motionFrames}) must be smaller than segment_frames (${segmentFrames})`);
  }
  const make = (index, start, end, motion) => ({
    index, start, end, motionFrames: motion, newStart: start + motion,
    renderFrames: validFrameCount(end - start, temporalFactor),
  });
  const first = Math.min(nFrames, segmentFrames);
  const segments = [make(0, 0, first, 0)];
  while (segments[segments.length - 1].end < nFrames) {
    const start = segments[segments.length - 1].end - motionFrames;
    const end = Math.min(nFrames, start + segmentFrames);
    segments.push(make(segments.length, start, end, motionFrames));
  }
  return segments;
}

/** The grid settings of a schedule: `grid` object, else top-level keys, else the defaults. */
export function gridSettings(schedule) {
  const s = isPlainObject(schedule) ? schedule : {};
  const g = isPlainObject(s.grid) ? s.grid : {};
  const pick = (key) => (g[key] !== undefined ? g[key] : s[key] !== undefined ? s[key] : DEFAULT_GRID[key]);
  return {
    fps: typeof s.fps === "number" ? s.fps : DEFAULT_GRID.fps,
    duration: s.duration,
    segment_frames: pick("segment_frames"),
    motion_frames: pick("motion_frames"),
  };
}

/**
 * The segment grid of a schedule: segments with their time spans and the boundary times shots
 * snap to ([0, end_0, end_1, ..., N] / fps). Throws GridError with a message that says what to fix.
 */
export function segmentGrid(schedule) {
  const { fps, duration, segment_frames: S, motion_frames: M } = gridSettings(schedule);
  if (typeof duration !== "number" || !Number.isFinite(duration) || duration <= 0) {
    throw new GridError("schedule.duration: must be a positive number of seconds");
  }
  if (!Number.isFinite(fps) || fps <= 0) throw new GridError("schedule.fps: must be positive");
  const frames = frameCount(duration, fps);
  const segments = planSegments(frames, S, M).map((seg) => ({
    ...seg, t0: seg.newStart / fps, t1: seg.end / fps,
  }));
  const boundaries = [0, ...segments.map((seg) => seg.t1)];
  return { fps, duration, frames, segmentFrames: S, motionFrames: M, segments, boundaries, end: frames / fps };
}

/** Index of the boundary nearest to t (ties: the earlier one). */
export function snapIndex(t, boundaries) {
  let best = 0;
  for (let i = 1; i < boundaries.length; i++) {
    if (Math.abs(boundaries[i] - t) < Math.abs(boundaries[best] - t) - 1e-12) best = i;
  }
  return best;
}

/** The grid time nearest to t. */
export function snapTime(t, boundaries) {
  return boundaries[snapIndex(t, boundaries)];
}

function onGrid(t, boundaries, fps) {
  return Math.abs(snapTime(t, boundaries) - t) <= 0.5 / fps + EPS;
}

// ----------------------------------------------------------------------------------- validation

/**
 * Turn a message into an issue: {shot, field, message, severity}. `shot` is the 0-based index in
 * `shots` (as in the messages: "shots[2].end: ..."), `field` the shot's field or the top-level key.
 */
function issue(message, severity = "error") {
  let shot = null;
  let fieldName = null;
  const m = /^(?:schedule\.)?shots\[(\d+)\](?:\.(\w+))?/.exec(message);
  if (m) {
    shot = Number(m[1]);
    fieldName = m[2] || null;
  } else {
    const top = /^(?:schedule\.)?(\w+)(?:\[\d+\])?[.:]/.exec(message);
    if (top && top[1] !== "schedule") fieldName = top[1];
    const named = /\bshots\[(\d+)\]/.exec(message); // "gap 5-6 s before shots[2]: ..."
    if (named && !top) shot = Number(named[1]);
  }
  return { shot, field: fieldName, message, severity };
}

/** Time checks as schedule.py's _check_times: ordered, not overlapping, inside the audio (gaps allowed). */
function checkTimes(shots, duration, errors) {
  if (!shots.length) return void errors.push("schedule.shots: the schedule has no shots; plan at least one");
  if (duration <= 0) return void errors.push("schedule.duration: must be positive");
  const limit = duration;
  const whose = `the schedule's duration (${formatSeconds(duration)} s)`;
  let prevEnd = null;
  shots.forEach((s, i) => {
    const where = `shots[${i}]`;
    if (s.end <= s.start) {
      errors.push(`${where}.end: ${formatSeconds(s.end)} s is not after its start ${formatSeconds(s.start)} s`);
    }
    if (s.start >= limit) {
      errors.push(`${where}.start: ${formatSeconds(s.start)} s is at or past the end (${whose})`);
    } else if (s.end > limit + TIME_TOLERANCE_S) {
      errors.push(`${where}.end: ${formatSeconds(s.end)} s is past ${whose}`);
    }
    if (prevEnd !== null && s.start < prevEnd - EPS) {
      if (s.start < shots[i - 1].start) {
        errors.push(`${where}.start: ${formatSeconds(s.start)} s is before shots[${i - 1}]'s start; ` +
          "list the shots in time order");
      } else {
        errors.push(`${where}.start: ${formatSeconds(s.start)} s overlaps shots[${i - 1}], which ends at ` +
          `${formatSeconds(prevEnd)} s`);
      }
    }
    prevEnd = prevEnd === null ? s.end : Math.max(prevEnd, s.end);
  });
}

/**
 * Validate a parsed schedule as Schedule.from_dict does. Returns {errors, warnings, grid}: errors
 * are what the node would reject (same messages); warnings are what it would silently change when
 * it normalises (gaps filled, times snapped to the grid, short shots merged).
 */
export function validateSchedule(data) {
  const errors = [];
  if (!isPlainObject(data)) {
    errors.push(`a schedule must be a JSON object, got ${typeName(data)}`);
    return { errors: errors.map((m) => issue(m)), warnings: [], grid: null };
  }
  if (data.version !== SCHEDULE_VERSION) {
    errors.push(!("version" in data)
      ? `schedule: 'version' is missing (this build reads version ${SCHEDULE_VERSION})`
      : `schedule version ${pyStr(data.version).slice(0, 20)} is not supported; this build reads version ` +
        `${SCHEDULE_VERSION} (re-plan with \`python -m omnihuman_core plan\`, or update the pack)`);
    return { errors: errors.map((m) => issue(m)), warnings: [], grid: null };
  }
  const d = checkObject(data, SCHEDULE_FIELDS, "schedule", errors);
  if (d.grid !== null && d.grid !== undefined) checkObject(d.grid, GRID_FIELDS, "grid", errors);
  (Array.isArray(d.history) ? d.history : []).forEach((r, i) => {
    if (!isPlainObject(r)) return;
    (Array.isArray(r.changes) ? r.changes : []).forEach((c, j) => {
      if (!isPlainObject(c)) return;
      checkObject(c.before, CONTENT_OBJECT, `history[${i}].changes[${j}].before`, errors);
      checkObject(c.after, CONTENT_OBJECT, `history[${i}].changes[${j}].after`, errors);
    });
  });
  if (!errors.length) checkTimes(d.shots, d.duration, errors);
  if (typeof d.fps === "number" && d.fps <= 0 && !errors.some((e) => e.startsWith("schedule.fps"))) {
    errors.push("schedule.fps: must be positive");
  }
  let grid = null;
  const warnings = [];
  try {
    grid = segmentGrid(data);
  } catch (e) {
    if (!(e instanceof GridError)) throw e;
    if (!errors.length) errors.push(e.message);
  }
  if (!errors.length && grid) {
    for (const note of normalizeSchedule(data).notes) warnings.push(note);
    data.shots.forEach((s, i) => {
      for (const key of ["start", "end"]) {
        const isLastEnd = key === "end" && i === data.shots.length - 1;
        if (isLastEnd || onGrid(s[key], grid.boundaries, grid.fps)) continue;
        warnings.push(`shots[${i}].${key}: ${formatSeconds(s[key])} s is not on the segment grid; ` +
          `it snaps to ${formatSeconds(snapTime(s[key], grid.boundaries))} s`);
      }
    });
  }
  return {
    errors: errors.map((m) => issue(m)),
    warnings: warnings.map((m) => issue(m, "warning")),
    grid,
  };
}

/** Parse JSON text as schedule.py's from_json (same message for broken JSON). */
export function parseScheduleText(text, source = "schedule") {
  let data;
  try {
    data = JSON.parse(text);
  } catch (e) {
    return { data: null, error: `${source} is not valid JSON (${jsonErrorPlace(text, e)})` };
  }
  return { data, error: null };
}

function jsonErrorPlace(text, e) {
  const msg = String(e && e.message ? e.message : e).replace(/^JSON\.parse: /, "");
  const m = /position (\d+)/.exec(msg);
  const pos = m ? Number(m[1]) : text.length;
  const before = text.slice(0, pos).split("\n");
  const line = before.length;
  const column = before[before.length - 1].length + 1;
  const what = msg.replace(/\s*in JSON at position \d+.*$/, "").replace(/\s*\(line \d+ column \d+\)$/, "");
  return `line ${line}, column ${column}: ${what}`;
}

/** Schedule -> the text stored in the widget and sent to the node (2-space JSON, keys in order). */
export function serializeSchedule(schedule) {
  return JSON.stringify(schedule, null, 2);
}

/** A deep copy that keeps every field, known or not, in its order. */
export function cloneSchedule(schedule) {
  return JSON.parse(JSON.stringify(schedule));
}

// ---------------------------------------------------------------------------------- normalising

/** A neutral listening shot, used to fill gaps (same content as schedule.py's idle_shot). */
export function idleShot(start, end, rationale = "no shot was planned here") {
  return {
    start, end, speaking: false, expression: "attentive, relaxed",
    action: "listens quietly, blinks, small natural head movements", camera: "", prompt: "", rationale,
  };
}

/** For each segment, the shot that covers most of the time it adds (ties: the earlier shot). */
export function shotIndices(shots, segments, fps) {
  return segments.map((seg) => {
    const a = seg.newStart / fps;
    const b = seg.end / fps;
    let best = 0;
    let bestOverlap = -Infinity;
    shots.forEach((s, i) => {
      let overlap = Math.min(b, s.end) - Math.max(a, s.start);
      if (overlap <= 0) {
        overlap = -Math.min(Math.abs(s.start - b), Math.abs(s.end - a), Math.abs(s.start - a), Math.abs(s.end - b)) - 1e6;
      }
      if (overlap > bestOverlap + 1e-9) {
        best = i;
        bestOverlap = overlap;
      }
    });
    return best;
  });
}

/**
 * Clip to the audio, fill gaps with idle shots and snap shot boundaries to the segment grid, as
 * Schedule.normalize does. Returns {schedule, notes}; unknown fields of the schedule and of each
 * shot are kept. The input must be valid (see validateSchedule).
 */
export function normalizeSchedule(data) {
  const grid = segmentGrid(data);
  const { fps, duration, segments } = grid;
  const frame = 1 / fps;
  const notes = [];
  const labelled = [];
  let cursor = 0;
  data.shots.forEach((orig, i) => {
    const s = { ...orig };
    if (s.end > duration) {
      if (s.end - duration > frame) {
        notes.push(`shots[${i}] ends at ${formatSeconds(s.end)} s, past the audio's ${formatSeconds(duration)} s: clipped`);
      }
      s.end = duration;
    }
    if (s.start - cursor > frame) {
      notes.push(`gap ${formatSeconds(cursor)}-${formatSeconds(s.start)} s before shots[${i}]: filled with an idle shot`);
      labelled.push([idleShot(cursor, s.start), "an idle shot"]);
    } else if (s.start > cursor) {
      if (labelled.length) labelled[labelled.length - 1][0].end = s.start;
      else s.start = 0;
    }
    labelled.push([s, `shots[${i}]`]);
    cursor = s.end;
  });
  if (duration - cursor > frame) {
    notes.push(`gap ${formatSeconds(cursor)}-${formatSeconds(duration)} s at the end: filled with an idle shot`);
    labelled.push([idleShot(cursor, duration), "an idle shot"]);
  } else if (labelled.length) {
    const last = labelled[labelled.length - 1][0];
    last.end = Math.max(last.end, duration);
  }
  const filled = labelled.map(([s]) => s);
  const assignment = shotIndices(filled, segments, fps);
  const shots = [];
  let prev = null;
  segments.forEach((seg, j) => {
    const k = assignment[j];
    if (k === prev) shots[shots.length - 1].end = seg.end / fps;
    else shots.push({ ...filled[k], start: seg.newStart / fps, end: seg.end / fps });
    prev = k;
  });
  labelled.forEach(([s, label], k) => {
    if (!assignment.includes(k)) {
      notes.push(`${label} (${formatSeconds(s.start)}-${formatSeconds(s.end)} s) covers less of any segment than its ` +
        "neighbours and was merged into them (one prompt per segment)");
    }
  });
  const out = { ...cloneSchedule(data), shots };
  if ("grid" in data || !("segment_frames" in data)) {
    out.grid = { segment_frames: grid.segmentFrames, motion_frames: grid.motionFrames };
  }
  return { schedule: out, notes };
}

// ------------------------------------------------------------------------------------ the tiling

/**
 * The shots as boundary indices when they tile the grid exactly (first starts at 0, each starts where
 * the previous ends, the last ends at the video's end, each spans at least one segment); else null.
 */
export function tiling(schedule, grid) {
  const shots = schedule && Array.isArray(schedule.shots) ? schedule.shots : [];
  if (!grid || !shots.length) return null;
  const B = grid.boundaries;
  const K = B.length - 1;
  const out = [];
  for (let i = 0; i < shots.length; i++) {
    const s = shots[i];
    if (!isPlainObject(s) || typeof s.start !== "number" || typeof s.end !== "number") return null;
    const si = snapIndex(s.start, B);
    const ei = snapIndex(s.end, B);
    if (!onGrid(s.start, B, grid.fps) || !onGrid(s.end, B, grid.fps)) return null;
    if (ei <= si) return null;
    if (i === 0 ? si !== 0 : si !== out[i - 1][1]) return null;
    out.push([si, ei]);
  }
  if (out[out.length - 1][1] !== K) return null;
  return out;
}

function withShots(schedule, shots) {
  const out = cloneSchedule(schedule);
  out.shots = shots;
  return out;
}

function fail(error) {
  return { schedule: null, error };
}

function gridOrError(schedule) {
  try {
    return { grid: segmentGrid(schedule) };
  } catch (e) {
    if (e instanceof GridError) return { error: e.message };
    throw e;
  }
}

function needTiling(schedule) {
  const { grid, error } = gridOrError(schedule);
  if (error) return { error };
  const t = tiling(schedule, grid);
  if (!t) {
    return { error: "the shots do not tile the segment grid (gaps, overlaps or times off the grid); " +
      "press \"Snap & fill gaps\" first" };
  }
  return { grid, t };
}

/** A blank shot to start from (copies nothing; the artist fills it in). */
export function blankShot(start, end) {
  return { start, end, speaking: false, expression: "", action: "", camera: "", prompt: "" };
}

/** A one-shot schedule covering the whole audio. */
export function newSchedule({ duration, fps = DEFAULT_GRID.fps, segment_frames = DEFAULT_GRID.segment_frames,
  motion_frames = DEFAULT_GRID.motion_frames } = {}) {
  const base = { version: SCHEDULE_VERSION, fps, duration, shots: [], grid: { segment_frames, motion_frames } };
  const grid = segmentGrid(base);
  base.shots = [blankShot(0, grid.end)];
  return base;
}

/** Set a text/boolean field of shot i (times go through setShotTime). */
export function setShotField(schedule, i, name, value) {
  if (!schedule || !Array.isArray(schedule.shots) || !(i in schedule.shots)) return fail(`there is no shot ${i}`);
  if (name === "start" || name === "end") return setShotTime(schedule, i, name, value);
  if (!isPlainObject(schedule.shots[i])) return fail(`shots[${i}] is not an object; fix it in the { } JSON view`);
  const shots = schedule.shots.map((s) => (isPlainObject(s) ? { ...s } : s));
  if (name === "speaker" && (value === "" || value === null)) delete shots[i].speaker;
  else shots[i][name] = value;
  return { schedule: withShots(schedule, shots), error: null };
}

/**
 * Move shot i's start or end to the grid time nearest `seconds`; the neighbour that shares the
 * boundary moves with it, so the shots keep tiling. Each shot keeps at least one segment; the
 * first start (0) and the last end (the video's end) are fixed. Returns {schedule, error, note}.
 */
export function setShotTime(schedule, i, edge, seconds) {
  const t = typeof seconds === "string" ? Number(seconds.trim()) : seconds;
  if (typeof t !== "number" || !Number.isFinite(t) || (typeof seconds === "string" && !seconds.trim())) {
    return fail(`shots[${i}].${edge}: ${JSON.stringify(seconds)} is not a number of seconds`);
  }
  if (!schedule || !Array.isArray(schedule.shots) || !(i in schedule.shots)) return fail(`there is no shot ${i}`);
  if (!isPlainObject(schedule.shots[i])) return fail(`shots[${i}] is not an object; fix it in the { } JSON view`);
  const { grid, error } = gridOrError(schedule);
  if (error) return fail(error);
  const B = grid.boundaries;
  const K = B.length - 1;
  const shots = schedule.shots.map((s) => (isPlainObject(s) ? { ...s } : s));
  const tile = tiling(schedule, grid);
  let b = snapIndex(t, B);
  if (!tile) {
    // Not a clean tiling: snap this one time and leave the neighbours to validation.
    shots[i][edge] = B[b];
    return { schedule: withShots(schedule, shots), error: null, note: null };
  }
  let note = null;
  if (edge === "start") {
    if (i === 0) {
      if (b !== 0) note = "the first shot starts at 0 s";
      b = 0;
    } else {
      const lo = tile[i - 1][0] + 1;
      const hi = tile[i][1] - 1;
      const clamped = Math.min(Math.max(b, lo), hi);
      if (clamped !== b) note = `shots[${i}].start: kept between ${formatSeconds(B[lo])} and ${formatSeconds(B[hi])} s so every shot keeps at least one segment`;
      b = clamped;
      shots[i - 1].end = B[b];
    }
    shots[i].start = B[b];
  } else {
    if (i === shots.length - 1) {
      if (b !== K) note = `the last shot ends with the video at ${formatSeconds(B[K])} s`;
      b = K;
    } else {
      const lo = tile[i][0] + 1;
      const hi = tile[i + 1][1] - 1;
      const clamped = Math.min(Math.max(b, lo), hi);
      if (clamped !== b) note = `shots[${i}].end: kept between ${formatSeconds(B[lo])} and ${formatSeconds(B[hi])} s so every shot keeps at least one segment`;
      b = clamped;
      shots[i + 1].start = B[b];
    }
    shots[i].end = B[b];
  }
  return { schedule: withShots(schedule, shots), error: null, note };
}

/** Where shot i can be cut: the inner grid boundary nearest to its middle (null if it spans one segment). */
function splitPoint(tile, i, B) {
  const [si, ei] = tile[i];
  if (ei - si < 2) return null;
  const mid = (B[si] + B[ei]) / 2;
  let best = si + 1;
  for (let b = si + 1; b < ei; b++) if (Math.abs(B[b] - mid) < Math.abs(B[best] - mid) - 1e-12) best = b;
  return best;
}

/** Cut shot i in two at a grid boundary (its middle, or the boundary nearest `at`); both halves keep its fields. */
export function splitShot(schedule, i, at = null) {
  const { grid, t, error } = needTiling(schedule);
  if (error) return fail(error);
  if (!t[i]) return fail(`there is no shot ${i}`);
  const B = grid.boundaries;
  let b = splitPoint(t, i, B);
  if (b === null) return fail(`shots[${i}] spans one segment; a shot cannot be shorter than a segment`);
  if (at !== null && at !== undefined) {
    b = Math.min(Math.max(snapIndex(at, B), t[i][0] + 1), t[i][1] - 1);
  }
  const shots = schedule.shots.map((s) => ({ ...s }));
  const second = { ...shots[i], start: B[b] };
  shots[i].end = B[b];
  shots.splice(i + 1, 0, second);
  return { schedule: withShots(schedule, shots), error: null };
}

/**
 * Add a new blank shot after shot i, taking the second half of shot i's time. With no shots, the
 * new shot covers the whole video.
 */
export function addShot(schedule, i = null) {
  const { grid, error } = gridOrError(schedule);
  if (error) return fail(error);
  const shots = Array.isArray(schedule.shots) ? schedule.shots : [];
  if (!shots.length) return { schedule: withShots(schedule, [blankShot(0, grid.end)]), error: null };
  const idx = i === null || i === undefined ? shots.length - 1 : i;
  const res = splitShot(schedule, idx);
  if (res.error) {
    return fail(res.error.includes("spans one segment")
      ? `shots[${idx}] spans one segment, so there is no room for a new shot after it; ` +
        "merge shots or pick a longer one"
      : res.error);
  }
  const out = res.schedule;
  out.shots[idx + 1] = blankShot(out.shots[idx + 1].start, out.shots[idx + 1].end);
  return { schedule: out, error: null };
}

/** Merge shot i with the shot after it; the merged shot keeps shot i's fields. */
export function mergeShots(schedule, i) {
  const { t, error } = needTiling(schedule);
  if (error) return fail(error);
  if (!t[i] || !t[i + 1]) return fail(`shots[${i}] has no next shot to merge with`);
  const shots = schedule.shots.map((s) => ({ ...s }));
  shots[i].end = shots[i + 1].end;
  shots.splice(i + 1, 1);
  return { schedule: withShots(schedule, shots), error: null };
}

/** Delete shot i; the shot before it (or, for the first, the one after) takes over its time. */
export function deleteShot(schedule, i) {
  const { t, error } = needTiling(schedule);
  if (error) return fail(error);
  if (!t[i]) return fail(`there is no shot ${i}`);
  if (t.length === 1) return fail("the only shot cannot be deleted; a schedule needs at least one shot");
  const shots = schedule.shots.map((s) => ({ ...s }));
  if (i > 0) shots[i - 1].end = shots[i].end;
  else shots[1].start = shots[0].start;
  shots.splice(i, 1);
  return { schedule: withShots(schedule, shots), error: null };
}

/** Snap to the grid and fill gaps with idle shots (Schedule.normalize); needs a valid schedule. */
export function fillGaps(schedule) {
  const v = validateSchedule(schedule);
  if (v.errors.length) return fail(`fix the errors first: ${v.errors[0].message}`);
  const { schedule: out, notes } = normalizeSchedule(schedule);
  return { schedule: out, error: null, notes };
}

// ------------------------------------------------------------------------------------- timeline

/**
 * Geometry of the timeline bar, in percent of its width. The scale is the audio's duration (or
 * the furthest shot end, if a shot runs past it, so nothing is drawn off the bar).
 */
export function timelineGeometry(schedule, grid = null) {
  const duration = schedule && typeof schedule.duration === "number" && schedule.duration > 0 ? schedule.duration : 0;
  const shots = schedule && Array.isArray(schedule.shots) ? schedule.shots : [];
  let scale = duration;
  for (const s of shots) {
    if (isPlainObject(s) && typeof s.end === "number" && Number.isFinite(s.end)) scale = Math.max(scale, s.end);
  }
  if (grid) scale = Math.max(scale, grid.end);
  if (!(scale > 0)) return { scale: 0, shots: [], ticks: [], audioEnd: null };
  const pct = (t) => Math.min(100, Math.max(0, (t / scale) * 100));
  const geomShots = shots.map((s, index) => {
    const ok = isPlainObject(s) && typeof s.start === "number" && typeof s.end === "number";
    const start = ok ? s.start : 0;
    const end = ok ? s.end : 0;
    return {
      index, start, end, left: pct(start), width: Math.max(0, pct(end) - pct(start)),
      speaking: ok && s.speaking === true,
      label: ok ? shotLabel(s) : "",
    };
  });
  const ticks = grid ? grid.boundaries.map((t, index) => ({ index, t, left: pct(t) })) : [];
  return { scale, shots: geomShots, ticks, audioEnd: duration ? pct(duration) : null };
}

/** A short label for a shot: its action, else expression, else prompt. */
export function shotLabel(s) {
  for (const key of ["action", "expression", "prompt", "camera"]) {
    if (typeof s[key] === "string" && s[key].trim()) return s[key].trim();
  }
  return s.speaking ? "speaking" : "idle";
}

// ------------------------------------------------------------------------------- editor state
// The widget's state, kept here so it can be tested without a browser:
//   value:   the text the widget saves in the workflow and sends as `schedule_json`
//            ("" = no edits: the node passes the planner's schedule through)
//   planner: the planner's schedule from the last run (ui.planner_schedule), JSON text or null
//   output:  the schedule the node put out on the last run (ui.schedule), JSON text or null
//   undo:    the edits "Use planner's version" replaced, so they can be restored once

export function createEditorState(value = "") {
  return { value: valueToText(value), planner: null, output: null, undo: null };
}

/** Anything the workflow may hold for the widget -> the text it stands for. */
export function valueToText(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "string") return v.trim() ? v : "";
  if (typeof v === "object") return serializeSchedule(v);
  return String(v);
}

/** The first entry of a ui list (ComfyUI sends ui values as lists), as JSON text or null. */
export function uiText(entry) {
  const v = Array.isArray(entry) ? entry[0] : entry;
  if (v === null || v === undefined) return null;
  if (typeof v === "string") return v.trim() ? v : null;
  if (typeof v === "object") return serializeSchedule(v);
  return null;
}

export function editorSetValue(state, v) {
  return { ...state, value: valueToText(v), undo: null };
}

/** After a run: remember the planner's and the node's schedules (the artist's edits stay). */
export function editorExecuted(state, message) {
  const m = isPlainObject(message) ? message : {};
  const planner = uiText(m.planner_schedule);
  const output = uiText(m.schedule);
  return {
    ...state,
    planner: planner !== null ? planner : state.planner,
    output: output !== null ? output : state.output,
  };
}

/** Take the planner's version back: drop the edits (they can be restored once with editorUndo). */
export function editorUsePlanner(state) {
  if (!state.value) return state;
  return { ...state, value: "", undo: state.value };
}

export function editorUndo(state) {
  if (state.undo === null) return state;
  return { ...state, value: state.undo, undo: null };
}

/** The raw JSON view was edited: what is typed is what is sent (even if broken, so errors show). */
export function editorSetText(state, text) {
  return { ...state, value: valueToText(text), undo: null };
}

/** The schedule the editor shows: the edits, else the planner's, else the node's last output. */
export function displayedText(state) {
  if (state.value) return { text: state.value, source: "edited" };
  if (state.planner) return { text: state.planner, source: "planner" };
  if (state.output) return { text: state.output, source: "planner" };
  return { text: "", source: "empty" };
}

/**
 * Apply an edit to the shown schedule. `op` is {type, index, field, value, at}; types: field, time,
 * add, delete, split, merge, fill. The result becomes the artist's edited value.
 * Returns {state, error, note}.
 */
export function editorApply(state, op) {
  const shown = displayedText(state);
  let data = null;
  if (shown.text) {
    const parsed = parseScheduleText(shown.text);
    if (parsed.error) return { state, error: parsed.error, note: null };
    data = parsed.data;
  }
  if (!isPlainObject(data)) {
    return { state, error: "there is no schedule to edit yet: run the workflow, or paste one in the JSON view", note: null };
  }
  let res;
  switch (op.type) {
    case "field": res = setShotField(data, op.index, op.field, op.value); break;
    case "time": res = setShotTime(data, op.index, op.field, op.value); break;
    case "add": res = addShot(data, op.index); break;
    case "delete": res = deleteShot(data, op.index); break;
    case "split": res = splitShot(data, op.index, op.at); break;
    case "merge": res = mergeShots(data, op.index); break;
    case "fill": res = fillGaps(data); break;
    default: return { state, error: `unknown edit ${op.type}`, note: null };
  }
  if (res.error) return { state, error: res.error, note: null };
  const note = res.note || (res.notes && res.notes.length ? res.notes.join("; ") : null);
  return { state: { ...state, value: serializeSchedule(res.schedule), undo: null }, error: null, note };
}

/** What each shot-level action can do right now, and why not. */
export function actionAvailability(schedule, grid, index, hasErrors = false) {
  const none = (why) => ({ ok: false, why });
  const out = { add: none(""), delete: none(""), split: none(""), merge: none(""), fill: none("") };
  if (!isPlainObject(schedule) || !grid) {
    const why = "fix the schedule's errors first";
    return { add: none(why), delete: none(why), split: none(why), merge: none(why), fill: none(why) };
  }
  const tile = tiling(schedule, grid);
  const shots = Array.isArray(schedule.shots) ? schedule.shots : [];
  out.fill = tile ? none("the shots already tile the grid")
    : hasErrors ? none("fix the errors first (see the messages)") : { ok: true, why: "" };
  if (!shots.length) {
    out.add = { ok: true, why: "" };
    return out;
  }
  if (!tile) {
    const why = "the shots must tile the grid: press \"Snap & fill gaps\" first";
    return { ...out, add: none(why), delete: none(why), split: none(why), merge: none(why) };
  }
  const i = Math.min(Math.max(index ?? 0, 0), tile.length - 1);
  const long = tile[i][1] - tile[i][0] >= 2;
  const one = "this shot spans one segment; shots cannot be shorter than a segment";
  out.split = long ? { ok: true, why: "" } : none(one);
  out.add = long ? { ok: true, why: "" } : none(one);
  out.merge = i < tile.length - 1 ? { ok: true, why: "" } : none("the last shot has no next shot");
  out.delete = tile.length > 1 ? { ok: true, why: "" } : none("a schedule needs at least one shot");
  return out;
}

/** Everything the widget draws, from the state alone. */
export function editorView(state, selected = 0) {
  const shown = displayedText(state);
  const view = {
    mode: shown.source, // "empty" | "planner" | "edited"
    text: shown.text,
    schedule: null,
    grid: null,
    parseError: null,
    errors: [],
    warnings: [],
    rows: [],
    timeline: { scale: 0, shots: [], ticks: [], audioEnd: null },
    selected: 0,
    actions: actionAvailability(null, null, 0),
    canUsePlanner: !!state.value,
    plannerKnown: !!(state.planner || state.output),
    canUndo: state.undo !== null,
    plannerDiffers: false,
    tiled: false,
  };
  if (!shown.text) return view;
  const parsed = parseScheduleText(shown.text);
  // The planner's text arrives as compact JSON; show it indented. The artist's text stays as typed.
  if (shown.source === "planner" && !parsed.error) view.text = serializeSchedule(parsed.data);
  if (parsed.error) {
    view.parseError = parsed.error;
    view.errors = [issue(parsed.error)];
    return view;
  }
  const data = parsed.data;
  const v = validateSchedule(data);
  view.errors = v.errors;
  view.warnings = v.warnings;
  view.grid = v.grid;
  if (!isPlainObject(data)) return view;
  view.schedule = data;
  const shots = Array.isArray(data.shots) ? data.shots : [];
  view.selected = shots.length ? Math.min(Math.max(selected, 0), shots.length - 1) : 0;
  const byShot = new Map();
  for (const it of [...v.errors, ...v.warnings]) {
    if (it.shot === null) continue;
    if (!byShot.has(it.shot)) byShot.set(it.shot, []);
    byShot.get(it.shot).push(it);
  }
  const B = v.grid ? v.grid.boundaries : null;
  view.rows = shots.map((s, index) => {
    const o = isPlainObject(s) ? s : {};
    const rowIssues = byShot.get(index) || [];
    const fieldIssues = {};
    for (const it of rowIssues) {
      const key = it.field || "_row";
      if (!fieldIssues[key] || (fieldIssues[key].severity === "warning" && it.severity === "error")) fieldIssues[key] = it;
    }
    const seg = (t) => (B && typeof t === "number" ? snapIndex(t, B) : null);
    return {
      index,
      start: o.start, end: o.end,
      startSegment: seg(o.start), endSegment: seg(o.end),
      speaking: o.speaking === true,
      expression: typeof o.expression === "string" ? o.expression : "",
      action: typeof o.action === "string" ? o.action : "",
      camera: typeof o.camera === "string" ? o.camera : "",
      prompt: typeof o.prompt === "string" ? o.prompt : "",
      speaker: typeof o.speaker === "string" ? o.speaker : null,
      issues: rowIssues,
      fieldIssues,
    };
  });
  view.timeline = timelineGeometry(data, v.grid);
  view.actions = actionAvailability(data, v.grid, view.selected, v.errors.length > 0);
  view.tiled = !!(v.grid && tiling(data, v.grid));
  if (state.value && state.planner) view.plannerDiffers = !sameSchedule(state.value, state.planner);
  return view;
}

function sameSchedule(a, b) {
  try {
    return JSON.stringify(JSON.parse(a)) === JSON.stringify(JSON.parse(b));
  } catch {
    return a === b;
  }
}

/** "5.04" style time for the table (the exact value is kept in the schedule). */
export function formatTime(t) {
  if (typeof t !== "number" || !Number.isFinite(t)) return "";
  return String(Math.round(t * 100) / 100);
}
