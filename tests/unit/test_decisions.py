"""The product's three decisions, one table each: usable face, match, alert opening."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from argus.decisions import (
    NO_RUNNER_UP_SCORE,
    AlertAction,
    IdentifyRule,
    PriorAlert,
    QualityFloor,
    Thresholds,
    TrackFace,
    TrackOutcome,
    decide_alert,
    decide_match,
    decide_track,
    discount_negatives,
    face_usable,
    prior_for,
    thresholds_in_force,
)
from argus.errors import ConfigError
from argus.faces.embedder import DEFAULT_MATCH_THRESHOLD
from argus.gallery.base import Candidate

FLOOR = QualityFloor(min_size=40.0, min_blur=15.0)


@pytest.mark.parametrize(("size", "blur", "usable"), [
    (80.0, 100.0, True),  # large and sharp
    (40.0, 15.0, True),  # exactly at both floors: usable
    (39.9, 100.0, False),  # a pixel too small
    (200.0, 14.9, False),  # large but blurred
    (20.0, 5.0, False),  # both below
])
def test_a_face_is_usable_only_at_or_above_both_floors(size: float, blur: float, usable: bool):
    assert face_usable(size=size, blur=blur, floor=FLOOR) is usable


def _cand(person: str, watchlist: str, score: float) -> Candidate:
    return Candidate(person_id=person, display_name=person.title(), watchlist=watchlist, score=score)


THRESHOLDS = Thresholds(default=0.90, per_watchlist={"vip": 0.95, "lax": 0.80})


@pytest.mark.parametrize(("candidates", "matched", "threshold", "margin"), [
    ([], False, None, None),  # an empty gallery matches nobody
    ([_cand("ann", "default", 0.93), _cand("bob", "default", 0.71)], True, 0.90, 0.93 - 0.71),
    ([_cand("ann", "default", 0.90)], True, 0.90, 0.90 - NO_RUNNER_UP_SCORE),  # equal to the threshold matches
    ([_cand("ann", "default", 0.8999)], False, None, None),  # just below
    ([_cand("vic", "vip", 0.93), _cand("ann", "default", 0.5)], False, None, None),  # the vip list is stricter
    ([_cand("vic", "vip", 0.96)], True, 0.95, 0.96 - NO_RUNNER_UP_SCORE),
    ([_cand("lou", "lax", 0.85)], True, 0.80, 0.85 - NO_RUNNER_UP_SCORE),  # a laxer list uses its own threshold
    # the best candidate decides: a lax-list runner-up above its threshold does not rescue a vip miss
    ([_cand("vic", "vip", 0.94), _cand("lou", "lax", 0.93)], False, None, None),
])
def test_a_match_needs_the_best_candidate_to_reach_its_own_watchlists_threshold(
        candidates: list[Candidate], matched: bool, threshold: float | None, margin: float | None):
    verdict = decide_match(candidates, THRESHOLDS)
    assert (verdict is not None) is matched
    if verdict is not None:
        assert verdict.best_index == 0
        assert verdict.threshold == threshold
        assert verdict.margin == pytest.approx(margin)


@pytest.mark.parametrize(("configured", "per_watchlist", "watchlist", "expected"), [
    (0.0, {}, "default", DEFAULT_MATCH_THRESHOLD),  # nothing configured: the embedder's measured default
    (0.85, {}, "default", 0.85),  # ARGUS_MATCH_THRESHOLD
    (0.85, {"vip": 0.97}, "vip", 0.97),  # ARGUS_WATCHLIST_THRESHOLDS wins for its list
    (0.85, {"vip": 0.97}, "other", 0.85),
    (0.0, {"vip": 0.97}, "other", DEFAULT_MATCH_THRESHOLD),
])
def test_the_threshold_is_per_watchlist_then_configured_then_the_measured_default(
        configured: float, per_watchlist: dict[str, float], watchlist: str, expected: float):
    t = Thresholds.from_settings(match_threshold=configured, watchlist_thresholds=per_watchlist,
                                 model_default=DEFAULT_MATCH_THRESHOLD)
    assert t.for_watchlist(watchlist) == expected


def test_thresholds_outside_cosine_range_are_refused():
    with pytest.raises(ConfigError, match="vip"):
        Thresholds(default=0.9, per_watchlist={"vip": 1.5})


COOLDOWN = 60.0
T = 1_700_000_000.0


@dataclass(frozen=True)
class AlertCase:
    name: str
    prior: PriorAlert | None
    event_id: str
    ts: float
    expected: AlertAction


ALERT_CASES = [
    AlertCase("first sighting", None, "cam:1:0", T, AlertAction.open),
    AlertCase("inside the cooldown", PriorAlert(ts_capture=T, event_id="cam:1:0"), "cam:2:0", T + 59.9,
              AlertAction.suppress),
    AlertCase("exactly at the cooldown", PriorAlert(ts_capture=T, event_id="cam:1:0"), "cam:2:0", T + COOLDOWN,
              AlertAction.open),
    AlertCase("after the cooldown", PriorAlert(ts_capture=T, event_id="cam:1:0"), "cam:2:0", T + 600,
              AlertAction.open),
    AlertCase("the opening sighting redelivered", PriorAlert(ts_capture=T, event_id="cam:1:0"), "cam:1:0", T,
              AlertAction.repeat),
    AlertCase("a second face in the same frame", PriorAlert(ts_capture=T, event_id="cam:1:0"), "cam:1:1", T,
              AlertAction.suppress),
]


@pytest.mark.parametrize("case", ALERT_CASES, ids=[c.name for c in ALERT_CASES])
def test_a_sighting_opens_suppresses_or_repeats_an_alert(case: AlertCase):
    assert decide_alert(prior=case.prior, event_id=case.event_id, ts_capture=case.ts,
                        cooldown_s=COOLDOWN) is case.expected


def test_a_zero_cooldown_alerts_on_every_new_sighting_and_a_negative_one_is_refused():
    prior = PriorAlert(ts_capture=T, event_id="cam:1:0")
    assert decide_alert(prior=prior, event_id="cam:1:1", ts_capture=T, cooldown_s=0) is AlertAction.open
    with pytest.raises(ConfigError, match="cooldown"):
        decide_alert(prior=prior, event_id="cam:1:1", ts_capture=T, cooldown_s=-1)


PRIORS = [PriorAlert(ts_capture=T, event_id="a"), PriorAlert(ts_capture=T + 100, event_id="b"),
          PriorAlert(ts_capture=T + 200, event_id="c")]


@pytest.mark.parametrize(("ts", "expected"), [
    (T - 1, None),  # before every alert
    (T, "a"),  # inclusive
    (T + 150, "b"),  # the latest *before* the sighting, not the newest known
    (T + 10_000, "c"),
])
def test_a_sighting_is_judged_against_the_latest_alert_before_it(ts: float, expected: str | None):
    p = prior_for(reversed(PRIORS), ts)  # order of the input does not matter
    assert (p.event_id if p is not None else None) == expected


def _run(sightings: list[tuple[str, float]], priors: list[PriorAlert] | None = None) -> list[AlertAction]:
    """The alerter's loop in miniature: judge each sighting by the alerts before it, remember what opened."""
    known = list(priors or [])
    out = []
    for event, ts in sightings:
        action = decide_alert(prior=prior_for(known, ts), event_id=event, ts_capture=ts, cooldown_s=COOLDOWN)
        if action is AlertAction.open:
            known.append(PriorAlert(ts_capture=ts, event_id=event))
        out.append(action)
    return out


