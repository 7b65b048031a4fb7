"""The Schedule: System 2's plan of Shots, the hand-editable contract System 1 renders from.

A schedule is versioned JSON: the audio's duration and fps, a list of shots (start/end in seconds,
speaking, expression, action, camera, the prompt that conditions the segment), plus the analysis,
the plan's rationale and a history of Reflection's revisions. One field table (`SHOT_FIELDS`)
defines the validation, the JSON schema the LLM is asked to produce and the docs, so they cannot
drift apart. System 1 only ever sees `Schedule.segment_prompts(segments, fps)`: one prompt per
generation segment.
"""

from __future__ import annotations

import copy
import json
import math
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

from .errors import InputError

SCHEDULE_VERSION = 1
# A shot may end this far past the audio (rounded times in a hand-edited file); it is clipped.
# Further than that is a schedule for other audio, which is an error.
TIME_TOLERANCE_S = 0.5
MAX_SHOTS = 5000  # more shots than frames in 10 minutes of video is a broken file, not a plan
MAX_ERRORS_SHOWN = 20  # a badly broken file lists this many problems, then says how many more
MAX_HISTORY = 10000
CONTENT_FIELDS = ("expression", "action", "camera", "prompt")  # what Reflection may revise


# --------------------------------------------------------------------------- field definitions


@dataclass(frozen=True)
class Field:
    """One JSON field: its type, limits and description (validation + JSON schema come from this)."""

    name: str
    kind: str  # "string" | "number" | "integer" | "boolean" | "array" | "object"
    description: str
    required: bool = True
    default: Any = None
    max_length: int | None = None  # strings: characters; arrays: items
    minimum: float | None = None
    nullable: bool = False
    items: tuple["Field", ...] | None = None  # arrays of objects: the item's fields
    enum: tuple[str, ...] | None = None

    def schema(self, llm: bool = False) -> dict:
        """JSON schema of this field. `llm=True` keeps to keywords every structured-output
        backend accepts (type/properties/required/enum); the limits go into the description and
        are enforced locally instead."""
        desc = self.description
        kind: Any = self.kind
        out: dict[str, Any] = {}
        if self.kind == "array":
            out["items"] = object_schema(self.items or (), llm=llm)
        if self.enum:
            out["enum"] = list(self.enum)
        if llm:
            if self.max_length is not None:
                unit = "items" if self.kind == "array" else "characters"
                desc = f"{desc} (at most {self.max_length} {unit})"
        else:
            if self.max_length is not None:
                out["maxItems" if self.kind == "array" else "maxLength"] = self.max_length
            if self.minimum is not None:
                out["minimum"] = self.minimum
        if self.nullable:
            kind = [self.kind, "null"]
        return {"type": kind, "description": desc, **out}


def object_schema(fields: Sequence[Field], *, llm: bool = False) -> dict:
    """JSON schema of an object made of `fields`; `llm=True` marks every field required (strict mode)."""
    return {
        "type": "object",
        "properties": {f.name: f.schema(llm) for f in fields},
        "required": [f.name for f in fields if llm or f.required],
        "additionalProperties": False,
    }


def _num(x: float) -> str:
    """Seconds for messages: 7.5, 4.2, 12.43 (no float noise)."""
    return f"{round(float(x), 3):g}"


