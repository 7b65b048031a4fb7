"""The offline System 2: a deterministic fallback planner that needs no network and no model.

Speaking vs. idle comes from the audio's speech spans; actions, expressions and framing come from
the user's prompt by simple rules (clauses in order, keywords). It makes every pipeline runnable
without an endpoint; it does not reason like the Analyzer and Planner do, and says so in the
schedule (`planner.kind = "offline"`).
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from ..schedule import SCHEDULE_VERSION, Schedule, Shot
from .audio_facts import segment_table
from .inputs import PlanInputs

OFFLINE_VERSION = "offline-2"  # bump when the rules change (recorded in the schedule); 2: the prompt's subject
OFFLINE_NOTE = ("fallback plan from the deterministic offline planner (no LLM): speaking and idle from the "
                "audio's speech spans, actions from the prompt by simple rules")

# keyword (regex) -> expression; the first match in the prompt wins
EXPRESSIONS = (
    (r"\b(happy|smil\w*|joy\w*|cheer\w*|laugh\w*)", "cheerful, warm smile"),
    (r"\b(sad|cry\w*|tear\w*|grie\w*|melanchol\w*)", "sad, downcast eyes"),
    (r"\b(angr\w*|furious|rage|annoyed)", "angry, furrowed brow"),
    (r"\b(surpris\w*|shock\w*|astonish\w*)", "surprised, wide eyes"),
    (r"\b(confus\w*|puzzl\w*)", "confused, slightly tilted head"),
    (r"\b(excit\w*|enthusias\w*|energetic)", "excited, bright eyes"),
    (r"\b(calm|relax\w*|gentle|soft)", "calm, relaxed"),
    (r"\b(serious|stern|focus\w*)", "serious, focused"),
    (r"\b(nervous|anxious|worri\w*)", "nervous, glancing around"),
)
CAMERAS = (
    (r"close[- ]?up", "close-up"),
    (r"medium (close[- ]?up|shot)", "medium shot"),
    (r"full[- ]body|wide shot", "wide full-body shot"),
    (r"zoom(s|ing)? in|push(es|ing)? in", "slow push-in"),
    (r"zoom(s|ing)? out|pull(s|ing)? (back|out)", "slow pull-back"),
    (r"\bpan", "slow pan"),
)
DEFAULT_CAMERA = "static camera"
_CLAUSES = re.compile(r"(?:->|→|;|\n|(?<=[.!?])\s+|,?\s+\bthen\b\s+|,?\s+\band then\b\s+)", re.I)


def prompt_clauses(prompt: str) -> list[str]:
    """The user's prompt cut into successive behaviours ('waves, then smiles. Points' -> 3 clauses)."""
    # "Takes out a letter" reads as "The character takes out a letter"; "I" and "TV" stay as they are.
    return [_lower_first(p) for p in _raw_clauses(prompt)]


def _raw_clauses(prompt: str) -> list[str]:
    parts = [p.strip(" ,.;") for p in _CLAUSES.split(prompt or "") if p and p.strip(" ,.;")]
    return [p for p in parts if len(p) > 1]


def _lower_first(p: str) -> str:
    return p[0].lower() + p[1:] if p[1:2].islower() else p


# Words that open a noun phrase naming who acts ("A robot in a red scarf waves" -> "A robot in a red scarf").
_DETERMINERS = {"a", "an", "the", "this", "that", "my", "our", "your", "his", "her", "their", "one"}
# Third-person pronouns that can stand for the character in every shot ("She waves, then nods" -> "She nods").
_PRONOUNS = {"she", "he", "it"}
# A subject that names these is not the character ("The camera zooms in").
_NOT_CHARACTER = re.compile(r"\b(camera|shot|close-?up|scene|background|video|frame|lights?|lighting|music|audio|view)\b",
                            re.I)
# Verbs of behaviour, third person: where a described subject ends. Lower-case; "is"/"are" end it too
# ("A woman in a red coat is waving"). A clause whose verb is not listed keeps its subject and is used as is.
_VERBS = set("""
    waves nods smiles grins laughs frowns scowls points raises lifts lowers turns looks glances leans shakes talks
    speaks sings says tells asks answers explains whispers shouts yells sighs shrugs gestures holds claps dances
    walks runs jumps sits stands kneels bows winks blinks cries weeps reads writes opens closes takes puts shows
    gives listens thinks tilts crosses folds rubs scratches touches throws catches picks presents introduces
    announces greets celebrates cheers applauds covers hides reaches stretches moves steps spins rocks sways bounces
    hums breathes pauses stares watches smirks beams pouts rolls taps drums snaps counts offers thanks hugs kisses
    salutes stops starts begins keeps stays remains is are
""".split())


