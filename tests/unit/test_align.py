"""Face alignment (5-point similarity to the 150-px template) and the emotion crop, on real faces."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from argus.errors import InputError
from argus.faces.align import (
    EMBED_SIZE,
    EMBED_TEMPLATE,
    EMOTION_SIZE,
    align_face,
    align_faces,
    emotion_crop,
    emotion_crops,
    umeyama,
)
from argus.faces.embedder import FaceEmbedder
from argus.faces.mtcnn import MtcnnDetector
from argus.faces.quality import assess, blur_score, face_size
from argus.imaging import read_image
from argus.inference.backend import OnnxRuntimeBackend

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "assets"
REFERENCE = REPO / "tools" / "convert_models" / "reference" / "dlib_embedder.npz"
# the images dlib chipped for the reference file, in order (see tools/convert_models/dlib_embedder.py)
DLIB_CHIP_SOURCES = [
    "faces/obama.jpg",
    "faces/obama2.jpg",
    "faces/biden.jpg",
    "faces/astronaut.png",
    "pyfeat/single_face.jpg",
    "pyfeat/0-f15-hao-ph.jpg",
]


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def test_umeyama_recovers_a_known_similarity_exactly() -> None:
    a, s, t = np.deg2rad(23.0), 1.7, np.array([12.5, -4.0])
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    src = np.random.default_rng(0).uniform(0, 100, (5, 2))
    dst = s * src @ rot.T + t
    m = umeyama(src, dst)
    np.testing.assert_allclose(m[:, :2], s * rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], t, atol=1e-9)


def test_umeyama_never_mirrors_the_face() -> None:
    mirrored = EMBED_TEMPLATE * np.array([-1.0, 1.0])  # left and right swapped in image space
    m = umeyama(mirrored, EMBED_TEMPLATE)
    assert np.linalg.det(m[:, :2]) > 0


def test_umeyama_refuses_coincident_points() -> None:
    with pytest.raises(InputError, match="distinct source points"):
        umeyama(np.ones((5, 2)), EMBED_TEMPLATE)


def test_landmarks_already_on_the_template_give_back_the_frame() -> None:
    frame = np.random.default_rng(1).integers(0, 256, (EMBED_SIZE, EMBED_SIZE, 3), dtype=np.uint8)
    crop = align_face(frame, EMBED_TEMPLATE.astype(np.float32))
    assert np.array_equal(crop, frame)


def test_real_landmarks_land_near_the_template(ort_backend: OnnxRuntimeBackend) -> None:
    frame = read_image(str(ASSETS / "faces" / "astronaut.png"))
    d = MtcnnDetector(ort_backend).detect([frame])[0]
    lm = d.landmarks[int(np.argmax(d.scores))].astype(np.float64)
    crop = align_face(frame, lm)
    assert crop.shape == (EMBED_SIZE, EMBED_SIZE, 3) and crop.dtype == np.uint8
    placed = _apply(umeyama(lm, EMBED_TEMPLATE), lm)
    # a similarity cannot fit 5 points exactly; on a frontal face the residual is a few pixels of 150
    assert np.max(np.linalg.norm(placed - EMBED_TEMPLATE, axis=1)) < 6.0


def test_our_alignment_embeds_like_dlibs_own_face_chips(ort_backend: OnnxRuntimeBackend) -> None:
    chips_bgr = np.ascontiguousarray(np.load(REFERENCE)["chips_rgb"][: len(DLIB_CHIP_SOURCES), ..., ::-1])
    det = MtcnnDetector(ort_backend)
    ours = []
    for rel in DLIB_CHIP_SOURCES:
        frame = read_image(str(ASSETS / rel))
        d = det.detect([frame])[0]
        ours.append(align_face(frame, d.landmarks[int(np.argmax(d.scores))]))
    emb = FaceEmbedder(ort_backend)
    cos = np.sum(emb.embed(np.stack(ours)) * emb.embed(chips_bgr), axis=1)
    assert np.all(cos > 0.98), cos  # measured 0.992-0.999; same-person threshold is 0.90


def test_align_faces_handles_no_faces_and_many_faces() -> None:
    frame = np.zeros((200, 300, 3), np.uint8)
    assert align_faces(frame, np.zeros((0, 5, 2), np.float32)).shape == (0, EMBED_SIZE, EMBED_SIZE, 3)
    two = np.stack([EMBED_TEMPLATE, EMBED_TEMPLATE + 40]).astype(np.float32)
    assert align_faces(frame, two).shape == (2, EMBED_SIZE, EMBED_SIZE, 3)


def test_emotion_crop_is_a_square_grey_64px_face() -> None:
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[20:80, 50:90] = 255  # a tall white "face"
    crop = emotion_crop(frame, np.array([50, 20, 90, 80], np.float32), margin=0.0)
    assert crop.shape == (EMOTION_SIZE, EMOTION_SIZE) and crop.dtype == np.uint8
    # the square is as tall as the box, so the white band fills the full height and 2/3 of the width, centred
    assert crop[:, 32].min() == 255
    assert crop[32, :5].max() < 128 and crop[32, -5:].max() < 128


def test_emotion_crop_at_the_frame_edge_repeats_the_edge_instead_of_black() -> None:
    frame = np.full((100, 100, 3), 200, np.uint8)
    crop = emotion_crop(frame, np.array([-30, -30, 40, 40], np.float32))
    assert crop.shape == (EMOTION_SIZE, EMOTION_SIZE)
    assert crop.min() == 200


def test_emotion_crops_of_no_boxes_is_empty() -> None:
    assert emotion_crops(np.zeros((10, 10, 3), np.uint8), np.zeros((0, 4), np.float32)).shape == (0, 64, 64)


@pytest.mark.parametrize(
    ("frame", "box", "message"),
    [
        (np.zeros((10, 10, 3), np.uint8), np.array([5, 5, 5, 9], np.float32), "x2 > x1"),
        (np.zeros((10, 10), np.uint8), np.array([0, 0, 5, 5], np.float32), r"expected shape \(H, W, 3\)"),
        (np.zeros((10, 10, 3), np.float32), np.array([0, 0, 5, 5], np.float32), "uint8"),
    ],
)
def test_bad_emotion_crop_inputs_are_refused(frame: np.ndarray, box: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message):
        emotion_crop(frame, box)


def test_blur_score_is_higher_for_the_sharp_aligned_face_than_for_a_blurred_copy(
    ort_backend: OnnxRuntimeBackend,
) -> None:
    frame = read_image(str(ASSETS / "faces" / "obama.jpg"))
    d = MtcnnDetector(ort_backend).detect([frame])[0]
    k = int(np.argmax(d.scores))
    crop = align_face(frame, d.landmarks[k])
    blurred = cv2.GaussianBlur(crop, (0, 0), 2.0)
    assert blur_score(crop) > 3 * blur_score(blurred)
    q = assess(d.boxes[k], crop)
    assert q.size == pytest.approx(float(min(d.boxes[k][2] - d.boxes[k][0], d.boxes[k][3] - d.boxes[k][1])))
    assert q.blur == pytest.approx(blur_score(crop))


def test_face_size_of_a_degenerate_box_is_zero_and_bad_crops_are_refused() -> None:
    assert face_size(np.array([10, 10, 5, 30], np.float32)) == 0.0
    assert face_size(np.array([0, 0, 40, 30], np.float32)) == 30.0
    with pytest.raises(InputError, match="uint8"):
        blur_score(np.zeros((10, 10), np.float32))
