"""Procedural characters: a seeded, JSON-serialisable parameter vector (`CharacterSpec`) per identity.

Four kinds: a human-like cartoon figure, two animals (cat, bear) and a robot. Every kind has a head
with eyes, brows and a mouth, a torso and two arms with hands; colours, head shape, hair, clothes
and background vary. The spec is the identity: the same spec always renders the same character,
and `identity_vector(spec)` is its fixed-length numeric embedding (for identity probes and metrics).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from ..errors import InputError

KINDS = ("human", "cat", "bear", "robot")
KIND_WEIGHTS = (0.55, 0.15, 0.12, 0.18)  # humans are the paper's subject; the others test generality
HEAD_SHAPES = ("round", "oval", "wide", "square")
HAIR_STYLES = ("none", "short", "long", "bun", "spiky", "curly", "bob")
PATTERNS = ("plain", "stripes", "dots", "split", "collar")
BACKGROUNDS = ("solid", "gradient", "stripes", "room", "checker")
EYE_STYLES = ("round", "slit", "lamp", "visor")

# Named colours, so captions can say "a blue robot". Values are jittered a little per identity.
COLORS = {
    "red": (200, 50, 50), "orange": (235, 130, 40), "yellow": (235, 200, 60), "green": (60, 160, 80),
    "teal": (40, 150, 150), "blue": (50, 100, 210), "purple": (130, 70, 180), "pink": (230, 120, 170),
    "white": (235, 235, 230), "black": (40, 40, 45), "grey": (130, 130, 135), "brown": (120, 80, 50),
}
SHIRT_COLORS = ("red", "orange", "yellow", "green", "teal", "blue", "purple", "pink", "white", "black", "grey")
SKIN_TONES = ((255, 219, 185), (241, 194, 150), (224, 172, 125), (198, 134, 90), (160, 102, 66),
              (120, 76, 50), (95, 60, 40))
HAIR_COLORS = {"black": (35, 30, 30), "brown": (100, 60, 35), "blond": (225, 190, 110), "red": (170, 70, 35),
               "grey": (170, 170, 170), "blue": (60, 90, 200), "pink": (225, 110, 170)}
FUR_COLORS = {"cat": {"orange": (230, 140, 60), "grey": (150, 150, 155), "black": (55, 55, 60),
                      "white": (240, 238, 230), "cream": (235, 215, 175)},
              "bear": {"brown": (135, 90, 55), "black": (50, 45, 45), "white": (235, 235, 225),
                       "honey": (205, 150, 80), "grey": (120, 115, 110)}}
METAL_COLORS = {"silver": (185, 190, 198), "blue": (80, 130, 210), "red": (205, 80, 70),
                "yellow": (225, 190, 70), "green": (90, 170, 110), "white": (230, 232, 236), "bronze": (180, 130, 80)}
EYE_COLORS = {"brown": (90, 55, 30), "blue": (50, 110, 200), "green": (50, 140, 70), "grey": (110, 115, 125),
              "amber": (210, 150, 30)}
LAMP_COLORS = {"cyan": (80, 230, 240), "green": (90, 240, 120), "red": (250, 80, 70), "yellow": (250, 220, 80)}
BG_COLORS = ((215, 225, 235), (235, 225, 205), (200, 220, 200), (225, 205, 215), (60, 70, 90), (90, 110, 140),
             (245, 240, 225), (180, 200, 220), (140, 160, 120), (210, 190, 160), (70, 60, 70), (170, 190, 200))

SPEC_VERSION = 1


@dataclass
class CharacterSpec:
    """One identity. Geometry is in world units (1.0 = frame width at zoom 1); colours are RGB 0..255."""

    seed: int = 0
    kind: str = "human"
    head_shape: str = "round"
    head_w: float = 0.15  # head half-width
    head_h: float = 0.16  # head half-height
    skin: tuple = (241, 194, 150)  # skin, fur or metal
    skin_name: str = "light"
    hair_style: str = "short"
    hair: tuple = (35, 30, 30)
    hair_name: str = "black"
    eye_style: str = "round"
    eye_color: tuple = (90, 55, 30)
    eye_size: float = 0.17  # eye radius in head half-widths
    eye_spacing: float = 0.36  # eye centre offset from the midline in head half-widths
    eye_height: float = -0.05  # eye centre height in head half-heights (down positive)
    brow_thickness: float = 0.06
    mouth_width: float = 0.42  # mouth half-width in head half-widths
    glasses: bool = False
    accent: tuple = (230, 140, 150)  # robot panels / animal inner ears and snout
    shirt: tuple = (50, 100, 210)
    shirt_name: str = "blue"
    shirt2: tuple = (235, 235, 230)
    shirt2_name: str = "white"
    pattern: str = "plain"
    long_sleeves: bool = False
    torso_w: float = 0.20  # torso half-width
    neck: float = 0.035  # neck length
    arm_len: float = 0.13  # upper arm and forearm length each
    background: str = "solid"
    bg: list = field(default_factory=lambda: [[215, 225, 235], [200, 210, 220], [150, 120, 90]])
    version: int = SPEC_VERSION

    def to_dict(self) -> dict:
        d = asdict(self)
        return json.loads(json.dumps(d))  # tuples -> lists: exactly what JSON round-trips to

    @classmethod
    def from_dict(cls, d: dict) -> "CharacterSpec":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"character spec has unknown fields {unknown}; it was written by another version")
        spec = cls(**d)
        for name in ("skin", "hair", "eye_color", "accent", "shirt", "shirt2"):
            setattr(spec, name, tuple(int(v) for v in getattr(spec, name)))
        spec.bg = [list(map(int, c)) for c in spec.bg]
        spec.validate()
        return spec

    def validate(self) -> "CharacterSpec":
        for name, allowed in (("kind", KINDS), ("head_shape", HEAD_SHAPES), ("hair_style", HAIR_STYLES),
                              ("pattern", PATTERNS), ("background", BACKGROUNDS), ("eye_style", EYE_STYLES)):
            if getattr(self, name) not in allowed:
                raise InputError(f"character spec {name} {getattr(self, name)!r} is not one of {', '.join(allowed)}")
        return self


def _jitter(rng: np.random.Generator, rgb, amount: int = 12) -> tuple:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in rgb)


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def sample_character(seed: int, kind: str | None = None) -> CharacterSpec:
    """A random character from `seed` (same seed -> same character). `kind` forces human/cat/bear/robot."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EC]))
    if kind is None:
        kind = KINDS[int(rng.choice(len(KINDS), p=np.asarray(KIND_WEIGHTS)))]
    elif kind not in KINDS:
        raise InputError(f"character kind {kind!r} is not one of {', '.join(KINDS)}")
    s = CharacterSpec(seed=int(seed), kind=kind)

    s.head_shape = _pick(rng, ("square",) if kind == "robot" and rng.random() < 0.7 else HEAD_SHAPES[:3])
    base = float(rng.uniform(0.14, 0.17))
    aspect = {"round": 1.0, "oval": 1.15, "wide": 0.88, "square": float(rng.uniform(0.85, 1.05))}[s.head_shape]
    s.head_w, s.head_h = round(base / aspect ** 0.5, 4), round(base * aspect ** 0.5, 4)

    if kind == "human":
        s.skin = _jitter(rng, _pick(rng, SKIN_TONES), 8)
        s.skin_name = "skin"
        s.hair_style = _pick(rng, HAIR_STYLES)
        s.hair_name = _pick(rng, tuple(HAIR_COLORS)[:5] if rng.random() < 0.85 else tuple(HAIR_COLORS))
        s.hair = _jitter(rng, HAIR_COLORS[s.hair_name])
        s.eye_style = "round"
        s.eye_color = _jitter(rng, EYE_COLORS[_pick(rng, tuple(EYE_COLORS))])
        s.glasses = bool(rng.random() < 0.2)
        s.accent = _jitter(rng, (205, 110, 110))  # lips
    elif kind in ("cat", "bear"):
        s.skin_name = _pick(rng, tuple(FUR_COLORS[kind]))
        s.skin = _jitter(rng, FUR_COLORS[kind][s.skin_name])
        s.hair_style, s.hair_name, s.hair = "none", s.skin_name, s.skin
        s.eye_style = "slit" if kind == "cat" else "round"
        s.eye_color = _jitter(rng, (EYE_COLORS["green"] if kind == "cat" else EYE_COLORS["brown"])
                              if rng.random() < 0.5 else EYE_COLORS["amber"])
        s.accent = _jitter(rng, (240, 170, 170) if kind == "cat" else (225, 195, 160))
        s.glasses = bool(rng.random() < 0.1)
    else:
        s.skin_name = _pick(rng, tuple(METAL_COLORS))
        s.skin = _jitter(rng, METAL_COLORS[s.skin_name], 8)
        s.hair_style, s.hair_name, s.hair = "none", "none", (60, 60, 70)
        s.eye_style = _pick(rng, ("lamp", "visor"))
        s.eye_color = _jitter(rng, LAMP_COLORS[_pick(rng, tuple(LAMP_COLORS))], 6)
        s.accent = _jitter(rng, _pick(rng, tuple(COLORS.values())))
    s.eye_size = round(float(rng.uniform(0.14, 0.21)), 4)
    s.eye_spacing = round(float(rng.uniform(0.32, 0.42)), 4)
    s.eye_height = round(float(rng.uniform(-0.12, 0.0)), 4)
    s.brow_thickness = round(float(rng.uniform(0.045, 0.085)), 4)
    s.mouth_width = round(float(rng.uniform(0.36, 0.5)), 4)

    s.shirt_name = _pick(rng, SHIRT_COLORS)
    s.shirt = _jitter(rng, COLORS[s.shirt_name])
    s.shirt2_name = _pick(rng, tuple(n for n in SHIRT_COLORS if n != s.shirt_name))
    s.shirt2 = _jitter(rng, COLORS[s.shirt2_name])
    s.pattern = _pick(rng, PATTERNS)
    s.long_sleeves = bool(rng.random() < 0.5) or kind == "robot"
    s.torso_w = round(float(rng.uniform(0.16, 0.22)), 4)
    s.neck = round(float(rng.uniform(0.02, 0.05)), 4)
    s.arm_len = round(float(rng.uniform(0.12, 0.14)), 4)

    s.background = _pick(rng, BACKGROUNDS)
    c1 = _jitter(rng, _pick(rng, BG_COLORS), 15)
    c2 = _jitter(rng, _pick(rng, BG_COLORS), 15)
    c3 = _jitter(rng, _pick(rng, BG_COLORS), 15)
    s.bg = [list(c1), list(c2), list(c3)]
    return s.validate()


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def describe(spec: CharacterSpec) -> str:
    """A short noun phrase for captions: "a blue robot with a boxy head in a red striped shirt"."""
    pattern = {"plain": "", "stripes": "striped ", "dots": "polka-dot ", "split": "two-tone ", "collar": "collared "}[spec.pattern]
    clothes = f"in {_article(spec.shirt_name)} {spec.shirt_name} {pattern}{'shirt' if spec.kind != 'robot' else 'body'}"
    if spec.kind == "human":
        hair = {"none": "a bald head", "short": f"short {spec.hair_name} hair", "long": f"long {spec.hair_name} hair",
                "bun": f"{spec.hair_name} hair in a bun", "spiky": f"spiky {spec.hair_name} hair",
                "curly": f"curly {spec.hair_name} hair", "bob": f"a {spec.hair_name} bob"}[spec.hair_style]
        extra = " and glasses" if spec.glasses else ""
        return f"a cartoon person with {hair}{extra} {clothes}"
    if spec.kind in ("cat", "bear"):
        extra = " with glasses" if spec.glasses else ""
        return f"{_article(spec.skin_name)} {spec.skin_name} {spec.kind}{extra} {clothes}"
    head = "a boxy head" if spec.head_shape == "square" else "a round head"
    return f"{_article(spec.skin_name)} {spec.skin_name} robot with {head} and {spec.eye_style} eyes {clothes}"


