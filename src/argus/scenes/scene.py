"""A scene spec (who walks where, when; what else moves; the camera) and its lazy, exactly reproducible rendering.

Why a spec plus a pure per-frame function: frame ``i`` depends only on (spec, bank, seed, i) — never on frames
before it — so a test can render frame 137 alone, two runs give byte-identical frames, and the ground truth is
computed from the same geometry the renderer pasted, not estimated afterwards.

Ground truth: a face's box is the detector box of its patch mapped into the frame (what a perfect detector would
return), clipped to the frame. ``visible`` is the fraction of the whole (unclipped) box that is inside the frame
and not covered by anything drawn after it (a nearer person, a front prop); ``occluded`` means less than
``OCCLUDED_BELOW`` of it is visible. People are drawn far to near (smaller faces first), so a bigger face passes in
front of a smaller one.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from argus.errors import ConfigError, InputError, SourceError
from argus.ingest.sources import CapturedFrame
from argus.scenes.background import Lighting, Sensor, _rng, street_background
from argus.scenes.bank import FaceBank, FacePatch

OCCLUDED_BELOW = 0.05
DEFAULT_START_TS = 1_767_225_600.0  # 2026-01-01T00:00:00Z: a fixed clock, so truth and alert times reproduce
HORIZON = 0.20  # face-centre y (frame fraction) of a face of size 0; bigger (nearer) faces sit lower
DROP_PER_PX = 1.5  # face-centre y moves down this many pixels per pixel of face width
SHIFT = 3  # sub-pixel bits for cv2 polygon drawing: smooth motion of slow, small shapes
FIX = 1 << SHIFT

Color = tuple[int, int, int]
PropKind = Literal["car", "van", "box", "pole", "tree"]


@dataclass(frozen=True, kw_only=True)
class Person:
    """One visit of one person: walks from (x0, size0) at t0 to (x1, size1) at t1.

    x is the face centre as a fraction of the frame width (outside 0..1 = off frame); size is the face box width in
    pixels at 720p (scaled with the frame height), interpolated geometrically like perspective does; ``via`` adds
    waypoints (u, x, size) with u in (0, 1) the fraction of [t0, t1] (e.g. walk up to the camera, then leave past
    one side); ``bend`` bows the path sideways (fraction of the frame height at mid-path); ``lift`` raises (−) or
    lowers (+) the whole path.
    """

    identity: str
    patch: int = 0  # index into bank.of(identity)
    t0: float
    t1: float
    x0: float
    x1: float
    size0: float
    size1: float
    bend: float = 0.0
    lift: float = 0.0
    sunglasses: bool = False
    body: bool = True
    clothing: Color = (90, 70, 60)
    phase: float = 0.0  # walking-cycle phase, so a crowd does not march in step
    via: tuple[tuple[float, float, float], ...] = ()

    def __post_init__(self) -> None:
        if not self.t1 > self.t0:
            raise ConfigError(f"person {self.identity!r}: expected t1 > t0, got t0={self.t0}, t1={self.t1}")
        for name, v in (("size0", self.size0), ("size1", self.size1), *(("via size", w[2]) for w in self.via)):
            if not 4 <= v <= 600:
                raise ConfigError(f"person {self.identity!r}: {name}: expected 4..600 px, got {v}")
        us = [w[0] for w in self.via]
        if any(not 0 < u < 1 for u in us) or us != sorted(set(us)):
            raise ConfigError(f"person {self.identity!r}: via: expected increasing u in (0, 1), got {us}")

    def at(self, u: float) -> tuple[float, float]:
        """(x, size at 720p) at path fraction u: x linear and size geometric between consecutive waypoints."""
        keys = ((0.0, self.x0, self.size0), *self.via, (1.0, self.x1, self.size1))
        for (ua, xa, sa), (ub, xb, sb) in itertools.pairwise(keys):
            if u <= ub or ub == 1.0:
                v = min(1.0, max(0.0, (u - ua) / (ub - ua)))
                return xa + (xb - xa) * v, math.exp(math.log(sa) * (1 - v) + math.log(sb) * v)
        raise AssertionError("unreachable: the last key has u = 1")


@dataclass(frozen=True, kw_only=True)
class Prop:
    """Something that moves (or stands) and is not a person: cars and boxes on the street, swaying trees, and
    occluders (``front=True``: drawn over the people, e.g. a van passing close to the camera, a lamp post).

    Position: centre x (frame fraction) goes from x0 at t0 to x1 at t1 and holds outside that interval; ``bottom``
    is the bottom edge (frame fraction); width and height are pixels at 720p.
    """

    kind: PropKind
    x0: float
    x1: float | None = None
    t0: float = 0.0
    t1: float = 1.0
    bottom: float
    width: float
    height: float
    color: Color = (60, 60, 160)
    front: bool = False
    sway: float = 0.0  # trees: crown sway amplitude, px at 720p

    def __post_init__(self) -> None:
        if self.kind not in ("car", "van", "box", "pole", "tree"):
            raise ConfigError(f"prop kind: expected car, van, box, pole or tree, got {self.kind!r}")
        if not self.t1 > self.t0:
            raise ConfigError(f"prop {self.kind}: expected t1 > t0, got t0={self.t0}, t1={self.t1}")
        if self.width <= 0 or self.height <= 0:
            raise ConfigError(f"prop {self.kind}: expected a positive size, got {self.width}×{self.height}")


@dataclass(frozen=True, kw_only=True)
class FaceTruth:
    """One face in one frame, as a perfect detector + tracker would report it."""

    identity: str
    visit_id: str  # "obama#2": the person's second visit to this scene
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in frame pixels, clipped to the frame
    size: float  # unclipped face box width, pixels
    visible: float  # fraction of the unclipped box in frame and not covered
    occluded: bool  # visible < OCCLUDED_BELOW
    sunglasses: bool
    source: str  # the photo the patch was cut from

    def as_dict(self) -> dict[str, Any]:
        return {"identity": self.identity, "visit_id": self.visit_id, "box": list(self.box), "size": self.size,
                "visible": self.visible, "occluded": self.occluded, "sunglasses": self.sunglasses,
                "source": self.source}


@dataclass(frozen=True, kw_only=True)
class FrameTruth:
    index: int
    ts: float
    faces: tuple[FaceTruth, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "ts": self.ts, "faces": [f.as_dict() for f in self.faces]}


@dataclass(frozen=True, kw_only=True)
class Visit:
    """A person's time in the scene: the first and last frame their face is at least partly in the frame."""

    identity: str
    visit_id: str
    number: int  # 1, 2, … per identity, in time order
    first_frame: int
    last_frame: int
    first_ts: float
    last_ts: float
    sunglasses: bool

    def as_dict(self) -> dict[str, Any]:
        return {"identity": self.identity, "visit_id": self.visit_id, "number": self.number,
                "first_frame": self.first_frame, "last_frame": self.last_frame, "first_ts": self.first_ts,
                "last_ts": self.last_ts, "sunglasses": self.sunglasses}


