#!/usr/bin/env python3
"""Copy tools/triton_python_model.py into every python-backend model and check the two configs agree.

Each ``triton_models/<model>/`` has a production ``config.pbtxt`` (onnxruntime on GPU) and a CPU twin
``configs/cpu.pbtxt`` (python backend running the same ONNX file). Clients are written against one interface,
so the twins must agree on everything a client or the batcher sees: name, inputs, outputs, dims, data types,
max_batch_size and dynamic_batching. Backend, instance groups and parameters may differ (that is the point).

    python tools/sync_triton_models.py            # copy model.py where stale, then check; exit 1 on problems
    python tools/sync_triton_models.py --check    # change nothing; exit 1 if a copy is stale or configs differ

Parsing uses Triton's own ModelConfig protobuf (shipped with tritonclient), so a typo in a .pbtxt is an error
here rather than at server start.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MODEL_SOURCE = REPO / "tools" / "triton_python_model.py"
CPU_CONFIG = Path("configs") / "cpu.pbtxt"

#: Fields of ModelInput/ModelOutput a client or the batcher can observe.
_TENSOR_FIELDS = ("data_type", "format", "dims", "reshape", "is_shape_tensor", "allow_ragged_batch", "optional")


class ConfigParseError(Exception):
    """A .pbtxt file is not a valid Triton ModelConfig."""


@dataclass
class Report:
    """Problems per model; empty means the repository is consistent."""

    problems: dict[str, list[str]] = field(default_factory=dict)
    copied: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    def add(self, model: str, problem: str) -> None:
        self.problems.setdefault(model, []).append(problem)

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        lines = [f"{m}: {p}" for m, ps in sorted(self.problems.items()) for p in ps]
        return "\n".join(lines)


def load_config(path: Path) -> Any:
    """Parse a config.pbtxt into ``tritonclient.grpc.model_config_pb2.ModelConfig``."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    try:
        return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
    except (OSError, text_format.ParseError) as e:
        raise ConfigParseError(f"{path}: {e}") from e


def _value(msg: Any, name: str) -> Any:
    value = getattr(msg, name)
    if name == "dims":
        return list(value)
    if name == "reshape":
        return list(value.shape) if msg.HasField("reshape") else None
    if hasattr(value, "ListFields"):
        return str(value).strip()
    return value


def _pretty(field_name: str, value: Any) -> str:
    if field_name == "data_type":
        from tritonclient.grpc import model_config_pb2

        return str(model_config_pb2.DataType.Name(value))
    if field_name == "format":
        from tritonclient.grpc import model_config_pb2

        return str(model_config_pb2.ModelInput.Format.Name(value))
    return repr(value)


def compare_configs(prod: Any, cpu: Any) -> list[str]:
    """What differs between the two configs in the client-visible interface, one sentence each."""
    diffs: list[str] = []
    if prod.name != cpu.name:
        diffs.append(f"name: {prod.name!r} in config.pbtxt vs {cpu.name!r} in configs/cpu.pbtxt")
    if prod.max_batch_size != cpu.max_batch_size:
        diffs.append(f"max_batch_size: {prod.max_batch_size} in config.pbtxt vs {cpu.max_batch_size} in "
                     f"configs/cpu.pbtxt")
    for kind in ("input", "output"):
        p_tensors = {t.name: t for t in getattr(prod, kind)}
        c_tensors = {t.name: t for t in getattr(cpu, kind)}
        if list(p_tensors) != list(c_tensors):
            diffs.append(f"{kind} names: {list(p_tensors)} in config.pbtxt vs {list(c_tensors)} in "
                         f"configs/cpu.pbtxt")
        for name in p_tensors.keys() & c_tensors.keys():
            for f in _TENSOR_FIELDS:
                if not hasattr(p_tensors[name], f):
                    continue  # ModelOutput lacks some ModelInput fields
                pv, cv = _value(p_tensors[name], f), _value(c_tensors[name], f)
                if pv != cv:
                    diffs.append(f"{kind} {name!r} {f}: {_pretty(f, pv)} in config.pbtxt vs {_pretty(f, cv)} in "
                                 f"configs/cpu.pbtxt")
    p_dyn, c_dyn = prod.HasField("dynamic_batching"), cpu.HasField("dynamic_batching")
    if p_dyn != c_dyn:
        diffs.append(f"dynamic_batching: {'present' if p_dyn else 'absent'} in config.pbtxt vs "
                     f"{'present' if c_dyn else 'absent'} in configs/cpu.pbtxt")
    elif p_dyn and prod.dynamic_batching != cpu.dynamic_batching:
        p_txt = " ".join(str(prod.dynamic_batching).split()) or "{}"
        c_txt = " ".join(str(cpu.dynamic_batching).split()) or "{}"
        diffs.append(f"dynamic_batching: {{{p_txt}}} in config.pbtxt vs {{{c_txt}}} in configs/cpu.pbtxt")
    return diffs


