"""Motion gating: each rule of argus.motion as a table, on synthetic frames and on rendered street scenes."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pytest

from argus.errors import ConfigError, InputError
from argus.motion import Box, MotionConfig, MotionDetector, regions_to_crops
from argus.scenes import Scene, background_motion, crowd, long_empty

W, H = 320, 180
DT = 0.2  # 5 fps sampling
T0 = 1_700_000_000.0
SQUARE = 30  # side of the synthetic moving object, frame pixels


def _background(w: int = W, h: int = H) -> np.ndarray:
    """A smooth, deterministic texture: real streets are not flat, and a flat frame hides stretch bugs."""
    yy, xx = np.mgrid[0:h, 0:w]
    grey = 110 + 40 * np.sin(xx / 23.0) * np.cos(yy / 17.0) + 30 * (yy / h)
    return np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)


def _with_square(x: int, y: int = 70, w: int = W, h: int = H) -> np.ndarray:
    img = _background(w, h)
    img[y:y + SQUARE, x:x + SQUARE] = (20, 230, 240)
    return img


def _overlap(a: Box | tuple[float, ...], b: Box | tuple[float, ...]) -> bool:
    return a[0] < b[2] and a[2] > b[0] and a[1] < b[3] and a[3] > b[1]


def _contains(outer: Box, inner: tuple[float, ...]) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] and outer[3] >= inner[3]


# ---------------------------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("kwargs", [
    {"frame_height": 4}, {"alpha": 0.0}, {"alpha": 1.5}, {"threshold": 0}, {"min_area": 0}, {"absorb_after": 0},
    {"light_change": 0.0}, {"full_frame_every_s": 0.0}, {"full_frame_every_s": float("nan")},
    {"clock_tolerance_s": -1.0}, {"mask": (((0, 0), (10, 0)),)}, {"mask": (((0, 0), (10, 0), (5, float("inf"))),)},
])
def test_bad_config_is_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="expected"):
        MotionConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("frame", "ts"), [
    (np.zeros((H, W, 3), np.float32), T0),  # not uint8
    (np.zeros((H, W, 4), np.uint8), T0),  # BGRA
    (np.zeros((H,), np.uint8), T0),  # not an image
    (np.zeros((0, W, 3), np.uint8), T0),  # empty
    ([[0, 0], [0, 0]], T0),  # not an array
    (np.zeros((H, W, 3), np.uint8), float("nan")),
    (np.zeros((H, W, 3), np.uint8), "1700000000"),
])
def test_bad_frame_raises_input_error(frame: object, ts: float) -> None:
    with pytest.raises(InputError, match="expected"):
        MotionDetector().update(frame, ts)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- decisions


@dataclass
class Step:
    frame: Callable[[], np.ndarray]
    dt: float = DT  # capture seconds since the previous step
    reason: str = "no_motion"
    reset: str | None = None


STILL = Step(_background)
MASK_MIDDLE = (((100.0, 40.0), (220.0, 40.0), (220.0, 140.0), (100.0, 140.0)),)


@dataclass
class Case:
    name: str
    steps: list[Step]
    config: MotionConfig = field(default_factory=lambda: MotionConfig(full_frame_every_s=None))


CASES = [
    Case("still background: one full frame, then nothing",
         [Step(_background, reason="first_frame"), *[STILL] * 20]),
    Case("grey frames work like BGR",
         [Step(lambda: _background()[:, :, 0], reason="first_frame"), Step(lambda: _background()[:, :, 0])]),
    Case("an object walking in is motion",
         [Step(_background, reason="first_frame"), STILL,
          *[Step(partial(_with_square, x), reason="motion") for x in (40, 60, 80, 100)]]),
    Case("motion inside a mask polygon is ignored",
         [Step(_background, reason="first_frame"), STILL,
          *[Step(partial(_with_square, x)) for x in (110, 130, 150)]],
         MotionConfig(full_frame_every_s=None, mask=MASK_MIDDLE)),
    Case("... and outside it is not",
         [Step(_background, reason="first_frame"), Step(lambda: _with_square(10), reason="motion")],
         MotionConfig(full_frame_every_s=None, mask=MASK_MIDDLE)),
    Case("global brightness x0.6: one reset, then the darker frame is the background",
         [Step(_background, reason="first_frame"), STILL,
          Step(lambda: (_background() * 0.6).astype(np.uint8), reason="light_change_reset"),
          *[Step(lambda: (_background() * 0.6).astype(np.uint8))] * 5]),
    Case("periodic full frame every 2 s of capture time, motion or not",
         [Step(_background, reason="first_frame"), *[STILL] * 9, Step(_background, reason="periodic_full_frame"),
          *[STILL] * 4, Step(lambda: _with_square(50), reason="motion"), *[STILL] * 4,
          Step(_background, reason="periodic_full_frame")],
         MotionConfig(full_frame_every_s=2.0)),
    Case("a capture gap longer than the period gives a full frame at once",
         [Step(_background, reason="first_frame"), Step(_background, dt=30.0, reason="periodic_full_frame"), STILL],
         MotionConfig(full_frame_every_s=5.0)),
    Case("frame size change starts afresh",
         [Step(_background, reason="first_frame"), STILL,
          Step(lambda: _background(W * 2, H * 2), reason="first_frame", reset="frame_size_changed"),
          Step(lambda: _background(W * 2, H * 2))]),
    Case("clock jumping back starts afresh; jitter within tolerance does not",
         [Step(_background, reason="first_frame"), STILL, Step(_background, dt=-0.3),
          Step(_background, dt=-60.0, reason="first_frame", reset="clock_jump"), STILL]),
    Case("an object that stays is absorbed into the background",
         [Step(_background, reason="first_frame"), STILL, *[Step(lambda: _with_square(60), reason="motion")] * 12,
          *[Step(lambda: _with_square(60))] * 3],
         MotionConfig(full_frame_every_s=None, alpha=0.5, absorb_after=10)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decisions(case: Case) -> None:
    det = MotionDetector(case.config)
    ts = T0
    for k, step in enumerate(case.steps):
        ts += step.dt if k else 0.0
        r = det.update(step.frame(), np.float64(ts) if k % 2 else ts)  # numpy scalars are numbers too
        assert isinstance(r.ts, float)
        assert (r.reason, r.reset) == (step.reason, step.reset), f"step {k}"
        assert r.detect == (r.reason != "no_motion")
        assert r.full_frame == (r.reason in ("first_frame", "light_change_reset", "periodic_full_frame"))
        assert bool(r.boxes) == (r.reason == "motion") or r.reason == "periodic_full_frame"
        assert 0.0 <= r.changed <= 1.0
    assert sum(det.counts.values()) == len(case.steps)


@pytest.mark.parametrize(("x", "y"), [(10, 10), (145, 75), (280, 140)])
def test_motion_box_covers_the_moving_object(x: int, y: int) -> None:
    det = MotionDetector(MotionConfig(full_frame_every_s=None))
    det.update(_background(), T0)
    r = det.update(_with_square(x, y), T0 + DT)
    square = (x, y, x + SQUARE, y + SQUARE)
    assert r.reason == "motion" and len(r.boxes) == 1
    assert _contains(r.boxes[0], square)
    b = r.boxes[0]
    assert (b[2] - b[0]) * (b[3] - b[1]) < 3 * SQUARE * SQUARE  # tight: a little dilation, not the frame


# ---------------------------------------------------------------------------------------------- crops


@dataclass
class CropCase:
    name: str
    boxes: list[tuple[float, float, float, float]]
    crop: int | tuple[int, int]
    expected: tuple[Box, ...]
    shape: tuple[int, ...] = (720, 1280, 3)
    margin: int = 0


CROP_CASES = [
    CropCase("no motion, no crops", [], 320, ()),
    CropCase("one box: one crop centred on it", [(600, 300, 640, 340)], 320, ((460, 160, 780, 480),)),
    CropCase("near boxes share one crop", [(100, 100, 150, 150), (300, 300, 350, 350)], 320,
             ((65, 65, 385, 385),)),
    CropCase("far boxes get one crop each", [(0, 0, 40, 40), (1200, 600, 1280, 720)], 320,
             ((0, 0, 320, 320), (960, 400, 1280, 720))),
    CropCase("a crop at the edge is shifted inside the frame", [(1270, 710, 1280, 720)], 320,
             ((960, 400, 1280, 720),)),
    CropCase("a margin is added before clustering", [(600, 300, 640, 340)], (200, 100), ((520, 270, 720, 370),),
             margin=10),
    CropCase("a box larger than a crop is kept whole", [(100, 100, 600, 300), (120, 120, 140, 140)], 320,
             ((100, 40, 600, 360),)),
    CropCase("a crop larger than the frame shrinks to it", [(10, 10, 20, 20)], 1000, ((0, 0, 640, 360),),
             shape=(360, 640)),
    CropCase("crops that would cover the frame become the frame", [(0, 0, 10, 10), (630, 350, 640, 360)], 360,
             ((0, 0, 640, 360),), shape=(360, 640)),
    CropCase("boxes partly outside are clipped; empty ones dropped", [(-50, -50, 10, 10), (700, 10, 800, 20)],
             100, ((0, 0, 100, 100),), shape=(360, 640)),
]


@pytest.mark.parametrize("case", CROP_CASES, ids=[c.name for c in CROP_CASES])
def test_regions_to_crops(case: CropCase) -> None:
    assert regions_to_crops(case.boxes, case.shape, crop=case.crop, margin=case.margin) == case.expected


@pytest.mark.parametrize("seed", range(6))
def test_crops_cover_every_box_and_stay_in_the_frame(seed: int) -> None:
    rng = np.random.default_rng(seed)
    fh, fw = (720, 1280) if seed % 2 else (360, 640)
    n = int(rng.integers(1, 25))
    xy = rng.uniform(0, [fw, fh], size=(n, 2))
    wh = rng.uniform(5, 400, size=(n, 2))
    boxes = [(x, y, min(fw, x + w), min(fh, y + h)) for (x, y), (w, h) in zip(xy, wh, strict=True)]
    crop = (256, 192) if seed % 3 else 320
    crops = regions_to_crops(boxes, (fh, fw, 3), crop=crop, margin=8)
    assert 1 <= len(crops) <= n
    for c in crops:
        assert 0 <= c[0] < c[2] <= fw and 0 <= c[1] < c[3] <= fh
    for b in boxes:
        assert any(_contains(c, b) for c in crops), b
    assert sum((c[2] - c[0]) * (c[3] - c[1]) for c in crops) <= fw * fh or crops == ((0, 0, fw, fh),)


@pytest.mark.parametrize(("boxes", "shape", "crop", "margin"), [
    ([(0, 0, 10)], (360, 640), 320, 0),
    ([(0, 0, 10, float("nan"))], (360, 640), 320, 0),
    ([], (360,), 320, 0),
    ([], (360, 640), 0, 0),
    ([], (360, 640), (320, 2.5), 0),
    ([], (360, 640), 320, -1),
])
def test_regions_to_crops_bad_arguments(boxes: list[tuple[float, ...]], shape: tuple[int, ...], crop: object,
                                        margin: int) -> None:
    with pytest.raises(InputError, match="expected"):
        regions_to_crops(boxes, shape, crop=crop, margin=margin)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- real scenes

SMALL = (640, 360)  # the gate sees 100 rows either way; a small render keeps the scene tests fast


def _tree_mask(scene: Scene) -> tuple[tuple[tuple[float, float], ...], ...]:
    """Mask polygons over the scene's trees (what an operator would draw), padded for the sway."""
    sc = scene.height / 720.0
    out = []
    for p in scene.props:
        if p.kind == "tree":
            cx, bottom, half = p.x0 * scene.width, p.bottom * scene.height, (p.width * 0.5 + 3 * p.sway) * sc
            top = bottom - p.height * sc - 3 * p.sway * sc
            out.append(((cx - half, top), (cx + half, top), (cx + half, bottom), (cx - half, bottom)))
    return tuple(out)