# --------------------------------------------------------------------------------------------- geometry

@dataclass(frozen=True, kw_only=True, eq=False)
class _Placed:
    """A person at one instant: where the patch goes and where its face box lands."""

    order: int  # index in scene.people
    size: float  # face box width, frame pixels
    ox: int  # patch top-left in the frame
    oy: int
    pw: int  # resized patch size
    ph: int
    box: tuple[float, float, float, float]  # unclipped face box
    t: float


def _poly(points: Sequence[tuple[float, float]]) -> np.ndarray:
    return np.round(np.asarray(points, np.float64) * FIX).astype(np.int32)


def _ellipse(cx: float, cy: float, ax: float, ay: float, angle: float = 0.0) -> np.ndarray:
    pts = cv2.ellipse2Poly((int(cx * FIX), int(cy * FIX)), (max(1, int(ax * FIX)), max(1, int(ay * FIX))),
                           int(angle), 0, 360, 12)
    return np.asarray(pts, np.int32)


Shape = tuple[np.ndarray, Color]  # a polygon in FIX-scaled pixels and its colour


def _shade(c: Color, k: float) -> Color:
    return (min(255, int(c[0] * k)), min(255, int(c[1] * k)), min(255, int(c[2] * k)))


def _prop_shapes(p: Prop, t: float, w: int, h: int) -> list[Shape]:
    sc = h / 720.0
    u = 0.0 if t <= p.t0 else 1.0 if t >= p.t1 else (t - p.t0) / (p.t1 - p.t0)
    x1 = p.x0 if p.x1 is None else p.x1
    cx = (p.x0 + (x1 - p.x0) * u) * w
    yb = p.bottom * h
    pw, ph = p.width * sc, p.height * sc
    c = p.color
    left, right, top = cx - pw / 2, cx + pw / 2, yb - ph
    out: list[Shape] = []
    if p.kind in ("car", "van"):
        wheel_r = ph * (0.16 if p.kind == "car" else 0.11)
        body_top = yb - ph * (0.55 if p.kind == "car" else 0.92)
        out.append((_poly([(left, body_top), (right, body_top), (right, yb - wheel_r), (left, yb - wheel_r)]), c))
        if p.kind == "car":
            cab = [(left + pw * 0.22, body_top), (left + pw * 0.32, top), (left + pw * 0.70, top),
                   (left + pw * 0.82, body_top)]
            out.append((_poly(cab), c))
            glass = [(left + pw * 0.27, body_top - 2), (left + pw * 0.35, top + ph * 0.08),
                     (left + pw * 0.67, top + ph * 0.08), (left + pw * 0.77, body_top - 2)]
            out.append((_poly(glass), (70, 55, 45)))
        else:
            for k in range(4):
                gx = left + pw * (0.06 + 0.23 * k)
                out.append((_poly([(gx, body_top + ph * 0.08), (gx + pw * 0.18, body_top + ph * 0.08),
                                   (gx + pw * 0.18, body_top + ph * 0.36), (gx, body_top + ph * 0.36)]),
                            (75, 60, 50)))
        out.append((_poly([(left, yb - wheel_r - ph * 0.08), (right, yb - wheel_r - ph * 0.08),
                           (right, yb - wheel_r - ph * 0.04), (left, yb - wheel_r - ph * 0.04)]), _shade(c, 0.6)))
        for wx in (left + pw * 0.2, right - pw * 0.2):
            out.append((_ellipse(wx, yb - wheel_r, wheel_r, wheel_r), (25, 25, 25)))
            out.append((_ellipse(wx, yb - wheel_r, wheel_r * 0.45, wheel_r * 0.45), (150, 150, 150)))
    elif p.kind == "box":
        out.append((_poly([(left, top), (right, top), (right, yb), (left, yb)]), c))
        out.append((_poly([(cx - pw * 0.06, top), (cx + pw * 0.06, top), (cx + pw * 0.06, yb),
                           (cx - pw * 0.06, yb)]), _shade(c, 0.75)))
        out.append((_poly([(left, top), (right, top), (right, top + ph * 0.08), (left, top + ph * 0.08)]),
                    _shade(c, 1.2)))
    elif p.kind == "pole":
        out.append((_poly([(left, top), (right, top), (right, yb), (left, yb)]), c))
        out.append((_poly([(left, top), (left + pw * 0.3, top), (left + pw * 0.3, yb), (left, yb)]),
                    _shade(c, 1.25)))
    else:  # tree: trunk plus a crown of leaf clusters that sway out of step
        out.append((_poly([(cx - pw * 0.07, yb), (cx + pw * 0.07, yb), (cx + pw * 0.05, top + ph * 0.45),
                           (cx - pw * 0.05, top + ph * 0.45)]), (40, 60, 85)))
        for k in range(9):
            ang = 2 * math.pi * k / 9
            sway = p.sway * sc * math.sin(2 * math.pi * 0.35 * t + 1.7 * k)
            ex = cx + math.cos(ang) * pw * 0.28 + sway
            ey = top + ph * 0.30 + math.sin(ang) * ph * 0.18
            shade = 0.75 + 0.06 * (k % 5)
            out.append((_ellipse(ex, ey, pw * 0.26, ph * 0.17, 15 * k), _shade(c, shade)))
    return out


