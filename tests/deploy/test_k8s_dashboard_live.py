"""Every dashboard expression returns data from a real Prometheus scraping the metrics of a healthy run.

The one-process demo (real clips, real models, the four real stages) fills one registry with every stage's
metrics; it is served on a free port and scraped by the project's dev Prometheus (1 s interval). This catches a
dashboard query on a series that only appears after an error — before the multi-process e2e does. Every metric
the run exports must also be one tools/k8s_check.py knows (its inventory is parsed from the code).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import k8s_check
import pytest
from prometheus_client import CollectorRegistry

from argus import demo
from argus.runtime.http import Health, OpsServer
from argus_dev.devservers import Endpoint
from argus_dev.devservers.prometheus import configure, query

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo_registry(tmp_path_factory: pytest.TempPathFactory, monkeypatch_module: pytest.MonkeyPatch
                  ) -> CollectorRegistry:
    made: list[CollectorRegistry] = []

    def registry() -> CollectorRegistry:
        made.append(CollectorRegistry())
        return made[-1]

    monkeypatch_module.setattr(demo, "CollectorRegistry", registry)
    result = demo.run_demo(data_dir=tmp_path_factory.mktemp("demo"))
    assert result.frames > 0 and result.alerts, f"expected a healthy demo run with alerts, got {result.as_json()}"
    assert len(made) == 1, f"expected the demo to make one registry, got {len(made)}"
    return made[0]


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_exported_metrics_are_all_known_to_the_checker(demo_registry: CollectorRegistry) -> None:
    exported = {s.name for fam in demo_registry.collect() for s in fam.samples if not s.name.endswith("_created")}
    assert exported, "expected the demo to export metrics, got none"
    assert exported - k8s_check.known_metrics() == set()


def test_every_dashboard_expression_returns_data(demo_registry: CollectorRegistry, prometheus_server: Endpoint,
                                                  devservers_state_dir: Path) -> None:
    ops = OpsServer(port=0, registry=demo_registry, health=Health(), host="127.0.0.1").start()
    try:
        configure({"argus-demo": [f"127.0.0.1:{ops.port}"]}, state_dir=devservers_state_dir)
        exprs = [e for _, e in k8s_check.dashboard_exprs(json.loads(k8s_check.DASHBOARD.read_text()))]
        deadline = time.monotonic() + 60
        empty = exprs
        while empty and time.monotonic() < deadline:
            time.sleep(2)
            empty = [e for e in empty if not query(e, base_url=prometheus_server.address)]
        assert empty == [], f"expected data for every dashboard expression, got none for {empty}"
    finally:
        ops.stop()
