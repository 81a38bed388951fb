"""MTCNN face detector (Zhang et al. 2016) with 5 landmarks, run through an :class:`InferenceBackend`.

Pre/post-processing follows facenet-pytorch 2.6.0's ``detect_face`` (whose weights ``tools/convert_models/mtcnn.py``
converts), with two deliberate differences:

- crops for R-Net/O-Net are zero-padded where a candidate box leaves the frame (as the original MTCNN and the
  davidsandberg port do) instead of being cut at the frame edge and stretched; this keeps a face at the edge in
  the position the networks were trained on;
- frames whose long side exceeds ``max_side`` (default 1280) are first downscaled with area interpolation, and the
  results are scaled back. A 4K frame would otherwise cost ~9x a 720p one in P-Net alone while the faces it can
  usefully match (>= ``min_face_size`` after the downscale) are the same ones;
- the image pyramid is built with OpenCV area resampling (facenet-pytorch: torch ``interpolate(mode="area")``),
  the largest level from the uint8 frame and the smaller levels from that level, which roughly halves the
  pre-processing cost on 720p input; boxes move by a few pixels at most (astronaut: [179, 58, 269, 174] here vs
  [181, 62, 268, 172] in facenet-pytorch).

Batching: frames of equal size share one P-Net call per pyramid scale (stacked along the batch dimension, chunked
to the served ``max_batch_size``); R-Net and O-Net each get one call (chunked likewise) with the candidates of all
frames. Results do not depend on how frames are grouped into a ``detect`` call.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from argus.errors import BackendError, ConfigError
from argus.faces.boxes import apply_regression, batched_nms, square_boxes
from argus.faces.types import Detections
from argus.imaging import as_bgr
from argus.inference.backend import InferenceBackend

LOG = logging.getLogger(__name__)

PNET = "mtcnn_pnet"
RNET = "mtcnn_rnet"
ONET = "mtcnn_onet"
# must not exceed max_batch_size in triton_models/mtcnn_*/config.pbtxt
PNET_MAX_BATCH = 16
RNET_MAX_BATCH = 256
ONET_MAX_BATCH = 128

_CELL = 12  # P-Net window
_STRIDE = 2  # P-Net output stride


@dataclass
class _Candidates:
    """Boxes (x1, y1, x2, y2) in working-image pixels, their scores and the frame each belongs to."""

    boxes: np.ndarray  # (N, 4) float64
    scores: np.ndarray  # (N,) float64
    frame: np.ndarray  # (N,) int64

    def take(self, idx: np.ndarray) -> _Candidates:
        return _Candidates(self.boxes[idx], self.scores[idx], self.frame[idx])

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


def _normalise(x: np.ndarray) -> np.ndarray:
    """NHWC RGB float -> NCHW float32 scaled like the training data: (pixel - 127.5) / 128."""
    return np.ascontiguousarray(((x - 127.5) * 0.0078125).transpose(0, 3, 1, 2), dtype=np.float32)


def to_rgb(frame: np.ndarray, index: int = 0) -> np.ndarray:
    """Validate one frame (BGR, BGRA or grey uint8) and return it as an H x W x 3 RGB uint8 array."""
    return cv2.cvtColor(as_bgr(frame, where=f"frame {index}"), cv2.COLOR_BGR2RGB)


class MtcnnDetector:
    """Detect faces and their 5 landmarks (left eye, right eye, nose, left/right mouth corner; image left/right).

    ``thresholds`` are the face-probability cut-offs of P-Net, R-Net and O-Net; the last one is the detector's
    final score filter (0.95 keeps the real faces seen on the test photos and drops the p < 0.95 false positives
    the facenet-pytorch default of 0.7 lets through). ``min_face_size`` is in pixels of the (possibly downscaled)
    working image and sets the first pyramid scale, so it dominates the cost: 80 is ~3x cheaper than 40.
    """

    def __init__(
        self,
        backend: InferenceBackend,
        *,
        min_face_size: int = 40,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.95),
        scale_factor: float = 0.709,
        max_side: int | None = 1280,
        nms_thresholds: tuple[float, float, float, float] = (0.5, 0.7, 0.7, 0.7),
    ) -> None:
        if min_face_size < _CELL:
            raise ConfigError(f"min_face_size: expected >= {_CELL} pixels, got {min_face_size}")
        if len(thresholds) != 3 or not all(0.0 <= t <= 1.0 for t in thresholds):
            raise ConfigError(f"thresholds: expected three probabilities in [0, 1], got {thresholds}")
        if not 0.1 <= scale_factor < 1.0:
            raise ConfigError(f"scale_factor: expected a value in [0.1, 1), got {scale_factor}")
        if max_side is not None and max_side < 2 * min_face_size:
            raise ConfigError(f"max_side: expected None or >= 2 * min_face_size ({2 * min_face_size}), got {max_side}")
        self._backend = backend
        self.min_face_size = int(min_face_size)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.scale_factor = float(scale_factor)
        self.max_side = max_side
        # per-scale P-Net NMS, cross-scale NMS, R-Net NMS, O-Net NMS ("min" overlap)
        self.nms_thresholds = nms_thresholds

    # ------------------------------------------------------------------------------------------------------------

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        """Detect faces in each frame (BGR/BGRA/grey uint8); returns one :class:`Detections` per frame, best first."""
        rgb: list[np.ndarray] = []
        ratios: list[float] = []  # working-image pixels per original pixel
        for i, frame in enumerate(frames):
            img = to_rgb(frame, i)
            h, w = img.shape[:2]
            r = 1.0
            if self.max_side is not None and max(h, w) > self.max_side:
                r = self.max_side / max(h, w)
                size = (max(1, round(w * r)), max(1, round(h * r)))
                img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            rgb.append(img)
            ratios.append(r)
        if not rgb:
            return []

        cand = self._stage1(rgb)
        if len(cand):
            cand = self._stage2(rgb, cand)
        if len(cand):
            cand, marks = self._stage3(rgb, cand)
        else:
            marks = np.zeros((0, 5, 2))

        out: list[Detections] = []
        for i, frame in enumerate(frames):
            sel = np.flatnonzero(cand.frame == i)
            sel = sel[np.argsort(-cand.scores[sel], kind="stable")]
            if sel.size == 0:
                out.append(Detections.empty())
                continue
            fh, fw = frame.shape[0], frame.shape[1]
            boxes = cand.boxes[sel] / ratios[i]
            boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0.0, fw)
            boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0.0, fh)
            out.append(
                Detections(
                    boxes=boxes.astype(np.float32),
                    scores=cand.scores[sel].astype(np.float32),
                    landmarks=(marks[sel] / ratios[i]).astype(np.float32),
                )
            )
        return out

    # ------------------------------------------------------------------------------------------------------------

    def _infer(self, model: str, batch: np.ndarray, max_batch: int) -> dict[str, np.ndarray]:
        """Run ``model`` in chunks no larger than the served max batch and concatenate the outputs."""
        parts: list[dict[str, np.ndarray]] = []
        for start in range(0, batch.shape[0], max_batch):
            res = self._backend.infer(model, {"input": batch[start : start + max_batch]})
            parts.append(res)
        keys = parts[0].keys()
        try:
            return {k: np.concatenate([p[k] for p in parts], axis=0) for k in keys}
        except (KeyError, ValueError) as e:
            raise BackendError(f"model {model!r}: inconsistent outputs across batch chunks: {e}") from e

    @staticmethod
    def _output(res: dict[str, np.ndarray], model: str, name: str, shape: tuple[int, ...]) -> np.ndarray:
        arr = res.get(name)
        if arr is None:
            raise BackendError(f"model {model!r}: expected output {name!r}, got {sorted(res)}")
        if arr.shape[: len(shape)] != shape:
            raise BackendError(f"model {model!r} output {name!r}: expected leading shape {shape}, got {arr.shape}")
        return arr

    def _scales(self, h: int, w: int) -> list[float]:
        m = _CELL / self.min_face_size
        minl = min(h, w) * m
        scales: list[float] = []
        s = m
        while minl >= _CELL:
            scales.append(s)
            s *= self.scale_factor
            minl *= self.scale_factor
        return scales

    def _stage1(self, rgb: list[np.ndarray]) -> _Candidates:
        """P-Net over the image pyramid; frames of equal size are stacked into one call per scale."""
        groups: dict[tuple[int, int], list[int]] = {}
        for i, img in enumerate(rgb):
            groups.setdefault((img.shape[0], img.shape[1]), []).append(i)
        t0, nms_scale, nms_all = self.thresholds[0], self.nms_thresholds[0], self.nms_thresholds[1]
        found: list[_Candidates] = []
        for (h, w), idx in groups.items():
            scales = self._scales(h, w)
            if not scales:
                continue
            # The full-size frame is read once, for the largest pyramid level (uint8: cv2's fast path); the
            # smaller levels are area-resampled from that level. Resampling every level from the full frame
            # cost more than P-Net itself on 720p input.
            base: list[np.ndarray] = []
            for i in idx:
                hs, ws = int(h * scales[0] + 1), int(w * scales[0] + 1)
                base.append(cv2.resize(rgb[i], (ws, hs), interpolation=cv2.INTER_AREA).astype(np.float32))
            for level, scale in enumerate(scales):
                hs, ws = int(h * scale + 1), int(w * scale + 1)
                if level == 0:
                    batch = np.stack(base)
                else:
                    batch = np.stack([cv2.resize(b, (ws, hs), interpolation=cv2.INTER_AREA) for b in base])
                res = self._infer(PNET, _normalise(batch), PNET_MAX_BATCH)
                prob = self._output(res, PNET, "prob", (len(idx), 1))[:, 0]
                reg = self._output(res, PNET, "regression", (len(idx), 4))
                n, yy, xx = np.nonzero(prob >= t0)
                if n.size == 0:
                    continue
                score = prob[n, yy, xx].astype(np.float64)
                q1x = np.floor((_STRIDE * xx + 1) / scale)
                q1y = np.floor((_STRIDE * yy + 1) / scale)
                q2x = np.floor((_STRIDE * xx + _CELL) / scale)
                q2y = np.floor((_STRIDE * yy + _CELL) / scale)
                boxes = np.stack([q1x, q1y, q2x, q2y], axis=1)
                offs = reg[n, :, yy, xx].astype(np.float64)
                frame = np.asarray(idx, np.int64)[n]
                keep = batched_nms(boxes, score, frame, nms_scale)
                # carry the regression offsets in extra columns until after the cross-scale NMS
                found.append(_Candidates(np.hstack([boxes, offs])[keep], score[keep], frame[keep]))
        if not found:
            return _Candidates(np.zeros((0, 4)), np.zeros((0,)), np.zeros((0,), np.int64))
        allc = _Candidates(
            np.concatenate([c.boxes for c in found]),
            np.concatenate([c.scores for c in found]),
            np.concatenate([c.frame for c in found]),
        )
        allc = allc.take(batched_nms(allc.boxes[:, :4], allc.scores, allc.frame, nms_all))
        boxes = square_boxes(apply_regression(allc.boxes[:, :4], allc.boxes[:, 4:8]))
        return _Candidates(boxes, allc.scores, allc.frame)

    @staticmethod
    def _crops(rgb: list[np.ndarray], cand: _Candidates, size: int) -> np.ndarray:
        """Zero-padded crops of the integer box ``[floor(x1) - 1, floor(x2))`` resized to ``size``, as NHWC float32.

        facenet-pytorch crops ``img[y - 1 : ey, x - 1 : ex]`` from truncated coordinates; the same window is used
        here, except that the part outside the frame is zeros rather than cut off.
        """
        ib = np.floor(cand.boxes).astype(np.int64)
        ib[:, 0] -= 1
        ib[:, 1] -= 1
        out = np.zeros((len(cand), size, size, 3), np.float32)
        for k in range(len(cand)):
            img = rgb[int(cand.frame[k])]
            h, w = img.shape[:2]
            x1, y1, x2, y2 = (int(v) for v in ib[k])
            if x2 <= x1 or y2 <= y1:
                continue
            sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
            if sx2 <= sx1 or sy2 <= sy1:
                continue
            patch = np.zeros((y2 - y1, x2 - x1, 3), np.uint8)
            patch[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = img[sy1:sy2, sx1:sx2]
            out[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
        return out

    def _stage2(self, rgb: list[np.ndarray], cand: _Candidates) -> _Candidates:
        crops = self._crops(rgb, cand, 24)
        res = self._infer(RNET, _normalise(crops), RNET_MAX_BATCH)
        prob = self._output(res, RNET, "prob", (len(cand), 1))[:, 0].astype(np.float64)
        reg = self._output(res, RNET, "regression", (len(cand), 4)).astype(np.float64)
        ok = np.flatnonzero(prob > self.thresholds[1])
        c = _Candidates(cand.boxes[ok], prob[ok], cand.frame[ok])
        reg = reg[ok]
        keep = batched_nms(c.boxes, c.scores, c.frame, self.nms_thresholds[2])
        c, reg = c.take(keep), reg[keep]
        boxes = square_boxes(_bbreg(c.boxes, reg))
        return _Candidates(boxes, c.scores, c.frame)

    def _stage3(self, rgb: list[np.ndarray], cand: _Candidates) -> tuple[_Candidates, np.ndarray]:
        crops = self._crops(rgb, cand, 48)
        res = self._infer(ONET, _normalise(crops), ONET_MAX_BATCH)
        prob = self._output(res, ONET, "prob", (len(cand), 1))[:, 0].astype(np.float64)
        reg = self._output(res, ONET, "regression", (len(cand), 4)).astype(np.float64)
        pts = self._output(res, ONET, "landmarks", (len(cand), 10)).astype(np.float64)
        ok = np.flatnonzero(prob > self.thresholds[2])
        c = _Candidates(cand.boxes[ok], prob[ok], cand.frame[ok])
        reg, pts = reg[ok], pts[ok]
        # landmarks are fractions of the crop window [x1 - 1, x2) (width x2 - x1 + 1 in the unfloored box)
        bw = c.boxes[:, 2] - c.boxes[:, 0] + 1
        bh = c.boxes[:, 3] - c.boxes[:, 1] + 1
        mx = pts[:, :5] * bw[:, None] + c.boxes[:, 0:1] - 1
        my = pts[:, 5:] * bh[:, None] + c.boxes[:, 1:2] - 1
        marks = np.stack([mx, my], axis=2)
        boxes = _bbreg(c.boxes, reg)
        keep = batched_nms(boxes, c.scores, c.frame, self.nms_thresholds[3], mode="min")
        return _Candidates(boxes[keep], c.scores[keep], c.frame[keep]), marks[keep]


def _bbreg(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """R-Net/O-Net box regression: offsets are fractions of the inclusive width (x2 - x1 + 1), as facenet-pytorch."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    return np.stack(
        [
            boxes[:, 0] + reg[:, 0] * w,
            boxes[:, 1] + reg[:, 1] * h,
            boxes[:, 2] + reg[:, 2] * w,
            boxes[:, 3] + reg[:, 3] * h,
        ],
        axis=1,
    )