def _body_shapes(pers: Person, pl: _Placed, skin: Color) -> list[Shape]:
    """A simple walking figure hung below the face box: neck, torso, arms, legs."""
    s = pl.size
    x1, _, x2, y2 = pl.box
    cx = (x1 + x2) / 2
    sy = y2 + 0.16 * s  # shoulder line
    swing = math.sin(2 * math.pi * 1.8 * pl.t + pers.phase)
    c, dark = pers.clothing, _shade(pers.clothing, 0.7)
    trousers: Color = (60, 50, 45)
    hip = sy + 3.0 * s
    out: list[Shape] = []
    for side in (-1, 1):  # legs first: the torso covers their tops
        hx = cx + side * 0.42 * s
        fx = hx + side * swing * 0.6 * s
        out.append((_poly([(hx - 0.32 * s, hip - 0.2 * s), (hx + 0.32 * s, hip - 0.2 * s),
                           (fx + 0.25 * s, hip + 4.6 * s), (fx - 0.25 * s, hip + 4.6 * s)]), trousers))
    out.append((_poly([(cx - 0.3 * s, y2 - 0.2 * s), (cx + 0.3 * s, y2 - 0.2 * s), (cx + 0.34 * s, sy + 0.1 * s),
                       (cx - 0.34 * s, sy + 0.1 * s)]), skin))
    for side in (-1, 1):
        shx = cx + side * 1.05 * s
        hx = shx + side * 0.15 * s - side * swing * 0.3 * s
        out.append((_poly([(shx - 0.22 * s, sy + 0.15 * s), (shx + 0.22 * s, sy + 0.15 * s),
                           (hx + 0.18 * s, sy + 2.8 * s), (hx - 0.18 * s, sy + 2.8 * s)]), dark))
    out.append((_poly([(cx - 1.2 * s, sy + 0.3 * s), (cx - 0.85 * s, sy), (cx + 0.85 * s, sy),
                       (cx + 1.2 * s, sy + 0.3 * s), (cx + 0.9 * s, hip), (cx - 0.9 * s, hip)]), c))
    return out


