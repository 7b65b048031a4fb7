"""Text encoders behind one interface: `TextEncoder.encode(prompts) -> (features, mask)`.

`BuiltinTextEncoder` (bytes tokenizer, no download) and `TransformersTextEncoder` (a local
`transformers` model folder). `load_text_encoder(spec)` picks one from a string.
Importing this package does not import `transformers`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import InputError
from .base import TextEncoder, is_null_prompt
from .builtin import PRESETS, BuiltinTextConfig, BuiltinTextEncoder, ByteTokenizer, WordTokenizer
from .transformers_adapter import TransformersTextEncoder

__all__ = [
    "TextEncoder",
    "BuiltinTextConfig",
    "BuiltinTextEncoder",
    "ByteTokenizer",
    "WordTokenizer",
    "TransformersTextEncoder",
    "PRESETS",
    "is_null_prompt",
    "load_text_encoder",
]


def load_text_encoder(
    spec: str | os.PathLike,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    **kwargs,
) -> TextEncoder:
    """Build a text encoder from `spec`.

    - `"builtin:<preset>"` (`builtin:tiny`, `builtin:demo`): a fresh built-in encoder (fixed-seed init);
    - a `.safetensors` file saved for a built-in encoder (kind `text_encoder`): that trained encoder;
    - a local folder: a `transformers` model (`kwargs` go to TransformersTextEncoder, e.g. max_length).
    """
    text = str(spec).strip()
    if text.startswith("builtin:"):
        return BuiltinTextEncoder.from_config(text.split(":", 1)[1], device=device, dtype=dtype)
    path = Path(text).expanduser()
    if path.suffix == ".safetensors":
        from ..weights import load_into, load_safetensors

        state, config = load_safetensors(path, kind=BuiltinTextEncoder.kind)
        encoder = BuiltinTextEncoder.from_config(config, device=device, dtype=dtype)
        load_into(encoder, state, path)
        return encoder.eval()
    if not path.exists():
        raise InputError(
            f"text encoder {text!r} not found: pass 'builtin:<preset>' (presets: {sorted(PRESETS)}), a built-in "
            "encoder's .safetensors file, or a local transformers model folder"
        )
    return TransformersTextEncoder(path, device=device, dtype=dtype, **kwargs)
