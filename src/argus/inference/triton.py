"""Triton Inference Server over gRPC, behind the same ``InferenceBackend`` seam as in-process ONNX Runtime.

Inputs are checked against the model's metadata before anything is sent: a wrong dtype or shape then fails with
a message naming the model, the tensor and both shapes, instead of a server-side error several layers down.
Transient transport failures (server restarting, deadline hit under load) are retried with exponential backoff;
everything else surfaces at once as :class:`BackendError`. Tensors travel as binary protobuf contents, never JSON.
With ``ssl=True`` the channel is TLS and the server's certificate is checked against ``root_certificates`` (a PEM
file; default the system's CAs), so faces are never sent to an impostor or readable on the wire.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from argus.errors import BackendError, BackendUnavailable
from argus.retry import Backoff

log = logging.getLogger(__name__)

#: gRPC status codes worth another attempt: the server is (re)starting or momentarily overloaded.
_TRANSIENT = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str  # Triton wire type: FP32, INT64, ...
    shape: tuple[int, ...]  # -1 = any size (the batch dimension included when the model batches)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: str
    max_batch_size: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


def _import_client() -> Any:
    try:
        import tritonclient.grpc as grpcclient
    except ImportError as e:
        raise BackendError("Triton backend needs tritonclient[grpc] (pip install argus-watch[triton])") from e
    return grpcclient


def _status(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    value = status() if callable(status) else status
    return str(value or "")


def _message(exc: Exception) -> str:
    message = getattr(exc, "message", None)
    return str(message() if callable(message) else exc)


def _is_transient(exc: Exception) -> bool:
    """Worth another attempt later. Besides the codes above: a Triton that is stopping (a restart, a roll-out)
    unloads its models first and answers ``NOT_FOUND: Request for unknown model: 'face_embedder' has no available
    versions`` to the requests still arriving — seen on the real server (tests/e2e/test_outages.py), where it
    dead-lettered a whole in-flight batch. A model that was never there is refused at start-up (``spec``)."""
    status = _status(exc)
    if any(code in status for code in _TRANSIENT):
        return True
    return "NOT_FOUND" in status and "unknown model" in _message(exc)


class TritonBackend:
    """Run models on a Triton server. Thread-safe: one gRPC channel, metadata cached per model."""

    name = "triton"

    def __init__(self, *, url: str = "127.0.0.1:8001", timeout_s: float = 10.0, retries: int = 3,
                 backoff_s: float = 0.2, models: Sequence[str] | None = None, ssl: bool = False,
                 root_certificates: Path | None = None) -> None:
        if timeout_s <= 0:
            raise BackendError(f"Triton timeout_s: expected > 0, got {timeout_s}")
        if retries < 0:
            raise BackendError(f"Triton retries: expected >= 0, got {retries}")
        self._grpc = _import_client()
        from tritonclient.utils import InferenceServerException

        self._exc_type: type[Exception] = InferenceServerException
        self.url = url
        self._timeout_s = timeout_s
        self._retries = retries
        self._backoff = Backoff(initial_s=backoff_s, factor=2.0, max_s=max(backoff_s, 5.0), jitter=0.0)
        self._specs: dict[str, ModelSpec] = {}
        self._lock = threading.Lock()
        try:
            self._client = self._grpc.InferenceServerClient(
                url=url, verbose=False, ssl=ssl,
                root_certificates=str(root_certificates) if root_certificates is not None else None)
        except Exception as e:  # bad URL syntax (or an unreadable CA file) surfaces here, as a plain exception type
            raise BackendError(f"Triton at {url}: could not create a gRPC client: {e}") from e
        try:
            live = self._call("server_live", lambda: self._client.is_server_live(client_timeout=timeout_s))
            ready = live and self._call("server_ready", lambda: self._client.is_server_ready(client_timeout=timeout_s))
        except BackendError as e:
            self._client.close()
            raise BackendError(f"Triton at {url} is not reachable: {e}") from e
        if not ready:
            self._client.close()
            raise BackendError(f"Triton at {url}: expected a ready server, got live={live} ready={ready}")
        try:
            for model in models or ():
                self.spec(model)
        except BackendError:
            self._client.close()
            raise

    # -- metadata -----------------------------------------------------------------------------------------

    def spec(self, model: str) -> ModelSpec:
        """The model's interface, fetched once: readiness first, so a missing model is named as such."""
        with self._lock:
            cached = self._specs.get(model)
        if cached is not None:
            return cached
        ready = self._call(f"model {model!r} readiness",
                           lambda: self._client.is_model_ready(model, client_timeout=self._timeout_s))
        if not ready:
            available = self._model_names()
            raise BackendError(f"model {model!r} is not ready on Triton at {self.url}: expected one of "
                               f"the ready models {available}")
        meta = self._call(f"model {model!r} metadata",
                          lambda: self._client.get_model_metadata(model, as_json=True,
                                                                  client_timeout=self._timeout_s))
        config = self._call(f"model {model!r} config",
                            lambda: self._client.get_model_config(model, as_json=True,
                                                                  client_timeout=self._timeout_s))
        spec = ModelSpec(
            name=model,
            version=str((meta.get("versions") or [""])[-1]),
            max_batch_size=int(config.get("config", {}).get("max_batch_size", 0)),
            inputs=tuple(TensorSpec(t["name"], t["datatype"], tuple(int(d) for d in t["shape"]))
                         for t in meta.get("inputs", [])),
            outputs=tuple(TensorSpec(t["name"], t["datatype"], tuple(int(d) for d in t["shape"]))
                          for t in meta.get("outputs", [])),
        )
        with self._lock:
            self._specs[model] = spec
        return spec

    def _model_names(self) -> list[str]:
        try:
            index = self._client.get_model_repository_index(as_json=True, client_timeout=self._timeout_s)
        except self._exc_type:
            return []
        return sorted(m["name"] for m in index.get("models", []) if m.get("state") == "READY")

    # -- inference ----------------------------------------------------------------------------------------

    def _validate(self, spec: ModelSpec, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        from tritonclient.utils import np_to_triton_dtype

        expected = [t.name for t in spec.inputs]
        if set(inputs) != set(expected):
            raise BackendError(f"model {spec.name!r}: expected inputs {expected}, got {sorted(inputs)}")
        arrays: list[np.ndarray] = []
        batch: int | None = None
        for t in spec.inputs:
            arr = np.asarray(inputs[t.name])
            dtype = np_to_triton_dtype(arr.dtype)
            if dtype != t.datatype:
                raise BackendError(f"model {spec.name!r} input {t.name!r}: expected dtype {t.datatype}, "
                                   f"got {dtype} ({arr.dtype})")
            ok = arr.ndim == len(t.shape) and all(d == -1 or d == s for d, s in zip(t.shape, arr.shape, strict=True))
            if not ok:
                want = "x".join("?" if d == -1 else str(d) for d in t.shape)
                raise BackendError(f"model {spec.name!r} input {t.name!r}: expected shape [{want}], "
                                   f"got {list(arr.shape)}")
            if spec.max_batch_size > 0:
                if batch is not None and arr.shape[0] != batch:
                    raise BackendError(f"model {spec.name!r}: all inputs must share the batch size; "
                                       f"input {t.name!r} has {arr.shape[0]}, expected {batch}")
                batch = arr.shape[0]
                if not 0 < batch <= spec.max_batch_size:
                    raise BackendError(f"model {spec.name!r} input {t.name!r}: expected a batch of 1.."
                                       f"{spec.max_batch_size}, got {batch}")
            arrays.append(np.ascontiguousarray(arr))
        return arrays

    def infer(self, model: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        spec = self.spec(model)
        arrays = self._validate(spec, inputs)
        grpc = self._grpc
        infer_inputs = []
        for t, arr in zip(spec.inputs, arrays, strict=True):
            ii = grpc.InferInput(t.name, list(arr.shape), t.datatype)
            ii.set_data_from_numpy(arr)  # raw binary contents in the protobuf, not JSON
            infer_inputs.append(ii)
        outputs = [grpc.InferRequestedOutput(t.name) for t in spec.outputs]
        result = self._call(
            f"model {model!r} inference on {[list(a.shape) for a in arrays]}",
            lambda: self._client.infer(model, infer_inputs, outputs=outputs, client_timeout=self._timeout_s))
        out: dict[str, np.ndarray] = {}
        for t in spec.outputs:
            arr = result.as_numpy(t.name)
            if arr is None:
                raise BackendError(f"model {model!r}: expected output {t.name!r} in the response, got none")
            out[t.name] = arr
        return out

    def _call(self, what: str, fn: Any) -> Any:
        """Run one client call; retry transient gRPC failures, translate the rest."""
        attempt = 0
        while True:
            try:
                return fn()
            except self._exc_type as e:
                if _is_transient(e) and attempt < self._retries:
                    delay = self._backoff.delay(attempt)
                    attempt += 1
                    log.warning("Triton %s at %s: %s (%s); retry %d/%d in %.2f s", what, self.url, _status(e),
                                _message(e), attempt, self._retries, delay)
                    time.sleep(delay)
                    continue
                tries = f" after {attempt + 1} attempts" if attempt else ""
                kind = BackendUnavailable if _is_transient(e) else BackendError
                raise kind(f"Triton at {self.url}: {what} failed{tries}: {_status(e) or 'error'}: "
                           f"{_message(e)}") from e

    def close(self) -> None:
        try:
            self._client.close()
        except Exception as e:  # closing a broken channel is not worth failing a shutdown over
            log.debug("closing Triton client for %s: %s", self.url, e)