def test_a_replay_after_a_crash_decides_exactly_as_the_first_pass():
    sightings = [("e0", T), ("e40", T + 40), ("e70", T + 70), ("e100", T + 100), ("e140", T + 140)]
    first = _run(sightings)
    assert first == [AlertAction.open, AlertAction.suppress, AlertAction.open, AlertAction.suppress,
                     AlertAction.open]
    # the store already holds every alert of the first pass when the batch from e40 on is redelivered
    stored = [PriorAlert(ts_capture=ts, event_id=e) for (e, ts), a in zip(sightings, first, strict=True)
              if a is AlertAction.open]
    replay = _run(sightings[1:], stored)
    assert replay == [AlertAction.suppress, AlertAction.repeat, AlertAction.suppress, AlertAction.repeat]


def test_a_camera_clock_jumping_back_past_the_cooldown_opens_a_new_alert_instead_of_silencing_the_camera():
    # an alert at T+3600, then the camera's clock is stepped back an hour
    actions = _run([("late", T + 3600), ("after-jump", T + 5), ("after-jump-2", T + 20)])
    assert actions == [AlertAction.open, AlertAction.open, AlertAction.suppress]


# ---- per-track identification -----------------------------------------------------------------------------------
RULE = IdentifyRule(min_size=60.0, min_faces=2, min_margin=0.03, top_k=3)
LISTED = {"ann": "default", "vic": "vip"}


