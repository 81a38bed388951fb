"""BlazeFace full-range on real photos and clips, through the same ONNX file Triton serves (in-process ONNX Runtime)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from backends import CountingBackend

from argus.errors import BackendError, ConfigError, InputError
from argus.faces import blazeface as bz
from argus.faces.blazeface import BlazeFaceDetector
from argus.faces.types import Detections
from argus.inference.backend import OnnxRuntimeBackend

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "assets"
MODELS = REPO / "triton_models"
CHECKSUMS = REPO / "tools" / "convert_models" / "checksums_blazeface.json"
ASTRONAUT_BOX = np.array([181, 62, 268, 172], np.float32)  # MTCNN / facenet-pytorch's result, see shared notes


@pytest.fixture(scope="module")
def backend() -> Iterator[OnnxRuntimeBackend]:
    be = OnnxRuntimeBackend(model_repository=MODELS, intra_op_threads=1)
    yield be
    be.close()


@pytest.fixture(scope="module")
def detector(backend: OnnxRuntimeBackend) -> BlazeFaceDetector:
    return BlazeFaceDetector(backend)


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


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


def _assert_plausible_landmarks(det: Detections, k: int = 0) -> None:
    (lex, ley), (rex, rey), (nx, ny), (lmx, lmy), (rmx, rmy) = det.landmarks[k]
    x1, y1, x2, y2 = det.boxes[k]
    assert lex < nx < rex, "nose should lie between the eyes horizontally (and image-left eye first)"
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


def test_astronaut_has_exactly_one_face_where_mtcnn_found_it(detector: BlazeFaceDetector) -> None:
    (det,) = detector.detect([_image("faces/astronaut.png")])
    assert len(det) == 1
    assert det.scores[0] > 0.9
    assert _box_iou(det.boxes[0], ASTRONAUT_BOX) > 0.6
    _assert_plausible_landmarks(det)
    # eyes agree with MTCNN's (205.6, 100.6) / (248.2, 103.3) within a tenth of the eye distance
    np.testing.assert_allclose(det.landmarks[0, :2], [[205.6, 100.6], [248.2, 103.3]], atol=4.3)


def test_group_photo_yields_all_five_people(detector: BlazeFaceDetector) -> None:
    (det,) = detector.detect([_image("pyfeat/multi_face.jpg")])
    assert len(det) == 5
    assert np.all(np.diff(det.scores) <= 0), "faces are returned best first"
    for k in range(5):
        _assert_plausible_landmarks(det, k)
    centres = (det.boxes[:, :2] + det.boxes[:, 2:]) / 2
    dist = np.linalg.norm(centres[:, None] - centres[None], axis=2) + np.eye(5) * 1e9
    assert dist.min() > 50, "five distinct faces, not one face found twice"


def test_no_face_clip_and_landscape_yield_nothing(detector: BlazeFaceDetector) -> None:
    frames = _frames("pyfeat/no_face.mp4", list(range(0, 95, 10)))
    frames.append(_image("pyfeat/free-mountain-vector-01.jpg"))
    dets = detector.detect(frames)
    assert [len(d) for d in dets] == [0] * len(frames)


def test_portraits_of_different_people_yield_one_face_each(detector: BlazeFaceDetector) -> None:
    rels = ["faces/obama.jpg", "faces/biden.jpg", "pyfeat/single_face.jpg", "pyfeat/0-f1-su-ph.jpg"]
    dets = detector.detect([_image(r) for r in rels])
    assert [len(d) for d in dets] == [1] * len(rels)
    for d in dets:
        _assert_plausible_landmarks(d)


def test_boxes_scale_with_the_frame(detector: BlazeFaceDetector) -> None:
    small = _image("faces/astronaut.png")
    big = cv2.resize(small, (1536, 1536), interpolation=cv2.INTER_CUBIC)
    (d_small,), (d_big,) = detector.detect([small]), detector.detect([big])
    assert len(d_big) == 1
    np.testing.assert_allclose(d_big.boxes[0], d_small.boxes[0] * 3, atol=9)
    np.testing.assert_allclose(d_big.landmarks[0], d_small.landmarks[0] * 3, atol=9)


def test_letterbox_offsets_map_back_to_frame_pixels(detector: BlazeFaceDetector) -> None:
    # crops of the astronaut keep the 512-px long side, so the face has the same scale in the 192 tile and is only
    # moved by the letterbox bars (by 36 tile px, a multiple of the 4-px anchor stride): the face must come back at
    # the same frame position, shifted by the crop offset
    full = _image("faces/astronaut.png")
    (d_full,) = detector.detect([full])
    (d_top,) = detector.detect([full[:320]])  # wide: bars above and below
    (d_side,) = detector.detect([np.ascontiguousarray(full[:, 100:420])])  # tall: bars left and right
    assert len(d_top) == len(d_side) == 1
    np.testing.assert_allclose(d_top.boxes[0], d_full.boxes[0], atol=3)
    np.testing.assert_allclose(d_side.boxes[0], d_full.boxes[0] - [100, 0, 100, 0], atol=3)
    np.testing.assert_allclose(d_side.landmarks[0], d_full.landmarks[0] - [100, 0], atol=3)


# ----------------------------------------------------------------------------------------------------------------
# batching


def test_batched_frames_give_the_same_detections_as_one_at_a_time(detector: BlazeFaceDetector) -> None:
    frames = [
        _image("faces/astronaut.png"),
        *_frames("pyfeat/WolfgangLanger_Pexels.mp4", [0, 200]),
        _image("pyfeat/multi_face.jpg"),
        _image("pyfeat/free-mountain-vector-01.jpg"),
    ]
    together = detector.detect(frames)
    alone = [detector.detect([f])[0] for f in frames]
    assert [len(d) for d in together] == [1, 1, 1, 5, 0]
    for a, b in zip(together, alone, strict=True):
        _same_detections(a, b, atol=0.01)


def test_one_backend_call_per_chunk_of_max_batch_frames(backend: OnnxRuntimeBackend) -> None:
    counting = CountingBackend(backend)
    det = BlazeFaceDetector(counting)
    frame = cv2.resize(_image("faces/astronaut.png"), (320, 320))
    dets = det.detect([frame] * (bz.MAX_BATCH + 3))
    assert counting.batches == [bz.MAX_BATCH, 3]
    assert all(len(d) == 1 for d in dets)


def test_empty_list_gives_empty_result(detector: BlazeFaceDetector) -> None:
    assert detector.detect([]) == []


# ----------------------------------------------------------------------------------------------------------------
# input formats and errors


def test_grey_and_single_channel_frames_find_the_astronaut(detector: BlazeFaceDetector) -> None:
    grey = cv2.cvtColor(_image("faces/astronaut.png"), cv2.COLOR_BGR2GRAY)
    d2, d3 = detector.detect([grey, grey[:, :, None]])
    _same_detections(d2, d3)
    assert len(d2) == 1
    assert _box_iou(d2.boxes[0], ASTRONAUT_BOX) > 0.6


def test_bgra_frame_is_read_as_its_colour_channels(detector: BlazeFaceDetector) -> None:
    bgr = _image("faces/astronaut.png")
    bgra = np.dstack([bgr, np.full(bgr.shape[:2], 77, np.uint8)])
    d_bgra, d_bgr = detector.detect([bgra, bgr])
    _same_detections(d_bgra, d_bgr)
    (alpha_photo,) = detector.detect([_image("pyfeat/Image_with_alpha.png", cv2.IMREAD_UNCHANGED)])
    assert len(alpha_photo) == 1


@pytest.mark.parametrize("shape", [(0, 10, 3), (10, 0, 3), (0, 0)])
def test_zero_size_frame_is_rejected_naming_the_frame(detector: BlazeFaceDetector, shape: tuple[int, ...]) -> None:
    ok = np.zeros((20, 20, 3), np.uint8)
    with pytest.raises(InputError, match=r"frame 1: expected a non-empty image, got shape"):
        detector.detect([ok, np.zeros(shape, np.uint8)])


def test_wrong_dtype_or_channels_are_rejected(detector: BlazeFaceDetector) -> None:
    with pytest.raises(InputError, match="frame 0: expected dtype uint8, got float32"):
        detector.detect([np.zeros((20, 20, 3), np.float32)])
    with pytest.raises(InputError, match=r"frame 0: expected shape .* got \(20, 20, 2\)"):
        detector.detect([np.zeros((20, 20, 2), np.uint8)])


def test_tiny_frame_gives_no_face(detector: BlazeFaceDetector) -> None:
    (det,) = detector.detect([np.full((3, 5, 3), 128, np.uint8)])
    assert len(det) == 0


def _unchecked(value: object) -> Any:
    """A deliberately ill-typed argument (what a config file could hand over)."""
    return value


def test_invalid_configuration_is_refused(backend: OnnxRuntimeBackend) -> None:
    with pytest.raises(ConfigError, match="score_threshold"):
        BlazeFaceDetector(backend, score_threshold=1.5)
    with pytest.raises(ConfigError, match="nms: expected 'weighted' or 'plain'"):
        BlazeFaceDetector(backend, nms=_unchecked("soft"))


def test_wrong_model_output_shape_is_a_backend_error(backend: OnnxRuntimeBackend) -> None:
    class Truncating(CountingBackend):
        def infer(self, model: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            out = self.inner.infer(model, inputs)
            out["regressors"] = out["regressors"][:, :100]
            return out

    with pytest.raises(BackendError, match=r"output 'regressors': expected shape \(1, 2304, 16\)"):
        BlazeFaceDetector(Truncating(backend)).detect([_image("faces/astronaut.png")])


# ----------------------------------------------------------------------------------------------------------------
# post-processing pieces


def test_anchors_are_mediapipe_full_range_grid() -> None:
    a = bz.ssd_anchors()
    assert a.shape == (2304, 2)
    np.testing.assert_allclose(a[0], [0.5 / 48, 0.5 / 48])
    np.testing.assert_allclose(a[1], [1.5 / 48, 0.5 / 48])  # row-major: x varies fastest
    np.testing.assert_allclose(a[48], [0.5 / 48, 1.5 / 48])


def test_weighted_and_plain_nms_agree_on_the_face_count(backend: OnnxRuntimeBackend) -> None:
    img = _image("pyfeat/multi_face.jpg")
    (w,) = BlazeFaceDetector(backend, nms="weighted").detect([img])
    (p,) = BlazeFaceDetector(backend, nms="plain").detect([img])
    assert len(w) == len(p) == 5
    np.testing.assert_allclose(w.scores, p.scores, atol=1e-6)  # kept score is the best anchor's either way
    assert np.max(np.abs(w.boxes - p.boxes)) < 15


def test_mouth_corners_are_estimated_along_the_eye_line() -> None:
    kps = np.zeros((1, 6, 2))
    kps[0, 0] = [10, 10]  # subject's right eye = image left
    kps[0, 1] = [30, 10]
    kps[0, 2] = [20, 20]
    kps[0, 3] = [20, 30]  # mouth centre
    pts = bz.five_points(kps, mouth_half_width=0.5, mouth_offset=0.1)
    np.testing.assert_allclose(pts[0, :3], kps[0, :3])
    np.testing.assert_allclose(pts[0, 3], [10, 32])  # 0.5 * 20 px left, 0.1 * 20 px towards the chin
    np.testing.assert_allclose(pts[0, 4], [30, 32])


# ----------------------------------------------------------------------------------------------------------------
# the converted model


def _astronaut_tile() -> np.ndarray:
    img = cv2.resize(_image("faces/astronaut.png"), (192, 192), interpolation=cv2.INTER_AREA)
    rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32)
    return (rgb / 127.5 - 1.0).astype(np.float32)[None]


def test_onnx_model_equals_the_tflite_reference_recorded_at_conversion(backend: OnnxRuntimeBackend) -> None:
    record = json.loads(CHECKSUMS.read_text())
    gold = record["outputs"]["triton_models/blazeface/1/model.onnx"]["reference_golden"]
    tol = record["tolerance_abs"]
    out = backend.infer("blazeface", {"input": _astronaut_tile()})
    anchors = gold["anchors"]
    np.testing.assert_allclose(out["classificators"][0, anchors, 0], gold["classificators"], atol=tol["classificators"])
    np.testing.assert_allclose(out["regressors"][0, anchors], gold["regressors"], atol=tol["regressors"])
    assert int(np.argmax(out["classificators"][0, :, 0])) == anchors[0]


def test_onnx_model_equals_the_tflite_interpreter_when_installed(backend: OnnxRuntimeBackend) -> None:
    interp_mod = pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert is a converter-only dep")
    src = REPO / ".cache" / "npm" / "package" / "face_detection_full_range.tflite"
    if not src.is_file():
        pytest.skip(f"{src} not unpacked (run tools/convert_models/blazeface.py)")
    interp = interp_mod.Interpreter(model_path=str(src))
    interp.allocate_tensors()
    x = _astronaut_tile()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    ref = {d["name"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}
    out = backend.infer("blazeface", {"input": x})
    assert np.max(np.abs(out["regressors"] - ref["reshaped_regressor_face_4"])) < 1e-3
    assert np.max(np.abs(out["classificators"] - ref["reshaped_classifier_face_4"])) < 1e-4


def test_model_file_matches_the_recorded_checksum() -> None:
    record = json.loads(CHECKSUMS.read_text())
    for rel, info in record["outputs"].items():
        assert hashlib.sha256((REPO / rel).read_bytes()).hexdigest() == info["sha256"], rel
    notice = (MODELS / "blazeface" / "NOTICE").read_text()
    assert record["source"]["files"]["face_detection_full_range.tflite"] in notice
    assert "Apache-2.0" in notice


def test_triton_configs_agree_with_the_model_and_the_detector() -> None:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(MODELS / "blazeface" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape[0] == "N", "batch dimension must be dynamic"
    outputs = {o.name for o in sess.get_outputs()}
    gpu = (MODELS / "blazeface" / "config.pbtxt").read_text()
    cpu = (MODELS / "blazeface" / "configs" / "cpu.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in gpu and "KIND_GPU" in gpu
    assert 'backend: "python"' in cpu and "KIND_CPU" in cpu and 'string_value: "model.onnx"' in cpu
    for text in (gpu, cpu):
        assert re.search(r'^name: "blazeface"$', text, re.M)
        assert re.search(rf"^max_batch_size: {bz.MAX_BATCH}$", text, re.M)
        assert "dynamic_batching" in text
        names = set(re.findall(r'name: "([^"]+)"', text)) - {"blazeface"}
        assert names == outputs | {"input"}
