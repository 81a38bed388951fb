"""Numpy face results in validated dataclasses.

Every array's shape and dtype is checked in ``__post_init__`` so a wrong model output fails where it is produced,
with "expected X, got Y", instead of three stages later.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from argus.errors import InputError

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def emotion_label(probs: np.ndarray | tuple[float, ...]) -> str:
    """The most probable emotion's name (probabilities in :data:`EMOTIONS` order)."""
    p = np.asarray(probs, np.float32)
    check_array("emotion", p, (len(EMOTIONS),))
    return EMOTIONS[int(np.argmax(p))]


def check_array(name: str, value: np.ndarray, shape: tuple[int | None, ...], dtype: type | None = None) -> None:
    """Raise InputError unless ``value`` has ``shape`` (None = any size on that axis) and ``dtype``."""
    if not isinstance(value, np.ndarray):
        raise InputError(f"{name}: expected a numpy array, got {type(value).__name__}")
    if value.ndim != len(shape) or any(s is not None and s != v for s, v in zip(shape, value.shape, strict=False)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise InputError(f"{name}: expected shape {want}, got {value.shape}")
    if dtype is not None and value.dtype != dtype:
        raise InputError(f"{name}: expected dtype {np.dtype(dtype).name}, got {value.dtype}")


@dataclass(frozen=True, kw_only=True)
class Detections:
    """Faces found in one frame by a detector, before embedding.

    boxes: (N, 4) float32 x1, y1, x2, y2 in frame pixels; scores: (N,) float32 in [0, 1];
    landmarks: (N, 5, 2) float32 — left eye, right eye, nose, left mouth corner, right mouth corner (image left/right).
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def __post_init__(self) -> None:
        check_array("boxes", self.boxes, (None, 4), np.float32)
        n = self.boxes.shape[0]
        check_array("scores", self.scores, (n,), np.float32)
        check_array("landmarks", self.landmarks, (n, 5, 2), np.float32)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros((0,), np.float32),
            landmarks=np.zeros((0, 5, 2), np.float32),
        )


@dataclass(frozen=True, kw_only=True)
class Face:
    """One analysed face: where it is, how usable it is, who it looks like (embedding) and what it shows (emotion)."""

    box: np.ndarray  # (4,) float32 x1, y1, x2, y2
    landmarks: np.ndarray  # (5, 2) float32
    det_score: float
    embedding: np.ndarray  # (D,) float32, unit L2 norm
    emotion: np.ndarray  # (7,) float32 probabilities in EMOTIONS order
    quality: FaceQuality
    crop: np.ndarray = field(repr=False)  # aligned BGR uint8 crop the embedder saw, kept as alert evidence

    def __post_init__(self) -> None:
        check_array("box", self.box, (4,), np.float32)
        check_array("landmarks", self.landmarks, (5, 2), np.float32)
        check_array("embedding", self.embedding, (None,), np.float32)
        check_array("emotion", self.emotion, (len(EMOTIONS),), np.float32)
        check_array("crop", self.crop, (None, None, 3), np.uint8)
        norm = float(np.linalg.norm(self.embedding))
        if not 0.99 < norm < 1.01:
            raise InputError(f"embedding: expected unit L2 norm, got {norm:.4f}")


@dataclass(frozen=True, kw_only=True)
class FaceQuality:
    """Why a face may be unfit for matching: too small (pixels between the eyes / box side) or too blurred."""

    size: float  # shorter side of the box, pixels
    blur: float  # variance of the Laplacian on the aligned grey crop (higher = sharper)
