"""System 2 nodes: the LLM endpoint, Analyzer, Planner, the Schedule Editor, Reflection settings and
the schedule as plain prompts."""

from __future__ import annotations

import hashlib
import logging
import re

from omnihuman_core.errors import InputError

from .types import (ANALYSIS, LLM, MODEL, REFLECTION, SCHEDULE, SCHEDULE_EDITOR_WIDGET, AnalysisResult,
                    ReflectionSettings, audio_to_core, category, image_to_pil)

log = logging.getLogger("omnihuman")

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_CONVENTIONAL_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,63}$")  # safe to repeat in a message


def schedule_segments(schedule):
    """The segment grid a schedule was planned on (its fps, duration and grid)."""
    from omnihuman_core.agents.defaults import DEFAULT_MOTION_FRAMES, DEFAULT_SEGMENT_FRAMES
    from omnihuman_core.pipeline import frame_count, plan_segments

    grid = schedule.grid or {}
    n = max(1, frame_count(schedule.duration, schedule.fps))
    return plan_segments(n, int(grid.get("segment_frames", DEFAULT_SEGMENT_FRAMES)),
                         int(grid.get("motion_frames", DEFAULT_MOTION_FRAMES)))


class OmniHumanLLM:
    DESCRIPTION = ("An OpenAI-compatible chat endpoint for the System 2 agents (OpenAI, Ollama, vLLM, LM Studio, "
                   "llama.cpp). No widget holds an API key: give the NAME of an environment variable that does. "
                   "Answers are cached on disk, so a repeated run sends no requests.")
    CATEGORY = category("system2")
    FUNCTION = "make"
    RETURN_TYPES = (LLM,)
    RETURN_NAMES = ("llm",)
    OUTPUT_TOOLTIPS = ("The endpoint settings for the Analyzer, Planner and Reflection.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "base_url": ("STRING", {"default": "http://localhost:11434/v1",
                                        "tooltip": "The API's base URL, usually ending in /v1: "
                                                   "http://localhost:11434/v1 (Ollama), http://localhost:8000/v1 "
                                                   "(vLLM), http://localhost:1234/v1 (LM Studio), "
                                                   "https://api.openai.com/v1."}),
                "model": ("STRING", {"default": "qwen2.5vl:7b",
                                     "tooltip": "The model name as the server knows it; a vision model sees the "
                                                "reference image and the rendered frames."}),
                "api_key_env": ("STRING", {"default": "",
                                           "tooltip": "NAME of the environment variable that holds the API key "
                                                      "(e.g. OPENAI_API_KEY), never the key itself. Empty for "
                                                      "local servers."}),
                "temperature": ("FLOAT", {"default": 0.2, "min": 0.0, "max": 2.0, "step": 0.05,
                                          "tooltip": "Sampling temperature; low values give steadier plans."}),
                "timeout": ("FLOAT", {"default": 120.0, "min": 1.0, "max": 3600.0, "step": 1.0,
                                      "tooltip": "Seconds to wait for one answer (retries follow on timeouts)."}),
                "cache": ("BOOLEAN", {"default": True,
                                      "tooltip": "Keep answers on disk (keyed by the model, the prompts and every "
                                                 "input) so the same request is never sent twice."}),
                "vision": ("BOOLEAN", {"default": True,
                                       "tooltip": "Send images to the model. Turn off for text-only models (then "
                                                  "give the Analyzer a caption)."}),
            },
        }

    def make(self, base_url, model, api_key_env, temperature, timeout, cache, vision):
        from omnihuman_core.agents.llm import LLMConfig, default_cache_dir

        url, name, var = base_url.strip(), model.strip(), api_key_env.strip()
        if not re.match(r"^https?://", url):
            raise InputError("OmniHuman LLM base_url must be an http(s) URL such as http://localhost:11434/v1 "
                             "(Ollama) or https://api.openai.com/v1")
        if not name:
            raise InputError("OmniHuman LLM model is empty; give the model name the endpoint serves (e.g. gpt-4o)")
        if var and not _ENV_NAME.match(var):
            # Never repeat the value: people paste the key itself here.
            raise InputError("OmniHuman LLM api_key_env takes the NAME of an environment variable that holds the "
                             "key (e.g. OPENAI_API_KEY), not the key itself; set the key in that variable before "
                             "starting ComfyUI")
        config = LLMConfig(base_url=url, model=name, api_key_env=var or None, timeout=float(timeout),
                           temperature=float(temperature), vision=bool(vision),
                           cache_dir=default_cache_dir() if cache else None)
        try:
            config.read_key()  # a missing key variable is reported now, not in the middle of a render
        except InputError:
            shown = var if _CONVENTIONAL_ENV_NAME.match(var) else "named in api_key_env"
            raise InputError(f"OmniHuman LLM: the environment variable {shown} is not set or empty; set the API "
                             "key in it before starting ComfyUI (local servers need no key: leave api_key_env "
                             "empty)") from None
        return (config,)


