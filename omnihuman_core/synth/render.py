"""Draw a character in a pose: frames and the labels measured while drawing them.

Vector drawing with Pillow at `SUPERSAMPLE`x the output size, then box-downsampled (cheap
anti-aliasing). A head is an ellipsoid: facial features live on its surface as (u, v) in head
half-widths / half-heights and are projected through yaw and pitch, so turns and nods move and
foreshorten them like a 3D head; roll rotates the whole head in the image plane.

World coordinates: 1.0 = the frame's width at zoom 1, origin top-left, y down; the camera maps the
world point (cam_x, cam_y) to the frame centre with magnification `zoom`. The character stands at
x = 0.5, head in the upper half, torso running out of the bottom of the frame.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from ..errors import InputError
from .character import CharacterSpec, identity_vector
from .motion import LEFT, RIGHT, Pose, compute_pose, neutral_pose

SUPERSAMPLE = 2
SHOULDER_Y = 0.56  # world y of the shoulder line
LEAN_SCALE = 0.22  # leaning in fully makes the character this much bigger ...
LEAN_PIVOT = (0.5, 0.12)  # ... about this point (head comes down and forward, body grows)
BG_EXTENT = (-0.5, 1.5)  # the background is drawn over this world range (room for pans and zoom-out)
MIN_SIZE, MAX_SIZE = 32, 1024

_UNIT = {n: np.stack([np.cos(a), np.sin(a)], 1) for n in (12, 16, 20, 28, 40)
         for a in [np.linspace(0, 2 * np.pi, n, endpoint=False)]}


def _shade(c, f: float) -> tuple:
    return tuple(int(min(255, max(0, round(v * f)))) for v in c[:3])


def _mix(a, b, t: float) -> tuple:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a[:3], b[:3]))


def _superellipse(n: int, p: float) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    c, s = np.cos(a), np.sin(a)
    return np.stack([np.sign(c) * np.abs(c) ** (2 / p), np.sign(s) * np.abs(s) ** (2 / p)], 1)


# ------------------------------------------------------------------------------- backgrounds


def background_image(spec: CharacterSpec, px_per_unit: int) -> Image.Image:
    """The backdrop over BG_EXTENT x BG_EXTENT world units (it moves with the camera, not the character)."""
    lo, hi = BG_EXTENT
    n = int(round((hi - lo) * px_per_unit))
    c1, c2, c3 = (np.asarray(c, np.float32) for c in spec.bg)
    soft2 = c1 + 0.45 * (c2 - c1)  # patterns at low contrast, so the character stands out
    w = lo + (np.arange(n) + 0.5) / px_per_unit  # world coordinate of each pixel column / row
    X, Y = w[None, :], w[:, None]
    kind = spec.background
    if kind == "solid":
        img = np.broadcast_to(c1, (n, n, 3)).copy()
    elif kind == "gradient":
        t = np.clip((Y - 0.0) / 1.0, 0, 1)[..., None]
        img = np.broadcast_to(c1 + t * (c2 - c1), (n, n, 3)).copy()
    elif kind == "stripes":
        band = (np.floor(X / 0.12) % 2 == 1)[..., None]
        img = np.where(np.broadcast_to(band, (n, n, 1)), soft2, c1) * np.ones((n, n, 1))
    elif kind == "checker":
        cell = ((np.floor(X / 0.15) + np.floor(Y / 0.15)) % 2 == 1)[..., None]
        img = np.where(cell, soft2, c1)
    else:  # room: wall, floor, a window or a picture on the wall
        rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 0xB6]))
        img = np.where((Y > 0.8)[..., None], c2 * 0.9, c1) * np.ones((n, n, 1))
        img = np.where(((Y > 0.79) & (Y < 0.81))[..., None], c3 * 0.8, img)
        side = rng.choice([-1, 1])
        x0 = 0.5 + side * rng.uniform(0.28, 0.42) - 0.1
        y0 = rng.uniform(0.1, 0.3)
        wdt, hgt = rng.uniform(0.16, 0.24), rng.uniform(0.16, 0.26)
        frame = (X > x0) & (X < x0 + wdt) & (Y > y0) & (Y < y0 + hgt)
        inner = (X > x0 + 0.015) & (X < x0 + wdt - 0.015) & (Y > y0 + 0.015) & (Y < y0 + hgt - 0.015)
        img = np.where(frame[..., None], c3, img)
        if rng.random() < 0.5:  # window: sky with a cross bar
            sky = np.asarray([150, 200, 240], np.float32)
            cross = (np.abs(X - (x0 + wdt / 2)) < 0.006) | (np.abs(Y - (y0 + hgt / 2)) < 0.006)
            img = np.where((inner & ~cross)[..., None], sky, img)
        else:  # picture: a coloured square with a circle (a "painting")
            paint = np.asarray(rng.integers(60, 230, 3), np.float32)
            sun = (X - (x0 + wdt * 0.6)) ** 2 + (Y - (y0 + hgt * 0.4)) ** 2 < (0.25 * min(wdt, hgt)) ** 2
            img = np.where(inner[..., None], paint, img)
            img = np.where((inner & sun)[..., None], np.asarray([250, 220, 90], np.float32), img)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


# ------------------------------------------------------------------------------------- the rig


class Rig:
    """A character ready to draw at one output size: colours, shapes and backdrop computed once."""

    def __init__(self, spec: CharacterSpec, size: int, supersample: int = SUPERSAMPLE):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not MIN_SIZE <= size <= MAX_SIZE:
            raise InputError(f"size must be an integer number of pixels in {MIN_SIZE}..{MAX_SIZE}, got {size!r}")
        if size % 2:
            raise InputError(f"size {size} is odd; H.264 needs even sizes, use {size + 1}")
        self.spec = spec.validate()
        self.size = int(size)
        self.ss = int(supersample)
        self.S = self.size * self.ss
        self.bg = background_image(spec, self.S)
        self._bg_cache: dict = {}
        self.lw = max(1, round(self.S / 180))  # outline width in supersampled pixels (~1 output px)
        s = spec
        self.skin = tuple(s.skin)
        self.skin_dark = _shade(s.skin, 0.82)
        self.outline = _shade(s.skin, 0.45)
        self.shirt, self.shirt2 = tuple(s.shirt), tuple(s.shirt2)
        self.shirt_line = _shade(s.shirt, 0.55)
        human, robot = s.kind == "human", s.kind == "robot"
        self.brow = (_shade(s.hair, 0.8) if human and s.hair_style != "none" else
                     (55, 55, 65) if robot else _shade(s.skin, 0.45 if s.kind != "human" else 0.5))
        if robot:
            self.lip, self.mouth_in, self.teeth = _shade(s.skin, 0.5), (30, 32, 38), tuple(s.eye_color)
        elif human:
            self.lip, self.mouth_in, self.teeth = _mix(s.skin, s.accent, 0.6), (95, 28, 38), (248, 248, 244)
        else:
            self.lip, self.mouth_in, self.teeth = _shade(s.skin, 0.35), (110, 35, 45), (248, 248, 244)
        self.sleeve = self.shirt if (s.long_sleeves or robot) else None
        self.arm_upper = self.shirt if not robot else _shade(s.skin, 0.85)
        self.arm_lower = (self.shirt if s.long_sleeves else self.skin) if not robot else _shade(s.skin, 0.85)
        self.hand = self.skin if not robot else _shade(s.skin, 0.7)
        self.snout = (_mix(s.skin, (255, 255, 255), 0.45) if s.kind == "cat" else
                      _mix(s.skin, s.accent, 0.7) if s.kind == "bear" else None)
        self.head_poly = _superellipse(40, 4.5 if s.head_shape == "square" else 2.0)

    # ----------------------------------------------------------------- transforms and primitives

    def _set_frame(self, p: dict) -> None:
        ls = 1.0 + LEAN_SCALE * float(p["lean"])
        z = float(p["zoom"])
        self.k = ls * z * self.S
        self.o = np.asarray([((LEAN_PIVOT[0] * (1 - ls) - p["cam_x"]) * z + 0.5) * self.S,
                             ((LEAN_PIVOT[1] * (1 - ls) - p["cam_y"]) * z + 0.5) * self.S])

    def _px(self, pts) -> list:
        return (np.asarray(pts, np.float64) * self.k + self.o).ravel().tolist()

    def _poly(self, pts, fill, outline=None, width=None):
        self.draw.polygon(self._px(pts), fill=fill, outline=outline, width=self.lw if width is None else width)

    def _line(self, pts, fill, width_world: float):
        w = max(1, int(round(width_world * self.k)))
        self.draw.line(self._px(pts), fill=fill, width=w, joint="curve")

    def _disc(self, c, r: float, fill, outline=None):
        x, y = np.asarray(c, np.float64) * self.k + self.o
        rr = r * self.k
        self.draw.ellipse([x - rr, y - rr, x + rr, y + rr], fill=fill, outline=outline,
                          width=self.lw if outline is not None else 0)

    def _background(self, p: dict) -> Image.Image:
        z, cx, cy = float(p["zoom"]), float(p["cam_x"]), float(p["cam_y"])
        key = (round(z, 5), round(cx, 5), round(cy, 5))
        hit = self._bg_cache.get(key)
        if hit is None:
            lo = BG_EXTENT[0]
            S = self.S
            data = (1 / z, 0, (cx - lo - 0.5 / z) * S, 0, 1 / z, (cy - lo - 0.5 / z) * S)
            hit = self.bg.transform((S, S), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR)
            if len(self._bg_cache) < 4:  # static cameras hit this every frame; moving ones never repeat
                self._bg_cache[key] = hit
        return hit.copy()

    # ----------------------------------------------------------------------- head geometry

    def _project(self, u, v):
        """Head-surface points (u, v) -> image-plane (x, y) in head units, depth z, foreshortening fx, fy."""
        u = np.asarray(u, np.float64)
        v = np.asarray(v, np.float64)
        zz = np.sqrt(np.clip(1.0 - u * u - v * v, 0.0, 1.0))
        cy, sy_ = math.cos(self._yaw), math.sin(self._yaw)
        cp, sp = math.cos(self._pitch), math.sin(self._pitch)
        x1 = u * cy + zz * sy_
        z1 = -u * sy_ + zz * cy
        y2 = v * cp + z1 * sp
        z2 = -v * sp + z1 * cp
        zs = np.maximum(zz, 0.35)
        fx = np.clip(cy - u / zs * sy_, 0.15, 1.2)
        fy = np.clip(cp - v / zs * sp, 0.3, 1.2)
        return x1, y2, z2, fx, fy

    def _head_world(self, x, y) -> np.ndarray:
        """Head units (after projection) -> world points, with roll about the head centre."""
        x = np.asarray(x, np.float64) * self.spec.head_w
        y = np.asarray(y, np.float64) * self.spec.head_h
        c, s = self._roll_cs
        return np.stack([self._hc[0] + x * c - y * s, self._hc[1] + x * s + y * c], -1)

    def _feature(self, u, v, rx: float, ry: float, n: int = 20, squash: float = 1.0):
        """An ellipse on the head surface at (u, v), radii in world units -> world polygon, depth."""
        x, y, z, fx, fy = self._project(u, v)
        ring = _UNIT[n]
        xs = x + ring[:, 0] * rx * fx / self.spec.head_w
        ys = y + ring[:, 1] * ry * fy * squash / self.spec.head_h
        return self._head_world(xs, ys), float(z)

    # --------------------------------------------------------------------------- drawing

    def draw_frame(self, p: dict) -> tuple[Image.Image, dict]:
        """One frame (supersampled PIL image) of pose `p` and its measured labels."""
        s = self.spec
        self._set_frame(p)
        img = self.img = self._background(p)
        self.draw = ImageDraw.Draw(img)
        self._yaw, self._pitch = math.radians(float(p["yaw"])), math.radians(float(p["pitch"]))
        roll = math.radians(float(p["roll"]))
        self._roll_cs = (math.cos(roll), math.sin(roll))
        sy = SHOULDER_Y + 0.004 * float(p["breath"])
        neck_top = np.asarray([0.5, sy - s.neck])
        up = -0.92 * s.head_h
        self._hc = neck_top + np.asarray([-up * self._roll_cs[1], up * self._roll_cs[0]]) \
            + np.asarray([0.0, 0.12 * s.head_h * math.sin(self._pitch)])

        self._draw_back_head()
        self._draw_neck(sy)
        self._draw_torso(sy)
        self._draw_head_fill()
        self._draw_hair_front()
        self._draw_face(p)
        hands = self._draw_arms(p, sy)

        k_out = self.k / self.ss
        o_out = self.o / self.ss
        labels = {
            "hands": np.asarray(hands, np.float32) * k_out + o_out,
            "head_center": (np.asarray(self._hc, np.float64) * k_out + o_out).astype(np.float32),
            "head_radius": np.float32(s.head_h * k_out),
        }
        return img, labels

    def _draw_back_head(self) -> None:
        """Everything behind the head: long hair, ears, antenna."""
        s = self.spec
        yaw_shift = 0.25 * math.sin(self._yaw)
        if s.hair_style in ("long", "bob"):
            a = np.linspace(np.pi, 2 * np.pi, 16)
            bottom = 1.7 if s.hair_style == "long" else 0.8
            top = np.stack([1.12 * np.cos(a), 1.1 * np.sin(a)], 1)
            tail = np.asarray([[1.16, 0.5], [1.2 if bottom > 1 else 1.1, bottom], [-1.2 if bottom > 1 else -1.1, bottom], [-1.16, 0.5]])
            pts = np.concatenate([top, tail])
            self._poly(self._head_world(pts[:, 0] - 0.3 * yaw_shift, pts[:, 1]), s.hair, _shade(s.hair, 0.6))
        if s.kind == "human":
            for side in (-1, 1):
                pts, _ = self._feature(side * 0.97, 0.08, 0.17 * s.head_w * max(0.4, abs(math.cos(self._yaw))), 0.26 * s.head_h, 16)
                self._poly(pts, self.skin_dark, self.outline)
        elif s.kind == "cat":
            for mid in (240.0, 300.0):
                a = np.radians([mid - 27, mid, mid + 27])
                r = np.asarray([0.95, 1.55, 0.95])
                pts = np.stack([r * np.cos(a) + yaw_shift, r * np.sin(a)], 1)
                self._poly(self._head_world(pts[:, 0], pts[:, 1]), self.skin, self.outline)
                inner = pts.mean(0) + 0.55 * (pts - pts.mean(0)) + np.asarray([0, 0.06])
                self._poly(self._head_world(inner[:, 0], inner[:, 1]), tuple(s.accent))
        elif s.kind == "bear":
            for mid in (235.0, 305.0):
                a = math.radians(mid)
                c = np.asarray([math.cos(a) + yaw_shift, math.sin(a)]) * np.asarray([1.0, 0.98])
                ring = _UNIT[20]
                pts = c + ring * np.asarray([0.36, 0.36 * s.head_w / s.head_h])
                self._poly(self._head_world(pts[:, 0], pts[:, 1]), self.skin, self.outline)
                pts = c + ring * np.asarray([0.2, 0.2 * s.head_w / s.head_h])
                self._poly(self._head_world(pts[:, 0], pts[:, 1]), tuple(s.accent))
        else:  # robot: antenna and ear bolts
            top = self._head_world([yaw_shift * 0.6, yaw_shift * 0.6], [-0.95, -1.5])
            self._line(top, _shade(s.skin, 0.5), 0.012)
            self._disc(top[1], 0.022, tuple(s.accent), _shade(s.accent, 0.5))
            for side in (-1, 1):
                pts = np.asarray([[side * 1.0 * abs(math.cos(self._yaw)) + yaw_shift * 0.5, 0]]) + \
                    _UNIT[16] * np.asarray([0.14, 0.3])
                self._poly(self._head_world(pts[:, 0], pts[:, 1]), _shade(s.skin, 0.65), self.outline)

    def _draw_neck(self, sy: float) -> None:
        s = self.spec
        nw = s.head_w * (0.3 if s.kind == "human" else 0.45 if s.kind in ("cat", "bear") else 0.25)
        pts = np.asarray([[self._hc[0] - nw, self._hc[1]], [self._hc[0] + nw, self._hc[1]],
                          [0.5 + nw, sy + 0.03], [0.5 - nw, sy + 0.03]])
        self._poly(pts, self.skin_dark if s.kind != "robot" else _shade(s.skin, 0.6), self.outline)

    def _torso_points(self, sy: float) -> np.ndarray:
        s = self.spec
        a = np.linspace(np.pi, 2 * np.pi, 16)
        ry = 0.075 if s.kind != "robot" else 0.035
        dome = np.stack([0.5 + s.torso_w * np.cos(a), sy + 0.06 + ry * np.sin(a)], 1)
        base = np.asarray([[0.5 + s.torso_w * 1.05, 1.9], [0.5 - s.torso_w * 1.05, 1.9]])
        return np.concatenate([dome, base])

    def _draw_torso(self, sy: float) -> None:
        s = self.spec
        pts = self._torso_points(sy)
        body = self.shirt if s.kind != "robot" else tuple(s.skin)
        self._poly(pts, body, self.shirt_line if s.kind != "robot" else self.outline)
        tw = s.torso_w
        if s.kind == "robot":
            panel = np.asarray([0.5, sy + 0.17]) + _superellipse(28, 5) * np.asarray([0.6 * tw, 0.07])
            self._poly(panel, self.shirt, _shade(self.shirt, 0.5))
            for i in (-1, 0, 1):
                self._disc((0.5 + i * 0.2 * tw, sy + 0.17), 0.013, tuple(s.accent))
            return
        if s.pattern == "collar":
            v = np.asarray([[0.5 - 0.35 * s.head_w, sy - 0.005], [0.5 + 0.35 * s.head_w, sy - 0.005], [0.5, sy + 0.08]])
            self._poly(v, self.skin_dark)
            for side in (-1, 1):
                flap = np.asarray([[0.5 + side * 0.35 * s.head_w, sy - 0.01], [0.5 + side * 0.01, sy + 0.08],
                                   [0.5 + side * 0.75 * s.head_w, sy + 0.05]])
                self._poly(flap, self.shirt2, self.shirt_line)
            return
        if s.pattern == "plain":
            return
        # Patterned cloth: draw the pattern over the torso's bounding box, keep it inside the torso.
        px = np.asarray(self._px(pts)).reshape(-1, 2)
        x0, y0 = np.floor(px.min(0)).astype(int)
        x1, y1 = np.ceil(px.max(0)).astype(int)
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, self.S), min(y1, self.S)
        if x1 <= x0 or y1 <= y0:
            return
        box = (x1 - x0, y1 - y0)
        mask = Image.new("L", box, 0)
        ImageDraw.Draw(mask).polygon((px - [x0, y0]).ravel().tolist(), fill=255)
        layer = Image.new("RGB", box, self.shirt)
        d = ImageDraw.Draw(layer)
        to = lambda wx, wy: ((wx * self.k + self.o[0]) - x0, (wy * self.k + self.o[1]) - y0)  # noqa: E731
        if s.pattern == "stripes":
            y = sy + 0.03
            while y < 1.9:
                (ax, ay), (bx, by) = to(0.5 - 1.2 * tw, y), to(0.5 + 1.2 * tw, y + 0.028)
                if ay > box[1]:
                    break
                d.rectangle([ax, ay, bx, by], fill=self.shirt2)
                y += 0.07
        elif s.pattern == "dots":
            r = 0.014 * self.k
            for j, y in enumerate(np.arange(sy + 0.04, 1.3, 0.06)):
                for x in np.arange(0.5 - 1.2 * tw + (0.03 if j % 2 else 0), 0.5 + 1.2 * tw, 0.06):
                    cx, cy = to(x, y)
                    if -r < cy < box[1] + r:
                        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=self.shirt2)
        elif s.pattern == "split":
            (ax, ay), (bx, by) = to(0.5, sy - 0.1), to(0.5 + 1.2 * tw, 1.9)
            d.rectangle([ax, ay, bx, by], fill=self.shirt2)
        self.img.paste(layer, (x0, y0), mask)

    def _draw_head_fill(self) -> None:
        pts = self._head_world(self.head_poly[:, 0], self.head_poly[:, 1])
        self._poly(pts, self.skin, self.outline)

    def _draw_hair_front(self) -> None:
        s = self.spec
        if s.kind != "human" or s.hair_style == "none":
            return
        a = np.radians(np.linspace(196, 344, 18))
        sil = np.stack([1.07 * np.cos(a), 1.07 * np.sin(a)], 1)
        u = np.linspace(0.93, -0.93, 13)
        v = -0.55 + 0.32 * u * u
        if s.hair_style == "bob" or s.hair_style == "long":
            v = v + 0.08 * np.cos(u * 9)  # a fringe with a little wave
        hx, hy, _, _, _ = self._project(u, v)
        pts = np.concatenate([sil, np.stack([hx, hy], 1)])
        col, line = s.hair, _shade(s.hair, 0.6)
        self._poly(self._head_world(pts[:, 0], pts[:, 1]), col, line)
        if s.hair_style == "spiky":
            for mid in np.linspace(205, 335, 6):
                b = np.radians([mid - 11, mid, mid + 11])
                r = np.asarray([1.0, 1.38, 1.0])
                tri = np.stack([r * np.cos(b), r * np.sin(b)], 1)
                self._poly(self._head_world(tri[:, 0], tri[:, 1]), col, line)
        elif s.hair_style == "curly":
            for mid in np.linspace(190, 350, 9):
                b = math.radians(mid)
                c = np.asarray([1.02 * math.cos(b), 1.02 * math.sin(b)])
                ring = c + _UNIT[12] * np.asarray([0.24, 0.24 * s.head_w / s.head_h])
                self._poly(self._head_world(ring[:, 0], ring[:, 1]), col, line)
        elif s.hair_style == "bun":
            ring = np.asarray([0.0, -1.18]) + _UNIT[20] * np.asarray([0.4, 0.36 * s.head_w / s.head_h])
            self._poly(self._head_world(ring[:, 0], ring[:, 1]), col, line)

    def _draw_face(self, p: dict) -> None:
        s = self.spec
        hw = s.head_w
        eye_open = float(p["eye_open"])
        eye_scale = float(p["eye_scale"])
        r = s.eye_size * hw
        gaze = 0.3 * math.sin(self._yaw)
        animal = s.kind in ("cat", "bear")

        if animal:  # snout under the eyes, the nose and mouth sit on it
            pts, z = self._feature(0.0, 0.45, 0.44 * hw, 0.3 * s.head_h, 28)
            self._poly(pts, self.snout, _shade(self.snout, 0.7))
        if s.eye_style == "visor":
            x, y, z, fx, fy = self._project(0.0, s.eye_height)
            ring = _superellipse(28, 5)
            w = (s.eye_spacing + 1.7 * s.eye_size) * fx
            h = 1.9 * s.eye_size * hw / s.head_h * fy
            self._poly(self._head_world(x + ring[:, 0] * w, y + ring[:, 1] * h), (28, 30, 36), (15, 15, 20))

        for side in (-1, 1):
            u, v = side * s.eye_spacing, s.eye_height
            x, y, z, fx, fy = self._project(u, v)
            if z < 0.12:
                continue  # turned away: the far eye is behind the head
            er = r * eye_scale
            if s.kind == "robot":
                if s.eye_style == "lamp":
                    pts, _ = self._feature(u, v, er * 1.3, er * 1.3, 20)
                    self._poly(pts, (35, 37, 45), (15, 15, 20))
                squash = max(0.12, eye_open)
                pts, _ = self._feature(u, v, er * 0.85, er * 0.85, 20, squash)
                self._poly(pts, tuple(s.eye_color))
                hl, _ = self._feature(u - 0.06, v - 0.06, er * 0.25, er * 0.25, 12, squash)
                self._poly(hl, (255, 255, 255))
            elif eye_open < 0.25:  # blink: a closed lid is a short arc
                xs = np.linspace(-1, 1, 5)
                pts = self._head_world(x + xs * er * fx / hw, y + 0.15 * (1 - xs ** 2) * er / s.head_h)
                self._line(pts, self.outline, 0.012)
            else:
                squash = eye_open
                white, _ = self._feature(u, v, er, er * 1.12, 20, squash)
                self._poly(white, (248, 248, 244), self.outline)
                if s.eye_style == "slit":
                    iris, _ = self._feature(u + gaze * 0.08, v, er * 0.9, er * 1.0, 20, squash)
                    self._poly(iris, tuple(s.eye_color))
                    pupil, _ = self._feature(u + gaze * 0.08, v, er * 0.22, er * 0.9, 16, squash)
                    self._poly(pupil, (15, 15, 15))
                else:
                    iris, _ = self._feature(u + gaze * 0.12, v + 0.02, er * 0.62, er * 0.66, 16, squash)
                    self._poly(iris, tuple(s.eye_color))
                    pupil, _ = self._feature(u + gaze * 0.12, v + 0.02, er * 0.32, er * 0.34, 12, squash)
                    self._poly(pupil, (15, 15, 15))
                hl, _ = self._feature(u + gaze * 0.12 - 0.05, v - 0.04, er * 0.16, er * 0.16, 12, squash)
                self._poly(hl, (255, 255, 255))
            if s.glasses:
                rim, _ = self._feature(u, v, er * 1.55, er * 1.45, 28)
                self.draw.polygon(self._px(rim), outline=(30, 30, 35), width=max(1, self.lw + 1))

            # Brow: a thick bar above the eye; inner end lower when angry, higher when sad.
            raise_, tilt = float(p["brow_raise"]), float(p["brow_tilt"])
            by = v - er * 1.12 / s.head_h * (1.0 if s.kind != "robot" else 1.3) - 0.14 - 0.13 * raise_
            half = 1.25 * er / hw
            bu = np.asarray([u - side * half, u, u + side * half])  # inner, middle, outer
            bv = np.asarray([by + 0.13 * tilt, by - 0.03, by - 0.05 * tilt])
            bx, byy, bz, _, _ = self._project(bu, bv)
            self._line(self._head_world(bx, byy), self.brow, s.brow_thickness * s.head_h)
        if s.glasses:
            bridge = self._head_world(*self._project(np.asarray([-s.eye_spacing + s.eye_size * 1.5, s.eye_spacing - s.eye_size * 1.5]),
                                                     np.asarray([s.eye_height, s.eye_height]))[:2])
            self._line(bridge, (30, 30, 35), 0.006)

        # Nose
        if s.kind == "human":
            pts, z = self._feature(0.0, s.eye_height + 0.3, 0.07 * hw, 0.06 * s.head_h, 12)
            self._poly(pts, self.skin_dark)
        elif s.kind == "cat":
            x, y, _, fx, fy = self._project(0.0, 0.3)
            tri = np.asarray([[-0.1 * fx, -0.04], [0.1 * fx, -0.04], [0.0, 0.07]])
            self._poly(self._head_world(x + tri[:, 0], y + tri[:, 1]), (225, 120, 130), (120, 60, 70))
        elif s.kind == "bear":
            pts, _ = self._feature(0.0, 0.3, 0.12 * hw, 0.07 * s.head_h, 16)
            self._poly(pts, (40, 30, 30))
        self._draw_mouth(p)
        if s.kind == "cat":
            for side in (-1, 1):
                for dy in (-0.05, 0.03, 0.11):
                    wx, wy, _, _, _ = self._project(np.asarray([side * 0.32, side * 0.95]),
                                                    np.asarray([0.45 + dy, 0.36 + 2 * dy]))
                    self._line(self._head_world(wx, wy), (70, 60, 60), 0.003)

    def _draw_mouth(self, p: dict) -> None:
        s = self.spec
        m = float(p["mouth"])
        rnd = float(p["mouth_round"])
        smile = float(p["smile"])
        vm = 0.5 if s.kind in ("human", "robot") else 0.6
        mw = s.mouth_width * (1.0 - 0.3 * rnd) * (0.8 if s.kind in ("cat", "bear") else 1.0)
        xs = np.linspace(-1.0, 1.0, 11)
        c = 0.16 * smile
        yc = vm - c * (xs * xs - 0.3)
        if m < 0.04:
            mx, my, _, _, _ = self._project(xs * mw, yc)
            self._line(self._head_world(mx, my), _shade(self.lip, 0.75), 0.06 * s.head_h)
            return
        h = 0.05 + 0.42 * m
        prof = (1 - xs * xs) ** (0.55 if rnd > 0.5 else 0.9)
        yu = yc - 0.12 * h * prof
        yl = yc + h * prof
        if s.kind == "robot":  # a rectangular speaker grille
            prof = np.ones_like(xs)
            yu, yl = yc - 0.04, yc + h
        ux, uy, _, _, _ = self._project(xs * mw, yu)
        lx, ly, _, _, _ = self._project(xs[::-1] * mw, yl[::-1])
        outline = self._head_world(np.concatenate([ux, lx]), np.concatenate([uy, ly]))
        self._poly(outline, self.mouth_in, self.lip, width=max(1, int(round(0.04 * s.head_h * self.k))))
        if s.kind == "robot":
            for frac in (-0.5, 0.0, 0.5):
                gx, gy, _, _, _ = self._project(np.asarray([frac * mw, frac * mw]), np.asarray([yc[5] - 0.01, yc[5] + h * 0.95]))
                self._line(self._head_world(gx, gy), self.teeth, 0.01 * (0.5 + m))
        elif h > 0.15:  # upper teeth show once the mouth is open enough
            inner = np.abs(xs) <= 0.8
            tx, ty, _, _, _ = self._project(xs[inner] * mw, yu[inner] + 0.03)
            bx, by, _, _, _ = self._project(xs[inner][::-1] * mw, yu[inner][::-1] + 0.03 + 0.25 * h * prof[inner][::-1])
            self._poly(self._head_world(np.concatenate([tx, bx]), np.concatenate([ty, by])), self.teeth)

    def _draw_arms(self, p: dict, sy: float) -> list:
        """Both arms and hands in front of the body; returns hand centres [left, right] in world units."""
        s = self.spec
        hands = [None, None]
        for side in (RIGHT, LEFT):
            sgn = 1.0 if side == LEFT else -1.0  # the character's left arm is on the image's right
            sh = np.asarray([0.5 + sgn * (s.torso_w - 0.035), sy + 0.045])
            L = s.arm_len * float(p["reach"][side])
            a, b = float(p["alpha"][side]), float(p["beta"][side])
            el = sh + L * np.asarray([sgn * math.sin(a), math.cos(a)])
            hd = el + L * np.asarray([sgn * math.sin(b), math.cos(b)])
            hands[side] = hd
            dark = self.shirt_line if s.kind != "robot" else self.outline
            wu, wl = 0.036, 0.03
            self._line([sh, el], dark, wu + 2 * self.lw / self.k)
            self._disc(sh, (wu + 2 * self.lw / self.k) / 2, dark)
            self._line([el, hd], _shade(self.arm_lower, 0.55), wl + 2 * self.lw / self.k)
            self._disc(el, (wu + 2 * self.lw / self.k) / 2, dark)
            self._line([sh, el], self.arm_upper, wu)
            self._disc(sh, wu / 2, self.arm_upper)
            self._line([el, hd], self.arm_lower, wl)
            self._disc(el, wu / 2, self.arm_upper if not s.long_sleeves else self.arm_lower)
            # Hand: a palm along the forearm, a thumb, and an index finger when pointing.
            d = np.asarray([sgn * math.sin(b), math.cos(b)])
            n = np.asarray([-d[1], d[0]])
            fing = float(p["finger"][side])
            if fing > 0.3:
                self._line([hd, hd + d * 0.05 * fing], self.hand, 0.014)
            rot = np.stack([n, d], 1)  # local x across the palm, y along the forearm
            palm = hd + d * 0.004 + (_UNIT[16] * np.asarray([0.025, 0.03])) @ rot.T
            self._poly(palm, self.hand, _shade(self.hand, 0.5))
            self._disc(hd + n * 0.024 * sgn - d * 0.005, 0.009, self.hand, _shade(self.hand, 0.5))
        return hands


# ----------------------------------------------------------------------------- public API


def _finish(img: Image.Image, ss: int) -> np.ndarray:
    if ss > 1:
        img = img.reduce(ss)
    return np.asarray(img, np.uint8)


def render_pose(spec: CharacterSpec, pose: Pose, size: int = 128, *, rig: Rig | None = None) -> tuple[np.ndarray, dict]:
    """Draw every frame of `pose` -> (uint8 [T, H, W, 3], labels dict of numpy arrays)."""
    rig = rig or Rig(spec, size)
    T = pose.n_frames
    frames = np.empty((T, rig.size, rig.size, 3), np.uint8)
    hands = np.empty((T, 2, 2), np.float32)
    head_c = np.empty((T, 2), np.float32)
    head_r = np.empty(T, np.float32)
    for i in range(T):
        img, lab = rig.draw_frame(pose.at(i))
        frames[i] = _finish(img, rig.ss)
        hands[i], head_c[i], head_r[i] = lab["hands"], lab["head_center"], lab["head_radius"]
    visible = (hands >= 0).all(-1) & (hands < rig.size).all(-1)
    labels = {
        "mouth": pose.mouth.astype(np.float32),
        "head_pose": np.stack([pose.yaw, pose.pitch, pose.roll], 1).astype(np.float32),
        "head_center": head_c,
        "head_radius": head_r,
        # The head's box (x0, y0, x1, y1) px: the face region the trainer can weight (train/data.py).
        "face_box": np.concatenate([head_c - head_r[:, None], head_c + head_r[:, None]], 1).astype(np.float32),
        "hands": hands,
        "hands_visible": visible,
        "action": pose.action.astype(np.int16),
        "emotion": pose.emotion.astype(np.int16),
        "camera": pose.camera.astype(np.int16),
        "camera_params": np.stack([pose.zoom, pose.cam_x, pose.cam_y], 1).astype(np.float32),
        "smile": pose.smile.astype(np.float32),
        "brows": np.stack([pose.brow_raise, pose.brow_tilt], 1).astype(np.float32),
        "eyes_open": pose.eye_open.astype(np.float32),
        "lean": pose.lean.astype(np.float32),
        "identity_vector": identity_vector(spec),
    }
    return frames, labels


def render_clip(spec: CharacterSpec, actions, emotion: str = "neutral", camera: str = "static", mouth_track=None,
                fps: float = 24.0, size: int = 128, *, n_frames: int | None = None, seed: int = 0,
                speaking=None) -> tuple[np.ndarray, dict]:
    """Render a clip: (frames uint8 [T, H, W, 3], labels).

    `actions`: names (the clip is split evenly between them), ActionSegment or (name, start, end).
    `mouth_track`: [T] mouth opening 0..1 (e.g. `speech.mouth_track(waveform, fps, T)`); None = closed
    for `n_frames` frames. `seed` varies the idle life and the style of actions (not the identity).
    Labels: see docs/SYNTH.md; every array has the frame axis first except `identity_vector`.
    """
    if mouth_track is None:
        if n_frames is None:
            raise InputError("render_clip needs a mouth_track or n_frames")
        mouth_track = np.zeros(int(n_frames), np.float32)
    elif n_frames is not None and len(mouth_track) != n_frames:
        raise InputError(f"mouth_track has {len(mouth_track)} frames but n_frames is {n_frames}")
    pose = compute_pose(actions, emotion, camera, mouth_track, fps, seed=seed)
    frames, labels = render_pose(spec, pose, size)
    labels["speaking"] = (np.asarray(speaking, bool) if speaking is not None else labels["mouth"] > 0)
    return frames, labels


def render_reference(spec: CharacterSpec, size: int = 256) -> Image.Image:
    """The character in its neutral idle pose, facing the camera, mouth closed, static camera."""
    frames, _ = render_pose(spec, neutral_pose(1), size)
    return Image.fromarray(frames[0], "RGB")