def _draw(img: np.ndarray, shapes: Sequence[Shape]) -> None:
    for poly, color in shapes:
        cv2.fillPoly(img, [poly], color, lineType=cv2.LINE_AA, shift=SHIFT)


def _cover(mask: np.ndarray, x0: int, y0: int, shapes: Sequence[Shape]) -> None:
    """Mark in ``mask`` (the frame region starting at x0, y0) every pixel ``shapes`` cover."""
    off = np.array([x0 * FIX, y0 * FIX], np.int32)
    for poly, _ in shapes:
        cv2.fillPoly(mask, [poly - off], 1, lineType=cv2.LINE_8, shift=SHIFT)


# -------------------------------------------------------------------------------------------- the scene

@dataclass(frozen=True, kw_only=True, eq=False)
class Scene:
    """What happens in front of one camera for ``duration`` seconds, rendered lazily at ``fps``.

    ``subjects`` are the identities the preset means to be watch-listed (the caller decides the actual watch-list;
    see :func:`pick_watchlist`). The same (spec, bank, seed) always gives byte-identical frames and truth.
    """

    name: str
    seed: int
    bank: FaceBank = field(repr=False)
    width: int = 1280
    height: int = 720
    fps: float = 5.0
    duration: float
    people: tuple[Person, ...] = ()
    props: tuple[Prop, ...] = ()
    lighting: Lighting = field(default_factory=Lighting)
    subjects: tuple[str, ...] = ()
    start_ts: float = DEFAULT_START_TS
    description: str = ""

    def __post_init__(self) -> None:
        if not (64 <= self.width <= 4096 and 64 <= self.height <= 4096):
            raise ConfigError(f"scene {self.name!r}: expected 64..4096 px per side, got {self.width}×{self.height}")
        if not 0 < self.fps <= 60:
            raise ConfigError(f"scene {self.name!r}: fps: expected 0 < fps <= 60, got {self.fps}")
        if not self.duration > 0:
            raise ConfigError(f"scene {self.name!r}: duration: expected > 0 s, got {self.duration}")
        for p in self.people:
            n = len(self.bank.of(p.identity))
            if not 0 <= p.patch < n:
                raise ConfigError(f"scene {self.name!r}: person {p.identity!r}: patch: expected 0..{n - 1}, "
                                  f"got {p.patch}")
        by_id: dict[str, list[Person]] = {}
        for p in self.people:
            by_id.setdefault(p.identity, []).append(p)
        for ident, ps in by_id.items():
            ps.sort(key=lambda p: p.t0)
            for a, b in itertools.pairwise(ps):
                if b.t0 <= a.t1:
                    raise ConfigError(f"scene {self.name!r}: {ident!r}: expected visits that do not overlap in time, "
                                      f"got {a.t0:.1f}–{a.t1:.1f} s and {b.t0:.1f}–{b.t1:.1f} s")
        for ident in self.subjects:
            if ident not in by_id:
                raise ConfigError(f"scene {self.name!r}: subject {ident!r}: expected one of the scene's people, "
                                  f"got {sorted(by_id)}")

    # ------------------------------------------------------------------ time
    @property
    def n_frames(self) -> int:
        return math.floor(self.duration * self.fps + 1e-9)

    def ts(self, index: int) -> float:
        return round(self.start_ts + index / self.fps, 6)

    @property
    def identities(self) -> tuple[str, ...]:
        return tuple(sorted({p.identity for p in self.people}))

    # ------------------------------------------------------------------ cached per scene
    @cached_property
    def _background(self) -> np.ndarray:
        return street_background(self.seed, self.width, self.height)

    @cached_property
    def _sensor(self) -> Sensor:
        return Sensor(self.lighting, self.seed, self.width, self.height)

    @cached_property
    def _visit_ids(self) -> tuple[str, ...]:
        count: dict[str, int] = {}
        ids = [""] * len(self.people)
        for i in sorted(range(len(self.people)), key=lambda i: (self.people[i].t0, i)):
            ident = self.people[i].identity
            count[ident] = count.get(ident, 0) + 1
            ids[i] = f"{ident}#{count[ident]}"
        return tuple(ids)

    @cached_property
    def _patches(self) -> tuple[tuple[FacePatch, np.ndarray, np.ndarray], ...]:
        """Per person: the patch, its (sunglassed) image as float32 and its soft elliptical alpha mask."""
        cache: dict[tuple[str, int, bool], tuple[FacePatch, np.ndarray, np.ndarray]] = {}
        out = []
        for p in self.people:
            key = (p.identity, p.patch, p.sunglasses)
            if key not in cache:
                patch = self.bank.of(p.identity)[p.patch]
                img = patch.image.copy()
                if p.sunglasses:
                    draw_sunglasses(img, patch.landmarks)
                cache[key] = (patch, img, face_mask(patch))
            out.append(cache[key])
        return tuple(out)

    # ------------------------------------------------------------------ layout
    def _place(self, i: int, t: float) -> _Placed | None:
        p = self.people[i]
        if not p.t0 <= t <= p.t1:
            return None
        patch = self._patches[i][0]
        u = (t - p.t0) / (p.t1 - p.t0)
        sc = self.height / 720.0
        x, size = p.at(u)
        size *= sc
        cx = x * self.width
        cy = (HORIZON + p.lift) * self.height + DROP_PER_PX * size
        # bow: displace perpendicular to the chord, most at mid-path
        dx, dy = (p.x1 - p.x0) * self.width, DROP_PER_PX * (p.size1 - p.size0) * sc
        norm = math.hypot(dx, dy) or 1.0
        bow = p.bend * self.height * 4 * u * (1 - u)
        cx += -dy / norm * bow
        cy += dx / norm * bow
        cy -= 0.04 * size * abs(math.sin(2 * math.pi * 1.8 * t + p.phase))  # the bob of a walk
        k = size / patch.face_width
        ph0, pw0 = patch.image.shape[:2]
        pw, ph = max(1, round(pw0 * k)), max(1, round(ph0 * k))
        kx, ky = pw / pw0, ph / ph0
        bx1, by1, bx2, by2 = (float(v) for v in patch.box)
        ox = round(cx - (bx1 + bx2) / 2 * kx)
        oy = round(cy - (by1 + by2) / 2 * ky)
        box = (bx1 * kx + ox, by1 * ky + oy, bx2 * kx + ox, by2 * ky + oy)
        return _Placed(order=i, size=box[2] - box[0], ox=ox, oy=oy, pw=pw, ph=ph, box=box, t=t)

    def _in_frame(self, box: tuple[float, float, float, float]) -> bool:
        return box[2] > 0 and box[3] > 0 and box[0] < self.width and box[1] < self.height

    def _layout(self, index: int) -> tuple[float, list[_Placed]]:
        t = index / self.fps
        placed = [pl for i in range(len(self.people)) if (pl := self._place(i, t)) is not None]
        placed.sort(key=lambda pl: (pl.size, pl.order))  # far (small) first: near faces pass in front
        return t, placed

    def _person_shapes(self, pl: _Placed) -> list[Shape]:
        p = self.people[pl.order]
        return _body_shapes(p, pl, self._patches[pl.order][0].skin_bgr) if p.body else []

    def _face_alpha(self, pl: _Placed) -> np.ndarray:
        _, _, mask = self._patches[pl.order]
        interp = cv2.INTER_AREA if pl.pw < mask.shape[1] else cv2.INTER_LINEAR
        out: np.ndarray = cv2.resize(mask, (pl.pw, pl.ph), interpolation=interp)
        return out

    # ------------------------------------------------------------------ truth
    def _truth(self, index: int, t: float, placed: list[_Placed], props_front: list[list[Shape]],
               alphas: Mapping[int, np.ndarray] | None = None) -> FrameTruth:
        faces: list[FaceTruth] = []
        w, h = self.width, self.height
        for n, pl in enumerate(placed):
            if not self._in_frame(pl.box):
                continue
            bx1, by1, bx2, by2 = pl.box
            ix1, iy1 = max(0, math.floor(bx1)), max(0, math.floor(by1))
            ix2, iy2 = min(w, math.ceil(bx2)), min(h, math.ceil(by2))
            if ix2 <= ix1 or iy2 <= iy1:
                continue
            mask = np.zeros((iy2 - iy1, ix2 - ix1), np.uint8)
            for later in placed[n + 1:]:
                lx1, ly1, lx2, ly2 = later.ox, later.oy, later.ox + later.pw, later.oy + later.ph
                shapes = self._person_shapes(later)
                _cover(mask, ix1, iy1, shapes)
                if lx2 > ix1 and ly2 > iy1 and lx1 < ix2 and ly1 < iy2:
                    a = alphas[later.order] if alphas is not None and later.order in alphas else self._face_alpha(later)
                    sx1, sy1 = max(ix1, lx1), max(iy1, ly1)
                    sx2, sy2 = min(ix2, lx2), min(iy2, ly2)
                    sub = a[sy1 - ly1:sy2 - ly1, sx1 - lx1:sx2 - lx1] > 0.5
                    mask[sy1 - iy1:sy2 - iy1, sx1 - ix1:sx2 - ix1] |= sub.astype(np.uint8)
            for shapes in props_front:
                _cover(mask, ix1, iy1, shapes)
            full = max(1, round(bx2 - bx1) * round(by2 - by1))
            visible = min(1.0, float(mask.size - int(np.count_nonzero(mask))) / full)
            p = self.people[pl.order]
            faces.append(FaceTruth(
                identity=p.identity, visit_id=self._visit_ids[pl.order],
                box=(round(max(0.0, bx1), 2), round(max(0.0, by1), 2), round(min(float(w), bx2), 2),
                     round(min(float(h), by2), 2)),
                size=round(pl.size, 2), visible=round(visible, 4), occluded=visible < OCCLUDED_BELOW,
                sunglasses=p.sunglasses, source=self._patches[pl.order][0].source,
            ))
        faces.sort(key=lambda f: f.visit_id)
        return FrameTruth(index=index, ts=self.ts(index), faces=tuple(faces))

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.n_frames:
            raise InputError(f"scene {self.name!r}: frame index: expected 0..{self.n_frames - 1}, got {index}")

    def truth(self, index: int) -> FrameTruth:
        """The ground truth of frame ``index`` without rendering its pixels (geometry and coverage masks only)."""
        self._check_index(index)
        t, placed = self._layout(index)
        front = [_prop_shapes(p, t, self.width, self.height) for p in self.props if p.front]
        return self._truth(index, t, placed, front)

    def render(self, index: int) -> tuple[np.ndarray, FrameTruth]:
        """Frame ``index`` (H×W×3 uint8 BGR) and its truth; depends on nothing but the spec, the bank and index."""
        self._check_index(index)
        t, placed = self._layout(index)
        w, h = self.width, self.height
        img = self._background.copy()
        front: list[list[Shape]] = []
        for p in self.props:
            shapes = _prop_shapes(p, t, w, h)
            if p.front:
                front.append(shapes)
            else:
                _draw(img, shapes)
        alphas: dict[int, np.ndarray] = {}
        for pl in placed:
            _draw(img, self._person_shapes(pl))
            x1, y1 = max(0, pl.ox), max(0, pl.oy)
            x2, y2 = min(w, pl.ox + pl.pw), min(h, pl.oy + pl.ph)
            if x2 <= x1 or y2 <= y1:
                continue
            _, src, _ = self._patches[pl.order]
            alpha = alphas[pl.order] = self._face_alpha(pl)
            interp = cv2.INTER_AREA if pl.pw < src.shape[1] else cv2.INTER_LINEAR
            face = cv2.resize(src, (pl.pw, pl.ph), interpolation=interp)
            sl = (slice(y1 - pl.oy, y2 - pl.oy), slice(x1 - pl.ox, x2 - pl.ox))
            a = alpha[sl][..., None]
            roi = img[y1:y2, x1:x2].astype(np.float32)
            img[y1:y2, x1:x2] = (roi + (face[sl].astype(np.float32) - roi) * a + 0.5).astype(np.uint8)
        for shapes in front:
            _draw(img, shapes)
        img = self._sensor.apply(img, _rng(self.seed, 3, index))
        return img, self._truth(index, t, placed, front, alphas)

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, float, np.ndarray, FrameTruth]]:
        """(index, ts, image, truth) for frames start..stop-1, generated one at a time."""
        stop = self.n_frames if stop is None else min(stop, self.n_frames)
        for i in range(start, stop):
            img, truth = self.render(i)
            yield i, truth.ts, img, truth

    def truths(self) -> Iterator[FrameTruth]:
        for i in range(self.n_frames):
            yield self.truth(i)

    # ------------------------------------------------------------------ visits
    @cached_property
    def visits(self) -> tuple[Visit, ...]:
        """Every visit, in time order; frames come from geometry (a visit counts while the face box is at least
        partly inside the frame, occluded or not)."""
        out: list[Visit] = []
        for i, p in enumerate(self.people):
            lo = max(0, math.ceil(p.t0 * self.fps - 1e-9))
            hi = min(self.n_frames - 1, math.floor(p.t1 * self.fps + 1e-9))
            seen = [k for k in range(lo, hi + 1) if (pl := self._place(i, k / self.fps)) and self._in_frame(pl.box)]
            if not seen:
                continue
            vid = self._visit_ids[i]
            out.append(Visit(identity=p.identity, visit_id=vid, number=int(vid.rsplit("#", 1)[1]),
                             first_frame=seen[0], last_frame=seen[-1], first_ts=self.ts(seen[0]),
                             last_ts=self.ts(seen[-1]), sunglasses=p.sunglasses))
        out.sort(key=lambda v: (v.first_frame, v.visit_id))
        return tuple(out)

    # ------------------------------------------------------------------ outputs
    def as_source(self, camera_id: str, *, realtime: bool = False) -> SceneSource:
        return SceneSource(self, camera_id, realtime=realtime)

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "seed": self.seed, "width": self.width, "height": self.height, "fps": self.fps,
                "duration": self.duration, "n_frames": self.n_frames, "start_ts": self.start_ts,
                "bank": self.bank.fingerprint, "subjects": list(self.subjects),
                "identities": list(self.identities), "description": self.description,
                "lighting": {"gain": self.lighting.gain, "tint": list(self.lighting.tint),
                             "noise": self.lighting.noise},
                "visits": [v.as_dict() for v in self.visits]}

    def truth_dict(self) -> dict[str, Any]:
        return {**self.summary(), "frames": [t.as_dict() for t in self.truths()]}

    def truth_json(self, *, indent: int | None = None) -> str:
        """The whole scene's truth as JSON (summary, visits and every frame's faces), for files and diffs."""
        return json.dumps(self.truth_dict(), indent=indent)

    def write_mp4(self, path: str | Path, *, stop: int | None = None) -> Path:
        """Render to an MPEG-4 file (mp4v) at the scene's fps; returns the path."""
        path = Path(path)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), self.fps, (self.width, self.height))
        if not writer.isOpened():
            raise InputError(f"{path}: expected a writable MPEG-4 file, OpenCV could not open a writer")
        try:
            for _, _, img, _ in self.frames(stop=stop):
                writer.write(img)
        finally:
            writer.release()
        return path


