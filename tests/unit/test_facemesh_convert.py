"""The committed FaceMesh ONNX file (tools/convert_models/facemesh.py) against Google's TFLite interpreter, its
recorded checksum, and the Triton configs that serve it.

Measured at conversion (ai-edge-litert 2.3.0 vs ONNX Runtime 1.32.0, noise + flat + 11 real face crops): max abs
difference 1.53e-4 crop pixels on the landmarks (values up to ~190) and 3.1e-5 on the face logit.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import pytest

from argus.faces import mesh

REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO / "triton_models" / "face_mesh"
CHECKSUMS = REPO / "tools" / "convert_models" / "checksums_facemesh.json"


def _converter() -> ModuleType:
    path = REPO / "tools" / "convert_models" / "facemesh.py"
    spec = importlib.util.spec_from_file_location("convert_facemesh", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)  # imports only numpy (and the sibling common.py) at module level
    return module


fmc = _converter()


@pytest.fixture(scope="module")
def session() -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(MODEL_DIR / "1" / "model.onnx"), sess_options=opts,
                                providers=["CPUExecutionProvider"])


def _record() -> dict[str, Any]:
    return dict(json.loads(CHECKSUMS.read_text())["face_mesh"])


def test_onnx_model_equals_the_tflite_reference_recorded_at_conversion(session: Any) -> None:
    rec = _record()
    gold, tol = rec["reference_golden"], rec["tolerance_abs"]
    img = cv2.imread(str(REPO / "assets" / "faces" / "astronaut.png"), cv2.IMREAD_COLOR)
    x = fmc.face_crop(img, gold["box"])[None]
    lm, flag = session.run(["landmarks", "face_flag"], {"input": x})
    pts = lm.reshape(468, 3)
    np.testing.assert_allclose(pts[gold["points"]], gold["landmarks"], atol=tol["landmarks"])
    np.testing.assert_allclose(flag[0, 0], gold["face_flag"], atol=tol["face_flag"])


def test_onnx_model_equals_the_tflite_interpreter_when_installed(session: Any) -> None:
    pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert is a converter-only dep")
    common = fmc.common
    try:
        data = common.read_member(fmc.SOURCE)
    except common.ConversionError as e:
        pytest.skip(f"pinned wheel not available: {e}")
    x = fmc.verification_inputs()
    ref = common.tflite_reference(data, x, fmc.OUTPUT_NAMES)
    lm, flag = session.run(["landmarks", "face_flag"], {"input": x})  # the whole batch at once: dynamic batch
    assert float(np.max(np.abs(lm - ref["landmarks"]))) < 2e-4  # measured 1.53e-4; converter's tolerance 1e-3
    assert float(np.max(np.abs(flag - ref["face_flag"]))) < 1e-4  # measured 3.1e-5
    assert np.all(ref["face_flag"][2:, 0] > 0) and np.all(ref["face_flag"][:2, 0] < 0)  # real faces vs noise/flat


def test_model_file_matches_the_recorded_checksum_and_notice() -> None:
    rec = _record()
    assert hashlib.sha256((REPO / rec["onnx"]).read_bytes()).hexdigest() == rec["sha256"]
    assert rec["source"]["archive_sha256"] == fmc.SOURCE.archive_sha256
    notice = (MODEL_DIR / "NOTICE").read_text()
    assert rec["sha256"] in notice and fmc.SOURCE.member_sha256 in notice and "Apache-2.0" in notice
    assert (REPO / rec["onnx"]).stat().st_size < 4_000_000
    assert rec["max_abs_error_vs_reference"]["landmarks"] <= rec["tolerance_abs"]["landmarks"]


def test_rebuild_matches_the_committed_file_when_converter_deps_are_installed() -> None:
    for dep in ("onnx", "tflite", "ai_edge_litert"):
        pytest.importorskip(dep, reason="converter-only dependency (requirements-blazeface.txt)")
    common = fmc.common
    try:
        common.find_archive(fmc.SOURCE)
    except common.ConversionError as e:
        pytest.skip(f"pinned wheel not available: {e}")
    assert fmc.main(["--check"]) == 0


def test_onnx_interface_and_triton_configs_agree_with_the_wrapper(session: Any) -> None:
    inp = session.get_inputs()[0]
    assert inp.name == "input" and inp.shape == ["N", 192, 192, 3], "batch dimension must be dynamic"
    outs = {o.name: o.shape for o in session.get_outputs()}
    assert outs == {"landmarks": ["N", 3 * mesh.NUM_POINTS], "face_flag": ["N", 1]}
    gpu = (MODEL_DIR / "config.pbtxt").read_text()
    cpu = (MODEL_DIR / "configs" / "cpu.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in gpu and "KIND_GPU" in gpu
    assert 'backend: "python"' in cpu and "KIND_CPU" in cpu and 'string_value: "model.onnx"' in cpu
    for text in (gpu, cpu):
        assert re.search(rf'^name: "{mesh.MODEL}"$', text, re.M)
        assert re.search(rf"^max_batch_size: {mesh.MAX_BATCH}$", text, re.M)
        assert "dynamic_batching" in text
        assert set(re.findall(r'name: "([^"]+)"', text)) - {mesh.MODEL} == set(outs) | {"input"}
        assert "dims: [ 192, 192, 3 ]" in text and "dims: [ 1404 ]" in text and "dims: [ 1 ]" in text