def _type_name(v: Any) -> str:
    return {bool: "true/false", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object", type(None): "null"}.get(type(v), type(v).__name__)


def check_value(value: Any, f: Field, where: str, errors: list[str]) -> Any:
    """Validate one value against its Field; append "where: problem" to errors, return the clean value."""
    if value is None and f.nullable:
        return None
    want = {"string": "a string", "number": "a number", "integer": "a whole number",
            "boolean": "true or false", "array": "a list", "object": "an object"}[f.kind]
    bad = f"{where}: expected {want}, got {_type_name(value)}"
    if f.kind == "string":
        if not isinstance(value, str):
            errors.append(bad)
            return None
        if f.max_length is not None and len(value) > f.max_length:
            errors.append(f"{where}: {len(value)} characters is longer than the limit of {f.max_length}")
            return None
        if f.enum and value not in f.enum:
            errors.append(f"{where}: {value[:40]!r} is not one of {', '.join(f.enum)}")
            return None
        return value
    if f.kind in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.append(bad)
            return None
        if not math.isfinite(value):
            errors.append(f"{where}: {value} is not a finite number")
            return None
        if f.kind == "integer" and value != int(value):
            errors.append(bad)
            return None
        if f.minimum is not None and value < f.minimum:
            what = "negative" if f.minimum == 0 else f"below {f.minimum:g}"
            errors.append(f"{where}: {_num(value)} is {what}")
            return None
        return int(value) if f.kind == "integer" else float(value)
    if f.kind == "boolean":
        if not isinstance(value, bool):
            errors.append(bad)
            return None
        return value
    if f.kind == "object":
        if not isinstance(value, dict):
            errors.append(bad)
            return None
        return value
    # array of objects
    if not isinstance(value, list):
        errors.append(bad)
        return None
    if f.max_length is not None and len(value) > f.max_length:
        errors.append(f"{where}: {len(value)} items is more than the limit of {f.max_length}")
        return None
    return [check_object(item, f.items or (), f"{where}[{i}]", errors) for i, item in enumerate(value)]


def check_object(obj: Any, fields: Sequence[Field], where: str, errors: list[str]) -> dict:
    """Validate a JSON object field by field (unknown keys are errors: they are usually typos)."""
    if not isinstance(obj, dict):
        errors.append(f"{where}: expected an object, got {_type_name(obj)}")
        return {}
    known = {f.name for f in fields}
    for key in obj:
        if key not in known:
            errors.append(f"{where}: unknown field {str(key)[:40]!r} (known: {', '.join(sorted(known))})")
    out = {}
    for f in fields:
        if f.name not in obj:
            if f.required:
                errors.append(f"{where}.{f.name}: missing")
            out[f.name] = copy.deepcopy(f.default)  # defaults like {} must not be shared between objects
            continue
        out[f.name] = check_value(obj[f.name], f, f"{where}.{f.name}", errors)
    return out


def raise_errors(errors: list[str], what: str) -> None:
    """One InputError listing every problem (the first MAX_ERRORS_SHOWN of them)."""
    if not errors:
        return
    shown = errors[:MAX_ERRORS_SHOWN]
    more = f"\n  ... and {len(errors) - len(shown)} more" if len(errors) > len(shown) else ""
    raise InputError(f"{what}:\n  " + "\n  ".join(shown) + more)


# --------------------------------------------------------------------------------------- shots

SHOT_FIELDS: tuple[Field, ...] = (
    Field("start", "number", "start of the shot in seconds from the beginning of the audio", minimum=0),
    Field("end", "number", "end of the shot in seconds (exclusive)", minimum=0),
    Field("speaking", "boolean", "true if the character speaks or sings during this shot, false if it "
          "listens or pauses", required=False, default=False),
    Field("expression", "string", "facial expression and emotion, e.g. 'warm smile, raised eyebrows'",
          required=False, default="", max_length=300),
    Field("action", "string", "body and hand actions, e.g. 'lifts the letter to eye level'",
          required=False, default="", max_length=500),
    Field("camera", "string", "framing and camera motion, e.g. 'static medium close-up'",
          required=False, default="", max_length=200),
    Field("prompt", "string", "the text that conditions this part of the video: one or two plain "
          "sentences describing what is seen (empty = made from action, expression and camera)",
          required=False, default="", max_length=1000),
    Field("speaker", "string", "who speaks in this shot (multi-person scenes; null for one person)",
          required=False, default=None, nullable=True, max_length=100),
    Field("rationale", "string", "one line: why this shot", required=False, default="", max_length=300),
)
SHOT_FIELD = {f.name: f for f in SHOT_FIELDS}


@dataclass
class Shot:
    """What the character does for a stretch of time: the unit the Planner plans and artists edit."""

    start: float
    end: float
    speaking: bool = False
    expression: str = ""
    action: str = ""
    camera: str = ""
    prompt: str = ""
    speaker: str | None = None
    rationale: str = ""

    def text(self) -> str:
        """The text condition for System 1: `prompt`, or one made from the other fields if it is empty."""
        if self.prompt.strip():
            return self.prompt.strip()
        parts = [p.strip().rstrip(".") for p in (self.action, self.expression, self.camera) if p.strip()]
        parts.append("speaking" if self.speaking else "listening silently")
        return ". ".join(p[:1].upper() + p[1:] for p in parts) + "."

    def content(self) -> dict:
        """The fields Reflection may revise (timing and speaking stay fixed)."""
        return {k: getattr(self, k) for k in CONTENT_FIELDS}

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in SHOT_FIELDS}
        if d["speaker"] is None:
            del d["speaker"]
        return d


