"""The inference seam.

A backend runs one named model from ``triton_models/`` on a batch of input tensors and returns its output
tensors. Pre- and post-processing never live here (see ``argus.faces``), so ONNX Runtime in-process and Triton
over gRPC are interchangeable and must agree numerically.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from argus.errors import BackendError


@runtime_checkable
class InferenceBackend(Protocol):
    """Run ``model`` on a batch. Inputs and outputs are keyed by the tensor names in the model's config."""

    name: str

    def infer(self, model: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


def infer_rows(backend: InferenceBackend, model: str, rows: np.ndarray, *, prepare: Callable[[np.ndarray], np.ndarray],
               output: str, width: int, max_batch: int) -> np.ndarray:
    """A per-row model (embedder, classifier) over ``rows`` in backend calls of at most ``max_batch`` rows, checked to
    return exactly ``(rows, width)`` of ``output``: a wrong model in the repository fails here, naming it, instead of
    as a silent shape mismatch downstream. Empty in, ``(0, width)`` out."""
    out = infer_row_outputs(backend, model, rows, prepare=prepare, outputs={output: width}, max_batch=max_batch)
    return out[output]


def infer_row_outputs(backend: InferenceBackend, model: str, rows: np.ndarray, *,
                      prepare: Callable[[np.ndarray], np.ndarray], outputs: Mapping[str, int],
                      max_batch: int) -> dict[str, np.ndarray]:
    """:func:`infer_rows` for a model with several per-row outputs (name → width), e.g. FaceMesh's points and
    face flag."""
    if rows.shape[0] == 0:
        return {name: np.zeros((0, width), np.float32) for name, width in outputs.items()}
    parts: dict[str, list[np.ndarray]] = {name: [] for name in outputs}
    for start in range(0, rows.shape[0], max_batch):
        chunk = rows[start : start + max_batch]
        res = backend.infer(model, {"input": prepare(chunk)})
        for name, width in outputs.items():
            out = res.get(name)
            if out is None:
                raise BackendError(f"model {model!r}: expected output {name!r}, got {sorted(res)}")
            if out.shape != (chunk.shape[0], width):
                raise BackendError(f"model {model!r}: expected {name} shape {(chunk.shape[0], width)}, got {out.shape}")
            parts[name].append(np.asarray(out, np.float32))
    return {name: np.concatenate(p) for name, p in parts.items()}


class RowModel:
    """A model served by ``backend`` that maps each input row to one output row (embedder, classifier); subclasses
    name their model and its Triton ``max_batch_size`` and call :func:`infer_rows`."""

    MODEL: str
    MAX_BATCH: int

    def __init__(self, backend: InferenceBackend, *, model: str | None = None, max_batch: int | None = None) -> None:
        self._backend = backend
        self.model = model or self.MODEL
        self.max_batch = int(max_batch or self.MAX_BATCH)


def latest_version(model_repository: Path, model: str) -> int:
    """The version of ``model`` both backends serve: the highest numeric directory ``<model>/<N>/``.

    That is Triton's default ``version_policy`` (``latest { num_versions: 1 }``, written out in the emotion
    model's configs), so ``argus train emotion`` writing ``<model>/2/`` switches ONNX Runtime and Triton together.
    Like Triton, a newest version without its ``model.onnx`` is an error (raised when loading), not skipped.
    """
    base = Path(model_repository) / model
    versions = sorted(int(d.name) for d in base.iterdir() if d.is_dir() and d.name.isdigit()) if base.is_dir() else []
    if not versions:
        raise BackendError(f"model {model!r}: expected a version directory <N>/ under {base}, got none")
    return versions[-1]


class OnnxRuntimeBackend:
    """In-process ONNX Runtime over the same ``triton_models/<model>/<N>/model.onnx`` files Triton serves (N: the
    newest version, :func:`latest_version`, as Triton's default version policy).

    Sessions are created lazily (a demo that never uses the fast detector never loads it) and are shared by
    threads: ``InferenceSession.run`` is thread-safe.
    """

    name = "onnxruntime"

    def __init__(self, *, model_repository: Path, intra_op_threads: int = 0) -> None:
        self._repo = Path(model_repository)
        if not self._repo.is_dir():
            raise BackendError(f"model repository {self._repo} does not exist")
        self._threads = intra_op_threads
        self._sessions: dict[str, object] = {}
        self._lock = threading.Lock()

    def _session(self, model: str):
        with self._lock:
            sess = self._sessions.get(model)
            if sess is not None:
                return sess
            version = latest_version(self._repo, model)
            path = self._repo / model / str(version) / "model.onnx"
            if not path.is_file():
                raise BackendError(f"model {model!r}: no ONNX file at {path}")
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = self._threads
            opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            try:
                sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
            except Exception as e:  # onnxruntime raises its own untyped errors
                raise BackendError(f"model {model!r}: ONNX Runtime could not load {path}: {e}") from e
            self._sessions[model] = sess
            return sess

    def infer(self, model: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        sess = self._session(model)
        try:
            names = [o.name for o in sess.get_outputs()]
            outs = sess.run(names, dict(inputs))
        except Exception as e:
            shapes = {k: (v.shape, str(v.dtype)) for k, v in inputs.items()}
            raise BackendError(f"model {model!r}: inference failed for inputs {shapes}: {e}") from e
        return dict(zip(names, outs, strict=True))

    def close(self) -> None:
        with self._lock:
            self._sessions.clear()
