"""Property-based requests generated from the API's own OpenAPI document (schemathesis): for every operation, valid
and invalid inputs alike, the API never answers 5xx, and every response matches the status codes, content types
and schemas the document declares.

The app runs over real seams (SQLite store, in-memory gallery, the ONNX Runtime pipeline for uploads) with an
admin key, so every route is reachable; the store is seeded with a camera, a person and alerts so that lookups
also take their found paths. Example counts are kept small so CI stays fast; ``ARGUS_SCHEMATHESIS_EXAMPLES`` raises
them for a longer local run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from argus.api.app import create_app
from argus.api.auth import create_api_key
from argus.config import Settings
from argus.faces.embedder import EMBEDDING_DIM
from argus.gallery.memory import MemoryGallery
from argus.runtime.resources import Resources
from argus.store.sqlite import SqliteEventStore

EXAMPLES = int(os.environ.get("ARGUS_SCHEMATHESIS_EXAMPLES", "12"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def api_world(tmp_path_factory: pytest.TempPathFactory, ort_backend: Any) -> Iterator[tuple[Any, str]]:
    tmp: Path = tmp_path_factory.mktemp("schemathesis")
    store = SqliteEventStore(path=tmp / "events.sqlite")
    settings_ = Settings(data_dir=tmp, gallery="memory", api_rate_burst=100_000, api_rate_per_s=100_000)
    res = Resources(settings_, store=store, gallery=MemoryGallery(dim=EMBEDDING_DIM), backend=ort_backend)
    _seed(store)
    _, key = create_api_key(store, name="schemathesis", role="admin", actor="test")
    try:
        yield create_app(res), key
    finally:
        store.close()


def _seed(store: SqliteEventStore) -> None:
    """A camera and a few alerts, so generated ids sometimes hit real rows (schemathesis reuses example values)."""
    from ops_world import put_alert, put_cameras  # tests/ops_world.py: real records through the store API

    put_cameras(store)
    for seq in range(3):
        put_alert(store, camera_id="north-gate", person_id="P-100", seq=seq, crop=b"")


def _operations(app: Any) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [r.ok() for r in schema.get_all_operations()]


def test_every_operation_answers_without_5xx_and_as_its_schema_says(api_world: tuple[Any, str]) -> None:
    """One hypothesis run per operation (schemathesis' own pytest plugin does not work with pytest 9: it reads a
    private ``Function._nodeid``), every failure collected so one bad route does not hide another."""
    app, key = api_world
    headers = {"Authorization": f"Bearer {key}"}
    operations = _operations(app)
    assert len(operations) >= 20, f"expected the whole API in the OpenAPI document, got {len(operations)} operations"
    failures: dict[str, str] = {}
    for op in operations:
        @given(case=op.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
        def run(case: Any) -> None:
            # the alert stream never ends by itself: read what it sends within a second, then validate that
            extra = {"timeout": 1.0} if case.path.endswith("/stream") else {}
            case.call_and_validate(headers=headers, checks=CHECKS, **extra)

        try:
            run()
        except Exception as e:  # a schemathesis FailureGroup or an assertion: keep the first lines
            failures[op.label] = str(e)[:1500]
    assert not failures, "\n\n".join(f"{label}:\n{why}" for label, why in failures.items())
