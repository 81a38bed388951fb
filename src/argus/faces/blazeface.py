"""BlazeFace full-range face detector (MediaPipe), run through an :class:`InferenceBackend`.

The network sees the whole frame once, letterboxed to 192 x 192, and scores a fixed set of 2304 anchors (one per
cell of a 48 x 48 grid, stride 4 px). That makes it roughly an order of magnitude cheaper than MTCNN's image
pyramid (6 ms vs 17-70 ms per frame on one core), at the price of resolution: a face must be roughly 9 px wide in
the 192-px tile, i.e. about a twentieth of the frame's long side. Measured in a 1280 x 720 frame: 5 of 5 faces
found at 73 px, 4 of 5 at 59 px, none at 45 px (MTCNN: all down to 27 px). See tools/detector_comparison.json.

Pre/post-processing follows MediaPipe's ``face_detection_full_range`` graph (SsdAnchorsCalculator with
``num_layers=1, strides=[4], fixed_anchor_size=true, interpolated_scale_aspect_ratio=0``,
TensorsToDetectionsCalculator with ``x/y/w/h_scale=192, sigmoid_score, score_clipping_thresh=100``, weighted NMS at
IoU 0.3), with aspect-preserving letterboxing (black bars, centred) as MediaPipe's ImageToTensorCalculator does.

Landmarks: the model gives 6 keypoints (subject's right eye, left eye, nose tip, mouth centre, right ear, left ear).
For a frontal upright face the subject's right eye is the image-left one, so they map to our 5-point order
(left eye, right eye, nose, left mouth corner, right mouth corner; image left/right) directly, except that there are
no mouth corners. Those are estimated as ``mouth_centre -/+ MOUTH_HALF_WIDTH * (right_eye - left_eye)`` (plus a
small shift ``MOUTH_OFFSET`` perpendicular to the eye line): the mouth runs parallel to the eye line with a width
proportional to the eye distance. ``MOUTH_HALF_WIDTH`` and the error
this costs are measured in ``tools/measure_detectors.py`` (see tools/detector_comparison.json).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np

from argus.errors import BackendError, ConfigError, InputError
from argus.faces.boxes import iou, nms
from argus.faces.types import Detections
from argus.imaging import as_bgr
from argus.inference.backend import InferenceBackend

LOG = logging.getLogger(__name__)

MODEL = "blazeface"
INPUT_SIZE = 192
MAX_BATCH = 32  # must not exceed max_batch_size in triton_models/blazeface/config.pbtxt
NUM_ANCHORS = 2304
_GRID = 48  # INPUT_SIZE / stride 4
# Mouth-corner estimate, both as fractions of the eye distance: half the mouth width along the eye line, and the
# shift of the corners along the eye line turned 90 degrees (positive: towards the chin). Least-squares fit of
# BlazeFace's mouth centre + eye vector to MTCNN's corners on the WolfgangLanger clip (0.4614, -0.0295), checked on
# the stills of eleven other people; the alignment template's own ratio would be 0.48 (52.05 / 54.24 / 2).
MOUTH_HALF_WIDTH = 0.46
MOUTH_OFFSET = -0.03
# Keypoint indices in the model output (after the 4 box values).
_KP_RIGHT_EYE, _KP_LEFT_EYE, _KP_NOSE, _KP_MOUTH = 0, 1, 2, 3

_AREA_STEP = 3

NmsKind = Literal["weighted", "plain"]


def ssd_anchors() -> np.ndarray:
    """Anchor centres (2304, 2) as x, y in [0, 1], row-major over the 48 x 48 grid, as MediaPipe generates them.

    With ``fixed_anchor_size`` every anchor is 1 x 1, so only the centres matter for decoding.
    """
    c = (np.arange(_GRID, dtype=np.float64) + 0.5) / _GRID
    ys, xs = np.meshgrid(c, c, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


_ANCHORS = ssd_anchors()


def letterbox(frame_bgr: np.ndarray) -> tuple[np.ndarray, float, float, float, float]:
    """Fit the frame into 192 x 192 keeping its aspect ratio; black bars centred on the short side.

    Returns the RGB uint8 tile, the x and y scales (tile px per frame px; they differ only by rounding) and the
    x, y offsets of the image in the tile.
    Area interpolation because the downscale is large (6.7x for 1280 px) and plain bilinear would alias.
    """
    h, w = frame_bgr.shape[:2]
    s = INPUT_SIZE / max(h, w)
    nw, nh = max(1, min(INPUT_SIZE, round(w * s))), max(1, min(INPUT_SIZE, round(h * s)))
    if s < 1.0 / _AREA_STEP:
        # OpenCV's area resize is slow for non-integer factors (4 ms for 720p -> 192); bilinear down to 3x the
        # target first and an exact 3x area step after gives the same detections (scores within 0.01) in 1 ms
        frame_bgr = cv2.resize(frame_bgr, (nw * _AREA_STEP, nh * _AREA_STEP), interpolation=cv2.INTER_LINEAR)
    interp = cv2.INTER_AREA if s < 1.0 else cv2.INTER_LINEAR
    small = cv2.resize(frame_bgr, (nw, nh), interpolation=interp)
    tile = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
    ox, oy = (INPUT_SIZE - nw) // 2, (INPUT_SIZE - nh) // 2
    tile[oy : oy + nh, ox : ox + nw] = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
    return tile, nw / w, nh / h, float(ox), float(oy)


def decode_anchors(
    regressors: np.ndarray, logits: np.ndarray, anchors: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw outputs of one image (M anchors) -> boxes (M, 4) x1 y1 x2 y2 and keypoints (M, 6, 2) in tile pixels, scores.

    ``anchors`` are the (M, 2) normalised centres the rows belong to (all 2304 when None).
    """
    reg = regressors.astype(np.float64)
    anc = _ANCHORS if anchors is None else anchors
    if anc.shape[0] != reg.shape[0]:
        raise InputError(f"decode: expected {reg.shape[0]} anchors, got {anc.shape[0]}")
    ax = anc[:, 0] * INPUT_SIZE
    ay = anc[:, 1] * INPUT_SIZE
    cx = reg[:, 0] + ax
    cy = reg[:, 1] + ay
    half_w = reg[:, 2] * 0.5
    half_h = reg[:, 3] * 0.5
    boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
    kps = reg[:, 4:16].reshape(-1, 6, 2) + np.stack([ax, ay], axis=1)[:, None, :]
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64).reshape(-1), -100.0, 100.0)))
    return boxes, kps, scores


