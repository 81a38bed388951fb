"""Vectorised numpy box geometry shared by the face detectors.

Boxes are (N, 4) arrays of x1, y1, x2, y2 in continuous pixel coordinates (area is ``(x2 - x1) * (y2 - y1)``).
The helpers never loop over box pairs in Python: MTCNN's P-Net can propose thousands of windows per frame, and
NMS is the hot spot after the networks themselves.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from argus.errors import InputError

NmsMode = Literal["union", "min"]


def _check_boxes(name: str, boxes: np.ndarray) -> np.ndarray:
    arr = np.asarray(boxes)
    if arr.ndim != 2 or arr.shape[1] < 4:
        raise InputError(f"{name}: expected shape (N, 4), got {arr.shape}")
    return arr[:, :4].astype(np.float64, copy=False)


def areas(boxes: np.ndarray) -> np.ndarray:
    """Area of each box; degenerate (inverted) boxes count as zero so they never win an overlap test."""
    b = _check_boxes("boxes", boxes)
    return np.clip(b[:, 2] - b[:, 0], 0.0, None) * np.clip(b[:, 3] - b[:, 1], 0.0, None)


def iou(a: np.ndarray, b: np.ndarray, mode: NmsMode = "union") -> np.ndarray:
    """Pairwise overlap matrix (len(a), len(b)).

    ``mode="union"`` is intersection over union; ``mode="min"`` is intersection over the smaller box, which
    MTCNN's last stage uses so a small box nested inside a big one is suppressed even though their IoU is low.
    """
    aa = _check_boxes("a", a)
    bb = _check_boxes("b", b)
    ix1 = np.maximum(aa[:, None, 0], bb[None, :, 0])
    iy1 = np.maximum(aa[:, None, 1], bb[None, :, 1])
    ix2 = np.minimum(aa[:, None, 2], bb[None, :, 2])
    iy2 = np.minimum(aa[:, None, 3], bb[None, :, 3])
    inter = np.clip(ix2 - ix1, 0.0, None) * np.clip(iy2 - iy1, 0.0, None)
    area_a = areas(aa)[:, None]
    area_b = areas(bb)[None, :]
    if mode == "union":
        denom = area_a + area_b - inter
    elif mode == "min":
        denom = np.minimum(area_a, area_b)
    else:
        raise InputError(f"iou mode: expected 'union' or 'min', got {mode!r}")
    out: np.ndarray = np.where(denom > 0, inter / np.where(denom > 0, denom, 1.0), 0.0)
    return out


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float,
    mode: NmsMode = "union",
) -> np.ndarray:
    """Greedy non-maximum suppression; returns the kept indices into ``boxes``, highest score first.

    A box is dropped when its overlap with an already kept, higher-scoring box is strictly greater than
    ``iou_threshold`` (the same rule as facenet-pytorch / torchvision, so thresholds carry over).
    """
    b = _check_boxes("boxes", boxes)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.shape[0] != b.shape[0]:
        raise InputError(f"nms scores: expected {b.shape[0]} scores, got {s.shape[0]}")
    if mode not in ("union", "min"):
        raise InputError(f"nms mode: expected 'union' or 'min', got {mode!r}")
    if b.shape[0] == 0:
        return np.zeros((0,), np.int64)
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    area = areas(b)
    # stable sort so ties keep input order: makes results reproducible across batch layouts
    order = np.argsort(-s, kind="stable")
    keep: list[int] = []
    while order.size > 0:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        if rest.size == 0:
            break
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0.0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0.0, None)
        inter = w * h
        denom = area[i] + area[rest] - inter if mode == "union" else np.minimum(area[i], area[rest])
        ov = np.where(denom > 0, inter / np.where(denom > 0, denom, 1.0), 0.0)
        order = rest[ov <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    groups: np.ndarray,
    iou_threshold: float,
    mode: NmsMode = "union",
) -> np.ndarray:
    """NMS applied independently within each group (e.g. frame index); returns kept indices, sorted ascending.

    Uses the coordinate-offset trick: boxes of different groups are shifted apart so they can never overlap,
    and one NMS pass handles all frames of a batch.
    """
    b = _check_boxes("boxes", boxes)
    g = np.asarray(groups).reshape(-1)
    if g.shape[0] != b.shape[0]:
        raise InputError(f"batched_nms groups: expected {b.shape[0]} group ids, got {g.shape[0]}")
    if b.shape[0] == 0:
        return np.zeros((0,), np.int64)
    span = float(np.max(np.abs(b))) * 2.0 + 1.0
    shifted = b + (g.astype(np.float64) * span)[:, None]
    keep = nms(shifted, scores, iou_threshold, mode)
    return np.sort(keep)


def square_boxes(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square around its centre (side = longer side), as the next MTCNN stage expects."""
    b = _check_boxes("boxes", boxes)
    w = b[:, 2] - b[:, 0]
    h = b[:, 3] - b[:, 1]
    side = np.maximum(w, h)
    cx = b[:, 0] + w * 0.5
    cy = b[:, 1] + h * 0.5
    out = np.asarray(boxes, dtype=np.float64).copy()
    out[:, 0] = cx - side * 0.5
    out[:, 1] = cy - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clamp boxes to the frame ``[0, width] x [0, height]``; extra columns (e.g. scores) pass through."""
    b = np.asarray(boxes, dtype=np.float64).copy()
    _check_boxes("boxes", b)
    b[:, 0] = np.clip(b[:, 0], 0.0, width)
    b[:, 2] = np.clip(b[:, 2], 0.0, width)
    b[:, 1] = np.clip(b[:, 1], 0.0, height)
    b[:, 3] = np.clip(b[:, 3], 0.0, height)
    return b


def apply_regression(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Shift box edges by offsets given as fractions of the box width/height (MTCNN's encoding)."""
    b = _check_boxes("boxes", boxes)
    r = np.asarray(reg, dtype=np.float64)
    if r.shape != (b.shape[0], 4):
        raise InputError(f"regression: expected shape ({b.shape[0]}, 4), got {r.shape}")
    w = b[:, 2] - b[:, 0]
    h = b[:, 3] - b[:, 1]
    out = np.asarray(boxes, dtype=np.float64).copy()
    out[:, 0] = b[:, 0] + r[:, 0] * w
    out[:, 1] = b[:, 1] + r[:, 1] * h
    out[:, 2] = b[:, 2] + r[:, 2] * w
    out[:, 3] = b[:, 3] + r[:, 3] * h
    return out


