"""MediaPipe FaceMesh: 468 dense landmarks per face, run through an :class:`InferenceBackend`.

The model (``triton_models/face_mesh``, converted by tools/convert_models/facemesh.py) sees one 192 x 192 RGB crop per
face, values in [0, 1], and returns 468 x (x, y, z) in crop pixels plus a face-presence logit. The crop follows
MediaPipe's face_landmark graph: the detector's face rect, centred, made square on its long side and enlarged
``ROI_SCALE`` = 1.5x (``RectTransformationCalculator scale 1.5, square_long``), optionally turned so that the eye line
is horizontal (MediaPipe rotates by the detection's two eye keypoints; pass the detector's 5 points to do the same),
pixels outside the frame edge-replicated. Crops larger than 192 px are first shrunk with area interpolation so a big
face is not aliased by the bilinear warp. All crops of a frame go to the backend as one batch
(chunks of ``MAX_BATCH``; :meth:`FaceMesh.run` takes several frames' faces in one call), and the points are mapped
back to frame pixels; z is scaled like x and y (it is relative depth, smaller = nearer the
camera, roughly zero at the face centre).

Point indices are MediaPipe's canonical face mesh (e.g. 33/133 outer/inner corner of the image-left eye, 362/263
inner/outer corner of the image-right eye, 61/291 image-left/right mouth corner, 1 nose tip, 152 chin).

Measured (ONNX Runtime 1.32 on CPU, 1 intra-op thread, CPU time on a busy 2-core machine where BlazeFace took 8.6 ms
per frame): the model 4.3 ms per face at batch 1 and 5.7 ms per face at batch 8 (batch 8 does not help on CPU: the
activations leave the cache), crop + model + mapping 6.0 / 6.9 ms per face.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from argus.errors import InputError
from argus.faces.types import check_array
from argus.imaging import as_bgr
from argus.inference.backend import InferenceBackend, RowModel, infer_row_outputs

MODEL = "face_mesh"
INPUT_SIZE = 192
NUM_POINTS = 468
MAX_BATCH = 32  # must not exceed max_batch_size in triton_models/face_mesh/config.pbtxt
ROI_SCALE = 1.5

# A few named points of the canonical mesh (image left/right for an upright frontal face).
LEFT_EYE_OUTER, LEFT_EYE_INNER, RIGHT_EYE_INNER, RIGHT_EYE_OUTER = 33, 133, 362, 263
MOUTH_LEFT, MOUTH_RIGHT = 61, 291
NOSE_TIP, CHIN = 1, 152


@dataclass(frozen=True, kw_only=True)
class FaceMeshes:
    """Dense landmarks of N faces of one frame.

    points: (N, 468, 3) float32 x, y in frame pixels and z (relative depth, frame-pixel scale);
    presence: (N,) float32 probability that the crop holds a face (the model's face flag after a sigmoid).
    """

    points: np.ndarray
    presence: np.ndarray

    def __post_init__(self) -> None:
        check_array("points", self.points, (None, NUM_POINTS, 3), np.float32)
        check_array("presence", self.presence, (self.points.shape[0],), np.float32)

    def __len__(self) -> int:
        return int(self.points.shape[0])


def crop_geometry(
    boxes: np.ndarray, five_points: np.ndarray | None = None, *, scale: float = ROI_SCALE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per face: crop centre (N, 2), side (N,) in frame pixels and rotation (N,) in radians (eye line angle)."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2.0
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) * scale
    if five_points is None:
        angle = np.zeros(len(boxes))
    else:
        eye = five_points[:, 1].astype(np.float64) - five_points[:, 0]
        angle = np.arctan2(eye[:, 1], eye[:, 0])
    return centre.astype(np.float64), side.astype(np.float64), angle


def _frame_to_tile(centre: np.ndarray, side: float, angle: float) -> np.ndarray:
    """2 x 3 affine matrix from frame to crop-tile coordinates, u = k R(-angle) (p - centre) + 96, both continuous
    (pixel i covers [i, i + 1]), which is how the model's outputs are read back (:func:`tile_to_frame`)."""
    k = INPUT_SIZE / side
    c, s = math.cos(angle), math.sin(angle)
    a = k * np.array([[c, s], [-s, c]])
    return np.hstack([a, (INPUT_SIZE / 2.0 - a @ centre)[:, None]])


def extract_tile(frame_bgr: np.ndarray, centre: np.ndarray, side: float, angle: float) -> np.ndarray:
    """The 192 x 192 RGB uint8 crop of one face (see module doc)."""
    h, w = frame_bgr.shape[:2]
    half = side / 2.0 * (abs(math.cos(angle)) + abs(math.sin(angle)))  # half extent of the turned square
    x0, y0 = math.floor(centre[0] - half) - 1, math.floor(centre[1] - half) - 1
    x1, y1 = math.ceil(centre[0] + half) + 2, math.ceil(centre[1] + half) + 2
    region = frame_bgr[max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)]
    pads = (max(-y0, 0), max(y1 - h, 0), max(-x0, 0), max(x1 - w, 0))
    if any(pads):
        region = cv2.copyMakeBorder(region, *pads, cv2.BORDER_REPLICATE)
    m = _frame_to_tile(centre, side, angle)
    # pixel indices: continuous = index + 0.5 on both sides; region index q is frame index q + (x0, y0)
    m[:, 2] += m[:, :2] @ np.array([x0 + 0.5, y0 + 0.5]) - 0.5
    if side > INPUT_SIZE:  # shrink with area interpolation first; region index q = f (r + 0.5) - 0.5
        rh, rw = region.shape[:2]
        k = INPUT_SIZE / side
        nw, nh = max(1, round(rw * k)), max(1, round(rh * k))
        region = cv2.resize(region, (nw, nh), interpolation=cv2.INTER_AREA)
        f = np.array([rw / nw, rh / nh])
        m[:, 2] += m[:, :2] @ (0.5 * (f - 1.0))
        m[:, :2] *= f
    tile = cv2.warpAffine(region, m, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.cvtColor(tile, cv2.COLOR_BGR2RGB)


def tile_to_frame(points: np.ndarray, centre: np.ndarray, side: float, angle: float) -> np.ndarray:
    """(468, 3) tile coordinates of one face -> frame pixels (z scaled by the same factor as x and y)."""
    inv = side / INPUT_SIZE
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    xy = (points[:, :2].astype(np.float64) - INPUT_SIZE / 2.0) @ rot.T * inv + centre
    z = points[:, 2:3].astype(np.float64) * inv
    return np.hstack([xy, z])


def _check_boxes(boxes: object, frame_shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(boxes, np.ndarray):
        raise InputError(f"boxes: expected a numpy array, got {type(boxes).__name__}")
    check_array("boxes", boxes, (None, 4))
    if not np.issubdtype(boxes.dtype, np.number) or np.issubdtype(boxes.dtype, np.complexfloating):
        raise InputError(f"boxes: expected a real numeric dtype, got {boxes.dtype}")
    b = boxes.astype(np.float64)
    if not np.all(np.isfinite(b)):
        raise InputError("boxes: expected finite coordinates, got NaN or inf")
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    bad = np.flatnonzero((w <= 0) | (h <= 0))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"boxes[{i}]: expected x2 > x1 and y2 > y1 (a non-empty box), got {b[i].tolist()}")
    fh, fw = frame_shape[:2]
    outside = np.flatnonzero((b[:, 2] <= 0) | (b[:, 3] <= 0) | (b[:, 0] >= fw) | (b[:, 1] >= fh))
    if outside.size:
        i = int(outside[0])
        raise InputError(f"boxes[{i}]: expected a box overlapping the {fw}x{fh} frame, got {b[i].tolist()}")
    return b


@dataclass(frozen=True, kw_only=True)
class MeshCrops:
    """One frame's faces cut for the model: 192 x 192 RGB tiles (N, 192, 192, 3) uint8 and the geometry that maps
    the model's points back to the frame (centre (N, 2), side (N,), angle (N,))."""

    tiles: np.ndarray
    centre: np.ndarray
    side: np.ndarray
    angle: np.ndarray

    def __len__(self) -> int:
        return int(self.tiles.shape[0])


def mesh_crops(frame_bgr: np.ndarray, boxes: np.ndarray, five_points: np.ndarray | None = None) -> MeshCrops:
    """Validate one frame's boxes (and detector points) and cut their tiles; an InputError names what is wrong, so
    a caller meshing many frames can set one frame aside and mesh the rest (:meth:`FaceMesh.run`)."""
    frame = as_bgr(frame_bgr, where="frame")
    b = _check_boxes(boxes, frame.shape)
    n = b.shape[0]
    if five_points is not None:
        check_array("five_points", five_points, (n, 5, 2))
        if not np.all(np.isfinite(five_points)):
            raise InputError("five_points: expected finite coordinates, got NaN or inf")
    if n == 0:
        return MeshCrops(tiles=np.zeros((0, INPUT_SIZE, INPUT_SIZE, 3), np.uint8), centre=np.zeros((0, 2)),
                         side=np.zeros((0,)), angle=np.zeros((0,)))
    centre, side, angle = crop_geometry(b, five_points)
    tiles = np.stack([extract_tile(frame, centre[i], float(side[i]), float(angle[i])) for i in range(n)])
    return MeshCrops(tiles=tiles, centre=centre, side=side, angle=angle)


def _empty() -> FaceMeshes:
    return FaceMeshes(points=np.zeros((0, NUM_POINTS, 3), np.float32), presence=np.zeros((0,), np.float32))


class FaceMesh(RowModel):
    """468-point FaceMesh for the faces a detector found; one backend call per frame (per 32 faces)."""

    MODEL = MODEL
    MAX_BATCH = MAX_BATCH

    def __init__(self, backend: InferenceBackend, *, model: str = MODEL, max_batch: int = MAX_BATCH) -> None:
        if max_batch < 1:
            raise InputError(f"max_batch: expected >= 1, got {max_batch}")
        super().__init__(backend, model=model, max_batch=max_batch)

    def landmarks(self, frame_bgr: np.ndarray, boxes: np.ndarray, five_points: np.ndarray | None = None) -> np.ndarray:
        """(N, 468, 3) float32 points in frame pixels for the N ``boxes`` (x1, y1, x2, y2) of ``frame_bgr``."""
        return self.analyse(frame_bgr, boxes, five_points).points

    def analyse(
        self, frame_bgr: np.ndarray, boxes: np.ndarray, five_points: np.ndarray | None = None
    ) -> FaceMeshes:
        """Points and face-presence scores for the N ``boxes`` of one frame (BGR/BGRA/grey uint8).

        ``five_points`` (N, 5, 2), the detector's landmarks (``Detections.landmarks``), turns each crop upright by
        its eye line as MediaPipe does; without it the crops are axis-aligned. No boxes: an empty result.
        """
        return self.run([mesh_crops(frame_bgr, boxes, five_points)])[0]

    def run(self, crops: Sequence[MeshCrops]) -> list[FaceMeshes]:
        """The meshes of several frames' faces (each prepared by :func:`mesh_crops`) in one backend call per
        ``max_batch`` faces: the inference stage meshes a whole micro-batch at once. One result per entry."""
        total = sum(len(c) for c in crops)
        if total == 0:
            return [_empty() for _ in crops]
        raw, logits = self._infer(np.concatenate([c.tiles for c in crops if len(c)]).astype(np.float32)
                                  * np.float32(1.0 / 255.0))
        presence = (1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100.0, 100.0)))).astype(np.float32)
        out, at = [], 0
        for c in crops:
            n = len(c)
            if n == 0:
                out.append(_empty())
                continue
            pts = np.stack([tile_to_frame(raw[at + i].reshape(NUM_POINTS, 3), c.centre[i], float(c.side[i]),
                                          float(c.angle[i])) for i in range(n)])
            out.append(FaceMeshes(points=pts.astype(np.float32), presence=presence[at : at + n]))
            at += n
        return out

    def _infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = infer_row_outputs(self._backend, self.model, batch, prepare=lambda x: x,
                                outputs={"landmarks": NUM_POINTS * 3, "face_flag": 1}, max_batch=self.max_batch)
        return out["landmarks"], out["face_flag"][:, 0]
