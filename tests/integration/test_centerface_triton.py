"""CenterFace served by a real Triton (its CPU config: python backend, 640 x 384, dynamic batching) finds the same
faces as in-process ONNX Runtime, and frames of several cameras reach the server as one request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from argus.faces.centerface import INPUT_SIZE, MAX_BATCH, MODEL, CenterFaceDetector
from argus.inference.backend import OnnxRuntimeBackend
from argus.inference.triton import TritonBackend
from argus_dev.devservers import Endpoint

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def triton(triton_server: Endpoint) -> Iterator[TritonBackend]:
    backend = TritonBackend(url=triton_server.address, models=[MODEL])
    yield backend
    backend.close()


def test_the_served_config_is_the_fixed_size_the_detector_letterboxes_to(triton: TritonBackend) -> None:
    spec = triton.spec(MODEL)
    [inp] = spec.inputs
    assert inp.name == "input"
    assert tuple(inp.shape[1:]) == (3, INPUT_SIZE[1], INPUT_SIZE[0])
    assert spec.max_batch_size >= MAX_BATCH


def test_triton_and_onnxruntime_find_the_same_faces(triton: TritonBackend) -> None:
    frames: list[np.ndarray] = []
    for rel in ("faces/astronaut.png", "pyfeat/multi_face.jpg"):
        img = cv2.imread(str(REPO / "assets" / rel))
        assert img is not None, rel
        frames.append(img)
    ort = OnnxRuntimeBackend(model_repository=REPO / "triton_models", intra_op_threads=1)
    try:
        want = CenterFaceDetector(ort).detect(frames)
    finally:
        ort.close()
    got = CenterFaceDetector(triton).detect(frames)
    assert [len(d) for d in got] == [len(d) for d in want] == [1, 5]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g.boxes, w.boxes, atol=0.05)
        np.testing.assert_allclose(g.landmarks, w.landmarks, atol=0.05)
        np.testing.assert_allclose(g.scores, w.scores, atol=1e-4)
