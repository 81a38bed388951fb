"""Emotion classifier (fer mini-Xception as ONNX) on real faces, through the same ONNX file Triton serves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from argus.errors import InputError
from argus.evaluation import sample_frames
from argus.faces.align import emotion_crop
from argus.faces.emotion import EmotionClassifier, preprocess
from argus.faces.mtcnn import MtcnnDetector
from argus.faces.types import EMOTIONS
from argus.imaging import read_image
from argus.inference.backend import OnnxRuntimeBackend

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "assets"
REFERENCE = REPO / "tools" / "convert_models" / "reference" / "fer_emotion.npz"
# max |ONNX - tf-keras| allowed on the recorded probabilities (observed 5.4e-7 at conversion time)
REFERENCE_ATOL = 1e-5


@pytest.fixture(scope="module")
def classifier(ort_backend: OnnxRuntimeBackend) -> EmotionClassifier:
    return EmotionClassifier(ort_backend)


@pytest.fixture(scope="module")
def detector(ort_backend: OnnxRuntimeBackend) -> MtcnnDetector:
    return MtcnnDetector(ort_backend)


def _face_crop(detector: MtcnnDetector, frame: np.ndarray) -> np.ndarray:
    d = detector.detect([frame])[0]
    assert len(d) >= 1
    return emotion_crop(frame, d.boxes[int(np.argmax(d.scores))])


def test_onnx_matches_tf_keras_on_the_recorded_crops(classifier: EmotionClassifier) -> None:
    ref = np.load(REFERENCE)
    probs = classifier.classify(ref["grey"])
    assert probs.shape == ref["probs"].shape
    assert np.max(np.abs(probs - ref["probs"])) <= REFERENCE_ATOL
    assert np.array_equal(probs.argmax(1), ref["probs"].argmax(1))


def test_the_smiling_still_is_happy(classifier: EmotionClassifier, detector: MtcnnDetector) -> None:
    frame = read_image(str(ASSETS / "pyfeat" / "0-f15-hao-ph.jpg"))
    probs = classifier.classify(_face_crop(detector, frame)[None])[0]
    assert EMOTIONS[int(np.argmax(probs))] == "happy"
    assert probs[EMOTIONS.index("happy")] > 0.9


def test_the_laughing_woman_in_the_late_frames_is_happy(classifier: EmotionClassifier, detector: MtcnnDetector) -> None:
    # WolfgangLanger_Pexels.mp4: crying for the first half, laughing from about frame 250 of 472 on
    frames = sample_frames(ASSETS / "pyfeat" / "WolfgangLanger_Pexels.mp4", 5, start=0.6, stop=1.0)
    crops = np.stack([_face_crop(detector, f) for _, f in frames])
    labels = [EMOTIONS[i] for i in classifier.classify(crops).argmax(1)]
    assert labels == ["happy"] * 5


def test_the_surprised_still_is_surprise(classifier: EmotionClassifier, detector: MtcnnDetector) -> None:
    frame = read_image(str(ASSETS / "pyfeat" / "0-f1-su-ph.jpg"))
    probs = classifier.classify(_face_crop(detector, frame)[None])[0]
    assert EMOTIONS[int(np.argmax(probs))] == "surprise"


def test_probabilities_are_rows_that_sum_to_one(classifier: EmotionClassifier) -> None:
    grey = np.random.default_rng(3).integers(0, 256, (5, 64, 64), dtype=np.uint8)
    probs = classifier.classify(grey)
    assert probs.dtype == np.float32 and probs.shape == (5, len(EMOTIONS))
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert np.all(probs >= 0)


def test_an_empty_batch_returns_no_rows(classifier: EmotionClassifier) -> None:
    assert classifier.classify(np.zeros((0, 64, 64), np.uint8)).shape == (0, len(EMOTIONS))


def test_preprocessing_maps_black_to_minus_one_and_white_to_one() -> None:
    x = preprocess(np.array([[[0, 255]]], np.uint8).repeat(64, 1).repeat(32, 2))
    assert x.shape == (1, 1, 64, 64) and x.dtype == np.float32
    assert x.min() == -1.0 and x.max() == 1.0


def test_colour_crops_are_refused(classifier: EmotionClassifier) -> None:
    with pytest.raises(InputError, match=r"expected shape \(N, 64, 64\)"):
        classifier.classify(np.zeros((1, 64, 64, 3), np.uint8))