def idle_shot(start: float, end: float, rationale: str = "no shot was planned here") -> Shot:
    """A neutral listening shot, used to fill gaps in a schedule."""
    return Shot(start, end, speaking=False, expression="attentive, relaxed",
                action="listens quietly, blinks, small natural head movements", camera="",
                rationale=rationale)


# ----------------------------------------------------------------------------- revision history

REVISION_SOURCES = ("reflection", "sync")


@dataclass
class ShotRevision:
    """One shot changed by Reflection: its content before and after, and why."""

    shot: int
    before: dict
    after: dict
    rationale: str = ""

    def to_dict(self) -> dict:
        return {"shot": self.shot, "before": dict(self.before), "after": dict(self.after),
                "rationale": self.rationale}


@dataclass
class Revision:
    """One Reflection step: after which segment, what it observed, which shots changed (maybe none)."""

    after_segment: int
    source: str = "reflection"  # "reflection", or "sync": prompts adopted from a resumed work folder
    observation: str = ""
    changes: list[ShotRevision] = field(default_factory=list)
    model: str = ""
    error: str | None = None  # the step failed and the plan was kept

    def to_dict(self) -> dict:
        d = {"after_segment": self.after_segment, "source": self.source, "observation": self.observation,
             "changes": [c.to_dict() for c in self.changes], "model": self.model}
        if self.error is not None:
            d["error"] = self.error
        return d


_CONTENT_OBJECT = tuple(replace(SHOT_FIELD[k], required=True) for k in CONTENT_FIELDS)
SHOT_REVISION_FIELDS = (
    Field("shot", "integer", "index of the shot (= segment) that changed", minimum=0),
    Field("before", "object", "content before"),
    Field("after", "object", "content after"),
    Field("rationale", "string", "why", required=False, default="", max_length=300),
)
REVISION_FIELDS = (
    Field("after_segment", "integer", "the segment just rendered when the revision was made", minimum=0),
    Field("source", "string", "what made the revision", enum=REVISION_SOURCES, required=False,
          default="reflection"),
    Field("observation", "string", "what Reflection saw in the last frames", required=False, default="",
          max_length=2000),
    Field("changes", "array", "shots that changed", required=False, default=[], items=SHOT_REVISION_FIELDS,
          max_length=MAX_SHOTS),
    Field("model", "string", "model that made it", required=False, default="", max_length=200),
    Field("error", "string", "why the step failed (the plan was kept)", required=False, nullable=True,
          max_length=2000),
)


def _revision_from(d: dict, where: str, errors: list[str]) -> Revision:
    changes = []
    for i, c in enumerate(d.get("changes") or []):
        before = check_object(c.get("before"), _CONTENT_OBJECT, f"{where}.changes[{i}].before", errors) if c else {}
        after = check_object(c.get("after"), _CONTENT_OBJECT, f"{where}.changes[{i}].after", errors) if c else {}
        changes.append(ShotRevision(c.get("shot") or 0, before, after, c.get("rationale") or "") if c else None)
    return Revision(d.get("after_segment") or 0, d.get("source") or "reflection", d.get("observation") or "",
                    [c for c in changes if c is not None], d.get("model") or "", d.get("error"))


# ------------------------------------------------------------------------------------ schedule