# ------------------------------------------------------------------------------------ patch decoration

def face_mask(patch: FacePatch) -> np.ndarray:
    """Soft elliptical alpha (float32 0..1) around the face box: covers hair and chin, fades to 0 well inside the
    crop, so no crop edge and little of the photo's background shows."""
    h, w = patch.image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in patch.box)
    bw, bh = x2 - x1, y2 - y1
    m: np.ndarray = np.zeros((h, w), np.float32)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 - 0.06 * bh
    cv2.ellipse(m, (round(cx), round(cy)), (max(1, round(0.57 * bw)), max(1, round(0.66 * bh))), 0, 0, 360, 1.0, -1,
                lineType=cv2.LINE_AA)
    m = cv2.GaussianBlur(m, (0, 0), max(0.5, 0.07 * bw))
    out = np.clip(m * 1.15, 0, 1).astype(np.float32)
    # never a hard edge where the crop was cut by its photo's border
    ramp = max(2, round(0.04 * bw))
    lin = np.minimum(np.arange(w, dtype=np.float32)[None, :], np.arange(w, dtype=np.float32)[::-1][None, :])
    col = np.minimum(np.arange(h, dtype=np.float32)[:, None], np.arange(h, dtype=np.float32)[::-1][:, None])
    result: np.ndarray = out * np.clip(np.minimum(lin, col) / ramp, 0, 1).astype(np.float32)
    return result