class OmniHumanAnalyzer:
    DESCRIPTION = ("The Analyzer (System 2): reads the reference image, the audio and your prompt and writes a "
                   "structured analysis (persona, speech content, emotion over time, intent, setting). Without an "
                   "LLM the Planner plans offline from the audio and the prompt alone.")
    CATEGORY = category("system2")
    FUNCTION = "analyze"
    RETURN_TYPES = (ANALYSIS,)
    RETURN_NAMES = ("analysis",)
    OUTPUT_TOOLTIPS = ("The analysis and the inputs it was made from, for the Planner.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The reference image of the character (the first one of a batch)."}),
                "audio": ("AUDIO", {"tooltip": "The speech or singing the video follows."}),
                "prompt": ("STRING", {"default": "", "multiline": True,
                                      "tooltip": "What the character should do, in plain words (optional): "
                                                 "'reads the letter, smiles, then waves goodbye'."}),
            },
            "optional": {
                "llm": (LLM, {"tooltip": "The LLM endpoint; without it no request is made (offline planning)."}),
                "caption": ("STRING", {"default": "", "multiline": True,
                                       "tooltip": "A description of the image; needed when the LLM cannot see "
                                                  "images, else the LLM writes one."}),
                "transcript": ("STRING", {"default": "", "multiline": True,
                                          "tooltip": "What is said in the audio, if you have it."}),
            },
        }

    def analyze(self, image, audio, prompt, llm=None, caption="", transcript=""):
        from omnihuman_core.agents import PlanInputs

        inputs = PlanInputs.load(image_to_pil(image), audio_to_core(audio), prompt=prompt, transcript=transcript,
                                 caption=caption)
        analysis = None
        if llm is not None:
            from omnihuman_core.agents import Analyzer, LLMClient

            analysis = Analyzer(LLMClient(llm)).analyze(inputs)
        return (AnalysisResult(inputs, analysis, llm.model if llm is not None else None),)


class OmniHumanPlanner:
    DESCRIPTION = ("The Planner (System 2): turns the analysis into a schedule, one shot per generation segment of "
                   "the model (expression, action, camera, and the prompt that conditions it). Without an LLM: the "
                   "deterministic offline planner (speaking vs listening from the audio, actions from the prompt). "
                   "The result stays cached while you edit the schedule downstream.")
    CATEGORY = category("system2")
    FUNCTION = "plan"
    RETURN_TYPES = (SCHEDULE,)
    RETURN_NAMES = ("schedule",)
    OUTPUT_TOOLTIPS = ("The schedule: shots on the model's segment grid.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "analysis": (ANALYSIS, {"tooltip": "The Analyzer's output."}),
                "audio": ("AUDIO", {"tooltip": "The same audio the Analyzer read (checked)."}),
                "model": (MODEL, {"tooltip": "The OmniHuman model: its fps and segment length give the grid the "
                                             "shots are planned on."}),
            },
            "optional": {
                "llm": (LLM, {"tooltip": "The LLM endpoint; without it the offline planner plans."}),
            },
        }

    def plan(self, analysis, audio, model, llm=None):
        from omnihuman_core.agents import plan_grid, plan_schedule

        inputs = analysis.inputs
        waveform = audio_to_core(audio).waveform
        if hashlib.sha256(waveform.numpy().tobytes()).hexdigest() != inputs.fingerprint()["audio_sha256"]:
            raise InputError("the Planner's audio is not the audio the Analyzer read; connect the same Load Audio "
                             "node to both")
        s = model.settings
        if llm is None:
            return (plan_schedule(inputs, None, fps=s.fps, segment_frames=s.segment_frames,
                                  motion_frames=s.motion_frames),)
        from omnihuman_core.agents import Analyzer, LLMClient, Planner

        client = LLMClient(llm)
        found = analysis.analysis
        if found is None:  # the Analyzer ran offline: analyse with this LLM first (cached like every answer)
            found = Analyzer(client).analyze(inputs)
        segments = plan_grid(inputs.duration, s.fps, s.segment_frames, s.motion_frames)
        grid = {"segment_frames": int(s.segment_frames), "motion_frames": int(s.motion_frames)}
        schedule = Planner(client).plan(found, inputs, segments, s.fps, grid)
        return (schedule.validate(inputs.duration),)