def _faces(*rows: tuple[float, dict[str, float]]) -> list[TrackFace]:
    return [TrackFace(size=size, weight=0.8, candidates=tuple(c.items())) for size, c in rows]


@dataclass(frozen=True)
class TrackCase:
    name: str
    faces: list[TrackFace]
    outcome: TrackOutcome
    person: str | None = None
    camera_threshold: float | None = None


TRACK_CASES = [
    TrackCase("two agreeing large faces", _faces((90, {"ann": 0.95, "bob-cohort": 0.80}),
                                                 (85, {"ann": 0.94, "bob-cohort": 0.79})), TrackOutcome.matched, "ann"),
    TrackCase("one lucky frame is not enough", _faces((90, {"ann": 0.95, "bob-cohort": 0.8})),
              TrackOutcome.too_few_faces, "ann"),
    TrackCase("45-px faces are tracked, not named", _faces((45, {"ann": 0.97}), (50, {"ann": 0.96})),
              TrackOutcome.no_usable_face),
    TrackCase("a face at exactly the size floor counts", _faces((60, {"ann": 0.95}), (60, {"ann": 0.95})),
              TrackOutcome.matched, "ann"),
    TrackCase("below the threshold", _faces((90, {"ann": 0.89}), (90, {"ann": 0.88})),
              TrackOutcome.below_threshold, "ann"),
    TrackCase("a stranger close to two listed people", _faces((90, {"ann": 0.93, "vic": 0.92}),
                                                              (90, {"ann": 0.93, "vic": 0.92})),
              TrackOutcome.ambiguous, "ann"),
    TrackCase("closest to a cohort face: nobody on a list", _faces((90, {"zed": 0.95, "ann": 0.93}),
                                                                   (90, {"zed": 0.95, "ann": 0.92})),
              TrackOutcome.not_listed, "ann"),
    TrackCase("a listed face that also resembles a cohort face by less than the margin",
              _faces((90, {"ann": 0.95, "zed": 0.94}), (90, {"ann": 0.95, "zed": 0.93})), TrackOutcome.ambiguous,
              "ann"),
    TrackCase("the vip list's own threshold", _faces((90, {"vic": 0.93}), (90, {"vic": 0.93})),
              TrackOutcome.below_threshold, "vic"),
    TrackCase("a camera stricter than the list", _faces((90, {"ann": 0.93}), (90, {"ann": 0.93})),
              TrackOutcome.below_threshold, "ann", camera_threshold=0.95),
    TrackCase("the best three faces decide, not a bad one", _faces((90, {"ann": 0.95}), (90, {"ann": 0.96}),
                                                                   (90, {"ann": 0.94}), (70, {"ann": 0.60})),
              TrackOutcome.matched, "ann"),
]


@pytest.mark.parametrize("case", TRACK_CASES, ids=[c.name for c in TRACK_CASES])
def test_a_track_names_a_listed_person_only_on_enough_clear_evidence(case: TrackCase):
    d = decide_track(case.faces, listed=LISTED, thresholds=THRESHOLDS, rule=RULE,
                     camera_threshold=case.camera_threshold)
    assert d.outcome is case.outcome
    assert d.person_id == case.person
    assert d.matched is (case.outcome is TrackOutcome.matched)


def test_a_track_score_is_the_mean_of_the_persons_best_faces_and_the_margin_counts_cohort_faces():
    d = decide_track(_faces((90, {"ann": 0.96, "zed": 0.90}), (90, {"ann": 0.94, "zed": 0.91}),
                            (90, {"ann": 0.92, "zed": 0.89}), (90, {"ann": 0.70, "zed": 0.60})),
                     listed=LISTED, thresholds=THRESHOLDS, rule=RULE)
    assert d.score == pytest.approx((0.96 + 0.94 + 0.92) / 3)
    assert d.margin == pytest.approx(d.score - (0.91 + 0.90 + 0.89) / 3)
    assert (d.faces, d.supporting) == (4, 4)


def test_an_identify_rule_with_impossible_numbers_is_refused():
    with pytest.raises(ConfigError, match="identify rule"):
        IdentifyRule(min_faces=0)