def draw_sunglasses(img: np.ndarray, landmarks: np.ndarray) -> None:
    """Dark lenses over both eye landmarks with a bridge and temples, in place, at patch resolution."""
    le, re = landmarks[0].astype(np.float64), landmarks[1].astype(np.float64)
    d = float(np.hypot(*(re - le)))
    ang = math.degrees(math.atan2(re[1] - le[1], re[0] - le[0]))
    ax, ay = 0.34 * d, 0.24 * d
    frame: Color = (20, 20, 22)
    for e in (le, re):
        c = (int(e[0] * FIX), int(e[1] * FIX))
        cv2.ellipse(img, c, (int(ax * 1.1 * FIX), int(ay * 1.1 * FIX)), ang, 0, 360, frame, -1, cv2.LINE_AA, SHIFT)
        cv2.ellipse(img, c, (int(ax * FIX), int(ay * FIX)), ang, 0, 360, (32, 28, 26), -1, cv2.LINE_AA, SHIFT)
        hl = (int((e[0] - 0.12 * d) * FIX), int((e[1] - 0.08 * d) * FIX))
        cv2.ellipse(img, hl, (int(0.08 * d * FIX), int(0.04 * d * FIX)), ang - 20, 0, 360, (85, 80, 78), -1,
                    cv2.LINE_AA, SHIFT)
    th = max(1, round(0.05 * d))
    u = (re - le) / max(d, 1e-6)
    p1, p2 = le + u * ax, re - u * ax
    cv2.line(img, (round(p1[0]), round(p1[1])), (round(p2[0]), round(p2[1])), frame, th, cv2.LINE_AA)
    for e, s in ((le, -1), (re, 1)):
        a = e + s * u * ax * 1.05
        b = a + s * u * 0.45 * d
        cv2.line(img, (round(a[0]), round(a[1])), (round(b[0]), round(b[1])), frame, th, cv2.LINE_AA)