GRID_FIELDS = (
    Field("segment_frames", "integer", "frames per generation pass the plan was made for", minimum=1),
    Field("motion_frames", "integer", "frames consecutive passes overlap by", minimum=0),
)
SCHEDULE_FIELDS: tuple[Field, ...] = (
    Field("version", "integer", f"schedule format version (this build reads {SCHEDULE_VERSION})"),
    Field("fps", "number", "frames per second of the video the plan was made for", minimum=0),
    Field("duration", "number", "length of the audio in seconds", minimum=0),
    Field("shots", "array", "the shots, in time order, covering the audio", items=SHOT_FIELDS,
          max_length=MAX_SHOTS),
    Field("grid", "object", "the segment grid the shots were snapped to", required=False, nullable=True),
    Field("analysis", "object", "the Analyzer's output (persona, emotion, intent...)", required=False,
          nullable=True),
    Field("rationale", "string", "the Planner's reasoning for the whole plan", required=False, default="",
          max_length=20000),
    Field("planner", "object", "who made the plan: kind (llm / offline / manual), model, prompt versions",
          required=False, default={}),
    Field("history", "array", "Reflection's revisions, oldest first", required=False, default=[],
          items=REVISION_FIELDS, max_length=MAX_HISTORY),
    Field("meta", "object", "free-form data kept as-is (editors, notes)", required=False, default={}),
)


def schedule_json_schema() -> dict:
    """JSON schema of a schedule file (for editors and docs)."""
    schema = object_schema(SCHEDULE_FIELDS)
    schema["properties"]["grid"] = {**object_schema(GRID_FIELDS), "type": ["object", "null"]}
    schema["properties"]["version"]["enum"] = [SCHEDULE_VERSION]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "OmniHuman schedule", **schema}


