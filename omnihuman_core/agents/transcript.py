"""Transcript of the audio from a local Whisper model (transformers), for LLMs that cannot hear.

Only a local folder is accepted: nothing is downloaded at run time.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import InputError

CHUNK_S = 30.0  # Whisper's fixed input window
MAX_NEW_TOKENS = 220  # a 30 s window holds at most ~200 tokens of speech


def _check_folder(folder) -> Path:
    p = Path(folder)
    if not p.is_dir():
        raise InputError(f"Whisper folder '{p}' does not exist; give a local folder with a Whisper model")
    if not (p / "config.json").is_file():
        raise InputError(f"'{p}' has no config.json; give the folder of a transformers Whisper model "
                         "(e.g. a saved openai/whisper-small)")
    return p


def transcribe(waveform: torch.Tensor, folder: str | os.PathLike, *, device=None, language: str | None = None) -> str:
    """Speech to text, 30 s at a time, with a Whisper model from `folder`."""
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    path = _check_folder(folder)
    try:
        processor = WhisperProcessor.from_pretrained(path, local_files_only=True)
        model = WhisperForConditionalGeneration.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot load a Whisper model and processor from '{path}' ({str(e)[:300]}); the folder "
                         "needs the model and the WhisperProcessor (feature extractor + tokenizer)") from None
    model = model.eval().to(device or "cpu")
    wave = waveform.detach().cpu().float().numpy().reshape(-1)
    step = int(CHUNK_S * 16000)
    texts = []
    kwargs = {"task": "transcribe", "language": language} if language else {}
    # Room for the start tokens Whisper prepends (4 for real models with 448 positions).
    max_new = max(1, min(MAX_NEW_TOKENS, int(getattr(model.config, "max_target_positions", 448)) - 8))
    with torch.no_grad():
        for s in range(0, wave.size, step):
            chunk = wave[s:s + step]
            if chunk.size < 1600:  # under 0.1 s: nothing to say
                continue
            feats = processor(chunk, sampling_rate=16000, return_tensors="pt").input_features.to(model.device, model.dtype)
            ids = model.generate(feats, max_new_tokens=max_new, **kwargs)
            texts.append(processor.batch_decode(ids, skip_special_tokens=True)[0].strip())
    return " ".join(t for t in texts if t)
