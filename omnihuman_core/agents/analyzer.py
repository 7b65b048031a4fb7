"""The Analyzer (paper §3.2): image + caption + audio (or transcript + facts) + prompt -> one JSON analysis.

A caption comes first (a separate call, the user's `--caption`, or a plain note when the model
cannot see), then a chain-of-thought prompt whose reasoning is written into the JSON's first field.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from ..schedule import TIME_TOLERANCE_S, Field, check_object, object_schema
from .inputs import MAX_CAPTION_CHARS, PlanInputs
from .llm import LLMClient, audio_part, data_block, image_part, text_part
from .prompts import load_prompt

EMOTION_FIELDS = (
    Field("start", "number", "seconds", minimum=0),
    Field("end", "number", "seconds", minimum=0),
    Field("emotion", "string", "the emotion and its intensity, e.g. 'growing excitement'", max_length=120),
)
ANALYSIS_FIELDS = (
    Field("reasoning", "string", "your step-by-step reasoning over the inputs, before the conclusions",
          max_length=6000),
    Field("persona", "string", "who the character is: age, role, personality, manner", max_length=600),
    Field("language_style", "string", "how they speak: register, pace, tone", max_length=300),
    Field("speech_content", "string", "what is said, summarised (or 'unknown')", max_length=3000),
    Field("emotion_over_time", "array", "the emotion over time, in order, covering the audio",
          items=EMOTION_FIELDS, max_length=60),
    Field("intent", "string", "what the character wants to achieve and whom they address", max_length=600),
    Field("environment", "string", "the setting and the objects in it that actions can use", max_length=600),
)
CAPTION_FIELDS = (Field("caption", "string", "the objective description of the image", max_length=MAX_CAPTION_CHARS),)


def _fail(errors: list[str]) -> None:
    if errors:
        raise ValueError("; ".join(errors[:12]))


@dataclass
class Analysis:
    """The Analyzer's structured output (stored in the schedule as `analysis`)."""

    persona: str
    language_style: str
    speech_content: str
    emotion_over_time: list[dict]
    intent: str
    environment: str
    reasoning: str = ""
    caption: str = ""
    source: str = "llm"  # "llm" or "offline"
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_reply(cls, data: dict, duration: float, caption: str = "") -> "Analysis":
        """Validate the LLM's JSON (raises ValueError naming the fields, which goes into the repair request)."""
        errors: list[str] = []
        d = check_object(data, ANALYSIS_FIELDS, "analysis", errors)
        _fail(errors)
        prev = 0.0
        for i, e in enumerate(d["emotion_over_time"]):
            if e["end"] <= e["start"]:
                errors.append(f"analysis.emotion_over_time[{i}]: end {e['end']:g} is not after start {e['start']:g}")
            if e["start"] >= duration + TIME_TOLERANCE_S or e["end"] > duration + TIME_TOLERANCE_S:
                errors.append(f"analysis.emotion_over_time[{i}]: times must lie within the audio's {duration:.2f} s")
            if e["start"] < prev - TIME_TOLERANCE_S:
                errors.append(f"analysis.emotion_over_time[{i}]: out of time order")
            prev = e["end"]
        _fail(errors)
        return cls(caption=caption, **d)

    def summary(self) -> str:
        """The analysis as compact JSON for the Planner and Reflection (without the long reasoning)."""
        d = {k: v for k, v in self.to_dict().items() if k not in ("reasoning", "extra", "source")}
        return json.dumps(d, ensure_ascii=False, indent=1)


def analysis_schema() -> dict:
    return object_schema(ANALYSIS_FIELDS, llm=True)


class Analyzer:
    """Reasons over the inputs and writes the analysis the Planner works from."""

    def __init__(self, client: LLMClient):
        self.client = client
        self.data_rules = load_prompt("data_rules")

    def _version(self, name: str) -> str:
        return f"{load_prompt(name).version}+{self.data_rules.version}"

    def caption(self, inputs: PlanInputs) -> str:
        """The image caption: the user's, else a separate vision call, else a plain note."""
        if inputs.caption:
            return inputs.caption
        if not self.client.config.vision:
            w, h = inputs.image.size
            shape = "portrait" if h > w else "landscape" if w > h else "square"
            return (f"(no description: the model cannot see images and no caption was given; the image is "
                    f"{shape}, {w}x{h} px)")
        prompt = load_prompt("caption")
        schema = object_schema(CAPTION_FIELDS, llm=True)
        messages = [
            {"role": "system", "content": prompt.render(schema=json.dumps(schema), data_rules=self.data_rules.text)},
            {"role": "user", "content": [text_part("Describe this reference image."),
                                         image_part(inputs.image, self.client.config.image_max_side)]},
        ]

        def check(data: dict) -> str:
            errors: list[str] = []
            d = check_object(data, CAPTION_FIELDS, "caption", errors)
            _fail(errors)
            return d["caption"]

        return self.client.complete_json(name="caption", prompt_version=self._version("caption"),
                                         messages=messages, schema=schema, check=check)

    def messages(self, inputs: PlanInputs, caption: str) -> list[dict]:
        """The Analyzer's conversation: system prompt, then the inputs as parts and data blocks."""
        cfg = self.client.config
        schema = analysis_schema()
        system = load_prompt("analyzer").render(schema=json.dumps(schema), duration=f"{inputs.duration:.2f}",
                                                data_rules=self.data_rules.text)
        parts = []
        if cfg.vision:
            parts += [text_part("Reference image of the character:"), image_part(inputs.image, cfg.image_max_side)]
        parts.append(text_part(data_block("image caption", caption, 4000)))
        if self.client.wants_audio(inputs.duration):
            parts += [text_part("The audio clip:"), audio_part(inputs.waveform, inputs.sample_rate)]
        parts.append(text_part(data_block("transcript", inputs.transcript or "(no transcript available)", 60_000)))
        parts.append(text_part(data_block("audio facts", inputs.facts.to_text(), 20_000)))
        parts.append(text_part(data_block("user prompt", inputs.prompt or "(none)", 5000)))
        parts.append(text_part("Analyse these inputs and reply with the JSON object."))
        return [{"role": "system", "content": system}, {"role": "user", "content": parts}]

    def analyze(self, inputs: PlanInputs) -> Analysis:
        """Caption, then the chain-of-thought analysis, validated."""
        caption = self.caption(inputs)
        return self.client.complete_json(
            name="analysis", prompt_version=self._version("analyzer"), messages=self.messages(inputs, caption),
            schema=analysis_schema(), check=lambda d: Analysis.from_reply(d, inputs.duration, caption))
