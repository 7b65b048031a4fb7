"""Reflection (paper §3.2, Figure 6): after a segment, re-plan the shots still to render.

The Planner sees the last rendered frames, the reference image and the plan, and revises the
remaining shots (a letter that vanished is not rubbed in the next shot). Rendered shots and the
timing grid never change: the model only returns content fields for the segments after the one
just rendered, and every step is recorded in the schedule's history. It plugs into the
SegmentChainer as `hook(report) -> prompts | None`.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from ..schedule import CONTENT_FIELDS, SHOT_FIELD, Field, Revision, Schedule, ShotRevision, check_object, object_schema
from .llm import LLMClient, LLMError, data_block, image_part, text_part
from .prompts import load_prompt

log = logging.getLogger(__name__)

OBSERVATION = Field("observation", "string", "what the last frames show compared with the plan", max_length=1000)
REVISED_SHOT_FIELDS = (
    Field("segment", "integer", "index of the segment this shot is for", minimum=0),
    *(replace(SHOT_FIELD[k], required=True) for k in CONTENT_FIELDS),
    replace(SHOT_FIELD["rationale"], required=True, description="one line: what changed and why, or 'unchanged'"),
)
ANALYSIS_KEYS = ("persona", "language_style", "speech_content", "emotion_over_time", "intent", "environment", "caption")


def reflection_schema() -> dict:
    schema = object_schema([OBSERVATION], llm=True)
    schema["properties"]["shots"] = {"type": "array", "description": "one entry per remaining segment, in order",
                                     "items": object_schema(REVISED_SHOT_FIELDS, llm=True)}
    schema["required"].append("shots")
    return schema


def check_revision(data: Any, first: int, n: int) -> tuple[str, list[dict]]:
    """Validate the reply: exactly segments first..n-1 in order, content within limits."""
    errors: list[str] = []
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object with 'observation' and 'shots'")
    top = check_object({"observation": data.get("observation")}, [OBSERVATION], "reflection", errors)
    extra = set(data) - {"observation", "shots"}
    if extra:
        errors.append(f"reflection: unknown field(s) {', '.join(sorted(map(str, extra)))[:100]}")
    shots = data.get("shots")
    if not isinstance(shots, list):
        raise ValueError("; ".join(errors + ["reflection.shots: expected a list"]))
    want = list(range(first, n))
    clean = [check_object(s, REVISED_SHOT_FIELDS, f"shots[{i}]", errors) for i, s in enumerate(shots[:len(want) + 5])]
    got = [c.get("segment") for c in clean]
    if not errors and got != want:
        errors.append(f"reflection.shots: expected one entry for each of segments {first}..{n - 1} in order, "
                      f"got segments {got[:20]}; rendered segments cannot change")
    if errors:
        raise ValueError("; ".join(errors[:12]))
    return top["observation"], clean


def _pick_frames(frames: np.ndarray, count: int) -> list[np.ndarray]:
    """Up to `count` evenly spaced frames of the tail, always including the last."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[0] == 0:
        raise ValueError(f"last_frames must be uint8 [k, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
    k = frames.shape[0]
    idx = sorted({int(i) for i in np.linspace(0, k - 1, min(count, k)).round()}) if count > 1 else [k - 1]
    return [frames[i] for i in idx]


class Reflection:
    """Revises the remaining shots of a per-segment schedule from what was actually rendered."""

    def __init__(self, client: LLMClient, *, frames_to_send: int = 2):
        self.client = client
        self.frames_to_send = max(1, int(frames_to_send))
        self.data_rules = load_prompt("data_rules")

    def version(self) -> str:
        return f"{load_prompt('reflection').version}+{self.data_rules.version}"

    def messages(self, schedule: Schedule, reference_image, index: int, last_frames: np.ndarray) -> list[dict]:
        n = len(schedule.shots)
        cfg = self.client.config
        schema = reflection_schema()
        system = load_prompt("reflection").render(
            index=index, n_segments=n, first_open=index + 1, last_segment=n - 1, schema=json.dumps(schema),
            data_rules=self.data_rules.text)
        parts = []
        if cfg.vision:
            parts += [text_part("Reference image of the character:"), image_part(reference_image, cfg.image_max_side)]
            parts.append(text_part(f"The last rendered frames of segment {index} (oldest first):"))
            parts += [image_part(f, cfg.image_max_side) for f in _pick_frames(last_frames, self.frames_to_send)]
        else:
            parts.append(text_part("(the model cannot see images: judge from the plan alone)"))
        analysis = {k: v for k, v in (schedule.analysis or {}).items() if k in ANALYSIS_KEYS}
        parts.append(text_part(data_block("analysis", json.dumps(analysis, ensure_ascii=False), 20_000)))
        plan = []
        for i, s in enumerate(schedule.shots):
            plan.append(json.dumps({"segment": i, "status": "rendered" if i <= index else "to render",
                                    "start": round(s.start, 3), "end": round(s.end, 3), "speaking": s.speaking,
                                    **s.content()}, ensure_ascii=False))
        parts.append(text_part(data_block("plan", "\n".join(plan), 400_000)))
        parts.append(text_part(f"Revise segments {index + 1} to {n - 1} and reply with the JSON object."))
        return [{"role": "system", "content": system}, {"role": "user", "content": parts}]

    def revise(self, schedule: Schedule, reference_image, index: int, last_frames: np.ndarray) -> tuple[Schedule, Revision]:
        """One Reflection step on a schedule with one shot per segment; returns the new schedule and its record."""
        n = len(schedule.shots)
        if not 0 <= index < n - 1:
            raise ValueError(f"nothing to revise after segment {index} of {n}")
        observation, revised = self.client.complete_json(
            name="reflection", prompt_version=self.version(),
            messages=self.messages(schedule, reference_image, index, last_frames),
            schema=reflection_schema(), check=lambda d: check_revision(d, index + 1, n))
        shots = list(schedule.shots)
        changes = []
        for r in revised:
            j = r["segment"]
            before = shots[j].content()
            after = {k: r[k] for k in CONTENT_FIELDS}
            if after != before:
                shots[j] = replace(shots[j], **after, rationale=r["rationale"])
                changes.append(ShotRevision(j, before, after, r["rationale"]))
        revision = Revision(after_segment=index, source="reflection", observation=observation, changes=changes,
                            model=self.client.config.model)
        return replace(schedule, shots=shots, history=[*schedule.history, revision]), revision

    def hook(self, schedule: Schedule, reference_image, *, fps: float | None = None,
             save_to: str | os.PathLike | None = None, on_error: str = "keep") -> "ReflectionHook":
        """The SegmentChainer hook for this schedule (see ReflectionHook)."""
        return ReflectionHook(self, schedule, reference_image, fps=fps, save_to=save_to, on_error=on_error)


class ReflectionHook:
    """`hook(report) -> prompts | None` for the SegmentChainer.

    Keeps the schedule (one shot per segment of the render grid) with its revision history in
    `.schedule`, saved to `save_to` after every step. A failed LLM step keeps the plan and is recorded
    (`on_error="keep"`, so a long render is not lost to a network hiccup) or raises (`"raise"`).
    """

    def __init__(self, reflection: Reflection, schedule: Schedule, reference_image, *, fps: float | None = None,
                 save_to: str | os.PathLike | None = None, on_error: str = "keep"):
        if on_error not in ("keep", "raise"):
            raise ValueError(f"on_error must be 'keep' or 'raise', got {on_error!r}")
        self.reflection = reflection
        self.original = schedule
        self.schedule: Schedule | None = None
        self.reference_image = reference_image
        self.fps = float(fps or schedule.fps)
        self.save_to = save_to
        self.on_error = on_error

    def _save(self) -> None:
        if self.save_to is not None and self.schedule is not None:
            self.schedule.save(self.save_to)

    def _sync(self, index: int, prompts: Sequence[str]) -> None:
        """Adopt prompts the chainer already holds (a resumed work folder keeps an earlier run's Reflection)."""
        changes = []
        shots = list(self.schedule.shots)
        for j in range(min(len(shots), len(prompts))):
            p = prompts[j]
            if isinstance(p, str) and p.strip() and p.strip() != shots[j].text():
                before = shots[j].content()
                shots[j] = replace(shots[j], prompt=p.strip())
                changes.append(ShotRevision(j, before, shots[j].content(), "prompt taken from the render's work folder"))
        if changes:
            self.schedule = replace(self.schedule, shots=shots, history=[
                *self.schedule.history, Revision(index, "sync", "prompts in use differ from the schedule", changes)])

    def __call__(self, report) -> list[str] | None:
        segments = list(report.segments)
        n = len(segments)
        if self.schedule is None or len(self.schedule.shots) != n:
            self.schedule = self.original.per_segment(segments, self.fps)
        self._sync(report.index, report.prompts)
        index = report.index
        if index >= n - 1:
            self._save()
            return None
        try:
            new, revision = self.reflection.revise(self.schedule, self.reference_image, index, report.last_frames)
        except LLMError as e:
            if self.on_error == "raise":
                raise
            log.warning("Reflection after segment %d failed, keeping the plan: %s", index, e)
            self.schedule = replace(self.schedule, history=[
                *self.schedule.history,
                Revision(index, "reflection", "", [], self.reflection.client.config.model, error=str(e)[:2000])])
            self._save()
            return None
        self.schedule = new
        self._save()
        log.info("Reflection after segment %d: %d shot(s) revised", index, len(revision.changes))
        prompts = list(report.prompts)
        return prompts[:index + 1] + [s.text() for s in new.shots[index + 1:n]] + prompts[n:]
