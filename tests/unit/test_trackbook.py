"""The matcher's per-track memory: verdict changes only, no double votes, bounded state."""

from __future__ import annotations

import pytest

from argus.decisions import IdentifyRule, Thresholds, TrackDecision, TrackFace, TrackOutcome
from argus.errors import ConfigError
from argus.trackbook import TrackBook, verdict_changed


def _decision(outcome: TrackOutcome, person: str | None) -> TrackDecision:
    return TrackDecision(outcome=outcome, person_id=person, score=0.95, threshold=0.9, margin=0.1, faces=2,
                         supporting=2)


@pytest.mark.parametrize(("published", "decision", "changed"), [
    (None, _decision(TrackOutcome.matched, "ann"), True),  # first match
    ("ann", _decision(TrackOutcome.matched, "ann"), False),  # same verdict, better score: nothing to publish
    ("ann", _decision(TrackOutcome.matched, "bob"), True),  # better faces name another person
    ("ann", _decision(TrackOutcome.ambiguous, "ann"), True),  # withdrawn
    (None, _decision(TrackOutcome.below_threshold, "ann"), False),  # still nobody
    (None, _decision(TrackOutcome.no_usable_face, None), False),
])
def test_only_a_change_of_the_named_person_is_published(published: str | None, decision: TrackDecision,
                                                        changed: bool):
    assert verdict_changed(published, decision) is changed


def _book(**kw: float) -> TrackBook:
    return TrackBook(rule=IdentifyRule(min_size=60, min_faces=2, min_margin=0.03),
                     thresholds=Thresholds(default=0.9), camera_thresholds={}, **kw)  # type: ignore[arg-type]


def _face(score: float) -> TrackFace:
    return TrackFace(size=90, weight=0.8, candidates=(("ann", score), ("zed", 0.5)))


def test_a_track_is_published_once_when_it_matches_and_its_revision_counts_verdicts():
    book = _book()
    st = book.seen("cam", "cam:1:0", seq=1, face_index=0, ts=100.0)
    assert st is not None
    book.add_face(st, _face(0.95), evidence="f1")
    d, before = book.decide(st, {"ann": "default"})
    assert d.outcome is TrackOutcome.too_few_faces and before is None
    st2 = book.seen("cam", "cam:1:0", seq=2, face_index=0, ts=100.2)
    assert st2 is st
    book.add_face(st, _face(0.96), evidence="f2")
    d, before = book.decide(st, {"ann": "default"})
    assert d.matched and before == "" and st.revision == 1
    assert st.best_evidence == "f1"  # equal weight: the first best face stays the evidence
    book.add_face(st, _face(0.97), evidence="f3")
    assert book.decide(st, {"ann": "default"})[1] is None  # still ann: no new revision
    assert st.revision == 1 and st.faces_seen == 2


def test_the_same_face_delivered_twice_votes_once():
    book = _book()
    assert book.seen("cam", "t", seq=5, face_index=1, ts=1.0) is not None
    assert book.seen("cam", "t", seq=5, face_index=1, ts=1.0) is None  # a retried or isolated batch


def test_state_is_bounded_per_camera_and_ends_with_the_track():
    book = _book(max_tracks=2, idle_s=60.0)
    for i in range(3):
        book.seen("cam", f"t{i}", seq=i, face_index=0, ts=float(i))
    assert len(book) == 2  # the oldest was dropped
    book.end("cam", ["t2"])
    assert len(book) == 1
    book.seen("cam", "late", seq=99, face_index=0, ts=500.0)  # t1 not heard of for > 60 s of capture time
    assert len(book) == 1


def test_impossible_bounds_are_refused():
    with pytest.raises(ConfigError, match="max_tracks"):
        _book(max_tracks=0)
