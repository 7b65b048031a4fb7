"""Classifier-free guidance with two scales, text and audio (METHOD §6, InfiniteTalk 5 / 4):

    v = v(0,0) + s_text * (v(T,A) - v(0,A)) + s_audio * (v(0,A) - v(0,0))

The three passes run as ONE batched model forward, in the order (T,A), (0,A), (0,0). Null text is
`text_mask` all False (zero features), null audio is all zeros: the conditions the model was
trained with under conditioning dropout. OmniHuman-1 anneals the scales over the steps to avoid
over-saturated, wrinkled faces late in sampling; `anneal` does that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import InputError

ANNEAL_MODES = (None, "linear", "cosine")
PASSES = ("TA", "0A", "00")  # (text, audio) of each guidance pass, in batch order


@dataclass
class Guidance:
    """Text / audio guidance scales and their annealing; scale 1 means "no guidance" for that condition."""

    text_scale: float = 5.0
    audio_scale: float = 4.0
    # None = constant scales; "linear" / "cosine" = from the full scale at the first step down to
    # `min_scale_fraction` of it at the last step.
    anneal: str | None = None
    min_scale_fraction: float = 0.5

    def __post_init__(self) -> None:
        problems = []
        for name in ("text_scale", "audio_scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                problems.append(f"{name} must be a number >= 0 (1 = no guidance), got {value!r}")
        if self.anneal not in ANNEAL_MODES:
            problems.append(f"anneal must be one of {ANNEAL_MODES}, got {self.anneal!r}")
        f = self.min_scale_fraction
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 1:
            problems.append(f"min_scale_fraction must be in (0, 1], got {f!r}")
        if problems:
            raise InputError("guidance: " + "; ".join(problems))

    def scales(self, step: int = 0, total_steps: int = 1) -> tuple[float, float]:
        """(s_text, s_audio) at `step` of `total_steps` (0-based), after annealing."""
        if self.anneal is None or total_steps <= 1:
            f = 1.0
        else:
            p = min(max(step / (total_steps - 1), 0.0), 1.0)
            m = self.min_scale_fraction
            if self.anneal == "linear":
                f = 1.0 - (1.0 - m) * p
            else:  # cosine: stays strong early (layout, motion), falls off late (texture)
                f = m + (1.0 - m) * 0.5 * (1.0 + math.cos(math.pi * p))
        return self.text_scale * f, self.audio_scale * f

    def coefficients(
        self, step: int = 0, total_steps: int = 1, *, has_text: bool = True, has_audio: bool = True
    ) -> dict[str, float]:
        """Weights of the passes that must run: the formula rewritten as a*v(T,A) + b*v(0,A) + c*v(0,0).

        Passes whose inputs coincide (no text: (T,A) = (0,A); no audio: (0,A) = (0,0)) are merged and
        zero-weight passes dropped, so scales of 1 cost one pass and equal scales two.
        """
        st, sa = self.scales(step, total_steps)
        coef = {"TA": st, "0A": sa - st, "00": 1.0 - sa}
        if not has_text:
            coef["0A"] += coef.pop("TA")
        if not has_audio:
            coef["00"] += coef.pop("0A")
        # The weights always sum to 1, so at least one pass survives.
        return {k: c for k, c in coef.items() if c != 0.0}

    def predict(
        self,
        model,
        x: torch.Tensor,
        timestep: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor | None,
        audio: torch.Tensor | None,
        *,
        frame_positions: torch.Tensor,
        step: int = 0,
        total_steps: int = 1,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """Guided velocity (float32) from one batched forward; inputs are cast to `dtype` (the model's)."""
        B = x.shape[0]
        if text_mask is None:
            text_mask = torch.ones(text.shape[:2], dtype=torch.bool, device=text.device)
        has_text = bool(text_mask.any())
        coef = self.coefficients(step, total_steps, has_text=has_text, has_audio=audio is not None)
        dtype = dtype or x.dtype
        null_text = torch.zeros_like(text)
        null_mask = torch.zeros_like(text_mask)
        texts, masks, audios = [], [], []
        for name in coef:
            with_text, with_audio = name[0] == "T", name[1] == "A"
            texts.append(text if with_text else null_text)
            masks.append(text_mask if with_text else null_mask)
            if audio is not None:
                audios.append(audio if with_audio else torch.zeros_like(audio))
        n = len(coef)
        out = model(
            x.to(dtype).repeat(n, 1, 1, 1, 1),
            timestep.to(torch.float32).reshape(-1).expand(B).repeat(n),
            torch.cat(texts).to(dtype),
            torch.cat(audios).to(dtype) if audio is not None else None,
            frame_positions=frame_positions,
            text_mask=torch.cat(masks),
        )
        parts = out.float().chunk(n, dim=0)
        v = None
        for c, part in zip(coef.values(), parts):
            v = c * part if v is None else v + c * part
        return v