class OmniHumanScheduleEditor:
    DESCRIPTION = ("Shows the Planner's schedule as an editable table: shots with times, speaking, expression, "
                   "action, camera and prompt; add, split, merge, delete; a timeline against the audio. Edit and "
                   "queue again: only this node and what follows run again (no new LLM call). 'Use planner's "
                   "version' drops your edits.")
    CATEGORY = category("system2")
    FUNCTION = "edit"
    OUTPUT_NODE = True  # shows the plan even when nothing renders it yet
    RETURN_TYPES = (SCHEDULE,)
    RETURN_NAMES = ("schedule",)
    OUTPUT_TOOLTIPS = ("The edited schedule (or the Planner's, when there are no edits), snapped to the grid.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "schedule": (SCHEDULE, {"tooltip": "The Planner's schedule."}),
                "schedule_json": ("STRING", {
                    "default": "", "multiline": True, "widgetType": SCHEDULE_EDITOR_WIDGET,
                    "tooltip": "Your edited schedule as JSON (the editor writes it); empty = no edits, the "
                               "Planner's schedule passes through. Errors name the shot and the field."}),
            },
        }

    def edit(self, schedule, schedule_json):
        from omnihuman_core.schedule import Schedule

        out = schedule
        if isinstance(schedule_json, str) and schedule_json.strip():
            try:
                edited = Schedule.from_json(schedule_json, audio_duration=schedule.duration,
                                            source="the edited schedule")
            except InputError as e:
                raise InputError(f"OmniHuman Schedule Editor: {e}\n(fix it in the editor, or press \"Use planner's "
                                 "version\" to drop your edits)") from None
            out, notes = edited.normalize(schedule_segments(schedule), schedule.fps, schedule.duration)
            for note in notes:
                log.info("OmniHuman Schedule Editor: %s", note)
        return {"ui": {"schedule": [out.to_json()], "planner_schedule": [schedule.to_json()]}, "result": (out,)}


class OmniHumanReflection:
    DESCRIPTION = ("Reflection (System 2): after each rendered segment the LLM looks at the last frames and "
                   "revises the shots still to render (a prop that went missing is not used again). Costs one "
                   "request per segment; connect to the Segment Chainer.")
    CATEGORY = category("system2")
    FUNCTION = "make"
    RETURN_TYPES = (REFLECTION,)
    RETURN_NAMES = ("reflection",)
    OUTPUT_TOOLTIPS = ("Reflection settings for the Segment Chainer.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "enabled": ("BOOLEAN", {"default": True,
                                        "tooltip": "Off: the chainer renders the schedule as planned."}),
                "frames_to_send": ("INT", {"default": 2, "min": 1, "max": 8,
                                           "tooltip": "How many of the last rendered frames the LLM sees."}),
                "on_error": (["keep", "raise"], {"default": "keep",
                                                 "tooltip": "When a Reflection request fails: keep the plan and go "
                                                            "on rendering, or stop with the error."}),
            },
            "optional": {
                "llm": (LLM, {"tooltip": "The LLM endpoint (a vision model); needed when enabled."}),
            },
        }

    def make(self, enabled, frames_to_send, on_error, llm=None):
        if enabled and llm is None:
            raise InputError("OmniHuman Reflection needs an LLM: connect an OmniHuman LLM node, or set enabled to off")
        return (ReflectionSettings(llm if enabled else None, int(frames_to_send), on_error),)


class OmniHumanScheduleToPrompts:
    DESCRIPTION = ("The schedule as text: one prompt per generation segment (a list, for per-segment nodes) and "
                   "all of them in one text (consecutive repeats once), e.g. for a core video model's prompt.")
    CATEGORY = category("system2")
    FUNCTION = "convert"
    RETURN_TYPES = ("STRING", "STRING")
    RETURN_NAMES = ("prompts", "text")
    OUTPUT_IS_LIST = (True, False)
    OUTPUT_TOOLTIPS = ("One prompt per segment, in order.", "The prompts joined, one per line.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"schedule": (SCHEDULE, {"tooltip": "A schedule (Planner or Schedule Editor)."})}}

    def convert(self, schedule):
        prompts = schedule.segment_prompts(schedule_segments(schedule), schedule.fps)
        lines = [p for i, p in enumerate(prompts) if i == 0 or p != prompts[i - 1]]
        return (prompts, "\n".join(lines))
