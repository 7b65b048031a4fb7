"""ComfyUI node classes, one file per stage: thin adapters over `omnihuman_core`.

Importing this package is cheap: no model is loaded and no optional dependency (openai, transformers,
PyAV, torchaudio) is imported until a node runs.
"""

import os
import sys

# ComfyUI imports the pack by file path, so the library beside it is not importable by name yet.
# Appended, not prepended: the pack's top-level folders (this `nodes` among them) must never shadow
# ComfyUI's own modules.
_PACK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _PACK_DIR not in sys.path:
    sys.path.append(_PACK_DIR)

from . import _comfy  # noqa: E402
from .audio import OmniHumanAudioEncoder  # noqa: E402
from .loaders import OmniHumanModelLoader, OmniHumanUpscalerLoader  # noqa: E402
from .postprocess import OmniHumanUpscaler  # noqa: E402
from .sampling import OmniHumanSampler, OmniHumanSegmentChainer  # noqa: E402
from .system2 import (OmniHumanAnalyzer, OmniHumanLLM, OmniHumanPlanner, OmniHumanReflection,  # noqa: E402
                      OmniHumanScheduleEditor, OmniHumanScheduleToPrompts)

_comfy.register_model_folder()

NODE_CLASS_MAPPINGS = {
    "OmniHumanModelLoader": OmniHumanModelLoader,
    "OmniHumanUpscalerLoader": OmniHumanUpscalerLoader,
    "OmniHumanAudioEncoder": OmniHumanAudioEncoder,
    "OmniHumanLLM": OmniHumanLLM,
    "OmniHumanAnalyzer": OmniHumanAnalyzer,
    "OmniHumanPlanner": OmniHumanPlanner,
    "OmniHumanScheduleEditor": OmniHumanScheduleEditor,
    "OmniHumanSampler": OmniHumanSampler,
    "OmniHumanSegmentChainer": OmniHumanSegmentChainer,
    "OmniHumanReflection": OmniHumanReflection,
    "OmniHumanUpscaler": OmniHumanUpscaler,
    "OmniHumanScheduleToPrompts": OmniHumanScheduleToPrompts,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "OmniHumanModelLoader": "OmniHuman Model Loader",
    "OmniHumanUpscalerLoader": "OmniHuman Upscaler Loader",
    "OmniHumanAudioEncoder": "OmniHuman Audio Encoder",
    "OmniHumanLLM": "OmniHuman LLM",
    "OmniHumanAnalyzer": "OmniHuman Analyzer",
    "OmniHumanPlanner": "OmniHuman Planner",
    "OmniHumanScheduleEditor": "OmniHuman Schedule Editor",
    "OmniHumanSampler": "OmniHuman Sampler (one segment)",
    "OmniHumanSegmentChainer": "OmniHuman Segment Chainer",
    "OmniHumanReflection": "OmniHuman Reflection",
    "OmniHumanUpscaler": "OmniHuman Upscaler",
    "OmniHumanScheduleToPrompts": "OmniHuman Schedule to Prompts",
}
