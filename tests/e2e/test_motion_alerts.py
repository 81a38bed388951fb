"""Motion gating loses no alert (issue 12): a generated scene with a listed person's visit, through ingest's gate
and the real inference, matcher and alerter processors twice in lockstep — per-frame (gating off) and gated
(keyframes + crops around motion and tracks) — raises every per-frame alert with gating too, misses no listed
visit and names nobody wrongly. The same harness measures the capacity in ``argus bench --only motion``."""

from __future__ import annotations

from pathlib import Path

import pytest

from argus.scenes import listed_pass_once
from bench.motion import no_alert_lost, run_scene


@pytest.mark.e2e
def test_gating_raises_the_same_alerts_and_misses_no_visit_of_a_listed_person(tmp_path: Path) -> None:
    scene = listed_pass_once(seed=0)
    (visit,) = [v for v in scene.visits if v.identity in scene.subjects]
    reps = run_scene(scene, tmp_path, stop=visit.last_frame + 3)  # the subject's whole pass, not the strangers'
    base, gated = reps["per_frame"], reps["gated"]
    assert gated.listed_visits == 1 and gated.missed_visits == 0, gated.as_dict()
    assert (visit.identity, visit.visit_id) in gated.alerts
    assert no_alert_lost(base, gated), (base.alerts, gated.alerts)
    assert gated.published < base.published and gated.detector_pixels < base.detector_pixels  # and it saved work