# ------------------------------------------------------------------------------------ ingest adapter

class SceneSource:
    """A scene as an ingest FrameSource: frame i is CapturedFrame(seq=i, ts=scene.ts(i)); None after the last.

    Like MemorySource, the position survives close()/open() (a file that resumes), so a reconnecting reader
    neither repeats nor skips frames; ``truth(seq)`` gives the truth of a frame that was read.
    """

    def __init__(self, scene: Scene, camera_id: str, *, realtime: bool = False) -> None:
        if not camera_id:
            raise ConfigError(f"scene source: expected a non-empty camera id, got {camera_id!r}")
        self._scene = scene
        self._camera_id = camera_id
        self._realtime = realtime
        self._pos = 0
        self._open = False
        self._truths: dict[int, FrameTruth] = {}
        self._last_mono: float | None = None

    @property
    def camera_id(self) -> str:
        return self._camera_id

    @property
    def scene(self) -> Scene:
        return self._scene

    def open(self) -> None:
        self._open = True

    def close(self) -> None:
        self._open = False

    def read(self) -> CapturedFrame | None:
        if not self._open:
            raise SourceError(f"camera {self._camera_id!r} (scene {self._scene.name!r}): read() on a closed source; "
                              "call open() first")
        if self._pos >= self._scene.n_frames:
            return None
        i = self._pos
        self._pos += 1
        if self._realtime:
            import time

            now = time.monotonic()
            if self._last_mono is not None:
                wait = self._last_mono + 1.0 / self._scene.fps - now
                if wait > 0:
                    time.sleep(wait)
            self._last_mono = time.monotonic()
        img, truth = self._scene.render(i)
        self._truths[i] = truth
        return CapturedFrame(camera_id=self._camera_id, seq=i, ts=truth.ts, image=img)

    def truth(self, seq: int) -> FrameTruth:
        return self._truths[seq] if seq in self._truths else self._scene.truth(seq)


