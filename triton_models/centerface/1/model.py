"""Generic Triton python-backend model: serve an ONNX file with ONNX Runtime on CPU.

Single source for every ``triton_models/<model>/1/model.py`` (copied there by tools/sync_triton_models.py; never
edit the copies). Production serves the same ``model.onnx`` with Triton's onnxruntime backend on GPU
(``config.pbtxt``); machines without that backend select ``configs/cpu.pbtxt`` (``backend: "python"``) with
``--model-config-name=cpu``, which runs this file.

Model-config parameters:
  onnx_file          ONNX file, relative to the version dir (required)
  intra_op_threads   ONNX Runtime intra-op threads (default 1: Triton runs several models and instances side by
                     side, and one thread each scales better than all of them fighting over every core)

Triton's dynamic batcher hands ``execute`` several requests at once. They are concatenated along the batch
dimension and run as ONE ONNX Runtime call (that is the point of batching), and the outputs are split back so
every request gets exactly its own rows. Requests whose non-batch shapes differ (possible for fully
convolutional models) are grouped by shape and each group runs once. A failing group gets a TritonError on each
of its requests; the other groups still answer.

This file runs inside Triton's python stub: it imports ``triton_python_backend_utils`` (only available there)
and must stay free of Argus imports.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils  # provided by the Triton python backend stub


def _param(config: dict[str, Any], key: str, default: str | None = None) -> str | None:
    value = config.get("parameters", {}).get(key, {}).get("string_value")
    return value if value not in (None, "") else default


class TritonPythonModel:
    """ONNX Runtime session behind Triton's python backend, batching whatever the dynamic batcher delivers."""

    def initialize(self, args: dict[str, str]) -> None:
        import onnxruntime as ort

        self.model_config = config = json.loads(args["model_config"])
        self.model_name = config.get("name", args.get("model_name", "?"))
        self.max_batch_size = int(config.get("max_batch_size", 0))
        onnx_file = _param(config, "onnx_file")
        if onnx_file is None:
            raise pb_utils.TritonModelException(
                f"model {self.model_name!r}: expected parameter 'onnx_file' in the model config, got none")
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        path = onnx_file if os.path.isabs(onnx_file) else os.path.join(version_dir, onnx_file)
        if not os.path.isfile(path):
            raise pb_utils.TritonModelException(f"model {self.model_name!r}: ONNX file {path} does not exist")
        threads = int(_param(config, "intra_op_threads", "1") or "1")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_names = [i["name"] for i in config.get("input", [])]
        self.outputs = [(o["name"], pb_utils.triton_string_to_numpy(o["data_type"]))
                        for o in config.get("output", [])]
        onnx_inputs = {i.name for i in self.session.get_inputs()}
        onnx_outputs = {o.name for o in self.session.get_outputs()}
        missing = [n for n in self.input_names if n not in onnx_inputs]
        missing += [n for n, _ in self.outputs if n not in onnx_outputs]
        if missing:
            raise pb_utils.TritonModelException(
                f"model {self.model_name!r}: tensors {missing} are in the config but not in {path} "
                f"(ONNX has inputs {sorted(onnx_inputs)}, outputs {sorted(onnx_outputs)})")

    def _run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        names = [n for n, _ in self.outputs]
        outs = self.session.run(names, feeds)
        return [np.ascontiguousarray(o, dtype=dt) for o, (_, dt) in zip(outs, self.outputs, strict=True)]

    def execute(self, requests: list[Any]) -> list[Any]:
        responses: list[Any] = [None] * len(requests)
        # Per request: its inputs, or the error that made it unusable.
        parsed: list[dict[str, np.ndarray] | None] = []
        for i, request in enumerate(requests):
            try:
                feeds: dict[str, np.ndarray] = {}
                for name in self.input_names:
                    tensor = pb_utils.get_input_tensor_by_name(request, name)
                    if tensor is None:
                        raise ValueError(f"input {name!r} is missing")
                    feeds[name] = tensor.as_numpy()
                parsed.append(feeds)
            except Exception as e:  # report per request, never fail the whole batch for one bad request
                parsed.append(None)
                responses[i] = pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(f"model {self.model_name!r}: {e}"))

        if self.max_batch_size > 0:
            groups: dict[tuple[Any, ...], list[int]] = {}
            for i, maybe in enumerate(parsed):
                if maybe is not None:
                    key = tuple((n, a.shape[1:], a.dtype.str) for n, a in maybe.items())
                    groups.setdefault(key, []).append(i)
        else:
            groups = {(i,): [i] for i, maybe in enumerate(parsed) if maybe is not None}

        for members in groups.values():
            group = [parsed[i] for i in members]
            try:
                feeds_list = [f for f in group if f is not None]
                if len(feeds_list) == 1:
                    splits = [self._run(feeds_list[0])]
                else:
                    sizes = [len(f[self.input_names[0]]) for f in feeds_list]
                    batch = {n: np.concatenate([f[n] for f in feeds_list]) for n in self.input_names}
                    outs = self._run(batch)
                    bounds = np.cumsum(sizes)[:-1]
                    per_output = [np.split(o, bounds) for o in outs]
                    splits = [[chunks[k] for chunks in per_output] for k in range(len(members))]
                for i, arrays in zip(members, splits, strict=True):
                    tensors = [pb_utils.Tensor(name, arr) for (name, _), arr in zip(self.outputs, arrays, strict=True)]
                    responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)
            except Exception as e:  # onnxruntime raises untyped errors; each caller gets the reason
                shapes = {n: list(a.shape) for n, a in (group[0] or {}).items()}
                err = pb_utils.TritonError(f"model {self.model_name!r}: ONNX Runtime failed on inputs {shapes}: {e}")
                for i in members:
                    responses[i] = pb_utils.InferenceResponse(error=err)
        return responses

    def finalize(self) -> None:
        self.session = None
