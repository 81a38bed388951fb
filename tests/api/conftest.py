"""The API over real seams: a SQLite event store in tmp_path, the in-memory gallery and (where a test needs faces)
the session's ONNX Runtime pipeline. One API key per role, made through the same library function the CLI uses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from argus.api.app import create_app
from argus.api.auth import Role, create_api_key
from argus.config import Settings
from argus.faces.embedder import EMBEDDING_DIM
from argus.gallery.memory import MemoryGallery
from argus.runtime.resources import Resources
from argus.store.sqlite import SqliteEventStore


def make_settings(tmp_path: Path, **over: Any) -> Settings:
    base: dict[str, Any] = {"data_dir": tmp_path, "gallery": "memory", "api_rate_burst": 100000,
                            "api_rate_per_s": 100000}
    base.update(over)
    return Settings(**base)


@pytest.fixture
def api_resources(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Resources]:
    store = SqliteEventStore(path=tmp_path / "events.sqlite")
    seams: dict[str, Any] = {"store": store, "gallery": MemoryGallery(dim=EMBEDDING_DIM)}
    if "ort_backend" in request.fixturenames:
        seams["backend"] = request.getfixturevalue("ort_backend")
    res = Resources(make_settings(tmp_path), **seams)
    yield res
    store.close()


@pytest.fixture
def role_keys(api_resources: Resources) -> dict[Role, str]:
    return {r: create_api_key(api_resources.store, name=f"test-{r.value}", role=r, actor="test")[1] for r in Role}


@pytest.fixture
def client(api_resources: Resources) -> Iterator[TestClient]:
    with TestClient(create_app(api_resources), raise_server_exceptions=False) as c:
        yield c


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
