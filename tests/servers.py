"""Session-scoped fixtures that run the real servers through ``argus_dev.devservers`` (imported by tests/conftest.py).

Each server starts once per test session, lazily (only if a test asks for it), on free ports, with PID files,
logs and data in a temporary state dir; installs go to the shared cache (``ARGUS_DEV_HOME`` or
``<repo>/.cache/servers``), so only the first session on a machine pays for them. Servers stop at session end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from argus_dev import devservers
from argus_dev.devservers import Endpoint
from argus_dev.devservers.manager import SPECS


@pytest.fixture(scope="session")
def devservers_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("devservers")


def _serve(name: str, state_dir: Path, **options: object) -> Iterator[Endpoint]:
    ports = {key: 0 for key in SPECS[name].port_keys}
    endpoint = devservers.up([name], ports=ports, state_dir=state_dir, **options)[name]
    try:
        yield endpoint
    finally:
        devservers.down([name], state_dir=state_dir)


@pytest.fixture(scope="session")
def kafka_server(devservers_state_dir: Path) -> Iterator[Endpoint]:
    """Apache Kafka (KRaft, one node); ``.address`` is the bootstrap ``host:port``. Topics are not auto-created."""
    yield from _serve("kafka", devservers_state_dir)


@pytest.fixture(scope="session")
def triton_server(devservers_state_dir: Path) -> Iterator[Endpoint]:
    """Triton on ``triton_models/`` (CPU configs); ``.address`` is gRPC ``host:port``, ``.extra['http']`` and
    ``.extra['metrics']`` the HTTP and metrics URLs."""
    yield from _serve("triton", devservers_state_dir)


@pytest.fixture(scope="session")
def mongo_server(devservers_state_dir: Path) -> Iterator[Endpoint]:
    """MongoDB-wire server (secantusdb); ``.address`` is a ``mongodb://`` URI."""
    yield from _serve("mongo", devservers_state_dir)


@pytest.fixture(scope="session")
def prometheus_server(devservers_state_dir: Path) -> Iterator[Endpoint]:
    """Prometheus scraping every 1 s; ``.address`` is its base URL. Point it at exporters with
    ``argus_dev.devservers.prometheus.configure({job: ["host:port"]}, state_dir=Path(ep.state_dir))``."""
    yield from _serve("prometheus", devservers_state_dir)
