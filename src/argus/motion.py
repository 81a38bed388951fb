"""Motion gating per camera: run the face detector only where (and when) something moved.

Most city cameras watch an empty street most of the time; detecting faces on every sampled frame spends the
detector on pixels that did not change. A :class:`MotionDetector` per camera compares each frame with a slowly
updated background (the scheme of Frigate's motion detector, re-implemented here):

1. **downscale**: grey luminance at ``frame_height`` rows (100 px: ~0.5 ms per 720p frame), linear
   interpolation then a 3×3 Gaussian — downscaling is the cheap blur that hides sensor noise and leaf flicker;
2. **contrast** (optional): stretched between slowly tracked 4th/96th percentiles, so a dim night scene shows its
   motion as well as a bright one, while a sudden global change still stands out against the background;
3. **difference**: pixels differing from the background by more than ``threshold`` grey levels, outside the
   mask polygons, are *changed*; dilated blobs of at least ``min_area`` downscaled pixels are motion boxes
   (scaled back to frame pixels);
4. **light change**: when more than ``light_change`` of the unmasked frame changed at once (lights switched,
   IR mode, sun out of a cloud) it is not motion — the background is reset to this frame;
5. **background update**: unchanged pixels blend in at ``alpha`` per frame; changed pixels only once they
   stayed changed ``absorb_after`` frames in a row (a parked car becomes background, a passer-by does not).

The decision (:class:`MotionResult`): ``motion`` (run the detector on :func:`regions_to_crops` of the boxes),
``no_motion`` (skip), or a full-frame detection — ``first_frame`` (no background yet, or after a reset),
``light_change_reset``, ``periodic_full_frame`` (every ``full_frame_every_s`` of capture time whatever the
motion: a person standing still is absorbed into the background after a few seconds and must still be found).

Bad input is defined: a frame of another size (camera reconfigured) or a capture clock that jumps back by more
than ``clock_tolerance_s`` starts afresh (``first_frame`` with :attr:`MotionResult.reset` saying why); smaller
backwards jitter counts as no time passing. Only caller bugs (not a uint8 image, non-finite ts) raise
:class:`InputError`; bad configuration raises :class:`ConfigError` — "expected X, got Y".
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from argus.errors import ConfigError, InputError

__all__ = ["DETECT_CROP", "Box", "MotionConfig", "MotionDetector", "MotionResult", "Reason", "detection_regions",
           "regions_to_crops"]

Reason = Literal["motion", "periodic_full_frame", "first_frame", "no_motion", "light_change_reset"]
ResetReason = Literal["frame_size_changed", "clock_jump"]
Box = tuple[int, int, int, int]  # x1, y1, x2, y2 in frame pixels, x2/y2 exclusive
Polygon = tuple[tuple[float, float], ...]

#: Side of the square crops the detector runs on around motion and tracks (argus.faces.pipeline.FacePipeline.locate):
#: ~1/9 of a 720p frame, room for a 200-px face with its margin; MTCNN's cost is about proportional to pixels.
DETECT_CROP = 320
MOTION_MARGIN = 24  # px added around a motion box: the face at the top of a walking body may stick out of its blob
TRACK_PAD = 1.0  # a tracked face box is searched this many box sizes further on each side (it moves between frames)
_CONTRAST_RATE = 0.05  # EMA rate of the stretch percentiles: slower than a sudden light change, faster than dusk
_DILATE = np.ones((3, 3), np.uint8)


@dataclass(frozen=True, kw_only=True)
class MotionConfig:
    """Knobs of one camera's motion gate; defaults follow Frigate's (100 px high, threshold 30, area 10)."""

    frame_height: int = 100  # rows of the downscaled grey frame (capped at the frame's own height)
    alpha: float = 0.02  # background update rate per frame (5 fps: an unchanged pixel's memory is ~10 s)
    threshold: int = 30  # grey-level difference (0..255, after the contrast stretch) that marks a pixel changed
    min_area: int = 10  # changed downscaled pixels a blob needs to be motion (10 at 100 px high ≈ 520 px² at 720p)
    light_change: float = 0.6  # changed fraction of the unmasked frame above which the background is reset:
    # at 100 px, a x0.6 light drop changes 0.75-0.80 of the street scenes, the largest real motion (a van close
    # to the camera, a crowd) 0.42; Frigate's 0.8 missed the x0.6 drop
    absorb_after: int = 10  # frames a pixel must stay changed before it blends into the background
    improve_contrast: bool = True  # stretch between tracked 4th/96th percentiles (dim scenes keep their motion)
    mask: tuple[Polygon, ...] = ()  # ignored areas: polygons (x, y) in frame pixels, e.g. a clock overlay, a tree
    full_frame_every_s: float | None = 5.0  # a full-frame detection at least this often (capture s); None: never
    clock_tolerance_s: float = 0.5  # backwards capture-time jitter tolerated without a reset

    def __post_init__(self) -> None:
        if not (isinstance(self.frame_height, int) and self.frame_height >= 8):
            raise ConfigError(f"motion frame_height: expected an int >= 8, got {self.frame_height!r}")
        if not 0.0 < self.alpha <= 1.0:
            raise ConfigError(f"motion alpha: expected within (0, 1], got {self.alpha}")
        if not 1 <= self.threshold <= 254:
            raise ConfigError(f"motion threshold: expected 1..254 grey levels, got {self.threshold}")
        if self.min_area < 1 or self.absorb_after < 1:
            raise ConfigError(f"motion min_area, absorb_after: expected >= 1, got {self.min_area}, "
                              f"{self.absorb_after}")
        if not 0.0 < self.light_change <= 1.0:
            raise ConfigError(f"motion light_change: expected within (0, 1], got {self.light_change}")
        every = self.full_frame_every_s
        if every is not None and not (math.isfinite(every) and every > 0):
            raise ConfigError(f"motion full_frame_every_s: expected > 0 s or None, got {every}")
        if not self.clock_tolerance_s >= 0:
            raise ConfigError(f"motion clock_tolerance_s: expected >= 0, got {self.clock_tolerance_s}")
        for k, poly in enumerate(self.mask):
            pts = np.asarray(poly, np.float64)
            if pts.ndim != 2 or pts.shape[0] < 3 or pts.shape[1] != 2 or not np.all(np.isfinite(pts)):
                raise ConfigError(f"motion mask polygon {k}: expected >= 3 finite (x, y) points, got {poly!r}")


@dataclass(frozen=True, kw_only=True)
class MotionResult:
    """One frame's gate decision. ``full_frame``: detect on the whole frame; else on crops of ``boxes``."""

    ts: float
    detect: bool
    reason: Reason
    full_frame: bool
    boxes: tuple[Box, ...]  # motion in frame pixels (empty for first_frame and light_change_reset)
    changed: float  # fraction of the unmasked downscaled frame that differs from the background
    reset: ResetReason | None = None  # why the detector started afresh on this frame, if it did