def test_still_street_has_no_motion_after_warm_up() -> None:
    """long_empty's first 50 s hold only swaying trees: with the trees masked, nothing moves."""
    scene = long_empty(seed=0, size=SMALL)
    det = MotionDetector(MotionConfig(full_frame_every_s=None, mask=_tree_mask(scene)))
    reasons = [det.update(img, ts).reason for _, ts, img, _ in scene.frames(0, 250)]
    assert reasons[0] == "first_frame"
    assert set(reasons[5:]) == {"no_motion"}


def test_a_person_walking_in_is_motion_over_their_face() -> None:
    """long_empty's subject crosses at ~61 s: every frame showing the face has a motion box on it, and one of the
    detector crops holds the whole face."""
    scene = long_empty(seed=0, size=SMALL)
    first = scene.visits[0].first_frame
    det = MotionDetector()
    faces = 0
    for _, ts, img, truth in scene.frames(first - 25, scene.visits[0].last_frame + 1):
        r = det.update(img, ts)
        for face in truth.faces:
            if face.visible < 0.5:
                continue
            faces += 1
            assert r.detect and any(_overlap(b, face.box) for b in r.boxes), (truth.index, face.box, r)
            crops = regions_to_crops(r.boxes, img.shape, crop=160, margin=8)
            assert any(_contains(c, face.box) for c in crops), (truth.index, face.box, crops)
    assert faces >= 15


