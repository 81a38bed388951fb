"""The inference seam.

A backend runs one named model from ``triton_models/`` on a batch of input tensors and returns its output
tensors. Pre- and post-processing never live here (see ``argus.faces``), so ONNX Runtime in-process and Triton
over gRPC are interchangeable and must agree numerically.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
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


class OnnxRuntimeBackend:
    """In-process ONNX Runtime over the same ``triton_models/<model>/1/model.onnx`` files Triton serves.

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
            path = self._repo / model / "1" / "model.onnx"
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
