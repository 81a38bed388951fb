"""Fixtures for the deploy/ checks: the rendered overlays and promtool (installed on a clean machine through the
project's own Debian-package installer, argus_dev.devservers.prometheus)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import k8s_check  # noqa: E402


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """``kubectl kustomize`` output of every overlay, parsed."""
    return {name: k8s_check.render(k8s_check.K8S / "overlays" / name) for name in k8s_check.OVERLAYS}


@pytest.fixture(scope="session")
def promtool() -> str:
    """promtool from Debian's prometheus package, apt-installed on first use like the dev Prometheus server."""
    from argus_dev.devservers import default_home
    from argus_dev.devservers.prometheus import PrometheusServer

    if k8s_check.find_promtool() is None:
        PrometheusServer().install(default_home())
    exe = k8s_check.find_promtool()
    assert exe is not None, "expected promtool after installing Debian's prometheus package, got none"
    return exe
