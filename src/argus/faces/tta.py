"""Test-time augmentation (TTA) views of grey face crops for the emotion classifier, after paper 003.

Paper 003 (FER2013, a small CNN) classifies 10 augmented copies of each test face and averages the predicted
probabilities, for "about 2 %" more accuracy (62.8 % plain on 5,766 validation images, 64.4 % with TTA on 7,066
test images: not the same images, so not a clean comparison). Its copies are *random* draws of the
augmentations it trained with (Keras ``ImageDataGenerator``: rotation 10 degrees, width/height shift, shear, zoom,
horizontal flip, ``fill_mode="nearest"``). Here the views are a fixed table instead, so the same crop always gives
the same probabilities (a sighting's emotion must not change when it is re-scored), and the first ``n`` views are
the most useful subset for a smaller ``n``:

====  ==========================================================  =========
view  transform (about the crop centre)                            why
====  ==========================================================  =========
0     none (the crop as the pipeline cuts it)                      views=1 is exactly the plain model
1     horizontal flip                                              expressions are near-symmetric; no resampling
2, 3  rotate +10 / -10 degrees                                     head roll; the paper's rotation range
4     zoom in 1.1x                                                 detector boxes vary in size
5     shift 3 px right and down (~5 % of the side)                 detector boxes vary in position
6     flip, then shift 3 px left and down                          the same on the mirrored face
7     zoom out 0.9x                                                looser box
8, 9  brightness x1.2 / x0.8 (pixel values, clipped to 0-255)      exposure; the model does no normalisation
====  ==========================================================  =========

The views are cut from the 64 x 64 crop itself, not from a larger crop of the frame. Pixels a shift, rotation or
zoom-out moves in from outside are filled with the nearest edge pixel (``cv2.BORDER_REPLICATE``), which is the
paper's ``fill_mode="nearest"``. That is cheap and needs no frame: :func:`argus.faces.align.emotion_crop` already
adds a 10 % margin of background on every side, so a 3 px shift (5 %) or a 10-degree rotation only replicates
background and the face itself is never cut off; the pipeline hands the classifier only the 64 x 64 crop, so a
larger crop would need the frame again.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from argus.errors import InputError
from argus.faces.align import EMOTION_SIZE
from argus.faces.types import check_array


@dataclass(frozen=True)
class View:
    """One deterministic augmentation: flip first, then rotation/zoom/shift about the centre, then brightness."""

    name: str
    flip: bool = False
    angle_deg: float = 0.0  # counter-clockwise, as cv2.getRotationMatrix2D
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)  # (dx, dy) in crop pixels
    gain: float = 1.0  # brightness: pixel values multiplied by this, then clipped

    @property
    def geometric(self) -> bool:
        return self.angle_deg != 0.0 or self.scale != 1.0 or self.shift != (0.0, 0.0)


TTA_VIEWS: tuple[View, ...] = (
    View("identity"),
    View("flip", flip=True),
    View("rotate+10", angle_deg=10.0),
    View("rotate-10", angle_deg=-10.0),
    View("zoom1.1", scale=1.1),
    View("shift+3+3", shift=(3.0, 3.0)),
    View("flip_shift-3+3", flip=True, shift=(-3.0, 3.0)),
    View("zoom0.9", scale=0.9),
    View("bright1.2", gain=1.2),
    View("bright0.8", gain=0.8),
)
MAX_VIEWS = len(TTA_VIEWS)
PAPER_VIEWS = 10  # paper 003's count


def check_views(views: object) -> int:
    """``views`` as an int in 1..MAX_VIEWS, else an InputError naming the range."""
    if isinstance(views, bool) or not isinstance(views, int | np.integer) or not 1 <= int(views) <= MAX_VIEWS:
        raise InputError(f"views: expected an integer from 1 to {MAX_VIEWS} (1 = no augmentation), got {views!r}")
    return int(views)


def _matrix(v: View, size: int) -> np.ndarray:
    c = (size - 1) / 2.0
    m = np.asarray(cv2.getRotationMatrix2D((c, c), v.angle_deg, v.scale), np.float64)
    m[:, 2] += np.asarray(v.shift, np.float64)
    return m


def augment(grey: np.ndarray, views: int) -> np.ndarray:
    """(N, 64, 64) uint8 crops -> (N * views, 64, 64) uint8, face-major: rows ``i * views ... i * views + views - 1``
    are face ``i`` under :data:`TTA_VIEWS` ``[0:views]``. View 0 is the crop unchanged (a copy)."""
    check_array("grey_crops", grey, (None, EMOTION_SIZE, EMOTION_SIZE), np.uint8)
    n_views = check_views(views)
    n, size = grey.shape[0], EMOTION_SIZE
    out = np.empty((n, n_views, size, size), np.uint8)
    for j, v in enumerate(TTA_VIEWS[:n_views]):
        src = grey[:, :, ::-1] if v.flip else grey
        if v.geometric:
            m = _matrix(v, size)
            for i in range(n):
                cv2.warpAffine(np.ascontiguousarray(src[i]), m, (size, size), dst=out[i, j],
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        else:
            out[:, j] = src
        if v.gain != 1.0:
            out[:, j] = np.clip(np.rint(out[:, j].astype(np.float32) * np.float32(v.gain)), 0, 255).astype(np.uint8)
    return out.reshape(n * n_views, size, size)