def weighted_nms(
    boxes: np.ndarray, points: np.ndarray, scores: np.ndarray, iou_threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED suppression: each kept face is the score-weighted mean of the anchors it overlaps.

    Why not plain NMS: neighbouring anchors vote on the same face, and averaging them steadies the box and keypoints
    from frame to frame (less jitter for alignment and tracking) at no extra cost. The kept score is the best one.
    """
    order = np.argsort(-scores, kind="stable")
    b, p, s = boxes[order], points[order], scores[order]
    ov = iou(b, b) if len(b) else np.zeros((0, 0))
    alive = np.ones(len(b), dtype=bool)
    out_b: list[np.ndarray] = []
    out_p: list[np.ndarray] = []
    out_s: list[float] = []
    for i in range(len(b)):
        if not alive[i]:
            continue
        members = alive & (ov[i] > iou_threshold)
        members[i] = True
        wts = s[members]
        out_b.append((b[members] * wts[:, None]).sum(0) / wts.sum())
        out_p.append((p[members] * wts[:, None, None]).sum(0) / wts.sum())
        out_s.append(float(s[i]))
        alive &= ~members
    if not out_s:
        return np.zeros((0, 4)), np.zeros((0, *points.shape[1:])), np.zeros((0,))
    return np.stack(out_b), np.stack(out_p), np.asarray(out_s)


def five_points(
    kps: np.ndarray, mouth_half_width: float = MOUTH_HALF_WIDTH, mouth_offset: float = MOUTH_OFFSET
) -> np.ndarray:
    """(N, 6, 2) MediaPipe keypoints -> (N, 5, 2) in Detections order, mouth corners estimated (see module doc)."""
    left_eye = kps[:, _KP_RIGHT_EYE]  # subject's right eye = image left
    right_eye = kps[:, _KP_LEFT_EYE]
    eye_vec = right_eye - left_eye
    chin = np.stack([-eye_vec[:, 1], eye_vec[:, 0]], axis=1)  # eye line turned 90 degrees, pointing down the face
    mouth = kps[:, _KP_MOUTH] + mouth_offset * chin
    return np.stack(
        [
            left_eye,
            right_eye,
            kps[:, _KP_NOSE],
            mouth - mouth_half_width * eye_vec,
            mouth + mouth_half_width * eye_vec,
        ],
        axis=1,
    )


class BlazeFaceDetector:
    """Detect faces and 5 landmarks with BlazeFace full-range; one backend call per (chunk of 32) frames.

    ``score_threshold`` is the final face-probability cut-off (0.6 by default because on the test
    assets every real face scored >= 0.68 and the best false candidate in the no-face clip 0.57);
    ``iou_threshold`` the suppression overlap (MediaPipe uses 0.3); ``nms`` picks MediaPipe's weighted averaging or
    plain greedy NMS (``argus.faces.boxes.nms``); ``min_face_size`` (frame pixels, shorter box side) drops smaller
    detections, for cameras where only faces large enough to match are of interest.
    """

    def __init__(
        self,
        backend: InferenceBackend,
        *,
        score_threshold: float = 0.6,
        iou_threshold: float = 0.3,
        nms: NmsKind = "weighted",
        min_face_size: float = 0.0,
        max_faces: int = 100,
        mouth_half_width: float = MOUTH_HALF_WIDTH,
        mouth_offset: float = MOUTH_OFFSET,
    ) -> None:
        if not 0.0 < score_threshold < 1.0:
            raise ConfigError(f"score_threshold: expected a probability in (0, 1), got {score_threshold}")
        if not 0.0 < iou_threshold < 1.0:
            raise ConfigError(f"iou_threshold: expected a value in (0, 1), got {iou_threshold}")
        if nms not in ("weighted", "plain"):
            raise ConfigError(f"nms: expected 'weighted' or 'plain', got {nms!r}")
        if min_face_size < 0:
            raise ConfigError(f"min_face_size: expected >= 0 pixels, got {min_face_size}")
        if max_faces < 1:
            raise ConfigError(f"max_faces: expected >= 1, got {max_faces}")
        self._backend = backend
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.nms: NmsKind = nms
        self.min_face_size = float(min_face_size)
        self.max_faces = int(max_faces)
        self.mouth_half_width = float(mouth_half_width)
        self.mouth_offset = float(mouth_offset)
        # logit cut-off equivalent to the score threshold: filters before the sigmoid and the NMS
        self._logit_threshold = float(np.log(score_threshold / (1.0 - score_threshold)))

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        """Detect faces in each frame (BGR/BGRA/grey uint8); returns one :class:`Detections` per frame, best first."""
        if len(frames) == 0:
            return []
        tiles = np.empty((len(frames), INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
        geom: list[tuple[float, float, float, float, int, int]] = []
        for i, frame in enumerate(frames):
            bgr = as_bgr(frame, where=f"frame {i}")
            tile, sx, sy, ox, oy = letterbox(bgr)
            tiles[i] = tile
            geom.append((sx, sy, ox, oy, bgr.shape[1], bgr.shape[0]))
        batch = (tiles.astype(np.float32) * np.float32(1.0 / 127.5)) - np.float32(1.0)
        regs, logits = self._infer(batch)
        return [self._postprocess(regs[i], logits[i], *geom[i]) for i in range(len(frames))]

    # ------------------------------------------------------------------------------------------------------------

    def _infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        regs: list[np.ndarray] = []
        logits: list[np.ndarray] = []
        for start in range(0, batch.shape[0], MAX_BATCH):
            chunk = batch[start : start + MAX_BATCH]
            res = self._backend.infer(MODEL, {"input": chunk})
            n = chunk.shape[0]
            regs.append(self._output(res, "regressors", (n, NUM_ANCHORS, 16)))
            logits.append(self._output(res, "classificators", (n, NUM_ANCHORS, 1)))
        return np.concatenate(regs), np.concatenate(logits)

    @staticmethod
    def _output(res: dict[str, np.ndarray], name: str, shape: tuple[int, ...]) -> np.ndarray:
        arr = res.get(name)
        if arr is None:
            raise BackendError(f"model {MODEL!r}: expected output {name!r}, got {sorted(res)}")
        if arr.shape != shape:
            raise BackendError(f"model {MODEL!r} output {name!r}: expected shape {shape}, got {arr.shape}")
        return arr

    def _postprocess(
        self, reg: np.ndarray, logit: np.ndarray, sx: float, sy: float, ox: float, oy: float, fw: int, fh: int
    ) -> Detections:
        sel = np.flatnonzero(logit.reshape(-1) >= self._logit_threshold)
        if sel.size == 0:
            return Detections.empty()
        boxes, kps, scores = decode_anchors(reg[sel], logit[sel], _ANCHORS[sel])
        if self.nms == "weighted":
            boxes, kps, scores = weighted_nms(boxes, kps, scores, self.iou_threshold)
        else:
            keep = nms(boxes, scores, self.iou_threshold)
            boxes, kps, scores = boxes[keep], kps[keep], scores[keep]
        # tile pixels -> frame pixels
        off = np.array([ox, oy])
        sc = np.array([sx, sy])
        boxes = (boxes - np.tile(off, 2)) / np.tile(sc, 2)
        kps = (kps - off) / sc
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0.0, fw)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0.0, fh)
        side = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        ok = side > max(self.min_face_size, 0.0)
        boxes, kps, scores = boxes[ok], kps[ok], scores[ok]
        order = np.argsort(-scores, kind="stable")[: self.max_faces]
        return Detections(
            boxes=boxes[order].astype(np.float32),
            scores=scores[order].astype(np.float32),
            landmarks=five_points(kps[order], self.mouth_half_width, self.mouth_offset).astype(np.float32),
        )
