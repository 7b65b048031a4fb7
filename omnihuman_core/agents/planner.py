"""The Planner (paper §3.2): analysis + reference image + the segment grid -> a Schedule, one Shot per segment.

Timing and speaking/idle are facts of the audio, not choices: the model is shown them per segment
and whatever it writes there is overwritten with the measured values.
"""

from __future__ import annotations

import json
from typing import Sequence

from ..schedule import (SCHEDULE_VERSION, SHOT_FIELD, Field, Schedule, Shot, check_object, object_schema,
                        shots_llm_schema)
from .analyzer import Analysis
from .audio_facts import segment_table
from .inputs import PlanInputs
from .llm import LLMClient, data_block, image_part, text_part
from .prompts import load_prompt

PLAN_SHOT_FIELDS = ("start", "end", "speaking", "expression", "action", "camera", "prompt", "rationale")
PLAN_RATIONALE = Field("rationale", "string", "your reasoning for the plan as a whole", max_length=6000)


def plan_schema() -> dict:
    """What the Planner must return: a rationale and the shots, from the Schedule's own field table."""
    schema = object_schema([PLAN_RATIONALE], llm=True)
    schema["properties"]["shots"] = {"type": "array", "description": "exactly one shot per segment, in order",
                                     "items": shots_llm_schema(PLAN_SHOT_FIELDS)}
    schema["required"].append("shots")
    return schema


def grid_rows(inputs: PlanInputs, segments: Sequence, fps: float) -> list[dict]:
    """The segment table the Planner sees: fixed times, speaking from the audio, loudness and pitch."""
    return segment_table(inputs.facts, [seg.time_span(fps) for seg in segments])


def check_plan(data: dict, rows: list[dict]) -> tuple[str, list[dict]]:
    """Validate the Planner's JSON: one valid shot per segment (ValueError lists what is wrong)."""
    errors: list[str] = []
    top = check_object({"rationale": data.get("rationale")} if isinstance(data, dict) else data,
                       [PLAN_RATIONALE], "plan", errors)
    shots = data.get("shots") if isinstance(data, dict) else None
    if not isinstance(shots, list):
        errors.append("plan.shots: expected a list of shots")
        raise ValueError("; ".join(errors))
    if isinstance(data, dict):
        extra = set(data) - {"rationale", "shots"}
        if extra:
            errors.append(f"plan: unknown field(s) {', '.join(sorted(map(str, extra)))[:100]}")
    if len(shots) != len(rows):
        errors.append(f"plan.shots: expected exactly {len(rows)} shots (one per segment), got {len(shots)}")
    item_fields = [SHOT_FIELD[k] for k in PLAN_SHOT_FIELDS]
    clean = [check_object(s, item_fields, f"shots[{i}]", errors) for i, s in enumerate(shots[:len(rows) + 5])]
    if errors:
        raise ValueError("; ".join(errors[:12]))
    return top["rationale"], clean


class Planner:
    """Turns the analysis into a schedule of shots on the segment grid."""

    def __init__(self, client: LLMClient):
        self.client = client
        self.data_rules = load_prompt("data_rules")

    def version(self) -> str:
        return f"{load_prompt('planner').version}+{self.data_rules.version}"

    def messages(self, analysis: Analysis, inputs: PlanInputs, rows: list[dict]) -> list[dict]:
        cfg = self.client.config
        system = load_prompt("planner").render(schema=json.dumps(plan_schema()), n_segments=len(rows),
                                               data_rules=self.data_rules.text)
        parts = []
        if cfg.vision:
            parts += [text_part("Reference image of the character:"), image_part(inputs.image, cfg.image_max_side)]
        parts.append(text_part(data_block("analysis", analysis.summary(), 20_000)))
        parts.append(text_part(data_block("user prompt", inputs.prompt or "(none)", 5000)))
        table = "\n".join(json.dumps(r) for r in rows)
        parts.append(text_part(data_block("segments (fixed: start, end, speaking)", table, 200_000)))
        parts.append(text_part(f"Plan exactly {len(rows)} shots, one per segment, and reply with the JSON object."))
        return [{"role": "system", "content": system}, {"role": "user", "content": parts}]

    def plan(self, analysis: Analysis, inputs: PlanInputs, segments: Sequence, fps: float,
             grid: dict | None = None) -> Schedule:
        """One Shot per segment; times and speaking from the grid and the audio, content from the LLM."""
        rows = grid_rows(inputs, segments, fps)
        rationale, shots = self.client.complete_json(
            name="plan", prompt_version=self.version(), messages=self.messages(analysis, inputs, rows),
            schema=plan_schema(), check=lambda d: check_plan(d, rows))
        planned = [
            Shot(start=seg.time_span(fps)[0], end=seg.time_span(fps)[1],
                 speaking=r["speaking"], expression=s["expression"], action=s["action"], camera=s["camera"],
                 prompt=s["prompt"], rationale=s["rationale"])
            for seg, r, s in zip(segments, rows, shots)
        ]
        return Schedule(
            fps=float(fps), duration=inputs.duration, shots=planned, version=SCHEDULE_VERSION, grid=grid,
            analysis=analysis.to_dict(), rationale=rationale,
            planner={"kind": "llm", "model": self.client.config.model,
                     "prompts": {"analyzer": load_prompt("analyzer").version, "caption": load_prompt("caption").version,
                                 "planner": load_prompt("planner").version, "data_rules": self.data_rules.version},
                     "audio": ("audio part + " if self.client.wants_audio(inputs.duration) else "")
                              + ("transcript + facts" if inputs.transcript else "facts"),
                     "inputs": inputs.fingerprint()},
        )
