"""Scenario presets: each a function (bank, seed, size, fps, …) → Scene, with the property it promises in its name.

Why presets and not one random generator: a tracker or false-alert test needs a scene that *has* the hard case
(a 65-second gap between two visits, a face passing behind a van, a dark street) every time, whatever the seed;
the seed only varies who, where and the texture. Sizes are face box widths in pixels at 720p (scaled with the
frame height), so a 1080p scene is the same street seen by a sharper camera.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace

import numpy as np

from argus.errors import ConfigError
from argus.scenes.background import Lighting, _rng
from argus.scenes.bank import FaceBank, default_bank
from argus.scenes.scene import Color, Person, Prop, Scene

Size = tuple[int, int]
HD: Size = (1280, 720)
FULL_HD: Size = (1920, 1080)

CLOTHES: tuple[Color, ...] = ((90, 70, 60), (40, 40, 140), (140, 90, 40), (50, 110, 60), (170, 170, 170),
                              (30, 30, 30), (60, 130, 190), (120, 50, 110), (200, 200, 210), (40, 80, 120))


def _bank(bank: FaceBank | None) -> FaceBank:
    return default_bank() if bank is None else bank


def _choose(rng: np.random.Generator, items: Sequence[str]) -> str:
    return items[int(rng.integers(len(items)))]


def _subject(bank: FaceBank, rng: np.random.Generator, subject: str | None) -> str:
    """The listed person: given, or one with several photos (so enrollment can use a photo the scene never shows)."""
    if subject is not None:
        bank.of(subject)
        return subject
    return _choose(rng, bank.multi_photo() or bank.identities)


def _strangers(bank: FaceBank, rng: np.random.Generator, exclude: Collection[str]) -> list[str]:
    pool = [i for i in bank.identities if i not in set(exclude)]
    if not pool:
        raise ConfigError(f"scene: expected at least one identity besides {sorted(exclude)}, got none in the bank")
    return [pool[k] for k in rng.permutation(len(pool))]


def _patch(bank: FaceBank, rng: np.random.Generator, identity: str) -> int:
    return int(rng.integers(len(bank.of(identity))))


def _cross(bank: FaceBank, rng: np.random.Generator, identity: str, t0: float, lo: float, hi: float, *,
           leftward: bool | None = None, sunglasses: bool = False, lift: float = 0.0,
           patch: int | None = None, pace: float | None = None) -> Person:
    """Walk across the frame, side to side, entering and leaving off frame; sizes drift a little (depth)."""
    s0 = float(rng.uniform(lo, hi))
    s1 = float(np.clip(s0 * rng.uniform(0.8, 1.25), lo, hi))
    left = bool(rng.random() < 0.5) if leftward is None else leftward
    x0, x1 = (1.12, -0.12) if left else (-0.12, 1.12)
    aspect = 16 / 9  # x is in frame widths: walking speed in face widths per second at 720p
    speed = (pace if pace is not None else float(rng.uniform(4.5, 7.0))) * math.sqrt(s0 * s1) / (720 * aspect)
    dur = abs(x1 - x0) / speed
    return Person(identity=identity, patch=_patch(bank, rng, identity) if patch is None else patch, t0=t0,
                  t1=t0 + dur, x0=x0, x1=x1, size0=s0, size1=s1, bend=float(rng.uniform(-0.03, 0.03)),
                  lift=lift + float(rng.uniform(-0.02, 0.02)), sunglasses=sunglasses,
                  clothing=CLOTHES[int(rng.integers(len(CLOTHES)))], phase=float(rng.uniform(0, 2 * math.pi)))


def _approach(bank: FaceBank, rng: np.random.Generator, identity: str, t0: float, lo: float, hi: float, *,
              sunglasses: bool = False) -> Person:
    """Walk towards the camera from the middle distance and leave past one side: the face grows lo → hi."""
    x0 = float(rng.uniform(0.3, 0.7))
    x1 = -0.2 if x0 > 0.5 else 1.2
    xm = x0 + (0.12 if x1 > x0 else -0.12)
    s0, s1 = float(rng.uniform(lo, lo * 1.3)), float(rng.uniform(hi * 0.8, hi))
    # grow on the way in (80 % of the time), then turn and leave past the side at full size
    return Person(identity=identity, patch=_patch(bank, rng, identity), t0=t0, t1=t0 + float(rng.uniform(5.5, 8)),
                  x0=x0, x1=x1, size0=min(s0, hi), size1=max(s1, lo), via=((0.8, xm, max(s1, lo)),),
                  bend=float(rng.uniform(-0.02, 0.02)),
                  lift=float(rng.uniform(-0.01, 0.02)), sunglasses=sunglasses,
                  clothing=CLOTHES[int(rng.integers(len(CLOTHES)))], phase=float(rng.uniform(0, 2 * math.pi)))


def _recede(bank: FaceBank, rng: np.random.Generator, identity: str, t0: float, lo: float, hi: float) -> Person:
    """The reverse of an approach: enter big past one side, walk away until the face is ``lo`` px."""
    p = _approach(bank, rng, identity, t0, lo, hi)
    return replace(p, x0=p.x1, x1=p.x0, size0=p.size1, size1=p.size0,
                   via=tuple((1 - u, x, s) for u, x, s in reversed(p.via)))


def _street_life(rng: np.random.Generator, duration: float, *, cars: float, trees: int, sway: float = 5.0,
                 boxes: int = 0) -> list[Prop]:
    """Background motion that is not a person: trees, cars on two lanes (``cars`` per minute), boxes on trolleys."""
    props: list[Prop] = []
    for k in range(trees):
        x = (k + 0.5) / trees + float(rng.uniform(-0.08, 0.08))
        green: Color = (int(rng.integers(40, 70)), int(rng.integers(110, 150)), int(rng.integers(50, 80)))
        props.append(Prop(kind="tree", x0=x, bottom=0.53, width=float(rng.uniform(150, 210)),
                          height=float(rng.uniform(260, 330)), color=green, sway=sway * float(rng.uniform(0.7, 1.3))))
    n_cars = round(cars * duration / 60.0)
    for _ in range(n_cars):
        lane = int(rng.integers(2))
        w = float(rng.uniform(260, 360))
        t0 = float(rng.uniform(-4, duration))
        speed = float(rng.uniform(0.15, 0.45))  # frame widths per second
        x0, x1 = (-0.3, 1.3) if lane == 0 else (1.3, -0.3)
        col: Color = (int(rng.integers(20, 220)), int(rng.integers(20, 220)), int(rng.integers(20, 220)))
        props.append(Prop(kind="car", x0=x0, x1=x1, t0=t0, t1=t0 + 1.6 / speed, bottom=0.68 if lane == 0 else 0.79,
                          width=w, height=w * 0.36, color=col))
    for _ in range(boxes):
        t0 = float(rng.uniform(0, max(1.0, duration - 10)))
        x0, x1 = (-0.1, 1.1) if rng.random() < 0.5 else (1.1, -0.1)
        props.append(Prop(kind="box", x0=x0, x1=x1, t0=t0, t1=t0 + float(rng.uniform(8, 14)), bottom=0.97,
                          width=float(rng.uniform(90, 150)), height=float(rng.uniform(70, 120)),
                          color=(60, 110, 160)))
    return props


def _scene(name: str, seed: int, bank: FaceBank, size: Size, fps: float, people: list[Person], props: list[Prop],
           *, subjects: Sequence[str] = (), lighting: Lighting | None = None, duration: float | None = None,
           description: str = "") -> Scene:
    end = max([p.t1 for p in people], default=0.0) + 1.0
    return Scene(name=name, seed=seed, bank=bank, width=size[0], height=size[1], fps=fps,
                 duration=max(end, duration or 0.0), people=tuple(people), props=tuple(props),
                 lighting=lighting or Lighting(), subjects=tuple(subjects), description=description)


# ------------------------------------------------------------------------------------------------ presets

def listed_pass_once(bank: FaceBank | None = None, *, seed: int = 0, size: Size = HD, fps: float = 5.0,
                     subject: str | None = None) -> Scene:
    """The subject walks across once, briefly (a few seconds, face 55–90 px); two strangers pass at other times."""
    bank = _bank(bank)
    rng = _rng(seed, 10)
    subj = _subject(bank, rng, subject)
    people = [_cross(bank, rng, subj, 2.0, 55, 90)]
    others = _strangers(bank, rng, [subj])
    for k, t0 in enumerate((people[0].t1 + 1.0, people[0].t1 + 3.5)):
        people.append(_cross(bank, rng, others[k % len(others)], t0, 40, 110))
    return _scene("listed_pass_once", seed, bank, size, fps, people, _street_life(rng, 14, cars=6, trees=2),
                  subjects=[subj], duration=12.0, description=listed_pass_once.__doc__ or "")


def listed_visits_twice(bank: FaceBank | None = None, *, seed: int = 0, size: Size = HD, fps: float = 5.0,
                        subject: str | None = None, gap: float = 65.0) -> Scene:
    """The subject passes, is gone for more than ``gap`` seconds (> 60 s) while strangers pass, then passes again."""
    if gap <= 0:
        raise ConfigError(f"gap: expected > 0 s, got {gap}")
    bank = _bank(bank)
    rng = _rng(seed, 11)
    subj = _subject(bank, rng, subject)
    first = _cross(bank, rng, subj, 3.0, 55, 90)
    t_back = first.t1 + gap + float(rng.uniform(1.0, 8.0))
    second = _cross(bank, rng, subj, t_back, 55, 90, leftward=first.x1 > first.x0)
    others = _strangers(bank, rng, [subj])
    people = [first, second]
    for k, t0 in enumerate(np.linspace(first.t1 + 8, t_back - 12, 4)):
        people.append(_cross(bank, rng, others[k % len(others)], float(t0), 40, 110))
    return _scene("listed_visits_twice", seed, bank, size, fps, people,
                  _street_life(rng, second.t1 + 2, cars=4, trees=2), subjects=[subj],
                  description=listed_visits_twice.__doc__ or "")


def crowd(bank: FaceBank | None = None, *, seed: int = 0, size: Size = HD, fps: float = 5.0, people: int = 20,
          exclude: Collection[str] = ()) -> Scene:
    """``people`` strangers (default 20; faces 32–140 px), many at once, crossing and approaching; distinct
    identities as far as the bank has them (one identity is reused only after its earlier visit ended)."""
    if not 1 <= people <= 200:
        raise ConfigError(f"crowd people: expected 1..200, got {people}")
    bank = _bank(bank)
    rng = _rng(seed, 12)
    pool = _strangers(bank, rng, exclude)
    starts = np.sort(rng.uniform(0.0, 14.0, people))
    busy_until: dict[str, float] = {}
    out: list[Person] = []
    for t0 in starts:
        t = float(t0)
        unused = [i for i in pool if i not in busy_until]
        if unused:
            ident = unused[0]
        else:  # the bank is smaller than the crowd: the person free soonest comes back
            ident = min(pool, key=lambda i: (busy_until[i], i))
            t = max(t, busy_until[ident] + 1.0)
        p = _approach(bank, rng, ident, t, 32, 140) if rng.random() < 0.3 else _cross(bank, rng, ident, t, 32, 140)
        busy_until[ident] = p.t1
        out.append(p)
    return _scene("crowd", seed, bank, size, fps, out, _street_life(rng, 30, cars=6, trees=2),
                  description=crowd.__doc__ or "")


def approach(bank: FaceBank | None = None, *, seed: int = 0, size: Size = HD, fps: float = 5.0,
             subject: str | None = None) -> Scene:
    """The whole size range: the subject walks from far away (face 24 px) up to the camera (200 px) and leaves past
    one side; a stranger then walks away (200 → 24 px) and another approaches. For recall by size and for a
    tracker that must hold an identity through an 8× change of scale."""
    bank = _bank(bank)
    rng = _rng(seed, 18)
    subj = _subject(bank, rng, subject)
    others = _strangers(bank, rng, [subj])
    def full_range(p: Person) -> Person:  # exactly 24 → 200 (or back), whatever the random draw
        lo_hi = (24.0, 200.0) if p.size0 < p.size1 else (200.0, 24.0)
        return replace(p, size0=lo_hi[0], size1=lo_hi[1], via=tuple((u, x, 200.0) for u, x, _ in p.via))

    a = full_range(_approach(bank, rng, subj, 0.5, 24, 200))
    b = full_range(_recede(bank, rng, others[0], a.t1 + 0.5, 24, 200))
    c = full_range(_approach(bank, rng, others[1 % len(others)], b.t1 + 0.5, 24, 200))
    return _scene("approach", seed, bank, size, fps, [a, b, c], _street_life(rng, c.t1 + 1, cars=4, trees=2),
                  subjects=[subj], description=approach.__doc__ or "")


def crossings(bank: FaceBank | None = None, *, seed: int = 0, size: Size = HD, fps: float = 5.0,
              subject: str | None = None) -> Scene:
    """Occlusion: a near person walks right in front of a far one (the far face is fully hidden for a moment);
    then a van passes close to the camera in front of a third person, and a lamp post hides part of a face."""
    bank = _bank(bank)
    rng = _rng(seed, 13)
    subj = _subject(bank, rng, subject)
    others = _strangers(bank, rng, [subj])
    far_size, near_size = 70.0, 118.0
    pace = 5.5
    # both at mid-frame at t_meet: the near one lifted so the faces are at the same height
    a = _cross(bank, rng, subj, 0.0, far_size, far_size, leftward=False, pace=pace)
    b = _cross(bank, rng, others[0], 0.0, near_size, near_size, leftward=True, pace=pace,
               lift=-1.5 * (near_size - far_size) / 720)
    t_meet = max(a.t1 - a.t0, b.t1 - b.t0) / 2 + 0.5

    def centred(p: Person, t_mid: float) -> Person:
        d = p.t1 - p.t0
        return replace(p, t0=t_mid - d / 2, t1=t_mid + d / 2)

    a, b = centred(a, t_meet), centred(b, t_meet)
    t_van = max(a.t1, b.t1) + 0.5
    c = Person(identity=others[1 % len(others)], patch=_patch(bank, rng, others[1 % len(others)]), t0=t_van - 1.5,
               t1=t_van + 7.5, x0=0.25, x1=0.95, size0=80.0, size1=84.0, clothing=CLOTHES[3], phase=1.0)
    van = Prop(kind="van", x0=-0.4, x1=1.4, t0=t_van, t1=t_van + 4.0, bottom=1.0, width=660, height=560,
               color=(200, 200, 205), front=True)
    pole = Prop(kind="pole", x0=0.82, bottom=1.0, width=26, height=720, color=(80, 85, 90), front=True)
    props = [*_street_life(rng, c.t1 + 1, cars=4, trees=2), van, pole]
    return _scene("crossings", seed, bank, size, fps, [a, b, c], props, subjects=[subj],
                  description=crossings.__doc__ or "")


def sunglasses(bank: FaceBank | None = None, *, seed: int = 0, size: Size = HD, fps: float = 5.0,
               subject: str | None = None) -> Scene:
    """The subject passes wearing sunglasses (dark lenses over the eye landmarks); a stranger with sunglasses and
    one without follow."""
    bank = _bank(bank)
    rng = _rng(seed, 14)
    subj = _subject(bank, rng, subject)
    others = _strangers(bank, rng, [subj])
    a = _cross(bank, rng, subj, 1.0, 70, 110, sunglasses=True)
    b = _cross(bank, rng, others[0], a.t1 + 0.5, 70, 110, sunglasses=True)
    c = _cross(bank, rng, others[1 % len(others)], b.t1 - 1.0, 60, 100)
    return _scene("sunglasses", seed, bank, size, fps, [a, b, c], _street_life(rng, 16, cars=5, trees=2),
                  subjects=[subj], description=sunglasses.__doc__ or "")


def long_empty(bank: FaceBank | None = None, *, seed: int = 0, size: Size = HD, fps: float = 5.0,
               subject: str | None = None) -> Scene:
    """Three minutes of street where almost nothing happens: the subject passes once at ~1 min, a stranger at ~2:20;
    only the trees move in between (a detector or tracker must stay quiet for minutes)."""
    bank = _bank(bank)
    rng = _rng(seed, 15)
    subj = _subject(bank, rng, subject)
    others = _strangers(bank, rng, [subj])
    people = [_cross(bank, rng, subj, 60.0 + float(rng.uniform(0, 5)), 50, 90),
              _cross(bank, rng, others[0], 140.0 + float(rng.uniform(0, 5)), 50, 90)]
    return _scene("long_empty", seed, bank, size, fps, people, _street_life(rng, 180, cars=0, trees=3, sway=4.0),
                  subjects=[subj], duration=180.0, description=long_empty.__doc__ or "")


def background_motion(bank: FaceBank | None = None, *, seed: int = 0, size: Size = HD, fps: float = 5.0) -> Scene:
    """No person at all: cars on both lanes, boxes trundling along the pavement, trees swaying in the wind, a van
    passing close. Every detection here is a false positive."""
    bank = _bank(bank)
    rng = _rng(seed, 16)
    props = _street_life(rng, 40, cars=24, trees=4, sway=14.0, boxes=3)
    props.append(Prop(kind="van", x0=1.4, x1=-0.4, t0=20.0, t1=25.0, bottom=1.0, width=660, height=560,
                      color=(150, 60, 40), front=True))
    return _scene("background_motion", seed, bank, size, fps, [], props, duration=40.0,
                  description=background_motion.__doc__ or "")


def dark_noisy(bank: FaceBank | None = None, *, seed: int = 0, size: Size = HD, fps: float = 5.0,
               subject: str | None = None) -> Scene:
    """Night: low gain (0.28), a blue cast and strong sensor noise (σ 9); the subject and two strangers pass."""
    bank = _bank(bank)
    rng = _rng(seed, 17)
    subj = _subject(bank, rng, subject)
    others = _strangers(bank, rng, [subj])
    a = _cross(bank, rng, subj, 1.0, 70, 110)
    b = _cross(bank, rng, others[0], a.t1 - 1.0, 50, 100)
    c = _cross(bank, rng, others[1 % len(others)], b.t1, 60, 110)
    return _scene("dark_noisy", seed, bank, size, fps, [a, b, c], _street_life(rng, 16, cars=4, trees=2),
                  subjects=[subj], lighting=Lighting(gain=0.28, tint=(1.15, 1.0, 0.85), noise=9.0),
                  description=dark_noisy.__doc__ or "")


PRESETS: dict[str, Callable[..., Scene]] = {
    "listed_pass_once": listed_pass_once,
    "listed_visits_twice": listed_visits_twice,
    "crowd": crowd,
    "approach": approach,
    "crossings": crossings,
    "sunglasses": sunglasses,
    "long_empty": long_empty,
    "background_motion": background_motion,
    "dark_noisy": dark_noisy,
}


def preset(name: str, **kwargs: object) -> Scene:
    try:
        fn = PRESETS[name]
    except KeyError:
        raise ConfigError(f"scenario: expected one of {sorted(PRESETS)}, got {name!r}") from None
    return fn(**kwargs)
