"""System 2 (paper §3.2): MLLM agents that reason over the image, the audio and the prompt.

`Analyzer` -> `Planner` -> `Schedule` (one Shot per generation segment), `Reflection` between
segments, `OfflinePlanner` as the no-network fallback, `LLMClient` for any OpenAI-compatible
endpoint. Names are imported on first use, so `import omnihuman_core.agents` stays cheap.
"""

from importlib import import_module

_EXPORTS = {
    "LLMClient": ".llm", "LLMConfig": ".llm", "LLMError": ".llm", "LLMUnreachable": ".llm",
    "LLMRefusal": ".llm", "LLMCapabilityError": ".llm", "LLMInvalidReply": ".llm", "DiskCache": ".llm",
    "Analyzer": ".analyzer", "Analysis": ".analyzer",
    "Planner": ".planner",
    "Reflection": ".reflection", "ReflectionHook": ".reflection",
    "OfflinePlanner": ".offline",
    "PlanInputs": ".inputs",
    "AudioFacts": ".audio_facts", "compute_audio_facts": ".audio_facts",
    "plan_schedule": ".system2", "plan_grid": ".system2",
    "transcribe": ".transcript",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
