"""CenterFace on real photos and on small faces in a generated 720p scene, through the ONNX file Triton serves."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import pytest
from backends import CountingBackend

from argus.errors import BackendError, ConfigError
from argus.faces.boxes import iou
from argus.faces.centerface import INPUT_SIZE, MODEL, CenterFaceDetector, letterbox
from argus.faces.mtcnn import MtcnnDetector
from argus.faces.pipeline import FacePipeline
from argus.faces.types import Detections
from argus.inference.backend import OnnxRuntimeBackend
from argus.scenes import Lighting, Person, Scene, build_face_bank

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "assets"
MODELS = REPO / "triton_models"
CHECKSUMS = REPO / "tools" / "convert_models" / "checksums_centerface.json"


@pytest.fixture(scope="module")
def backend() -> Iterator[OnnxRuntimeBackend]:
    be = OnnxRuntimeBackend(model_repository=MODELS, intra_op_threads=1)
    yield be
    be.close()


@pytest.fixture(scope="module")
def detector(backend: OnnxRuntimeBackend) -> CenterFaceDetector:
    return CenterFaceDetector(backend)


def _image(rel: str) -> np.ndarray:
    img = cv2.imread(str(ASSETS / rel), cv2.IMREAD_COLOR)
    assert img is not None, f"cannot read {rel}"
    return img


def _eye_distance(d: Detections, k: int) -> float:
    return float(np.linalg.norm(d.landmarks[k, 1] - d.landmarks[k, 0]))


# ----------------------------------------------------------------------------------------------------------------
# the committed model


def test_the_committed_onnx_is_the_converted_one_with_its_weights_out_of_the_graph_inputs() -> None:
    path = MODELS / MODEL / "1" / "model.onnx"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == json.loads(CHECKSUMS.read_text())[MODEL]["sha256"]
    g = onnx.load(str(path), load_external_data=False).graph
    assert [i.name for i in g.input] == ["input"]  # weights as graph inputs would block ONNX Runtime's fusions
    assert sorted(o.name for o in g.output) == ["heatmap", "landmarks", "offset", "scale"]


# ----------------------------------------------------------------------------------------------------------------
# real photos, MTCNN as the independent reference


@pytest.mark.parametrize("rel", ["faces/astronaut.png", "faces/obama.jpg", "faces/biden.jpg"])
def test_portraits_give_one_face_with_landmarks_where_mtcnn_puts_them(
    detector: CenterFaceDetector, backend: OnnxRuntimeBackend, rel: str
) -> None:
    img = _image(rel)
    (got,) = detector.detect([img])
    (want,) = MtcnnDetector(backend).detect([img])
    assert len(got) == 1 and len(want) == 1
    assert got.scores[0] > 0.8
    assert float(iou(got.boxes, want.boxes)[0, 0]) > 0.7
    # 5 points in our order (image-left eye first), each within a fifth of the eye distance of MTCNN's
    err = np.linalg.norm(got.landmarks[0] - want.landmarks[0], axis=1) / _eye_distance(want, 0)
    assert err.max() < 0.2, err
    assert got.landmarks[0, 0, 0] < got.landmarks[0, 2, 0] < got.landmarks[0, 1, 0]


def test_group_photo_yields_all_five_people_best_first(detector: CenterFaceDetector) -> None:
    (d,) = detector.detect([_image("pyfeat/multi_face.jpg")])
    assert len(d) == 5
    assert np.all(np.diff(d.scores) <= 0)
    ov = iou(d.boxes, d.boxes) - np.eye(5)
    assert ov.max() < 0.1, "five distinct faces, not one found twice"


def test_a_flat_and_a_noise_frame_yield_nothing(detector: CenterFaceDetector) -> None:
    rng = np.random.default_rng(0)
    frames = [np.full((720, 1280, 3), 90, np.uint8), rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)]
    assert [len(d) for d in detector.detect(frames)] == [0, 0]


def test_boxes_come_back_in_frame_pixels_whatever_the_letterbox(detector: CenterFaceDetector) -> None:
    img = _image("faces/astronaut.png")  # 512 x 512: bars on the right of the 640 x 384 tile
    wide = np.zeros((512, 1400, 3), np.uint8)  # same face at the same scale (1400/640 vs 512/384 -> width rules)
    wide[:, 300:812] = img
    (a,) = detector.detect([img])
    (b,) = detector.detect([cv2.resize(img, (1024, 1024), interpolation=cv2.INTER_CUBIC)])
    assert len(a) == len(b) == 1
    np.testing.assert_allclose(b.boxes[0], a.boxes[0] * 2, atol=10)
    np.testing.assert_allclose(b.landmarks[0], a.landmarks[0] * 2, atol=10)
    (c,) = detector.detect([wide])
    assert len(c) == 1
    assert float(iou(c.boxes - np.array([300, 0, 300, 0], np.float32), a.boxes)[0, 0]) > 0.7
    tile, s = letterbox(wide)
    assert tile.shape == (INPUT_SIZE[1], INPUT_SIZE[0], 3) and s == pytest.approx(640 / 1400)
    assert not tile[round(512 * s) + 1 :].any(), "padding below the image is black"


# ----------------------------------------------------------------------------------------------------------------
# small faces in a generated 720p scene


@pytest.fixture(scope="module")
def small_face_scene(backend: OnnxRuntimeBackend, tmp_path_factory: pytest.TempPathFactory) -> Scene:
    """One person walking across a 1280 x 720 street with a 27-30 px face (a two-photo bank, so it builds fast)."""
    assets = tmp_path_factory.mktemp("assets")
    (assets / "faces").mkdir()
    (assets / "pyfeat").mkdir()
    shutil.copy(ASSETS / "faces/astronaut.png", assets / "faces/astronaut.png")
    shutil.copy(ASSETS / "pyfeat/45-m7-di-ph.jpg", assets / "pyfeat/45-m7-di-ph.jpg")
    mtcnn = MtcnnDetector(backend)
    bank = build_face_bank(assets=assets, detect=lambda img: mtcnn.detect([img])[0])
    person = Person(identity="pyfeat_m7", t0=0.0, t1=2.0, x0=0.2, x1=0.8, size0=27, size1=30)
    return Scene(name="small", seed=3, bank=bank, width=1280, height=720, fps=5.0, duration=2.0,
                 people=(person,), lighting=Lighting(noise=0.0))


def test_faces_under_30_px_in_a_720p_scene_are_found_where_the_truth_says(
    detector: CenterFaceDetector, small_face_scene: Scene
) -> None:
    frames = [small_face_scene.render(i) for i in (2, 5, 8)]
    dets = detector.detect([img for img, _ in frames])  # three cameras, one batch
    for (img, truth), d in zip(frames, dets, strict=True):
        assert img.shape == (720, 1280, 3)
        [face] = truth.faces
        assert face.size < 31 and face.visible > 0.9
        assert len(d) >= 1
        assert float(iou(np.array([face.box], np.float32), d.boxes).max()) >= 0.5


# ----------------------------------------------------------------------------------------------------------------
# batching, errors, wiring


def test_a_batch_of_frames_is_one_call_and_gives_what_single_frames_give(backend: OnnxRuntimeBackend) -> None:
    counting = CountingBackend(backend)
    det = CenterFaceDetector(counting)
    frames = [_image("faces/astronaut.png"), _image("pyfeat/multi_face.jpg"), _image("faces/obama.jpg")]
    together = det.detect(frames)
    assert counting.batches == [3]
    for f, d in zip(frames, together, strict=True):
        (alone,) = det.detect([f])
        np.testing.assert_allclose(d.boxes, alone.boxes, atol=1e-3)
        np.testing.assert_allclose(d.landmarks, alone.landmarks, atol=1e-3)


class _WrongShape:
    name = "wrong"

    def infer(self, model: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = inputs["input"].shape[0]
        return {k: np.zeros((n, c, 8, 8), np.float32)
                for k, c in (("heatmap", 1), ("scale", 2), ("offset", 2), ("landmarks", 10))}

    def close(self) -> None:
        pass


def test_a_model_with_other_output_shapes_is_a_backend_error_naming_it() -> None:
    with pytest.raises(BackendError, match=r"model 'centerface' output 'heatmap': expected shape \(1, 1, 96, 160\)"):
        CenterFaceDetector(_WrongShape()).detect([np.zeros((720, 1280, 3), np.uint8)])


@pytest.mark.parametrize("kwargs", [{"score_threshold": 1.0}, {"iou_threshold": 0.0}, {"min_face_size": -1.0},
                                    {"max_faces": 0}, {"input_size": (640, 380)}, {"input_size": (0, 384)}])
def test_bad_settings_are_config_errors(backend: OnnxRuntimeBackend, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        CenterFaceDetector(backend, **kwargs)


def test_the_pipeline_builds_it_from_the_setting_and_lists_its_model(backend: OnnxRuntimeBackend) -> None:
    assert FacePipeline.models_for("centerface")[0] == MODEL
    pipe = FacePipeline(backend=backend, detector="centerface", min_face_size=40)
    d = pipe.detect(_image("faces/astronaut.png"))
    assert len(d) == 1 and pipe.detector_name == "centerface"
