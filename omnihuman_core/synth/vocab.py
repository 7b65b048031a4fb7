"""The synthetic world's vocabulary: actions, emotions and camera moves, their caption phrases, and
`parse_prompt`, which reads them back out of free text.

Left and right are always the CHARACTER's own (anatomical) sides, as in human-written captions ("she
raises her right hand"): a character facing the camera waves its right hand on the image's LEFT.
Camera pans are the camera's: "pans left" moves the view left, so the scene slides right.

The ids (positions in the tuples below) are stored in every clip's labels; append new names at the
end, never reorder, or old datasets change meaning.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

ACTIONS = (
    "idle",          # 0  stands, breathes, blinks; small head motion while speaking
    "wave_left",     # 1  the character's left hand waves beside its head
    "wave_right",    # 2
    "raise_arms",    # 3  both arms up in a V
    "point_left",    # 4  left arm stretched out sideways, index finger out
    "point_right",   # 5
    "nod",           # 6  head pitches down/up
    "shake_head",    # 7  head yaws left/right
    "turn_left",     # 8  head turns to the character's left (face moves toward the image's right)
    "turn_right",    # 9
    "lean_in",       # 10 the upper body comes toward the camera
    "smile",         # 11 the mouth corners rise for the segment
    "frown",         # 12 the mouth corners drop and the brows knit
    "gesture",       # 13 talking hands in front of the chest, moving with the speech
)
EMOTIONS = ("neutral", "happy", "sad", "angry", "surprised")
CAMERAS = ("static", "zoom_in", "zoom_out", "pan_left", "pan_right")

ACTION_ID = {name: i for i, name in enumerate(ACTIONS)}
EMOTION_ID = {name: i for i, name in enumerate(EMOTIONS)}
CAMERA_ID = {name: i for i, name in enumerate(CAMERAS)}

# Caption phrases. Several per item so a text encoder trained on captions learns the meaning rather
# than one string; `parse_prompt` must read every one of them back (tested). "{pos}" is its/his/her.
ACTION_PHRASES = {
    "idle": ("stands still", "stays calm and still", "keeps still"),
    "wave_left": ("waves {pos} left hand", "waves with {pos} left hand", "raises {pos} left hand to wave"),
    "wave_right": ("waves {pos} right hand", "waves with {pos} right hand", "raises {pos} right hand to wave"),
    "raise_arms": ("raises both arms", "throws both hands up in the air", "lifts both arms up"),
    "point_left": ("points to {pos} left", "points left with {pos} left hand", "stretches {pos} left arm out to point"),
    "point_right": ("points to {pos} right", "points right with {pos} right hand", "stretches {pos} right arm out to point"),
    "nod": ("nods", "nods {pos} head", "nods in agreement"),
    "shake_head": ("shakes {pos} head", "shakes {pos} head no"),
    "turn_left": ("turns {pos} head to the left", "looks to {pos} left", "turns left"),
    "turn_right": ("turns {pos} head to the right", "looks to {pos} right", "turns right"),
    "lean_in": ("leans in", "leans toward the camera", "leans forward"),
    "smile": ("smiles", "breaks into a smile", "grins"),
    "frown": ("frowns", "scowls", "knits {pos} brows and frowns"),
    "gesture": ("gestures with both hands", "talks with {pos} hands", "moves {pos} hands while explaining"),
}
EMOTION_PHRASES = {
    "neutral": ("with a neutral face", "looking calm", "with a relaxed expression"),
    "happy": ("looking happy", "with a cheerful face", "looking joyful"),
    "sad": ("looking sad", "with a sad face", "looking gloomy"),
    "angry": ("looking angry", "with an angry face", "looking furious"),
    "surprised": ("looking surprised", "with a surprised face", "looking astonished"),
}
CAMERA_PHRASES = {
    "static": ("static camera", "the camera stays still", "fixed camera"),
    "zoom_in": ("camera slowly zooms in", "slow zoom in", "the camera pushes in"),
    "zoom_out": ("camera slowly zooms out", "slow zoom out", "the camera pulls back"),
    "pan_left": ("camera pans left", "slow pan to the left", "the camera pans to the left"),
    "pan_right": ("camera pans right", "slow pan to the right", "the camera pans to the right"),
}
# The possessives captions put in "{pos}" (character.pronoun gives "their" or "its"; "his"/"her" for hand-written).
POSSESSIVES = ("its", "his", "her", "their")


def spelled_action_phrases() -> list[tuple[str, str, str]]:
    """Every action phrase as a caption spells it, as (phrase, action, possessive), longest first so that
    "waves with its left hand" is found before "waves"."""
    return sorted(((p.replace("{pos}", pos), action, pos) for action, options in ACTION_PHRASES.items()
                   for p in options for pos in POSSESSIVES), key=lambda x: -len(x[0]))


SPEAKING_PHRASES = ("while talking", "while speaking", "while saying something")
SILENT_PHRASES = ("silently", "without speaking", "in silence")


@dataclass
class ParsedPrompt:
    """What `parse_prompt` found: actions in order of mention, one emotion, one camera move."""

    actions: list[str] = field(default_factory=lambda: ["idle"])
    emotion: str = "neutral"
    camera: str = "static"
    speaking: bool | None = None  # True "talking", False "silently", None not said
    matched: bool = False  # False when no rule fired (everything above is the default)

    def action_ids(self) -> list[int]:
        return [ACTION_ID[a] for a in self.actions]

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------------ parsing

_SIDE = re.compile(r"\b(left|right)\b", re.I)
# Words that end the scope of a side word ("waves, then turns left": "left" belongs to "turns").
_CLAUSE_BREAK = re.compile(r"(?:->|→|;|,|\.|!|\?|\bthen\b|\band\b|\bafter that\b|\bfollowed by\b|\bwhile\b)", re.I)

# (regex, action or side-dependent family). Families end with "_" and take the side found near the
# match; the default side is right (most people wave and point with the right hand).
_ACTION_RULES = (
    (r"\b(?:rais|lift|throw|put|stretch|hold)\w*\s+(?:up\s+)?(?:both|two|the|its|his|her|their|your|my)?\s*(?:arms|hands)\b"
     r"|\b(?:arms|hands)\s+(?:up|in the air|high)\b|\bboth\s+(?:arms|hands)\s+up\b|\bcheers\b|\bhands up\b", "raise_arms"),
    (r"\bwav(?:e|es|ed|ing)\b|\b(?:rais|lift)\w*\s+(?:its|his|her|their|your|my|the|one)?\s*(?:left|right)?\s*(?:hand|arm)\b|\bhello\b|\bgoodbye\b", "wave_"),
    (r"\bpoint(?:s|ed|ing)?\b", "point_"),
    (r"\bnod(?:s|ded|ding)?\b", "nod"),
    (r"\bshak(?:e|es|ing|en)\s+(?:(?:its|his|her|their|your|my|the)\s+)?head\b|\bhead\s*shake\b|\bshakes? no\b", "shake_head"),
    (r"\b(?:turn|look|glanc|rotat)\w*\b(?:\s+(?:its|his|her|their|your|my|the))?(?:\s+head)?\s+(?:to\s+(?:the|its|his|her|their|your|my)\s+|toward\s+(?:the\s+)?)?(?:left|right)\b"
     r"|\b(?:turn|look|glanc)\w*\s+(?:away|aside|sideways)\b", "turn_"),
    (r"\blean(?:s|ed|ing)?\b|\bmov\w*\s+closer\b|\bbend\w*\s+(?:forward|toward)", "lean_in"),
    (r"\bsmil(?:es|ed|ing)\b|\bgrin(?:s|ned|ning)?\b|\bbreaks? into a smile\b|\bbeam(?:s|ed|ing)\b", "smile"),
    (r"\bfrown(?:s|ed|ing)?\b|\bscowl(?:s|ed|ing)?\b|\bgrimac\w*\b|\bknits?\b", "frown"),
    (r"\bgestur\w*\b|\btalk\w* with\s+(?:its|his|her|their|your|my)?\s*hands\b|\bmov\w*\s+(?:its|his|her|their|your|my)\s+hands\b"
     r"|\bhand gestures?\b|\bexplain\w*\b", "gesture"),
    (r"\bstands? still\b|\bstays? (?:calm and )?still\b|\bkeeps? still\b|\bidle\b|\blisten\w*\b|\bdoes nothing\b", "idle"),
)
_EMOTION_RULES = (
    ("surprised", r"\b(?:surpris\w*|astonish\w*|amaz\w*|shock\w*|wide eyes)\b"),
    ("angry", r"\b(?:angr\w*|furious|annoyed|rage|mad|furrowed)\b"),
    ("sad", r"\b(?:sad\w*|gloom\w*|unhappy|downcast|melanchol\w*|cry\w*|tear\w*)\b"),
    ("happy", r"\b(?:happ\w*|cheer\w*|joy\w*|glad|delight\w*|friendly|warm smile|smile)\b"),
    ("neutral", r"\b(?:neutral|calm|relaxed|expressionless)\b"),
)
_CAMERA_RULES = (
    ("zoom_in", r"\bzoom\w*\s+in\b|\bpush\w*\s+in\b|\bpush-in\b|\bdoll\w*\s+in\b|\bzoom-in\b"),
    ("zoom_out", r"\bzoom\w*\s+out\b|\bpull\w*\s+(?:back|out)\b|\bpull-back\b|\bdoll\w*\s+out\b|\bzoom-out\b"),
    ("pan_left", r"\bpan\w*\s+(?:to\s+the\s+)?left\b"),
    ("pan_right", r"\bpan\w*\s+(?:to\s+the\s+)?right\b|\bpan\w*\b"),  # a bare "pan" defaults to right
    ("static", r"\b(?:static|still|fixed|locked)\s+(?:camera|shot)\b|\bcamera\s+(?:stays|is)\s+still\b"),
)
_SPEAKING = re.compile(r"\b(?:talk\w*|speak\w*|says?|saying|sing\w*|explain\w*|chat\w*)\b", re.I)
_SILENT = re.compile(r"\b(?:silent\w*|without speaking|in silence|quiet\w*|mute)\b", re.I)


def _clause_span(text: str, start: int, end: int) -> tuple[int, int]:
    """The clause around text[start:end]: from the previous break to the next one."""
    lo = 0
    for m in _CLAUSE_BREAK.finditer(text, 0, start):
        lo = m.end()
    m = _CLAUSE_BREAK.search(text, end)
    hi = m.start() if m else len(text)
    return lo, hi


def _side(text: str, start: int, end: int) -> str | None:
    """The side word in the keyword's clause closest to the keyword, else None."""
    lo, hi = _clause_span(text, start, end)
    best, best_d = None, None
    for m in _SIDE.finditer(text, lo, hi):
        d = m.start() - end if m.start() >= end else start - m.end()
        if best_d is None or d < best_d:
            best, best_d = m.group(1).lower(), d
    return best


