"""Shared fixtures. Real servers (Kafka, Triton, MongoDB-wire, Prometheus) come from tests/servers.py: each starts
once per session, only when a test asks for it, and stops at the end of the session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
sys.path.insert(0, str(ROOT / "tests"))

from servers import (  # noqa: E402
    devservers_state_dir,
    kafka_server,
    mongo_server,
    prometheus_server,
    triton_server,
)

__all__ = ["devservers_state_dir", "kafka_server", "mongo_server", "prometheus_server", "triton_server"]


@pytest.fixture(scope="session")
def assets() -> Path:
    return ASSETS


@pytest.fixture(scope="session")
def ort_backend():
    from argus.inference.backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(model_repository=ROOT / "triton_models", intra_op_threads=1)
