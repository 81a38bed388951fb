"""TritonBackend (gRPC to a real Triton) and OnnxRuntimeBackend (in process) must be interchangeable.

Both run the same ``triton_models/<model>/1/model.onnx``; Triton through the python-backend CPU config. Outputs
must agree to atol 1e-5 / rtol 1e-4 (both are ONNX Runtime on CPU; only thread counts and summation order may
differ). Inputs are real face crops, laid out and sized per each model's config.
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from argus.errors import BackendError
from argus.inference.backend import InferenceBackend, OnnxRuntimeBackend
from argus.inference.triton import TritonBackend
from argus_dev.devservers import Endpoint

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "triton_models"
MODEL_NAMES = sorted(d.name for d in MODELS.iterdir() if (d / "configs" / "cpu.pbtxt").is_file())
ATOL, RTOL = 1e-5, 1e-4


@pytest.fixture(scope="module")
def triton(triton_server: Endpoint) -> Iterator[TritonBackend]:
    backend = TritonBackend(url=triton_server.address, models=MODEL_NAMES)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def ort() -> Iterator[OnnxRuntimeBackend]:
    backend = OnnxRuntimeBackend(model_repository=MODELS, intra_op_threads=1)
    yield backend
    backend.close()


def face_batch(shape: tuple[int, ...], n: int, *, seed: int = 0) -> np.ndarray:
    """``n`` crops of a real photo around the face, resized to the model's input (CHW or HWC, 1 or 3 channels),
    scaled to about [-1, 1]. Each row differs, so a row landing in the wrong caller's answer is caught."""
    image = cv2.imread(str(REPO / "assets" / "faces" / "obama.jpg"))
    assert image is not None
    dims = [d if d > 0 else 64 + 8 * i for i, d in enumerate(shape)]
    chw = dims[0] in (1, 3)
    channels, (h, w) = (dims[0], dims[1:]) if chw else (dims[-1], dims[:2])
    rng = np.random.default_rng(seed)
    rows = []
    ih, iw = image.shape[:2]
    for _ in range(n):
        side = int(rng.integers(min(ih, iw) // 3, min(ih, iw)))
        y, x = int(rng.integers(0, ih - side + 1)), int(rng.integers(0, iw - side + 1))
        crop = cv2.resize(image[y:y + side, x:x + side], (w, h), interpolation=cv2.INTER_AREA)
        crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)[..., None] if channels == 1 else crop[..., ::-1]
        arr = (crop.astype(np.float32) - 127.5) / 128.0
        rows.append(arr.transpose(2, 0, 1) if chw else arr)
    return np.ascontiguousarray(np.stack(rows))


def _inputs(backend: TritonBackend, model: str, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    spec = backend.spec(model)
    return {t.name: face_batch(t.shape[1:], n, seed=seed) for t in spec.inputs}


def test_triton_backend_satisfies_the_inference_protocol(triton: TritonBackend) -> None:
    assert isinstance(triton, InferenceBackend)
    assert triton.name == "triton"


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_triton_and_onnxruntime_agree_on_a_batch_of_8(triton: TritonBackend, ort: OnnxRuntimeBackend,
                                                      model: str) -> None:
    inputs = _inputs(triton, model, n=min(8, triton.spec(model).max_batch_size or 8))
    got = triton.infer(model, inputs)
    want = ort.infer(model, inputs)
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name].shape == want[name].shape, name
        assert got[name].dtype == want[name].dtype, name
        np.testing.assert_allclose(got[name], want[name], atol=ATOL, rtol=RTOL, err_msg=f"{model}/{name}")


def _counts(metrics_url: str, model: str) -> tuple[float, float]:
    """(inferences, executions) for ``model`` from Triton's Prometheus metrics."""
    with urllib.request.urlopen(metrics_url, timeout=5) as resp:
        text = resp.read().decode()
    values = {}
    for line in text.splitlines():
        for metric in ("nv_inference_count", "nv_inference_exec_count"):
            if line.startswith(metric + "{") and f'model="{model}"' in line:
                values[metric] = float(line.rsplit(" ", 1)[1])
    return values["nv_inference_count"], values["nv_inference_exec_count"]


def test_concurrent_callers_each_get_their_own_rows_back(triton: TritonBackend, ort: OnnxRuntimeBackend,
                                                         triton_server: Endpoint) -> None:
    model = "mtcnn_onet" if "mtcnn_onet" in MODEL_NAMES else MODEL_NAMES[0]
    callers = 24
    inputs = [_inputs(triton, model, n=1 + i % 3, seed=100 + i) for i in range(callers)]
    results: list[dict[str, np.ndarray] | None] = [None] * callers
    errors: list[BaseException] = []
    start = threading.Barrier(callers)

    def call(i: int) -> None:
        try:
            start.wait()
            results[i] = triton.infer(model, inputs[i])
        except BaseException as e:  # surfaced by the assertion below
            errors.append(e)

    before = _counts(triton_server.extra["metrics"], model)
    threads = [threading.Thread(target=call, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    after = _counts(triton_server.extra["metrics"], model)
    assert errors == []
    for i in range(callers):
        want = ort.infer(model, inputs[i])
        got = results[i]
        assert got is not None
        for name in want:
            np.testing.assert_allclose(got[name], want[name], atol=ATOL, rtol=RTOL, err_msg=f"caller {i}/{name}")
    requests = after[0] - before[0]
    executions = after[1] - before[1]
    assert requests == sum(len(next(iter(x.values()))) for x in inputs)
    # The dynamic batcher merged concurrent requests: fewer model executions than callers.
    assert executions < callers, f"{executions} executions for {callers} concurrent callers"


def test_a_missing_model_is_named_at_start_up(triton_server: Endpoint) -> None:
    with pytest.raises(BackendError, match=r"model 'no_such_model' is not ready .* expected one of"):
        TritonBackend(url=triton_server.address, models=["no_such_model"])


def test_a_wrong_input_shape_is_rejected_before_sending(triton: TritonBackend) -> None:
    model = MODEL_NAMES[0]
    spec = triton.spec(model)
    good = _inputs(triton, model, n=2)
    name = spec.inputs[0].name
    bad = {**good, name: good[name][:, :-1]}  # one element short in the first non-batch dim
    with pytest.raises(BackendError, match=rf"model '{model}' input '{name}': expected shape \[\?x"):
        triton.infer(model, bad)
    with pytest.raises(BackendError, match=rf"model '{model}' input '{name}': expected dtype FP32, got FP64"):
        triton.infer(model, {**good, name: good[name].astype(np.float64)})
    with pytest.raises(BackendError, match=rf"model '{model}': expected inputs \['{name}'\], got \['wrong'\]"):
        triton.infer(model, {"wrong": good[name]})


def test_an_unreachable_server_is_a_backend_error_after_retries() -> None:
    with pytest.raises(BackendError, match=r"127\.0\.0\.1:1 is not reachable: .*after 3 attempts.*UNAVAILABLE"):
        TritonBackend(url="127.0.0.1:1", retries=2, backoff_s=0.01, timeout_s=2)
