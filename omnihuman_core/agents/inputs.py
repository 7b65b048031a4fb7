"""What System 2 reasons over: the reference image, the audio (+ facts, + transcript), the user's prompt.

Everything is loaded and checked here, before any request is sent.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from .audio_facts import AudioFacts, compute_audio_facts

MAX_PROMPT_CHARS = 4000  # a behaviour description, not a document
MAX_TRANSCRIPT_CHARS = 50_000  # ~10 minutes of fast speech
MAX_CAPTION_CHARS = 2000


def _clean_text(value: Any, what: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(f"{what} must be text, got {type(value).__name__}")
    text = "".join(ch for ch in value if ch in "\n\t" or ch.isprintable()).strip()
    if len(text) > limit:
        raise InputError(f"{what} is {len(text)} characters long; the limit is {limit}. Shorten it")
    return text


@dataclass
class PlanInputs:
    """The inputs of System 2, loaded and validated."""

    image: Any  # PIL RGB
    waveform: torch.Tensor  # mono float32, 16 kHz
    prompt: str = ""
    transcript: str = ""  # "" = unknown (no Whisper folder, none given)
    caption: str = ""  # "" = the Analyzer asks the LLM (or describes the image locally)
    facts: AudioFacts | None = None
    sample_rate: int = 16000
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.facts is None:  # built directly rather than through load()
            self.facts = compute_audio_facts(self.waveform, self.sample_rate)

    @property
    def duration(self) -> float:
        return self.waveform.numel() / self.sample_rate

    @classmethod
    def load(
        cls,
        image,
        audio,
        *,
        prompt: str | None = None,
        transcript: str | None = None,
        caption: str | None = None,
        whisper_folder: str | os.PathLike | None = None,
        max_seconds: float | None = None,
        device=None,
    ) -> "PlanInputs":
        """Image: path or PIL; audio: path, `Audio`, or a 16 kHz waveform tensor."""
        from ..audio import MAX_SECONDS, Audio, load_audio

        prompt = _clean_text(prompt, "the prompt", MAX_PROMPT_CHARS)
        transcript = _clean_text(transcript, "the transcript", MAX_TRANSCRIPT_CHARS)
        caption = _clean_text(caption, "the caption", MAX_CAPTION_CHARS)
        if whisper_folder is not None and not Path(whisper_folder).is_dir():
            raise InputError(f"Whisper folder '{whisper_folder}' does not exist; give a local folder with a "
                             "Whisper model (config.json, weights, tokenizer files)")
        if isinstance(image, (str, os.PathLike)):
            from ..media import load_image

            image = load_image(image)
        elif not hasattr(image, "convert"):
            raise InputError(f"the reference image must be a file path or a PIL image, got {type(image).__name__}")
        image = image.convert("RGB")
        if isinstance(audio, (str, os.PathLike)):
            audio = load_audio(audio, MAX_SECONDS if max_seconds is None else max_seconds)
        if isinstance(audio, Audio):
            waveform = audio.waveform
        elif isinstance(audio, torch.Tensor) and audio.dim() == 1:
            waveform = audio
        else:
            raise InputError("the audio must be a file path, an Audio from load_audio, or a mono 16 kHz tensor")
        waveform = waveform.detach().cpu().float()
        if waveform.numel() == 0:
            raise InputError("the audio is empty; give a clip with speech in it")
        notes = []
        if not transcript and whisper_folder is not None:
            from .transcript import transcribe

            transcript = _clean_text(transcribe(waveform, whisper_folder, device=device), "the transcript",
                                     MAX_TRANSCRIPT_CHARS)
            notes.append(f"transcript from the Whisper model in {whisper_folder}")
        return cls(image, waveform, prompt, transcript, caption, compute_audio_facts(waveform), notes=notes)

    def fingerprint(self) -> dict:
        """Hashes of the inputs (recorded in the schedule so a mismatch with the render can be noticed)."""
        return {
            "image_sha256": hashlib.sha256(self.image.tobytes() + repr(self.image.size).encode()).hexdigest(),
            "audio_sha256": hashlib.sha256(self.waveform.numpy().tobytes()).hexdigest(),
        }