@dataclass
class Schedule:
    """The plan for a whole video: shots over the audio's duration plus how they came about."""

    fps: float
    duration: float
    shots: list[Shot]
    version: int = SCHEDULE_VERSION
    grid: dict | None = None  # {"segment_frames": 121, "motion_frames": 5}
    analysis: dict | None = None
    rationale: str = ""
    planner: dict = field(default_factory=dict)
    history: list[Revision] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    # ---- (de)serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "version": self.version, "fps": self.fps, "duration": self.duration,
            "shots": [s.to_dict() for s in self.shots], "grid": dict(self.grid) if self.grid else None,
            "analysis": self.analysis, "rationale": self.rationale, "planner": dict(self.planner),
            "history": [r.to_dict() for r in self.history], "meta": dict(self.meta),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any, *, audio_duration: float | None = None) -> "Schedule":
        """Validate a schedule (hand-edited or planned); errors name the shot and the field."""
        errors: list[str] = []
        if not isinstance(data, dict):
            raise InputError(f"a schedule must be a JSON object, got {_type_name(data)}")
        version = data.get("version")
        if version != SCHEDULE_VERSION:
            if "version" not in data:
                raise InputError(f"schedule: 'version' is missing (this build reads version {SCHEDULE_VERSION})")
            raise InputError(
                f"schedule version {str(version)[:20]} is not supported; this build reads version "
                f"{SCHEDULE_VERSION} (re-plan with `python -m omnihuman_core plan`, or update the pack)"
            )
        d = check_object(data, SCHEDULE_FIELDS, "schedule", errors)
        grid = None
        if d.get("grid") is not None:
            grid = check_object(d["grid"], GRID_FIELDS, "grid", errors)
        shots = []
        for i, s in enumerate(d.get("shots") or []):
            shots.append(Shot(**{f.name: s.get(f.name, f.default) for f in SHOT_FIELDS}) if s else None)
        history = [_revision_from(r, f"history[{i}]", errors) for i, r in enumerate(d.get("history") or [])
                   if isinstance(r, dict)]
        # Cleaned values are None where a check failed; only check times when the types were right.
        if not errors:
            _check_times(shots, d["duration"], audio_duration, errors)
        if d.get("fps") is not None and d["fps"] <= 0 and not any(e.startswith("schedule.fps") for e in errors):
            errors.append("schedule.fps: must be positive")
        raise_errors(errors, "the schedule has errors")
        return cls(fps=d["fps"], duration=d["duration"], shots=shots, version=version, grid=grid,
                   analysis=d["analysis"], rationale=d["rationale"] or "", planner=d["planner"] or {},
                   history=history, meta=d["meta"] or {})

    @classmethod
    def from_json(cls, text: str, *, audio_duration: float | None = None, source: str = "schedule") -> "Schedule":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{source} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
        return cls.from_dict(data, audio_duration=audio_duration)

    @classmethod
    def load(cls, path: str | os.PathLike, *, audio_duration: float | None = None) -> "Schedule":
        p = Path(path)
        if not p.is_file():
            raise InputError(f"schedule file '{p}' does not exist; make one with `python -m omnihuman_core plan`")
        if p.stat().st_size > 64 * 1024 * 1024:
            raise InputError(f"schedule file '{p}' is over 64 MB; that is not a schedule")
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InputError(f"schedule file '{p}' is not UTF-8 text; is it the right file?") from None
        return cls.from_json(text, audio_duration=audio_duration, source=f"schedule file '{p}'")

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (a crash never leaves half a schedule)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=p.name + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(self.to_json())
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return p

    def validate(self, audio_duration: float | None = None) -> "Schedule":
        """Re-check an edited in-memory schedule; returns a validated copy."""
        return Schedule.from_dict(json.loads(json.dumps(self.to_dict())), audio_duration=audio_duration)

    # ---- the grid ------------------------------------------------------------------------------------
    def shot_indices(self, segments: Sequence, fps: float | None = None) -> list[int]:
        """For each segment, the shot that covers most of the time it adds (ties: the earlier shot)."""
        fps = fps or self.fps
        return [self.shot_between(*seg.time_span(fps)) for seg in segments]

    def shot_between(self, a: float, b: float) -> int:
        """The shot that covers most of the time [a, b) s (ties: the earlier shot); the rule that gives a
        render segment its prompt, and a training window its caption (train/data.py)."""
        if not self.shots:
            raise InputError("the schedule has no shots")
        best, best_overlap = 0, -math.inf
        for i, s in enumerate(self.shots):
            overlap = min(b, s.end) - max(a, s.start)
            if overlap <= 0:
                # No overlap (a segment past the last shot): rank by distance instead.
                overlap = -min(abs(s.start - b), abs(s.end - a), abs(s.start - a), abs(s.end - b)) - 1e6
            if overlap > best_overlap + 1e-9:
                best, best_overlap = i, overlap
        return best

    def segment_prompts(self, segments: Sequence, fps: float | None = None) -> list[str]:
        """Exactly one text prompt per generation segment: what the SegmentChainer consumes."""
        return [self.shots[i].text() for i in self.shot_indices(segments, fps)]

    def per_segment(self, segments: Sequence, fps: float | None = None) -> "Schedule":
        """The same plan with exactly one shot per segment, timed to the segment (same prompts)."""
        fps = fps or self.fps
        shots = [replace(self.shots[i], start=seg.time_span(fps)[0], end=seg.time_span(fps)[1])
                 for i, seg in zip(self.shot_indices(segments, fps), segments)]
        return replace(self, shots=shots, history=list(self.history))

    def normalize(
        self, segments: Sequence, fps: float | None = None, audio_duration: float | None = None,
    ) -> tuple["Schedule", list[str]]:
        """Clip to the audio, fill gaps with idle shots and snap shot boundaries to the segment grid.

        Returns the new schedule and notes on what changed (a shot shorter than a segment is
        absorbed by its neighbour: System 1 renders one prompt per segment).
        """
        fps = float(fps or self.fps)
        checked = self.validate(audio_duration)
        duration = float(audio_duration if audio_duration is not None else checked.duration)
        frame = 1.0 / fps
        notes: list[str] = []
        labelled: list[tuple[Shot, str]] = []
        cursor = 0.0
        for i, s in enumerate(checked.shots):
            s = replace(s)
            if s.end > duration:
                if s.end - duration > frame:
                    notes.append(f"shots[{i}] ends at {_num(s.end)} s, past the audio's {_num(duration)} s: clipped")
                s.end = duration
            if s.start - cursor > frame:
                notes.append(f"gap {_num(cursor)}-{_num(s.start)} s before shots[{i}]: filled with an idle shot")
                labelled.append((idle_shot(cursor, s.start), "an idle shot"))
            elif s.start > cursor:  # sub-frame gap: rounding, not intent
                if labelled:
                    labelled[-1][0].end = s.start
                else:
                    s.start = 0.0
            labelled.append((s, f"shots[{i}]"))
            cursor = s.end
        if duration - cursor > frame:
            notes.append(f"gap {_num(cursor)}-{_num(duration)} s at the end: filled with an idle shot")
            labelled.append((idle_shot(cursor, duration), "an idle shot"))
        elif labelled:
            labelled[-1][0].end = max(labelled[-1][0].end, duration)

        filled = replace(checked, shots=[s for s, _ in labelled])
        assignment = filled.shot_indices(segments, fps)
        shots: list[Shot] = []
        prev = None
        for seg, k in zip(segments, assignment):
            a, b = seg.time_span(fps)
            if k == prev:
                shots[-1].end = b
            else:
                shots.append(replace(filled.shots[k], start=a, end=b))
            prev = k
        for k, (s, label) in enumerate(labelled):
            if k not in assignment:
                notes.append(
                    f"{label} ({_num(s.start)}-{_num(s.end)} s) covers less of any segment than its "
                    f"neighbours and was merged into them (one prompt per segment)"
                )
        grid = dict(checked.grid or {})
        if len(segments) > 1:  # the first segment is a full pass: its length is the setting
            grid = {"segment_frames": segments[0].end - segments[0].start, "motion_frames": segments[1].motion_frames}
        elif segments:  # audio shorter than one pass says nothing about the setting: keep the plan's
            grid = {"segment_frames": grid.get("segment_frames", segments[0].render_frames),
                    "motion_frames": grid.get("motion_frames", 0)}
        out = replace(checked, shots=shots, fps=fps, duration=duration, grid=grid)
        return out, notes


