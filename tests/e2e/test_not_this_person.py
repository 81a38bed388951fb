""""Not this person" on real footage: a stranger falsely named is dismissed once, and the matcher stops naming her.

The demo's clips at a deliberately low threshold (0.80, no margin) make a real false match: the woman on the
station camera is named as the enrolled man (track score ~0.85). An operator dismisses that alert as "not this
person"; her face becomes negative evidence for him. The same footage replayed through a fresh pipeline (new bus,
new store, the same gallery) raises no alert for her, while the man still alerts on both of his own clips.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from argus import operations
from argus.config import Settings, load_settings
from argus.demo import DEMO_CAMERAS, run_demo
from argus.runtime.inprocess import InProcessPipeline
from argus.runtime.resources import Resources
from argus.store.base import AlertFilter

pytestmark = pytest.mark.e2e

LOW = {"match_threshold": 0.80, "identify_min_margin": 0.0}
MAN = "pyfeat-man"
STRANGER_CAMERA = "station-hall"  # shows a woman who is not enrolled
HIS_CAMERAS = {"north-gate", "market-square"}


def _settings(data_dir: Path, gallery: Path) -> Settings:
    return load_settings(data_dir=data_dir, gallery_path=gallery, cameras_file=DEMO_CAMERAS, ingest_queue=10_000,
                         ingest_files_realtime=False, metrics_port=0, sinks=["log"], **LOW)


def _alerts(res: Resources) -> list[tuple[str, str, str]]:
    page = res.store.page_alerts(AlertFilter(), limit=100)
    return sorted((r.alert.person_id, r.alert.camera_id, r.alert.alert_id) for r in page.items)


def test_not_this_person_stops_the_false_match_on_replay_while_the_listed_person_still_alerts(tmp_path: Path) -> None:
    gallery = tmp_path / "gallery"
    first = run_demo(data_dir=tmp_path / "first", settings=_settings(tmp_path / "first", gallery))
    named = {(a["person_id"], a["camera_id"]) for a in first.alerts}
    # the precondition that makes this test mean something: the low threshold really names the stranger
    assert (MAN, STRANGER_CAMERA) in named, f"expected a false match on {STRANGER_CAMERA}, got {sorted(named)}"
    assert {(MAN, c) for c in HIS_CAMERAS} <= named

    with Resources(_settings(tmp_path / "first", gallery), registry=CollectorRegistry()) as res:
        false_alert = next(a for p, c, a in _alerts(res) if p == MAN and c == STRANGER_CAMERA)
        rec = operations.triage_alert(res, false_alert, action="not_this_person", actor="op-anna", role="operator",
                                      reason="a woman; the listed person is a man")
        assert rec.status == "not_this_person"
        assert res.gallery.negatives(MAN).shape[0] == 1
        trail = [r for r in res.store.audit_records() if r.action == "alert.triage"]
        assert trail and trail[-1].subject == MAN and trail[-1].details["alert_id"] == false_alert

    # replay the same footage: fresh bus and store, the same gallery (now holding the negative evidence)
    replay_dir = tmp_path / "replay"
    replay_dir.mkdir()
    with Resources(_settings(replay_dir, gallery), registry=CollectorRegistry()) as res:
        with InProcessPipeline(res) as pipeline:
            pipeline.wait_ingest()
            pipeline.wait_drained()
        replayed = {(p, c) for p, c, _ in _alerts(res)}
    assert (MAN, STRANGER_CAMERA) not in replayed, "the dismissed stranger was named again"
    assert {(MAN, c) for c in HIS_CAMERAS} <= replayed, f"the listed man stopped alerting: {sorted(replayed)}"