def prompt_subject(prompt: str) -> tuple[str | None, list[str], bool]:
    """Who the prompt's first clause names, its clauses (`prompt_clauses`) without it, and whether the first
    clause keeps a subject of its own.

    'A blue robot with a boxy head waves, then nods' -> ('A blue robot with a boxy head', ['waves', 'nods'], False),
    so every shot says who acts ("A blue robot with a boxy head nods, ...") instead of "The character A blue robot
    ... waves". Pronouns ("She waves") and names before a listed verb ("Anna waves") count. A first clause that
    opens with a subject whose verb is not listed ("A dragon roars"), or with "I", "we", "you", "they"
    (their verbs take no "s" in the other clauses), is kept whole (True) and the other shots say "The character".
    """
    raw = _raw_clauses(prompt)
    # A later clause's own "she" / "he" / "it" is the same character: "waves, then she nods" -> "nods".
    clauses = prompt_clauses(prompt)
    clauses = clauses[:1] + [_drop_pronoun(c) for c in clauses[1:]]
    words = raw[0].split() if raw else []
    if len(words) < 2:
        return None, clauses, False
    first = words[0].lower()
    if first in _PRONOUNS:
        return words[0][0].upper() + words[0][1:], [" ".join(words[1:]), *clauses[1:]], False
    if first in {"i", "we", "you", "they"}:
        return None, [raw[0], *clauses[1:]], True
    if not (first in _DETERMINERS or (words[0][:1].isupper() and words[1].lower() in _VERBS)):
        return None, clauses, False
    for i in range(1, len(words)):
        if words[i].lower() in _VERBS:
            subject = " ".join(words[:i])
            if _NOT_CHARACTER.search(subject):
                return None, [raw[0], *clauses[1:]], True
            return subject[0].upper() + subject[1:], [" ".join(words[i:]), *clauses[1:]], False
    return None, [raw[0], *clauses[1:]], True


def _drop_pronoun(clause: str) -> str:
    words = clause.split(maxsplit=1)
    return words[1] if len(words) == 2 and words[0].lower() in _PRONOUNS else clause


def _match(table, text: str, default: str | None) -> str | None:
    for pattern, value in table:
        if re.search(pattern, text, re.I):
            return value
    return default


class OfflinePlanner:
    """Deterministic: the same inputs always give the same schedule, byte for byte."""

    def plan(self, inputs: PlanInputs, segments: Sequence, fps: float, grid: dict | None = None) -> Schedule:
        rows = segment_table(inputs.facts, [seg.time_span(fps) for seg in segments])
        subject, clauses, first_has_subject = prompt_subject(inputs.prompt)
        who = subject or "The character"
        speaking_rows = [r for r in rows if r["speaking"]]
        levels = [r["loudness_db"] for r in speaking_rows if r["loudness_db"] is not None]
        typical = float(np.median(levels)) if levels else None
        base_expression = _match(EXPRESSIONS, inputs.prompt, None)
        camera = _match(CAMERAS, inputs.prompt, DEFAULT_CAMERA)

        # Clauses go to the speaking segments in order; with more clauses than segments, several
        # share one, with fewer, each clause holds for a run of segments.
        n_speak = len(speaking_rows)
        assigned: dict[int, str] = {}
        own_subject: set[int] = set()  # segments whose action opens with a first clause that names its own subject
        if clauses and n_speak:
            for j, r in enumerate(speaking_rows):
                lo, hi = j * len(clauses) // n_speak, max(j * len(clauses) // n_speak + 1, (j + 1) * len(clauses) // n_speak)
                assigned[r["segment"]] = ", then ".join(clauses[lo:hi])
                if lo == 0 and first_has_subject:
                    own_subject.add(r["segment"])
        elif clauses:  # no speech at all: the prompt's behaviours play out over the silent segments
            for j, r in enumerate(rows):
                k = min(len(clauses) - 1, j * len(clauses) // len(rows))
                assigned[r["segment"]] = clauses[k]
                if k == 0 and first_has_subject:
                    own_subject.add(r["segment"])

        shots = []
        for seg, r in zip(segments, rows):
            a, b = seg.time_span(fps)
            loud = r["loudness_db"]
            emphatic = typical is not None and loud is not None and loud > typical + 3.0
            quiet = typical is not None and loud is not None and loud < typical - 3.0
            if r["speaking"]:
                action = assigned.get(r["segment"]) or (
                    "speaks emphatically with expressive hand gestures" if emphatic else
                    "speaks softly with small gestures" if quiet else "talks with natural hand gestures")
                if "rising" in r["pitch_trend"]:
                    action += ", raises eyebrows as if asking"
                expression = base_expression or ("animated, engaged" if emphatic else "friendly, engaged")
                why = f"speech in {r['speech']:.0%} of the segment"
            else:
                action = assigned.get(r["segment"]) or "listens quietly, blinks, small natural head movements"
                expression = base_expression or "attentive, relaxed"
                why = "no speech in this segment" if r["speech"] == 0 else f"mostly silent ({r['speech']:.0%} speech)"
            verb = "speaking" if r["speaking"] else "silent"
            said = action if r["segment"] in own_subject else f"{who} {action}"
            prompt = f"{said[:1].upper() + said[1:]}, {expression}, {verb}. {camera[:1].upper() + camera[1:]}."
            shots.append(Shot(a, b, speaking=bool(r["speaking"]), expression=expression, action=action,
                              camera=camera, prompt=prompt, rationale=f"offline rule: {why}"))

        analysis = {
            "source": "offline", "speech_content": inputs.transcript or "unknown", "user_prompt": inputs.prompt,
            "subject": who,
            "audio_facts": inputs.facts.to_dict(),
        }
        return Schedule(
            fps=float(fps), duration=inputs.duration, shots=shots, version=SCHEDULE_VERSION, grid=grid,
            analysis=analysis, rationale=OFFLINE_NOTE,
            planner={"kind": "offline", "version": OFFLINE_VERSION, "note": OFFLINE_NOTE, "inputs": inputs.fingerprint()},
        )