class MotionDetector:
    """The background and clock of one camera; feed it every sampled frame of that camera, in capture order."""

    def __init__(self, config: MotionConfig | None = None) -> None:
        self.config = config or MotionConfig()
        self.counts: Counter[str] = Counter()  # frames per reason since creation (resets included)
        self._shape: tuple[int, int] | None = None
        self._small: tuple[int, int] = (0, 0)  # downscaled (width, height)
        self._keep: np.ndarray = np.zeros((0, 0), bool)  # unmasked downscaled pixels
        self._clear()

    @property
    def detect_share(self) -> float:
        """Share of the frames seen so far on which the detector would run (full frame or crops)."""
        total = sum(self.counts.values())
        return (total - self.counts["no_motion"]) / total if total else 0.0

    def _clear(self) -> None:
        self._background: np.ndarray | None = None
        self._stretch = np.array([0.0, 255.0])  # tracked (low, high) percentiles of the grey frame
        self._streak = np.zeros((0, 0), np.uint16)  # consecutive changed frames per pixel
        self._last_ts: float | None = None
        self._last_full_ts = -math.inf

    def update(self, frame: np.ndarray, ts: float) -> MotionResult:
        """Gate one frame (``(H, W, 3)`` BGR or ``(H, W)`` grey, uint8) captured at ``ts`` (seconds)."""
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
            got = frame.dtype if isinstance(frame, np.ndarray) else type(frame).__name__
            raise InputError(f"motion frame: expected a uint8 numpy image, got {got}")
        if not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 3)) or min(frame.shape[:2]) < 1:
            raise InputError(f"motion frame: expected shape (H, W, 3) or (H, W), got {frame.shape}")
        if not isinstance(ts, numbers.Real) or not math.isfinite(ts):
            raise InputError(f"motion ts: expected a finite number of seconds, got {ts!r}")
        shape = (int(frame.shape[0]), int(frame.shape[1]))
        reset: ResetReason | None = None
        if self._shape is not None and shape != self._shape:
            reset = "frame_size_changed"
        elif self._last_ts is not None and ts < self._last_ts - self.config.clock_tolerance_s:
            reset = "clock_jump"
        if reset is not None or self._shape is None:
            self._clear()
            self._start(shape)
        ts = float(ts) if self._last_ts is None else max(float(ts), self._last_ts)
        self._last_ts = ts
        raw, lo_hi = self._prepare(frame)
        if self._background is None:
            self._rebase(raw, lo_hi)
            return self._result(ts, "first_frame", changed=0.0, reset=reset)

        cfg = self.config
        self._stretch = self._stretch + _CONTRAST_RATE * (lo_hi - self._stretch)
        grey = self._stretched(raw)
        delta = cv2.absdiff(grey, cv2.convertScaleAbs(self._background))
        changed_px = (delta > cfg.threshold) & self._keep
        changed = float(np.count_nonzero(changed_px)) / max(1, int(np.count_nonzero(self._keep)))
        if changed > cfg.light_change:
            self._rebase(raw, lo_hi)
            return self._result(ts, "light_change_reset", changed=changed)
        blobs = cv2.dilate(changed_px.view(np.uint8), _DILATE)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(blobs, connectivity=8)
        area = np.bincount(labels[changed_px], minlength=n)  # changed pixels per blob, not its dilated size
        boxes = tuple(self._to_frame(stats[i]) for i in range(1, n) if area[i] >= cfg.min_area)

        self._streak = np.where(changed_px, np.minimum(self._streak + 1, 65535), 0).astype(np.uint16)
        blend = (~changed_px | (self._streak >= cfg.absorb_after)).view(np.uint8)
        cv2.accumulateWeighted(grey, self._background, cfg.alpha, mask=blend)

        every = cfg.full_frame_every_s
        if every is not None and ts - self._last_full_ts >= every - 1e-9:
            return self._result(ts, "periodic_full_frame", changed=changed, boxes=boxes)
        return self._result(ts, "motion" if boxes else "no_motion", changed=changed, boxes=boxes)

    def _start(self, shape: tuple[int, int]) -> None:
        """Fix the frame size: the downscaled size and the mask raster (polygons scaled from frame pixels)."""
        h, w = shape
        sh = min(self.config.frame_height, h)
        sw = max(1, round(w * sh / h))
        self._shape, self._small = shape, (sw, sh)
        masked = np.zeros((sh, sw), np.uint8)
        scale = np.array([sw / w, sh / h])
        for poly in self.config.mask:
            pts = np.round(np.asarray(poly, np.float64) * scale * 16).astype(np.int32)  # 4 fractional bits
            cv2.fillPoly(masked, [pts], 1, lineType=cv2.LINE_8, shift=4)
        self._keep = masked == 0

    def _prepare(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The blurred downscaled grey frame and its 4th/96th percentiles."""
        small = cv2.resize(frame, self._small, interpolation=cv2.INTER_LINEAR)
        grey = small if small.ndim == 2 else cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        grey = cv2.GaussianBlur(grey, (3, 3), 0)
        hist = np.cumsum(cv2.calcHist([grey], [0], None, [256], [0, 256]).ravel())
        return grey, np.searchsorted(hist, np.array([0.04, 0.96]) * hist[-1]).astype(np.float64)

    def _stretched(self, grey: np.ndarray) -> np.ndarray:
        lo, hi = float(self._stretch[0]), float(self._stretch[1])
        if not self.config.improve_contrast or hi - lo < 1.0:  # a flat frame (lens cap): nothing to stretch
            return grey
        gain = 255.0 / (hi - lo)
        return cv2.convertScaleAbs(grey, alpha=gain, beta=-lo * gain)  # saturates to 0..255

    def _rebase(self, raw: np.ndarray, lo_hi: np.ndarray) -> None:
        """This frame becomes the background (first frame, after a reset, after a light change)."""
        self._stretch = lo_hi
        self._background = self._stretched(raw).astype(np.float32)
        self._streak = np.zeros(raw.shape, np.uint16)

    def _to_frame(self, stat: np.ndarray) -> Box:
        assert self._shape is not None
        h, w = self._shape
        sx, sy = w / self._small[0], h / self._small[1]
        x, y, bw, bh = (int(v) for v in stat[:4])
        return (max(0, math.floor(x * sx)), max(0, math.floor(y * sy)),
                min(w, math.ceil((x + bw) * sx)), min(h, math.ceil((y + bh) * sy)))

    def _result(self, ts: float, reason: Reason, *, changed: float, boxes: tuple[Box, ...] = (),
                reset: ResetReason | None = None) -> MotionResult:
        full = reason in ("first_frame", "light_change_reset", "periodic_full_frame")
        if full:
            self._last_full_ts = ts
        self.counts[reason] += 1
        return MotionResult(ts=ts, detect=reason != "no_motion", reason=reason, full_frame=full, boxes=boxes,
                            changed=changed, reset=reset)


# ---------------------------------------------------------------------------------------------- crops


def regions_to_crops(boxes: Sequence[Sequence[float]], frame_shape: Sequence[int], *,
                     crop: int | tuple[int, int], margin: int = 0) -> tuple[Box, ...]:
    """As few model-sized crops as cover every motion box, clipped to the frame: what the detector runs on.

    ``frame_shape`` is an image's ``.shape`` ((H, W) or (H, W, C)); ``crop`` the detector's input, ``(W, H)`` or
    one side for a square; ``margin`` pixels are added around each box first (a face at a blob's edge).

    Greedy clustering, largest box first: each box joins the cluster whose bounding box grows least while still
    fitting in one crop, or opens a new cluster; then clusters are merged pairwise while the union fits. Each
    cluster becomes one crop-sized rectangle centred on it and shifted inside the frame. A box larger than a crop
    is never split (that could cut a face in two): it becomes a region of its own size, for the caller to resize.
    A crop larger than the frame shrinks to the frame, and when the crops would cover at least the frame's area
    the whole frame is returned instead — never more pixels than a full-frame detection.
    """
    if len(frame_shape) not in (2, 3) or min(int(frame_shape[0]), int(frame_shape[1])) < 1:
        raise InputError(f"frame_shape: expected (H, W) or (H, W, C) with H, W >= 1, got {tuple(frame_shape)}")
    fh, fw = int(frame_shape[0]), int(frame_shape[1])
    cw, ch = (crop, crop) if isinstance(crop, int) else crop
    if not (isinstance(cw, int) and isinstance(ch, int) and cw >= 1 and ch >= 1):
        raise InputError(f"crop: expected a side or (W, H) of ints >= 1, got {crop!r}")
    if not (isinstance(margin, int) and margin >= 0):
        raise InputError(f"margin: expected an int >= 0, got {margin!r}")
    cw, ch = min(cw, fw), min(ch, fh)
    rects: list[Box] = []
    for b in boxes:
        if len(b) != 4 or not all(math.isfinite(float(v)) for v in b):
            raise InputError(f"motion box: expected 4 finite numbers x1, y1, x2, y2, got {tuple(b)!r}")
        x1, y1 = max(0, math.floor(b[0]) - margin), max(0, math.floor(b[1]) - margin)
        x2, y2 = min(fw, math.ceil(b[2]) + margin), min(fh, math.ceil(b[3]) + margin)
        if x2 > x1 and y2 > y1:
            rects.append((x1, y1, x2, y2))

    def union(a: Box, b: Box) -> Box:
        return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))

    def area(a: Box) -> int:
        return (a[2] - a[0]) * (a[3] - a[1])

    def fits(u: Box, a: Box) -> bool:  # u fits one crop, or adds nothing to an oversized a
        return (u[2] - u[0] <= cw and u[3] - u[1] <= ch) or u == a

    clusters: list[Box] = []
    for r in sorted(rects, key=lambda r: (-area(r), r)):
        grown = [(area(union(c, r)) - area(c), i) for i, c in enumerate(clusters) if fits(union(c, r), c)]
        if grown:
            i = min(grown)[1]
            clusters[i] = union(clusters[i], r)
        else:
            clusters.append(r)
    merged = True
    while merged:
        merged = False
        for i in range(len(clusters)):
            for j in range(i + 1, len(clusters)):
                u = union(clusters[i], clusters[j])
                if fits(u, clusters[i]) or fits(u, clusters[j]):
                    clusters[i] = u
                    del clusters[j]
                    merged = True
                    break
            if merged:
                break

    crops: list[Box] = []
    for x1, y1, x2, y2 in clusters:
        w, h = max(cw, x2 - x1), max(ch, y2 - y1)
        left = min(max(0, (x1 + x2 - w) // 2), fw - w)
        top = min(max(0, (y1 + y2 - h) // 2), fh - h)
        crops.append((left, top, left + w, top + h))
    if sum(area(c) for c in crops) >= fw * fh:
        return ((0, 0, fw, fh),)
    return tuple(sorted(crops))


def detection_regions(*, keyframe: bool, motion: Sequence[Sequence[float]], tracked: Sequence[Sequence[float]],
                      frame_shape: Sequence[int], crop: int | tuple[int, int] = DETECT_CROP,
                      margin: int = MOTION_MARGIN, track_pad: float = TRACK_PAD) -> tuple[Box, ...] | None:
    """Where the detector runs on one frame: ``None`` for the whole frame, else crops (possibly none).

    A keyframe is detected whole (the periodic pass finds what motion cannot: a face standing still). Otherwise
    the crops cover every motion box (plus ``margin``) and every open track's predicted face box grown by
    ``track_pad`` box sizes on each side — a tracked face that stopped moving is re-found in its crop, so its
    track goes on. When the crops would cover the frame anyway, the answer is the whole frame (``None``).
    """
    fh, fw = int(frame_shape[0]), int(frame_shape[1])
    if keyframe:
        return None
    grown: list[tuple[float, float, float, float]] = []
    for b in tracked:
        x1, y1, x2, y2 = (float(v) for v in b[:4])
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            continue
        pw, ph = track_pad * max(1.0, x2 - x1), track_pad * max(1.0, y2 - y1)
        g = (max(0.0, x1 - pw), max(0.0, y1 - ph), min(float(fw), x2 + pw), min(float(fh), y2 + ph))
        if g[2] > g[0] and g[3] > g[1]:
            grown.append(g)
    crops = regions_to_crops([*(tuple(b) for b in motion), *grown], frame_shape, crop=crop, margin=margin)
    if crops == ((0, 0, fw, fh),):
        return None
    return crops


DetectMode = Literal["detect", "young_tracks", "skip"]


def should_detect(*, keyframe: bool, seq: int, ts: float, last_seq: int | None, last_ts: float | None,
                  interval: int, max_gap_s: float, young_track: bool = False) -> DetectMode:
    """Whether inference runs the detector on this frame of a camera (``detect``), only around its young tracks
    (``young_tracks``), or lets its tracks carry it (``skip``: DeepStream's "detect at an interval, track in
    between").

    ``last_seq`` / ``last_ts`` are the camera's last *detected* frame (``None``: none yet in this replica). The
    detector runs on every ``interval``-th frame by camera seq (``interval <= 1``: every frame, the default), and
    always on a keyframe (the periodic full-frame pass, a light change), on the camera's first frame here (a
    partition that just moved in), on a seq that went back (a restarted stream: detect, do not guess), and once
    ``max_gap_s`` of capture time passed since the last detection — so however low a camera's fps, its tracks
    are hit again before ``track_max_age_s`` ends them. Between those, a camera with a ``young_track`` (the caller's
    judgement; inference: a track of one hit) is detected around its young tracks only: a new face is seen again
    on the next frame, which gives its track a velocity (the prediction that carries it across the gaps) and its
    first embeddings (a quick first decision), while a busy camera's older tracks still skip. Seq, not a
    count of arriving frames: after a still stretch skipped in ingest the first moving frame is past the
    interval, so motion onset is always detected.
    """
    if interval <= 1 or keyframe or last_seq is None or last_ts is None or seq <= last_seq:
        return "detect"
    if seq - last_seq >= interval or ts - last_ts >= max_gap_s:
        return "detect"
    return "young_tracks" if young_track else "skip"
