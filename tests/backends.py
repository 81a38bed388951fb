"""Backend wrappers for tests: the real ONNX Runtime backend underneath, observed or bent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


class CountingBackend:
    """The real backend, recording the batch size of every call (to check how work is batched)."""

    name = "counting"

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.batches: list[int] = []

    def infer(self, model: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.batches.append(int(inputs["input"].shape[0]))
        return self.inner.infer(model, inputs)

    def close(self) -> None:
        pass
