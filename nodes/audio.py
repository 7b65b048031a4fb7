"""The AudioBranch's input: speech or singing -> features aligned to the video frames of one model."""

from __future__ import annotations

import torch

from omnihuman_core.errors import InputError

from . import _comfy
from .models import core_audio_encoder_adapter
from .types import AUDIO_FEATURES, MODEL, AudioFeatures, audio_to_core, category, tensor_digest

MEL = "mel (built-in)"
ENCODER_FOLDER = "audio_encoders"


class OmniHumanAudioEncoder:
    DESCRIPTION = ("Encodes the speech or singing for the model's AudioBranch: audio features at 50 Hz, aligned "
                   "to the model's video frames with a window of neighbouring frames each. Use the encoder the "
                   "model was trained with (the demo model: the built-in mel front end).")
    CATEGORY = category("conditioning")
    FUNCTION = "encode"
    RETURN_TYPES = (AUDIO_FEATURES,)
    RETURN_NAMES = ("audio",)
    OUTPUT_TOOLTIPS = ("Per-frame audio features for this model, plus the audio itself (the video's length).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "audio": ("AUDIO", {"tooltip": "Speech or singing (from Load Audio); up to 10 minutes. The video is "
                                               "exactly as long as this audio."}),
                "model": (MODEL, {"tooltip": "The OmniHuman model: its frame rate and audio window decide the "
                                             "alignment, its audio input size is checked against the encoder."}),
                "encoder": ([MEL] + _comfy.list_model_dirs(ENCODER_FOLDER), {
                    "default": MEL,
                    "tooltip": "mel (built-in): no weights needed. Or a wav2vec2 / Whisper model folder (as saved by "
                               "transformers) under ComfyUI/models/omnihuman/audio_encoders/. Ignored when an "
                               "audio_encoder is connected."}),
            },
            "optional": {
                "audio_encoder": ("AUDIO_ENCODER", {
                    "tooltip": "A ComfyUI audio encoder (Audio Encoder Loader: wav2vec2 or Whisper from "
                               "models/audio_encoders) to use instead of the encoder above."}),
            },
        }

    def encode(self, audio, model, encoder, audio_encoder=None):
        from omnihuman_core.audio import frame_features, load_audio_encoder
        from omnihuman_core.pipeline import frame_count

        sound = audio_to_core(audio)
        s = model.settings
        n_frames = frame_count(sound.duration, s.fps)
        if n_frames < 1:
            raise InputError(f"the audio is {sound.duration * 1000:.0f} ms long, shorter than one frame at "
                             f"{s.fps:g} fps; give at least a fraction of a second of speech")
        if audio_encoder is not None:
            enc, name = core_audio_encoder_adapter(audio_encoder), "ComfyUI audio encoder"
        elif encoder == MEL:
            enc, name = load_audio_encoder("mel", device=_comfy.torch_device()), MEL
        else:
            folder = _comfy.find_model_dir(encoder)
            if folder is None:
                raise InputError(f"audio encoder folder '{encoder}' was not found in the '{_comfy.MODEL_FOLDER}' model "
                                 f"folder ({', '.join(str(p) for p in _comfy.model_paths())}); expected "
                                 f"{ENCODER_FOLDER}/<name>/ with config.json and model.safetensors")
            device, _, dtype = _comfy.text_encoder_devices()
            enc, name = load_audio_encoder(str(folder), device=device, dtype=dtype), encoder
        self._check_dim(enc, model, name)  # before the work, when the encoder knows its size
        with torch.inference_mode():
            feats = enc.encode(sound.waveform).float().cpu()
        self._check_dim(enc, model, name)
        frames = frame_features(feats, enc.feature_rate, s.fps, n_frames, s.audio_window).contiguous()
        return (AudioFeatures(frames, float(s.fps), int(s.audio_window), sound, audio, name, tensor_digest(frames)),)

    @staticmethod
    def _check_dim(enc, model, name):
        dim, window, want = getattr(enc, "dim", None), model.settings.audio_window, model.config.audio_dim
        if dim is not None and dim * window != want:
            raise InputError(
                f"the audio encoder ({name}) gives {dim}-dim features x audio window {window} = {dim * window} per "
                f"audio token, but the model expects {want}; choose the encoder the model was trained with "
                f"(the demo model: {MEL})")