def test_crowd_faces_are_all_in_motion() -> None:
    scene = crowd(seed=0, size=SMALL)
    det = MotionDetector()
    seen = hit = 0
    for _, ts, img, truth in scene.frames():
        r = det.update(img, ts)
        for face in truth.faces:
            if face.visible >= 0.5 and truth.index > 0:
                seen += 1
                hit += any(_overlap(b, face.box) for b in r.boxes)
    assert seen > 200 and hit / seen >= 0.98


def test_global_light_change_on_a_real_frame_resets_instead_of_flooding() -> None:
    scene = long_empty(seed=0, size=SMALL)
    det = MotionDetector(MotionConfig(full_frame_every_s=None))
    frames = list(scene.frames(0, 12))
    for _, ts, img, _ in frames[:10]:
        det.update(img, ts)
    dark = [(img * 0.6).astype(np.uint8) for _, _, img, _ in frames[10:]]
    r = det.update(dark[0], frames[10][1])
    assert (r.reason, r.boxes, r.full_frame) == ("light_change_reset", (), True)
    assert r.changed > MotionConfig().light_change
    after = det.update(dark[1], frames[11][1])
    assert after.changed < 0.05


def test_a_mask_over_the_whole_frame_silences_a_crowd() -> None:
    scene = crowd(seed=0, size=SMALL)
    w, h = scene.width, scene.height
    det = MotionDetector(MotionConfig(full_frame_every_s=None,
                                      mask=(((0.0, 0.0), (w, 0.0), (w, h), (0.0, h)),)))
    reasons = {det.update(img, ts).reason for _, ts, img, _ in scene.frames(0, 40)}
    assert reasons == {"first_frame", "no_motion"}