def parse_prompt(text: str) -> ParsedPrompt:
    """Read actions (in order of mention), the emotion and the camera move out of free text.

    Keyword rules, robust to tense, pronouns and word order ("waves its left hand", "left-hand wave"
    is not), e.g. "a cat points to its left, then nods, looking happy; camera pans right" ->
    actions [point_left, nod], emotion happy, camera pan_right. Unknown text gives idle / neutral /
    static with `matched=False`. Negations ("does not wave") are not understood.
    """
    text = text or ""
    low = text.lower()
    hits: list[tuple[int, int, str]] = []
    taken: list[tuple[int, int]] = []
    camera_spans = [m.span() for _, pat in _CAMERA_RULES for m in re.finditer(pat, low)]
    for pattern, action in _ACTION_RULES:
        last: tuple[int, str] | None = None  # (end, side) of this rule's previous hit
        for m in re.finditer(pattern, low):
            s, e = m.span()
            # A word already claimed by an earlier rule (e.g. "raises both arms" vs "raises ... arm")
            # or by a camera move ("pans left" is not a turn) is not an action.
            if any(s < te and ts < e for ts, te in taken + camera_spans):
                continue
            if action.endswith("_"):
                side = _side(low, s, e)
                if side is None:
                    # "raises her left hand and waves": the side of a hit just before carries over;
                    # otherwise right, the hand most people wave and point with.
                    side = last[1] if last is not None and s - last[0] <= 30 else "right"
                last = (e, side)
                action_name = action + side
            else:
                action_name = action
            hits.append((s, e, action_name))
            taken.append((s, e))
    hits.sort()
    actions: list[str] = []
    for _, _, a in hits:
        if not actions or actions[-1] != a:  # "waves ... and waves again" is one wave
            actions.append(a)

    # Emotions: a smile that is an action ("smiles") should not also make the face happy, so the
    # action words are blanked before emotions are matched.
    masked = list(low)
    for s, e, _ in hits:
        masked[s:e] = " " * (e - s)
    masked_text = "".join(masked)
    emotion, emotion_pos = None, None
    for name, pattern in _EMOTION_RULES:
        m = re.search(pattern, masked_text)
        if m and (emotion_pos is None or m.start() < emotion_pos):
            emotion, emotion_pos = name, m.start()
    camera = None
    for name, pattern in _CAMERA_RULES:
        if re.search(pattern, low):
            camera = name
            break
    speaking = False if _SILENT.search(low) else True if _SPEAKING.search(masked_text) else None
    return ParsedPrompt(
        actions=actions or ["idle"], emotion=emotion or "neutral", camera=camera or "static",
        speaking=speaking, matched=bool(hits or emotion or camera),
    )
