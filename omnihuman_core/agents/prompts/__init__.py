"""The agents' prompt texts, one `.txt` file each, with the version that is part of the cache key.

File format: a `version: NAME-N` line, a `---` line, then the text. `$name` placeholders are filled
with values the code computes (schemas, counts), never with user data: the image caption, the
transcript and the user's prompt travel in delimited data blocks of the user message instead.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

FOLDER = Path(__file__).resolve().parent
_VERSION = re.compile(r"^version:\s*([A-Za-z0-9_.-]+)\s*$")


@dataclass(frozen=True)
class Prompt:
    """One prompt file: its name, version and text."""

    name: str
    version: str
    text: str

    def render(self, **values) -> str:
        """The text with `$name` placeholders filled; a missing value is a bug, so it raises."""
        return string.Template(self.text).substitute(**{k: str(v) for k, v in values.items()})


@lru_cache(maxsize=None)
def load_prompt(name: str) -> Prompt:
    """Read `prompts/<name>.txt`."""
    path = FOLDER / f"{name}.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    match = _VERSION.match(lines[0]) if lines else None
    if not match or len(lines) < 2 or lines[1].strip() != "---":
        raise RuntimeError(f"prompt file {path} must start with 'version: NAME-N' and a '---' line")
    return Prompt(name, match.group(1), "\n".join(lines[2:]).strip() + "\n")


def prompt_names() -> list[str]:
    return sorted(p.stem for p in FOLDER.glob("*.txt"))
