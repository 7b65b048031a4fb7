"""Audio for the AudioBranch: decode to mono 16 kHz, encode (mel / wav2vec2 / Whisper) at 50 Hz,
align to video frames, pack per latent frame; plus an energy VAD for speaking vs. listening.

Importing this package is cheap: transformers and torchaudio load only when an encoder needs them.
"""

from .encoders import (
    FEATURE_RATE,
    AudioEncoder,
    MelEncoder,
    Wav2Vec2Encoder,
    WhisperEncoder,
    load_audio_encoder,
    n_features,
)
from .frames import (
    audio_tokens_for_segment,
    frame_features,
    pack_latent_frames,
    segment_frame_features,
)
from .io import MAX_SECONDS, SAMPLE_RATE, Audio, audio_from_array, load_audio
from .vad import VADConfig, speech_activity, speech_spans

__all__ = [
    "SAMPLE_RATE", "MAX_SECONDS", "FEATURE_RATE", "Audio", "load_audio", "audio_from_array",
    "AudioEncoder", "MelEncoder", "Wav2Vec2Encoder", "WhisperEncoder", "load_audio_encoder",
    "n_features", "frame_features", "segment_frame_features", "pack_latent_frames",
    "audio_tokens_for_segment", "VADConfig", "speech_activity", "speech_spans",
]
