"""How usable a face is for matching: its size in the frame and the sharpness of its aligned crop.

Both are cheap and model-free so they can gate the embedder: a 20-px or motion-blurred face gives an embedding
that lands near everyone, which is how false watch-list alerts happen.
"""

from __future__ import annotations

import cv2
import numpy as np

from argus.errors import InputError
from argus.faces.types import FaceQuality, check_array


def blur_score(crop: np.ndarray) -> float:
    """Variance of the Laplacian of the grey crop (higher = sharper); comparable only between same-size crops."""
    if not isinstance(crop, np.ndarray) or crop.dtype != np.uint8 or crop.ndim not in (2, 3) or crop.size == 0:
        got = (crop.shape, crop.dtype) if isinstance(crop, np.ndarray) else type(crop).__name__
        raise InputError(f"crop: expected a non-empty uint8 grey or BGR image, got {got}")
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 and crop.shape[2] == 3 else crop.squeeze()
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def face_size(box: np.ndarray) -> float:
    """Shorter side of an (x1, y1, x2, y2) box in pixels (0 for a degenerate box)."""
    b = np.asarray(box, np.float64)
    check_array("box", b, (4,))
    return float(max(0.0, min(b[2] - b[0], b[3] - b[1])))


def assess(box: np.ndarray, aligned_crop: np.ndarray) -> FaceQuality:
    return FaceQuality(size=face_size(box), blur=blur_score(aligned_crop))