def pronoun(spec: CharacterSpec) -> str:
    """The possessive used in captions ("waves its right hand"); cartoon people get "their"."""
    return "their" if spec.kind == "human" else "its"


# Layout of `identity_vector`: name -> width. Fixed order; extend only at the end.
IDENTITY_LAYOUT = (
    ("kind", len(KINDS)), ("head_shape", len(HEAD_SHAPES)), ("head_size", 2), ("skin", 3),
    ("hair_style", len(HAIR_STYLES)), ("hair", 3), ("eye_style", len(EYE_STYLES)), ("eye_color", 3),
    ("eye_geometry", 3), ("brow_mouth", 2), ("glasses", 1), ("accent", 3), ("shirt", 3), ("shirt2", 3),
    ("pattern", len(PATTERNS)), ("long_sleeves", 1), ("body", 3), ("background", len(BACKGROUNDS)), ("bg", 9),
)
IDENTITY_DIM = sum(w for _, w in IDENTITY_LAYOUT)


def identity_vector(spec: CharacterSpec) -> np.ndarray:
    """The identity as float32 [IDENTITY_DIM]: one-hots for categories, colours / 255, sizes scaled to ~0..1."""

    def onehot(value, options):
        v = np.zeros(len(options), np.float32)
        v[options.index(value)] = 1.0
        return v

    def rgb(c):
        return np.asarray(c, np.float32)[:3] / 255.0

    parts = [
        onehot(spec.kind, KINDS), onehot(spec.head_shape, HEAD_SHAPES),
        np.asarray([spec.head_w, spec.head_h], np.float32) / 0.2, rgb(spec.skin),
        onehot(spec.hair_style, HAIR_STYLES), rgb(spec.hair), onehot(spec.eye_style, EYE_STYLES), rgb(spec.eye_color),
        np.asarray([spec.eye_size * 4, spec.eye_spacing * 2, spec.eye_height * -4], np.float32),
        np.asarray([spec.brow_thickness * 10, spec.mouth_width * 2], np.float32),
        np.asarray([float(spec.glasses)], np.float32), rgb(spec.accent), rgb(spec.shirt), rgb(spec.shirt2),
        onehot(spec.pattern, PATTERNS), np.asarray([float(spec.long_sleeves)], np.float32),
        np.asarray([spec.torso_w * 4, spec.neck * 10, spec.arm_len * 5], np.float32),
        onehot(spec.background, BACKGROUNDS), np.concatenate([rgb(c) for c in spec.bg]),
    ]
    out = np.concatenate(parts).astype(np.float32)
    assert out.shape == (IDENTITY_DIM,)
    return out