# ---- the threshold chain: gallery spec > ARGUS_WATCHLIST_THRESHOLDS > ARGUS_MATCH_THRESHOLD > model default -------
@pytest.mark.parametrize(("match", "env", "specs", "watchlist", "expected"), [
    (0.0, {}, {}, "vip", 0.91),  # nothing configured: the model's measured default
    (0.8, {}, {}, "vip", 0.8),  # ARGUS_MATCH_THRESHOLD beats the model default
    (0.8, {"vip": 0.85}, {}, "vip", 0.85),  # ARGUS_WATCHLIST_THRESHOLDS beats ARGUS_MATCH_THRESHOLD
    (0.8, {"vip": 0.85}, {"vip": 0.97}, "vip", 0.97),  # the gallery's spec beats the environment
    (0.0, {}, {"vip": 0.97}, "vip", 0.97),  # ... and the model default
    (0.8, {"vip": 0.85}, {"vip": None}, "vip", 0.85),  # a spec without a threshold leaves the env chain in force
    (0.8, {"vip": 0.85}, {"banned": 0.97}, "vip", 0.85),  # another list's spec changes nothing for this one
    (0.8, {"vip": 0.85}, {"banned": 0.97}, "default", 0.8),
    (0.0, {}, {"vip": -1.0}, "vip", -1.0),  # the range's ends are thresholds too
])
def test_the_threshold_chain_is_spec_then_env_watchlist_then_env_default_then_model(
        match: float, env: dict[str, float], specs: dict[str, float | None], watchlist: str, expected: float):
    t = thresholds_in_force(model_default=0.91, match_threshold=match, watchlist_thresholds=env, gallery_specs=specs)
    assert t.for_watchlist(watchlist) == pytest.approx(expected)


def test_an_override_outside_the_cosine_range_is_refused():
    with pytest.raises(ConfigError, match=r"expected cosine values in \[-1, 1\], got \{'vip': 1.5\}"):
        Thresholds(default=0.9).with_overrides({"vip": 1.5})


# ---- negative evidence -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("candidates", "negatives", "kept"), [
    ((("ann", 0.95), ("bob", 0.5)), {}, ("ann", "bob")),  # no evidence: unchanged
    ((("ann", 0.95), ("bob", 0.5)), {"ann": 0.97}, ("bob",)),  # closer to "not ann" than to ann: ann is out
    ((("ann", 0.95), ("bob", 0.5)), {"ann": 0.95}, ("bob",)),  # a tie goes against ann ("at least as close")
    ((("ann", 0.95), ("bob", 0.5)), {"ann": 0.94}, ("ann", "bob")),  # closer to ann: the evidence does not apply
    ((("ann", 0.95), ("bob", 0.5)), {"bob": 0.6}, ("ann",)),  # the runner-up can be ruled out too
    ((("ann", 0.95),), {"zed": 0.99}, ("ann",)),  # evidence about someone not among the candidates: ignored
    ((), {"ann": 0.99}, ()),
])
def test_a_candidate_the_face_is_no_closer_to_than_to_its_negatives_is_dropped(
        candidates: tuple[tuple[str, float], ...], negatives: dict[str, float], kept: tuple[str, ...]):
    out = discount_negatives(candidates, negatives)
    assert tuple(p for p, _ in out) == kept
    assert all(dict(candidates)[p] == s for p, s in out)  # scores and order untouched


def test_a_face_discounted_for_a_person_neither_votes_for_them_nor_makes_them_the_runner_up():
    rule = IdentifyRule(min_size=40, min_faces=2, min_margin=0.03)
    t = Thresholds(default=0.9)
    listed = {"ann": "default", "bob": "default"}
    # bob's faces: each is bob at 0.95, but ann's look-alike at 0.94 makes it ambiguous ...
    raw = [TrackFace(size=90, weight=0.8, candidates=(("bob", 0.95), ("ann", 0.94))) for _ in range(2)]
    assert decide_track(raw, listed=listed, thresholds=t, rule=rule).outcome is TrackOutcome.ambiguous
    # ... until an operator's "not ann" evidence near these faces rules ann out: bob is named
    clean = [TrackFace(size=90, weight=0.8, candidates=discount_negatives(f.candidates, {"ann": 0.96}))
             for f in raw]
    d = decide_track(clean, listed=listed, thresholds=t, rule=rule)
    assert (d.outcome, d.person_id, d.margin) == (TrackOutcome.matched, "bob", pytest.approx(0.95 + 1.0))