def _check_times(shots: list[Shot], duration: float, audio_duration: float | None, errors: list[str]) -> None:
    """Times must be ordered, non-overlapping and inside the audio; gaps are allowed (normalize fills them)."""
    if not shots:
        errors.append("schedule.shots: the schedule has no shots; plan at least one")
        return
    if duration <= 0:
        errors.append("schedule.duration: must be positive")
        return
    limit, whose = duration, f"the schedule's duration ({_num(duration)} s)"
    if audio_duration is not None:
        if abs(duration - audio_duration) > TIME_TOLERANCE_S:
            errors.append(
                f"schedule.duration: the schedule was planned for {_num(duration)} s of audio but this audio "
                f"is {_num(audio_duration)} s; re-plan it for this audio or edit its times"
            )
        limit, whose = audio_duration, f"the audio's {_num(audio_duration)} s"
    prev_end = None
    for i, s in enumerate(shots):
        where = f"shots[{i}]"
        if s.end <= s.start:
            errors.append(f"{where}.end: {_num(s.end)} s is not after its start {_num(s.start)} s")
        if s.start >= limit:
            errors.append(f"{where}.start: {_num(s.start)} s is at or past the end ({whose})")
        elif s.end > limit + TIME_TOLERANCE_S:
            errors.append(f"{where}.end: {_num(s.end)} s is past {whose}")
        if prev_end is not None and s.start < prev_end - 1e-6:
            if s.start < shots[i - 1].start:
                errors.append(f"{where}.start: {_num(s.start)} s is before shots[{i - 1}]'s start; "
                              "list the shots in time order")
            else:
                errors.append(f"{where}.start: {_num(s.start)} s overlaps shots[{i - 1}], which ends at "
                              f"{_num(prev_end)} s")
        prev_end = s.end if prev_end is None else max(prev_end, s.end)


def load_schedule(
    path: str | os.PathLike, segments: Sequence, fps: float, audio_duration: float,
) -> tuple[Schedule, list[str]]:
    """Load, validate against the audio and normalise to the render grid: what `generate --schedule` does."""
    return Schedule.load(path, audio_duration=audio_duration).normalize(segments, fps, audio_duration)


def shots_llm_schema(fields: Iterable[str]) -> dict:
    """JSON schema (LLM-safe) of one shot restricted to `fields`, from the same SHOT_FIELDS table."""
    return object_schema([replace(SHOT_FIELD[name], nullable=False) for name in fields], llm=True)