def crop_and_resize(
    image: np.ndarray,
    boxes: np.ndarray,
    size: int,
    *,
    interpolation: int | None = None,
) -> np.ndarray:
    """Cut integer-rounded boxes out of ``image`` (H, W, C), zero-padding outside the frame, and resize each.

    Returns (N, size, size, C) float32. Zero-padding (rather than clamping the box) keeps the face at the same
    relative position inside the crop, which is what the refinement networks were trained on.
    """
    import cv2

    b = _check_boxes("boxes", boxes)
    if image.ndim != 3:
        raise InputError(f"crop_and_resize image: expected (H, W, C), got {image.shape}")
    h, w, c = image.shape
    interp = cv2.INTER_AREA if interpolation is None else interpolation
    out = np.zeros((b.shape[0], size, size, c), np.float32)
    ib = np.round(b).astype(np.int64)  # keep exact ints where the caller already rounded
    for k in range(b.shape[0]):
        x1, y1, x2, y2 = (int(v) for v in ib[k])
        if x2 <= x1 or y2 <= y1:
            continue
        patch = np.zeros((y2 - y1, x2 - x1, c), image.dtype)
        sx1, sy1 = max(x1, 0), max(y1, 0)
        sx2, sy2 = min(x2, w), min(y2, h)
        if sx2 > sx1 and sy2 > sy1:
            patch[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = image[sy1:sy2, sx1:sx2]
        resized = cv2.resize(patch, (size, size), interpolation=interp)
        out[k] = resized.reshape(size, size, c)
    return out