def python_model_dirs(repo: Path) -> list[Path]:
    """Model dirs served by the python backend on CPU: those with configs/cpu.pbtxt."""
    return sorted(d for d in repo.iterdir() if d.is_dir() and (d / CPU_CONFIG).is_file())


def check_model(model_dir: Path, report: Report) -> None:
    name = model_dir.name
    try:
        cpu = load_config(model_dir / CPU_CONFIG)
    except ConfigParseError as e:
        report.add(name, f"configs/cpu.pbtxt does not parse: {e}")
        return
    if cpu.backend != "python":
        report.add(name, f"configs/cpu.pbtxt backend: expected 'python', got {cpu.backend or cpu.platform!r}")
    onnx = cpu.parameters["onnx_file"].string_value if "onnx_file" in cpu.parameters else ""
    if not onnx:
        report.add(name, "configs/cpu.pbtxt: expected a parameter 'onnx_file' naming the ONNX file, got none")
    elif not (model_dir / "1" / onnx).is_file():
        report.add(name, f"configs/cpu.pbtxt names onnx_file {onnx!r}, but {model_dir / '1' / onnx} does not exist")
    if cpu.name != name:
        report.add(name, f"configs/cpu.pbtxt name: expected {name!r} (the directory), got {cpu.name!r}")
    prod_path = model_dir / "config.pbtxt"
    if not prod_path.is_file():
        report.add(name, "config.pbtxt (the production config) is missing")
        return
    try:
        prod = load_config(prod_path)
    except ConfigParseError as e:
        report.add(name, f"config.pbtxt does not parse: {e}")
        return
    for diff in compare_configs(prod, cpu):
        report.add(name, diff)


def sync(repo: Path, *, check_only: bool = False, source: Path = MODEL_SOURCE) -> Report:
    """Copy ``source`` to ``<model>/1/model.py`` (unless ``check_only``) and check every python-backend model."""
    report = Report()
    if not repo.is_dir():
        report.add(str(repo), "model repository does not exist")
        return report
    for model_dir in python_model_dirs(repo):
        target = model_dir / "1" / "model.py"
        if not (target.is_file() and filecmp.cmp(source, target, shallow=False)):
            if check_only:
                report.add(model_dir.name, f"{target} is missing or differs from {source}; run "
                                           f"tools/sync_triton_models.py")
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
                report.copied.append(model_dir.name)
        check_model(model_dir, report)
        report.checked.append(model_dir.name)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repo", type=Path, default=REPO / "triton_models", help="Triton model repository")
    parser.add_argument("--check", action="store_true", help="change nothing; fail if a copy is stale")
    args = parser.parse_args(argv)
    report = sync(args.repo, check_only=args.check)
    for name in report.copied:
        sys.stdout.write(f"{name}: copied model.py\n")
    if not report.ok:
        sys.stderr.write("Triton model configs disagree or are incomplete:\n" + report.render() + "\n")
        return 1
    sys.stdout.write(f"{len(report.checked)} python-backend model(s) consistent: {', '.join(report.checked)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
