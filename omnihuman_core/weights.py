"""Weight files: one safetensors file per model, its config in the metadata. Nothing is unpickled.

Layout of the metadata (all strings, as safetensors requires):
  omnihuman.kind     "mmdit" | "vae" | "text_encoder" | "upscaler" | ...
  omnihuman.config   JSON of the model's config dataclass (to_dict())
  omnihuman.format   version of this layout
  extra keys         free-form provenance (training command, data, steps)
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Mapping

import torch

from .errors import WeightsError

FORMAT_VERSION = "1"
_KIND = "omnihuman.kind"
_CONFIG = "omnihuman.config"
_FORMAT = "omnihuman.format"
# safetensors headers are JSON of modest size; anything claiming more is not a safetensors file.
_MAX_HEADER = 100 * 1024 * 1024


def save_safetensors(
    path: str | os.PathLike,
    state_dict: Mapping[str, torch.Tensor],
    kind: str,
    config: dict,
    extra: Mapping[str, object] | None = None,
) -> Path:
    """Write `state_dict` with its kind and config; written to a temp file then renamed (atomic)."""
    from safetensors.torch import save_file

    path = Path(path)
    metadata = {_KIND: kind, _CONFIG: json.dumps(config, sort_keys=True), _FORMAT: FORMAT_VERSION}
    for key, value in (extra or {}).items():
        # safetensors metadata is str -> str; structured values go in as JSON so they read back as data.
        metadata[str(key)] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    # safetensors refuses shared or non-contiguous storage; tied weights are cloned on purpose.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    _canonical_header(tmp)
    os.replace(tmp, path)
    return path


def _canonical_header(path: Path) -> None:
    """Rewrite a safetensors header with its keys sorted, so the same weights and metadata give the same bytes.

    safetensors writes the metadata in its hash map's order, which changes from one write to the next. A file
    re-exported from the same checkpoint would then get a new `file_fingerprint`, and a later training stage
    that recorded the old one would refuse to resume. Sorting the JSON keeps its length (same escaping, same
    separators), so the header is rewritten in place; tensor offsets are relative to the data that follows.
    """
    with open(path, "r+b") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        if len(text) > n:  # not expected (the writer escapes as json does); the file stays valid, just unsorted
            return
        f.seek(8)
        f.write(text + b" " * (n - len(text)))  # safetensors pads its header with spaces itself


def _sniff(path: Path) -> None:
    """Reject files that are not safetensors before any parser sees them, with a useful message."""
    if not path.exists():
        raise WeightsError(f"weights file {path} does not exist; check the path")
    if path.is_dir():
        raise WeightsError(f"{path} is a folder; pass the .safetensors file inside it")
    size = path.stat().st_size
    if size < 8:
        raise WeightsError(f"weights file {path} is empty or truncated ({size} bytes); download or copy it again")
    with open(path, "rb") as f:
        head = f.read(16)
    # A safetensors header length whose low byte is 0x80 also starts with 0x80: the JSON brace at byte 8
    # is what tells the two apart.
    if head[:2] == b"PK" or (head[:1] == b"\x80" and head[8:9] != b"{"):
        raise WeightsError(
            f"{path} is a pickle / PyTorch checkpoint (.pt/.ckpt/.bin). This library never unpickles "
            "files (they can run code). Convert it once in a trusted environment with "
            "`safetensors.torch.save_file(torch.load(f, weights_only=True), 'model.safetensors')`."
        )
    (header_len,) = struct.unpack("<Q", head[:8])
    if header_len > _MAX_HEADER or 8 + header_len > size or head[8:9] != b"{":
        raise WeightsError(
            f"{path} is not a valid safetensors file (bad header); it may be truncated or corrupt — "
            "download or copy it again"
        )


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of a safetensors file without loading its tensors."""
    from safetensors import safe_open

    path = Path(path)
    _sniff(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise WeightsError(f"{path} could not be read as safetensors ({e}); it may be corrupt") from e


def load_safetensors(
    path: str | os.PathLike, kind: str | None = None, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict]:
    """Load tensors and config; checks the file is safetensors and of the expected `kind`."""
    from safetensors.torch import load_file

    path = Path(path)
    meta = read_metadata(path)
    found = meta.get(_KIND)
    if kind is not None and found is not None and found != kind:
        raise WeightsError(f"{path} holds a '{found}' model, but a '{kind}' model was expected here")
    try:
        config = json.loads(meta.get(_CONFIG, "{}"))
    except json.JSONDecodeError as e:
        raise WeightsError(f"{path}: the config in its metadata is not valid JSON ({e})") from e
    try:
        state = load_file(str(path), device=str(device))
    except Exception as e:
        raise WeightsError(f"{path} could not be loaded ({e}); it is probably truncated or corrupt") from e
    return state, config


def load_into(
    module: torch.nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    source: str | os.PathLike = "weights",
    strict: bool = True,
) -> None:
    """Copy `state_dict` into `module`, converting dtype; names every missing, unexpected or misshapen key."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mismatched = [
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state_dict))
        if tuple(own[k].shape) != tuple(state_dict[k].shape)
    ]
    problems = []
    if mismatched:
        problems.append("shape mismatch: " + _short(mismatched))
    if strict and missing:
        problems.append("missing: " + _short(missing))
    if strict and unexpected:
        problems.append("unexpected: " + _short(unexpected))
    if problems:
        raise WeightsError(
            f"{source} does not match this model ({'; '.join(problems)}). Was it made for a different "
            "preset or model kind? The file's metadata holds the config it was trained with."
        )
    with torch.no_grad():
        for k, v in state_dict.items():
            if k in own:
                own[k].copy_(v.to(dtype=own[k].dtype))


def _short(names: list[str], limit: int = 8) -> str:
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def file_fingerprint(path: str | os.PathLike) -> str:
    """Identity of a weights file for resume fingerprints and caches.

    Files up to 256 MiB are hashed whole; larger ones by their header plus 16 spread 1 MiB chunks,
    which changes whenever a trained checkpoint does, without reading 10+ GB.
    """
    import hashlib

    path = Path(path)
    size = path.stat().st_size
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if size <= 256 * 2**20:
            for block in iter(lambda: f.read(2**20), b""):
                h.update(block)
        else:
            (n,) = struct.unpack("<Q", f.read(8))
            h.update(f.read(min(n, _MAX_HEADER)))
            for i in range(16):
                f.seek(size * i // 16)
                h.update(f.read(2**20))
    return f"{size}-{h.hexdigest()[:16]}"
