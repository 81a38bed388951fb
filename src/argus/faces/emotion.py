"""Facial-expression probabilities from fer's mini-Xception, served as ``triton_models/face_emotion``.

The model was trained on FER2013 (48 x 48 grey faces upscaled to 64), so it sees only the grey face crop from
:func:`argus.faces.align.emotion_crop`. Published accuracy is about 66 % on FER2013's test split: treat the
output as a soft signal (happy and surprise are reliable, disgust and fear rarely win), never as an alert reason
on its own.
"""

from __future__ import annotations

import numpy as np

from argus.faces.align import EMOTION_SIZE
from argus.faces.types import EMOTIONS, check_array
from argus.inference.backend import RowModel, infer_rows

MODEL = "face_emotion"
MAX_BATCH = 128  # max_batch_size in triton_models/face_emotion/config.pbtxt


def preprocess(grey: np.ndarray) -> np.ndarray:
    """N x 64 x 64 uint8 -> N x 1 x 64 x 64 float32 scaled as fer trains: (pixel / 255 - 0.5) * 2."""
    x = (grey.astype(np.float32) * np.float32(1.0 / 255.0) - np.float32(0.5)) * np.float32(2.0)
    return np.ascontiguousarray(x[:, None, :, :])


class EmotionClassifier(RowModel):
    """Grey 64 x 64 face crops -> probabilities over :data:`argus.faces.types.EMOTIONS`."""

    MODEL = MODEL
    MAX_BATCH = MAX_BATCH

    def classify(self, grey_crops: np.ndarray) -> np.ndarray:
        """(N, 64, 64) uint8 -> (N, 7) float32 rows summing to 1; empty in, empty out."""
        check_array("grey_crops", grey_crops, (None, EMOTION_SIZE, EMOTION_SIZE), np.uint8)
        return infer_rows(self._backend, self.model, grey_crops, prepare=preprocess, output="probs",
                          width=len(EMOTIONS), max_batch=self.max_batch)
