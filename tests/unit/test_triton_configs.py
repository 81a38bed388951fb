"""config.pbtxt (production, onnxruntime on GPU) and configs/cpu.pbtxt (python backend on CPU) must agree on the
interface clients see, and every python-backend model must carry the current tools/triton_python_model.py."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "triton_models"


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sync_triton_models", REPO / "tools" / "sync_triton_models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


sync_tool = _load_tool()
MODEL_DIRS = sync_tool.python_model_dirs(MODELS) if MODELS.is_dir() else []


def test_every_model_dir_has_a_cpu_config() -> None:
    without = [d.name for d in MODELS.iterdir() if (d / "config.pbtxt").is_file() and d not in MODEL_DIRS]
    assert without == [], f"models without configs/cpu.pbtxt cannot run on the CPU Triton: {without}"


@pytest.mark.parametrize("model_dir", MODEL_DIRS, ids=[d.name for d in MODEL_DIRS])
def test_production_and_cpu_configs_agree(model_dir: Path) -> None:
    report = sync_tool.Report()
    sync_tool.check_model(model_dir, report)
    assert report.ok, report.render()


def test_model_py_copies_match_the_single_source() -> None:
    report = sync_tool.sync(MODELS, check_only=True)
    assert report.ok, report.render()
    assert report.checked == [d.name for d in MODEL_DIRS]


def _copy_model(tmp_path: Path) -> Path:
    if not MODEL_DIRS:
        pytest.skip("no python-backend model in triton_models/ yet")
    src = MODEL_DIRS[0]
    dst = tmp_path / src.name
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.onnx", "__pycache__"))
    (dst / "1" / "model.onnx").write_bytes(b"")  # existence is all the check needs
    return dst


def test_a_dims_mismatch_is_reported_with_both_values(tmp_path: Path) -> None:
    model = _copy_model(tmp_path)
    cpu = sync_tool.load_config(model / "configs" / "cpu.pbtxt")
    cpu.input[0].dims[-1] += 1
    from google.protobuf import text_format

    (model / "configs" / "cpu.pbtxt").write_text(text_format.MessageToString(cpu))
    report = sync_tool.sync(tmp_path, check_only=False)
    prod = sync_tool.load_config(model / "config.pbtxt")
    name = prod.input[0].name
    assert not report.ok
    problems = report.problems[model.name]
    assert any(f"input {name!r} dims: {list(prod.input[0].dims)!r} in config.pbtxt vs {list(cpu.input[0].dims)!r}"
               in p for p in problems), problems


def test_batching_and_dtype_mismatches_are_reported(tmp_path: Path) -> None:
    model = _copy_model(tmp_path)
    cpu = sync_tool.load_config(model / "configs" / "cpu.pbtxt")
    cpu.max_batch_size += 1
    from tritonclient.grpc import model_config_pb2

    cpu.output[0].data_type = model_config_pb2.TYPE_FP64
    cpu.dynamic_batching.max_queue_delay_microseconds += 1
    from google.protobuf import text_format

    (model / "configs" / "cpu.pbtxt").write_text(text_format.MessageToString(cpu))
    assert sync_tool.main(["--repo", str(tmp_path)]) == 1
    text = sync_tool.sync(tmp_path).render()
    assert "max_batch_size:" in text
    assert f"output {cpu.output[0].name!r} data_type:" in text and "TYPE_FP64 in configs/cpu.pbtxt" in text
    assert "dynamic_batching:" in text


def test_an_unparsable_config_names_the_file(tmp_path: Path) -> None:
    model = _copy_model(tmp_path)
    (model / "configs" / "cpu.pbtxt").write_text('name: "x"\nmax_batch_size: "many"\n')
    text = sync_tool.sync(tmp_path).render()
    assert "configs/cpu.pbtxt does not parse" in text