# ------------------------------------------------------------------------------------ watch-lists

@dataclass(frozen=True, kw_only=True)
class WatchList:
    """Who to enroll and from which photos: never a photo the scene shows, where the bank has another one."""

    identities: tuple[str, ...]
    enrollment: Mapping[str, tuple[FacePatch, ...]]
    scene_photo_reused: tuple[str, ...]  # listed people whose every photo appears in the scene (only one photo)

    def write_photos(self, directory: str | Path) -> dict[str, list[Path]]:
        """Each enrollment patch as a JPEG (``<identity>/<n>.jpg``), the form ``argus enroll`` takes."""
        root = Path(directory)
        out: dict[str, list[Path]] = {}
        for ident in self.identities:
            d = root / ident
            d.mkdir(parents=True, exist_ok=True)
            for n, p in enumerate(self.enrollment[ident]):
                path = d / f"{n}.jpg"
                if not cv2.imwrite(str(path), p.image, [cv2.IMWRITE_JPEG_QUALITY, 95]):
                    raise InputError(f"{path}: expected a writable JPEG path, OpenCV could not write it")
                out.setdefault(ident, []).append(path)
        return out


def pick_watchlist(scene: Scene, n: int, *, seed: int = 0) -> WatchList:
    """``n`` identities to list: the scene's subjects first, then people the scene never shows (gallery
    distractors, so the scene's strangers stay strangers), then, only if the bank has no one else, other people of
    the scene. Enrollment photos exclude every photo the scene pastes of that person, unless it has no other."""
    if not 0 < n <= len(scene.bank):
        raise ConfigError(f"watch-list size: expected 1..{len(scene.bank)}, got {n}")
    rng = _rng(seed, 4)
    in_scene = set(scene.identities)
    absent = [i for i in scene.bank.identities if i not in in_scene]
    others = [i for i in scene.identities if i not in scene.subjects]
    order = list(scene.subjects) + [absent[k] for k in rng.permutation(len(absent))] + \
        [others[k] for k in rng.permutation(len(others))]
    chosen = tuple(order[:n])
    used: dict[str, set[str]] = {}
    for p in scene.people:
        used.setdefault(p.identity, set()).add(scene.bank.of(p.identity)[p.patch].photo)
    enrollment: dict[str, tuple[FacePatch, ...]] = {}
    reused: list[str] = []
    for ident in chosen:
        patches = scene.bank.of(ident)
        fresh = tuple(p for p in patches if p.photo not in used.get(ident, set()))
        if not fresh:
            reused.append(ident)
            fresh = patches
        enrollment[ident] = fresh
    return WatchList(identities=chosen, enrollment=enrollment, scene_photo_reused=tuple(reused))