def test_detect_share_per_scene() -> None:
    """Measured, reported: the share of frames that reach the detector (full frame or crops) per scene."""
    shares = {}
    for name, scene, mask in [("long_empty", long_empty(seed=0, size=SMALL), False),
                              ("long_empty, trees masked", long_empty(seed=0, size=SMALL), True),
                              ("background_motion", background_motion(seed=0, size=SMALL), False),
                              ("crowd", crowd(seed=0, size=SMALL), False)]:
        det = MotionDetector(MotionConfig(mask=_tree_mask(scene) if mask else ()))
        for _, ts, img, _ in scene.frames():
            det.update(img, ts)
        shares[name] = det.detect_share
        print(f"detect share {name}: {det.detect_share:.3f} of {scene.n_frames} frames {dict(det.counts)}")
    assert shares["long_empty, trees masked"] < shares["long_empty"] < 0.5 < shares["crowd"]
    assert shares["long_empty, trees masked"] < 0.15  # the person's ~6 s, the periodic full frames, little else


def test_ms_per_720p_frame() -> None:
    """Measured, reported (no timed assert): median update time over 200 720p frames of a crowd."""
    scene = crowd(seed=0)
    frames = [(ts, img) for _, ts, img, _ in scene.frames(20, 40)]
    det = MotionDetector()
    times = []
    for k in range(200):
        ts, img = frames[k % len(frames)]
        t = time.perf_counter()
        det.update(img, ts + 4.0 * (k // len(frames)))
        times.append(time.perf_counter() - t)
    print(f"motion update: median {1000 * statistics.median(times):.3f} ms per 720p frame over 200 frames")
    assert det.counts.total() == 200
