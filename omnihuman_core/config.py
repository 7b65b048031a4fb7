"""What every model config dataclass shares: JSON round trip, strict loading, named presets.

A config class mixes this in, sets `LABEL` (used in messages) and defines a module-level `PRESETS`
dict of overrides of its defaults; `preset()` finds it there so the table can sit below the class.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, ClassVar, Mapping

from .errors import InputError


class ModelConfig:
    """Mixin for config dataclasses stored in safetensors metadata."""

    LABEL: ClassVar[str] = "model"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        """Inverse of `to_dict`; unknown keys are an error (they mean a different or newer model)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(
                f"{cls.__name__} does not know the key(s) {unknown}; known keys are {sorted(known)}. "
                "The weights were probably saved by a different model type or a newer version."
            )
        return cls(**dict(data))

    @classmethod
    def preset(cls, name: str, **overrides: Any):
        """A named preset from the module's `PRESETS`, with optional field overrides."""
        presets = sys.modules[cls.__module__].PRESETS
        if name not in presets:
            raise InputError(f"unknown {cls.LABEL} preset {name!r}; choose one of {sorted(presets)}")
        return cls.from_dict({**presets[name], **overrides})
