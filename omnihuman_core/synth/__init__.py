"""A procedural talking-character world: training data for the demo model and its benchmark.

Characters (people, cats, bears, robots) are drawn from seeded parameter vectors; they speak
eSpeak NG or built-in babble audio with the mouth following the loudness frame by frame, act out
text actions (wave, point, nod, turn, ...) with emotions and camera moves, and every frame carries
ground-truth labels. See docs/SYNTH.md. Only numpy, Pillow (and PyAV for the dataset's MP4s).
"""

from .character import (IDENTITY_DIM, KINDS, CharacterSpec, describe, identity_vector, sample_character)
from .dataset import load_labels, load_meta, read_index, write_clip, write_dataset
from .motion import ActionSegment, Pose, compute_pose, neutral_pose
from .render import Rig, render_clip, render_pose, render_reference
from .speech import (SAMPLE_RATE, SpeechTrack, babble_say, espeak_available, espeak_say, mouth_track, read_wav,
                     require_espeak, synthesize_speech, write_wav)
from .vocab import (ACTION_ID, ACTIONS, CAMERA_ID, CAMERAS, EMOTION_ID, EMOTIONS, ParsedPrompt, parse_prompt)
from .world import Clip, ClipScript, generate_clip, make_caption, sample_script

__all__ = [
    "CharacterSpec", "sample_character", "describe", "identity_vector", "IDENTITY_DIM", "KINDS",
    "ActionSegment", "Pose", "compute_pose", "neutral_pose",
    "Rig", "render_clip", "render_pose", "render_reference",
    "SAMPLE_RATE", "SpeechTrack", "synthesize_speech", "mouth_track", "espeak_available", "require_espeak",
    "espeak_say", "babble_say", "write_wav", "read_wav",
    "ACTIONS", "EMOTIONS", "CAMERAS", "ACTION_ID", "EMOTION_ID", "CAMERA_ID", "ParsedPrompt", "parse_prompt",
    "Clip", "ClipScript", "generate_clip", "make_caption", "sample_script",
    "write_dataset", "write_clip", "load_labels", "load_meta", "read_index",
]
