"""Face embedder (dlib ResNet as ONNX) on real faces, through the same ONNX file Triton serves."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from argus.errors import BackendError, InputError
from argus.faces.align import align_face
from argus.faces.embedder import (
    DEFAULT_MATCH_THRESHOLD,
    EMBEDDING_DIM,
    FaceEmbedder,
    preprocess,
)
from argus.faces.mtcnn import MtcnnDetector
from argus.imaging import read_image
from argus.inference.backend import OnnxRuntimeBackend

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "assets"
REFERENCE = REPO / "tools" / "convert_models" / "reference" / "dlib_embedder.npz"
# max |ONNX - dlib| allowed on dlib's own recorded descriptors (observed 2.5e-7 at conversion time)
REFERENCE_ATOL = 1e-5


class CountingBackend:
    """Passes through to a real backend and records the batch size of every call."""

    name = "counting"

    def __init__(self, inner: OnnxRuntimeBackend) -> None:
        self.inner = inner
        self.batches: list[int] = []

    def infer(self, model: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.batches.append(int(next(iter(inputs.values())).shape[0]))
        return self.inner.infer(model, inputs)

    def close(self) -> None:
        self.inner.close()


class RenamedOutputBackend(CountingBackend):
    """Fault injection: a model whose output tensor is not called "embedding" (a config/model mismatch)."""

    def infer(self, model: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"output0": next(iter(self.inner.infer(model, inputs).values()))}


@pytest.fixture(scope="module")
def embedder(ort_backend: OnnxRuntimeBackend) -> FaceEmbedder:
    return FaceEmbedder(ort_backend)


@pytest.fixture(scope="module")
def photo_embeddings(ort_backend: OnnxRuntimeBackend, embedder: FaceEmbedder) -> dict[str, np.ndarray]:
    det = MtcnnDetector(ort_backend)
    names = [
        "obama.jpg",
        "obama2.jpg",
        "obama3.jpg",
        "obama_partial_face.jpg",
        "obama_partial_face2.jpg",
        "biden.jpg",
        "astronaut.png",
    ]
    crops = []
    for n in names:
        frame = read_image(str(ASSETS / "faces" / n))
        d = det.detect([frame])[0]
        assert len(d) >= 1, f"{n}: MTCNN found no face"
        crops.append(align_face(frame, d.landmarks[int(np.argmax(d.scores))]))
    emb = embedder.embed(np.stack(crops))
    return dict(zip(names, emb, strict=True))


def test_onnx_matches_dlibs_own_descriptors_on_the_recorded_chips(ort_backend: OnnxRuntimeBackend) -> None:
    ref = np.load(REFERENCE)
    chips_bgr = np.ascontiguousarray(ref["chips_rgb"][..., ::-1])
    raw = ort_backend.infer("face_embedder", {"input": preprocess(chips_bgr)})["embedding"]
    assert raw.shape == ref["descriptors"].shape
    assert np.max(np.abs(raw - ref["descriptors"])) <= REFERENCE_ATOL


def test_embeddings_are_unit_norm_and_equal_to_normalised_dlib_descriptors(embedder: FaceEmbedder) -> None:
    ref = np.load(REFERENCE)
    emb = embedder.embed(np.ascontiguousarray(ref["chips_rgb"][..., ::-1]))
    want = ref["descriptors"] / np.linalg.norm(ref["descriptors"], axis=1, keepdims=True)
    assert emb.dtype == np.float32 and emb.shape == (len(want), EMBEDDING_DIM)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(emb, want, atol=REFERENCE_ATOL)


def test_every_obama_photo_matches_every_other_and_none_matches_biden_or_the_astronaut(
    photo_embeddings: dict[str, np.ndarray],
) -> None:
    obama = [v for k, v in photo_embeddings.items() if k.startswith("obama")]
    others = [photo_embeddings["biden.jpg"], photo_embeddings["astronaut.png"]]
    assert len(obama) == 5
    for i, a in enumerate(obama):
        for b in obama[i + 1 :]:
            assert float(a @ b) >= DEFAULT_MATCH_THRESHOLD
        for o in others:
            assert float(a @ o) < DEFAULT_MATCH_THRESHOLD
    assert float(others[0] @ others[1]) < DEFAULT_MATCH_THRESHOLD


def test_a_face_embeds_the_same_alone_and_inside_a_batch(embedder: FaceEmbedder) -> None:
    chips = np.ascontiguousarray(np.load(REFERENCE)["chips_rgb"][..., ::-1])
    batch = embedder.embed(chips)
    alone = np.concatenate([embedder.embed(chips[i : i + 1]) for i in range(len(chips))])
    np.testing.assert_allclose(alone, batch, atol=1e-5)


def test_a_frame_of_faces_is_one_backend_call_and_big_batches_are_chunked(ort_backend: OnnxRuntimeBackend) -> None:
    chips = np.ascontiguousarray(np.load(REFERENCE)["chips_rgb"][..., ::-1])
    spy = CountingBackend(ort_backend)
    one = FaceEmbedder(spy).embed(chips)
    assert spy.batches == [len(chips)]
    spy.batches.clear()
    chunked = FaceEmbedder(spy, max_batch=3).embed(chips)
    assert spy.batches == [3, 3, 1]
    np.testing.assert_allclose(chunked, one, atol=1e-5)


def test_an_empty_batch_returns_no_embeddings_without_calling_the_backend(ort_backend: OnnxRuntimeBackend) -> None:
    spy = CountingBackend(ort_backend)
    out = FaceEmbedder(spy).embed(np.zeros((0, 150, 150, 3), np.uint8))
    assert out.shape == (0, EMBEDDING_DIM) and out.dtype == np.float32
    assert spy.batches == []


@pytest.mark.parametrize(
    ("crops", "message"),
    [
        (np.zeros((1, 112, 112, 3), np.uint8), "expected shape (N, 150, 150, 3)"),
        (np.zeros((1, 150, 150, 3), np.float32), "expected dtype uint8"),
    ],
)
def test_wrong_crops_are_refused_with_what_was_expected(
    embedder: FaceEmbedder, crops: np.ndarray, message: str
) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        embedder.embed(crops)


def test_a_model_without_an_embedding_output_is_a_backend_error(ort_backend: OnnxRuntimeBackend) -> None:
    with pytest.raises(BackendError, match="expected output 'embedding'"):
        FaceEmbedder(RenamedOutputBackend(ort_backend)).embed(np.zeros((1, 150, 150, 3), np.uint8))
