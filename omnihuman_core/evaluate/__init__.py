"""The evaluator: probe networks that read mouth, head, hands, identity and action from frames, and the
benchmark's metrics (lip sync, identity, text adherence, HKV, drift) computed with them. docs/EVALUATION.md.
"""

from .metrics import action_units, audio_mouth, hkv, identity_similarity, lip_sync, relative_drop
from .probes import ActionProbe, FrameProbe, ProbeConfig, Probes, Readout, action_features, prepare_frames
from .run import (GENERIC_PROMPT, TARGETS, ModelFiles, clip_schedule, dataset_split, results_table, run_benchmark,
                  run_drift, video_metrics)
from .train import train_probes

__all__ = [
    "Probes", "ProbeConfig", "FrameProbe", "ActionProbe", "Readout", "prepare_frames", "action_features",
    "lip_sync", "audio_mouth", "identity_similarity", "hkv", "action_units", "relative_drop",
    "run_benchmark", "run_drift", "results_table", "video_metrics", "clip_schedule", "dataset_split",
    "ModelFiles", "GENERIC_PROMPT", "TARGETS", "train_probes",
]
