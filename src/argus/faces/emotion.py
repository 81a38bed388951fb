"""Facial-expression probabilities from fer's mini-Xception, served as ``triton_models/face_emotion``.

The model was trained on FER2013 (48 x 48 grey faces upscaled to 64), so it sees only the grey face crop from
:func:`argus.faces.align.emotion_crop`. Published accuracy is about 66 % on FER2013's test split: treat the
output as a soft signal (happy and surprise are reliable, disgust and fear rarely win), never as an alert reason
on its own.
"""

from __future__ import annotations

import numpy as np

from argus.errors import BackendError
from argus.faces.align import EMOTION_SIZE
from argus.faces.types import EMOTIONS, check_array
from argus.inference.backend import InferenceBackend

MODEL = "face_emotion"
MAX_BATCH = 128  # max_batch_size in triton_models/face_emotion/config.pbtxt


def preprocess(grey: np.ndarray) -> np.ndarray:
    """N x 64 x 64 uint8 -> N x 1 x 64 x 64 float32 scaled as fer trains: (pixel / 255 - 0.5) * 2."""
    x = (grey.astype(np.float32) * np.float32(1.0 / 255.0) - np.float32(0.5)) * np.float32(2.0)
    return np.ascontiguousarray(x[:, None, :, :])


class EmotionClassifier:
    """Grey 64 x 64 face crops -> probabilities over :data:`argus.faces.types.EMOTIONS`."""

    def __init__(self, backend: InferenceBackend, *, model: str = MODEL, max_batch: int = MAX_BATCH) -> None:
        self._backend = backend
        self.model = model
        self.max_batch = int(max_batch)

    def classify(self, grey_crops: np.ndarray) -> np.ndarray:
        """(N, 64, 64) uint8 -> (N, 7) float32 rows summing to 1; empty in, empty out."""
        check_array("grey_crops", grey_crops, (None, EMOTION_SIZE, EMOTION_SIZE), np.uint8)
        n = grey_crops.shape[0]
        if n == 0:
            return np.zeros((0, len(EMOTIONS)), np.float32)
        parts = []
        for start in range(0, n, self.max_batch):
            chunk = grey_crops[start : start + self.max_batch]
            res = self._backend.infer(self.model, {"input": preprocess(chunk)})
            out = res.get("probs")
            if out is None:
                raise BackendError(f"model {self.model!r}: expected output 'probs', got {sorted(res)}")
            if out.shape != (chunk.shape[0], len(EMOTIONS)):
                raise BackendError(
                    f"model {self.model!r}: expected probs shape {(chunk.shape[0], len(EMOTIONS))}, got {out.shape}"
                )
            parts.append(np.asarray(out, np.float32))
        return np.concatenate(parts)
