"""System 1: the three-branch MMDiT (video, text, audio) of OmniHuman-1.5, its config, RoPE and cost model."""

from .attention import (
    attention,
    attention_function,
    get_attention_function,
    math_attention,
    sdpa_attention,
    set_attention_function,
)
from .blocks import AudioCrossAttention, Branch, FinalLayer, JointBlock
from .config import AUDIO_MODES, PRESETS, MMDiTConfig, default_rope_axes
from .flops import Geometry, base_report, flops_per_step, format_report, forward_flops, parameter_counts, token_counts
from .layers import RMSNorm
from .mmdit import BRANCHES, MMDiT, branch_of_param, is_audio_branch_param, merge_branches
from .perf import tune_cpu_allocator
from .rope import Rope, apply_rope, build_rope, rope_table

__all__ = [
    "AUDIO_MODES",
    "BRANCHES",
    "PRESETS",
    "AudioCrossAttention",
    "Branch",
    "FinalLayer",
    "Geometry",
    "JointBlock",
    "MMDiT",
    "MMDiTConfig",
    "RMSNorm",
    "Rope",
    "apply_rope",
    "attention",
    "attention_function",
    "base_report",
    "branch_of_param",
    "build_rope",
    "default_rope_axes",
    "flops_per_step",
    "format_report",
    "forward_flops",
    "get_attention_function",
    "is_audio_branch_param",
    "math_attention",
    "merge_branches",
    "parameter_counts",
    "rope_table",
    "sdpa_attention",
    "set_attention_function",
    "token_counts",
    "tune_cpu_allocator",
]
