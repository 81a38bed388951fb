"""Every dashboard expression returns data from a real Prometheus scraping the metrics of a healthy run.

The one-process demo (real clips, real models, the four real stages) fills one registry with every stage's
metrics; it is served on a free port and scraped by the project's dev Prometheus (1 s interval). This catches a
dashboard query on a series that only appears after an error — before the multi-process e2e does. Every metric
the run exports must also be one tools/k8s_check.py knows (its inventory is parsed from the code).

The run has every feature a panel shows switched on: ARGUS_MOTION_GATING (keyframes, detector crops), and next to
the demo's cameras one more replaying a demo clip with a motion_mask over its whole frame, so the gate skips its
frames (argus_ingest_frames_skipped_total{reason="no_motion"}: the real clips always move somewhere).
"""

from __future__ import annotations

import json
import re
import time
import tomllib
from pathlib import Path
from typing import Any

import k8s_check
import pytest
from prometheus_client import CollectorRegistry

from argus import demo
from argus.config import load_settings
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
    data_dir = tmp_path_factory.mktemp("demo")
    settings = load_settings(data_dir=data_dir, cameras_file=_cameras_with_a_masked_one(data_dir.parent),
                             ingest_queue=10_000, ingest_files_realtime=False, metrics_port=0, sinks=["log", "kafka"],
                             motion_gating=True)
    result = demo.run_demo(data_dir=data_dir, settings=settings)
    assert result.frames > 0 and result.alerts, f"expected a healthy demo run with alerts, got {result.as_json()}"
    assert len(made) == 1, f"expected the demo to make one registry, got {len(made)}"
    return made[0]


def _cameras_with_a_masked_one(directory: Path) -> Path:
    """The demo's registry (clip paths made absolute) plus a camera whose motion_mask covers its whole frame."""
    base = demo.DEMO_CAMERAS.parent

    def absolute(m: re.Match[str]) -> str:
        return f"url = {json.dumps(str((base / m.group(1)).resolve()))}"

    text = re.sub(r'^url = "([^"]+)"$', absolute, demo.DEMO_CAMERAS.read_text(), flags=re.MULTILINE)
    clip = tomllib.loads(text)["camera"][-1]["url"]
    text += (f'\n[[camera]]\nid = "masked-yard"\nname = "Masked yard"\nurl = {json.dumps(clip)}\nfps = 5\n'
             "motion_mask = [[[0, 0], [100000, 0], [100000, 100000], [0, 100000]]]\n\n"
             '[camera.location]\nlat = 52.5\nlon = 13.4\naddress = "Yard 1, Berlin"\nzone = "yard"\n')
    path = directory / "cameras-masked.toml"
    path.write_text(text)
    return path


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
