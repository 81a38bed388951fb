"""A version written by ``argus train emotion`` is served by Triton too, and answers as ONNX Runtime does.

The session's Triton (``triton_server``, explicit model control over ``triton_models/``) is not pointed at a
different repository: the trained model directory (configs/cpu.pbtxt, 1/ and the new 2/) is loaded over
Triton's model-repository API with file overrides under a name of its own, so the shared ``face_emotion`` other
tests use is never touched. Triton then applies the config's version policy (``latest: 1``) to the files it was
given, exactly as it would to ``triton_models/face_emotion/``, and must serve version 2.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from argus.faces.align import emotion_crop
from argus.faces.emotion import MODEL, EmotionClassifier
from argus.faces.mtcnn import MtcnnDetector
from argus.imaging import read_image
from argus.inference.backend import OnnxRuntimeBackend
from argus.inference.triton import TritonBackend
from argus.train_emotion import TrainConfig, train_emotion
from argus_dev.devservers import Endpoint

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
STILLS = {"happy": "pyfeat/0-f15-hao-ph.jpg", "surprise": "pyfeat/0-f1-su-ph.jpg", "angry": "pyfeat/15-f13-anc-ph.jpg"}
NAME = "face_emotion_trained_it"  # loaded beside the shared face_emotion, unloaded at the end


def _dataset(root: Path) -> Path:
    """12 crops per class of three real faces: box jitter, flip and brightness."""
    det = MtcnnDetector(OnnxRuntimeBackend(model_repository=REPO / "triton_models", intra_op_threads=1))
    rng = np.random.default_rng(0)
    for cls, rel in STILLS.items():
        photo = read_image(str(REPO / "assets" / rel))
        d = det.detect([photo])[0]
        box = d.boxes[int(np.argmax(d.scores))]
        side = float(box[2] - box[0])
        (root / cls).mkdir(parents=True)
        for i in range(12):
            shift = np.tile(rng.uniform(-0.08, 0.08, 2) * side, 2)
            crop = emotion_crop(photo, box + shift)
            crop = crop[:, ::-1] if i % 2 else crop
            crop = np.clip(crop.astype(np.float32) * rng.uniform(0.8, 1.2), 0, 255).astype(np.uint8)
            assert cv2.imwrite(str(root / cls / f"{i:02d}.png"), crop)
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    tmp = tmp_path_factory.mktemp("train_triton")
    repo = tmp / "models"
    shutil.copytree(REPO / "triton_models" / MODEL, repo / MODEL, ignore=shutil.ignore_patterns("__pycache__"))
    return repo, train_emotion(_dataset(tmp / "data"), repo, config=TrainConfig(epochs=150, views=4))


def _config_json(cpu_pbtxt: Path, name: str) -> str:
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    cfg = text_format.Parse(cpu_pbtxt.read_text(), model_config_pb2.ModelConfig())
    cfg.name = name
    return json.dumps(json_format.MessageToDict(cfg, preserving_proto_field_name=True))


@pytest.fixture(scope="module")
def triton(triton_server: Endpoint, trained: tuple[Path, Any]) -> Iterator[TritonBackend]:
    import tritonclient.grpc as grpcclient

    repo, _ = trained
    model_dir = repo / MODEL
    files = {f"file:{v}/{f}": (model_dir / v / f).read_bytes() for v in ("1", "2") for f in ("model.onnx", "model.py")}
    client = grpcclient.InferenceServerClient(url=triton_server.address)
    client.load_model(NAME, config=_config_json(model_dir / "configs" / "cpu.pbtxt", NAME), files=files)
    backend = TritonBackend(url=triton_server.address, models=[NAME])
    try:
        yield backend
    finally:
        backend.close()
        client.unload_model(NAME)
        # the shared server reports not-ready while the unload is in progress: every later Triton test would fail
        # at start-up, so hand the server back only once it is ready again
        deadline = time.monotonic() + 60
        while not client.is_server_ready() and time.monotonic() < deadline:
            time.sleep(0.2)
        ready = client.is_server_ready()
        client.close()
        assert ready, f"Triton stayed not-ready after unloading {NAME}"


def test_triton_serves_the_trained_version_as_onnxruntime_does(triton: TritonBackend,
                                                                trained: tuple[Path, Any]) -> None:
    repo, result = trained
    assert result.version == 2
    assert triton.spec(NAME).version == "2"  # the version policy picked the new directory
    crops = np.stack([cv2.cvtColor(read_image(str(p)), cv2.COLOR_BGR2GRAY)
                      for p in sorted((result.path.parents[3] / "data").rglob("*.png"))])
    ort_probs = EmotionClassifier(OnnxRuntimeBackend(model_repository=repo, intra_op_threads=1)).classify(crops)
    triton_probs = EmotionClassifier(triton, model=NAME).classify(crops)
    np.testing.assert_allclose(triton_probs, ort_probs, atol=1e-4)
    # and it is the trained head, not the original model that version 1 holds
    original = EmotionClassifier(OnnxRuntimeBackend(model_repository=REPO / "triton_models", intra_op_threads=1))
    assert np.abs(original.classify(crops) - triton_probs).max() > 1e-2
