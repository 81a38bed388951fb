"""Face crops for the embedder (5-point similarity alignment) and the emotion classifier (square grey box crop).

Why a similarity transform (rotation + uniform scale + translation, no shear): the embedder was trained on crops
in which the eyes, nose and mouth corners sit at fixed places; a full affine fit to five noisy landmarks would
also stretch the face, which changes identity features more than a small misplacement does. The fit is
Umeyama's closed-form least-squares solution, done in numpy so no OpenCV estimator (and its RANSAC defaults)
is involved; ``cv2.warpAffine`` only resamples.

The 150-px template is where dlib's own ``get_face_chip(size=150, padding=0.25)`` puts the five MTCNN points on
average (fitted on real faces); with it the embedding differs from dlib's own alignment by about 0.15 L2, well
under dlib's 0.6 same-person distance.
"""

from __future__ import annotations

import cv2
import numpy as np

from argus.errors import InputError
from argus.faces.types import check_array

EMBED_SIZE = 150
# left eye, right eye, nose tip, left mouth corner, right mouth corner (image left/right), 150-px crop pixels
EMBED_TEMPLATE = np.array(
    [[47.30, 45.36], [101.54, 45.24], [74.59, 78.14], [49.53, 101.39], [101.58, 100.37]], dtype=np.float64
)
EMOTION_SIZE = 64
# fraction of the box side added on every side before the square crop; FER2013 faces (the emotion model's
# training data) show the whole head down to the chin with a little background, looser than a detector box
EMOTION_MARGIN = 0.1


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2 x 3 similarity matrix M minimising sum ||M @ [src, 1] - dst||^2 (Umeyama 1991, no reflection)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise InputError(f"umeyama: expected two (K, 2) point sets with K >= 2, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = float((s0**2).sum() / len(src))
    if var_s < 1e-12:
        raise InputError("umeyama: expected distinct source points, got all points at one place")
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0
    rot = u @ np.diag(d) @ vt
    scale = float((sig * d).sum() / var_s)
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def _check_frame(frame: np.ndarray) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        got = frame.dtype if isinstance(frame, np.ndarray) else type(frame).__name__
        raise InputError(f"frame: expected a uint8 numpy image, got {got}")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] == 0 or frame.shape[1] == 0:
        raise InputError(f"frame: expected shape (H, W, 3) BGR, got {frame.shape}")
    return frame


def align_face(frame: np.ndarray, landmarks: np.ndarray, *, size: int = EMBED_SIZE) -> np.ndarray:
    """One embedder crop: ``size`` x ``size`` x 3 BGR uint8, the 5 landmarks (image coordinates) on the template.

    Pixels outside the frame are black (as dlib's chip extractor does), so a face at the frame edge is not
    smeared by edge replication.
    """
    frame = _check_frame(frame)
    check_array("landmarks", np.asarray(landmarks), (5, 2))
    m = umeyama(np.asarray(landmarks, np.float64), EMBED_TEMPLATE * (size / EMBED_SIZE))
    return cv2.warpAffine(frame, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def align_faces(frame: np.ndarray, landmarks: np.ndarray, *, size: int = EMBED_SIZE) -> np.ndarray:
    """All faces of one frame: landmarks (N, 5, 2) -> (N, size, size, 3) BGR uint8 (N may be 0)."""
    lm = np.asarray(landmarks)
    check_array("landmarks", lm, (None, 5, 2))
    if lm.shape[0] == 0:
        _check_frame(frame)
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack([align_face(frame, p, size=size) for p in lm])


def emotion_crop(
    frame: np.ndarray, box: np.ndarray, *, margin: float = EMOTION_MARGIN, size: int = EMOTION_SIZE
) -> np.ndarray:
    """Square grey crop around a detector box (x1, y1, x2, y2), ``margin`` x side added each way -> size x size.

    The square is centred on the box and sized to its longer side, so the face keeps its aspect ratio; parts
    outside the frame are filled with the nearest edge pixels (a black band would read as a strong edge to a
    network trained on full frames).
    """
    frame = _check_frame(frame)
    b = np.asarray(box, np.float64)
    check_array("box", b, (4,))
    w, h = b[2] - b[0], b[3] - b[1]
    if not (w > 0 and h > 0):
        raise InputError(f"box: expected x2 > x1 and y2 > y1, got {b.tolist()}")
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = (b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    x1, y1, n = round(cx - side / 2.0), round(cy - side / 2.0), max(1, round(side))
    top, left = max(0, -y1), max(0, -x1)
    bottom, right = max(0, y1 + n - grey.shape[0]), max(0, x1 + n - grey.shape[1])
    if top or left or bottom or right:
        grey = cv2.copyMakeBorder(grey, top, bottom, left, right, cv2.BORDER_REPLICATE)
    square = grey[y1 + top : y1 + top + n, x1 + left : x1 + left + n]
    interp = cv2.INTER_AREA if n > size else cv2.INTER_LINEAR
    return cv2.resize(square, (size, size), interpolation=interp)


def emotion_crops(frame: np.ndarray, boxes: np.ndarray, *, margin: float = EMOTION_MARGIN) -> np.ndarray:
    """All faces of one frame: boxes (N, 4) -> (N, 64, 64) grey uint8 (N may be 0)."""
    bx = np.asarray(boxes)
    check_array("boxes", bx, (None, 4))
    if bx.shape[0] == 0:
        _check_frame(frame)
        return np.zeros((0, EMOTION_SIZE, EMOTION_SIZE), np.uint8)
    return np.stack([emotion_crop(frame, b, margin=margin) for b in bx])
