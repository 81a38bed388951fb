"""The product's decisions as pure functions: is a face usable, does a candidate match, does a sighting alert.

These three rules decide whether an officer is sent to a real person, so they live here, apart from the stage
loops that feed them (lookups, wire building, metrics), and each has a table-driven test
(``tests/unit/test_decisions.py``). The stages call them and nothing else decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Protocol

from argus.errors import ConfigError

#: The margin reported when a probe has a single candidate: distance to −1, the lowest cosine there is, so a
#: lone candidate never looks more ambiguous than a real runner-up would make it.
NO_RUNNER_UP_SCORE = -1.0


# ---- is the face usable? ---------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class QualityFloor:
    """Below either floor a face is not *named*: a 20-pixel or blurred face embeds close to everybody."""

    min_size: float  # shorter side of the face box, pixels
    min_blur: float  # variance of the Laplacian of the aligned crop (higher = sharper)


def face_usable(*, size: float, blur: float, floor: QualityFloor) -> bool:
    """A face at exactly the floor is usable (the floors are documented as "smaller than this is not matched")."""
    return size >= floor.min_size and blur >= floor.min_blur


# ---- does the best candidate match? ------------------------------------------------------------------------------
class Scored(Protocol):
    """What the match rule needs of a gallery candidate (argus.gallery.base.Candidate has it)."""

    @property
    def watchlist(self) -> str: ...

    @property
    def score(self) -> float: ...


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """Cosine thresholds: one per watch-list where configured, else the default.

    The chain, most specific first: a watch-list's spec in the gallery (:meth:`with_overrides`), then
    ``ARGUS_WATCHLIST_THRESHOLDS``, then ``ARGUS_MATCH_THRESHOLD`` when set (non-zero), then the embedder's measured
    default — so a site that configures nothing gets the number that was measured, not a guess, and a threshold an
    operator set on the list itself (audited, in the gallery) wins over the deployment's environment.
    """

    default: float
    per_watchlist: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        bad = {k: v for k, v in {"default": self.default, **self.per_watchlist}.items() if not -1.0 <= v <= 1.0}
        if bad:
            raise ConfigError(f"thresholds: expected cosine values in [-1, 1], got {bad}")
        object.__setattr__(self, "per_watchlist", MappingProxyType(dict(self.per_watchlist)))

    @classmethod
    def from_settings(cls, *, match_threshold: float, watchlist_thresholds: Mapping[str, float],
                      model_default: float) -> Thresholds:
        return cls(default=match_threshold or model_default, per_watchlist=watchlist_thresholds)

    def with_overrides(self, overrides: Mapping[str, float | None]) -> Thresholds:
        """These thresholds with ``overrides`` (watch-list → threshold from the gallery's specs) on top; a None
        override leaves that list on the configured chain."""
        return Thresholds(default=self.default,
                          per_watchlist={**self.per_watchlist,
                                         **{k: float(v) for k, v in overrides.items() if v is not None}})

    def for_watchlist(self, watchlist: str) -> float:
        return self.per_watchlist.get(watchlist, self.default)


def thresholds_in_force(*, model_default: float, match_threshold: float, watchlist_thresholds: Mapping[str, float],
                        gallery_specs: Mapping[str, float | None]) -> Thresholds:
    """The whole chain as one function: gallery spec > ARGUS_WATCHLIST_THRESHOLDS > ARGUS_MATCH_THRESHOLD > model."""
    return Thresholds.from_settings(match_threshold=match_threshold, watchlist_thresholds=watchlist_thresholds,
                                    model_default=model_default).with_overrides(gallery_specs)


@dataclass(frozen=True, kw_only=True)
class MatchVerdict:
    """The best candidate reached its watch-list's threshold; ``margin`` is its lead over the runner-up person."""

    best_index: int
    threshold: float
    margin: float


def decide_match(candidates: Sequence[Scored], thresholds: Thresholds) -> MatchVerdict | None:
    """Match when the best candidate (``candidates`` best first, one per person) reaches the threshold of *its*
    watch-list — a stricter list cannot be matched through a laxer one. A score equal to the threshold matches."""
    if not candidates:
        return None
    best = candidates[0]
    threshold = thresholds.for_watchlist(best.watchlist)
    if best.score < threshold:
        return None
    runner_up = candidates[1].score if len(candidates) > 1 else NO_RUNNER_UP_SCORE
    return MatchVerdict(best_index=0, threshold=threshold, margin=float(best.score - runner_up))


# ---- does negative evidence rule a candidate out? -----------------------------------------------------------------
def discount_negatives(candidates: Sequence[tuple[str, float]],
                       negative_scores: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
    """``candidates`` (person id, cosine) without every person P whose negative evidence the face is at least as
    close to (``negative_scores[P]``: the face's best cosine to P's "not this person" faces) as to P itself.

    An operator said such a face is not P, and this face looks more like that one than like any photo of P, so it
    is evidence for nobody: it neither votes for P nor makes P its runner-up. A tie goes against P ("at least as
    close"): the operator's word on that face is the stronger evidence."""
    return tuple((p, s) for p, s in candidates if p not in negative_scores or negative_scores[p] < s)


# ---- does the sighting open an alert? ----------------------------------------------------------------------------
class AlertAction(str, Enum):
    open = "open"  # a new alert, named by this sighting
    suppress = "suppress"  # inside the cooldown of an earlier alert: kept in the history, no notification
    repeat = "repeat"  # this very sighting opened an alert before (redelivery, replay): emit the same alert again


@dataclass(frozen=True, kw_only=True)
class PriorAlert:
    """An alert already raised for the same (person, camera), by the sighting ``event_id`` captured at ``ts``."""

    ts_capture: float
    event_id: str


def prior_for(priors: Iterable[PriorAlert], ts_capture: float) -> PriorAlert | None:
    """The latest alert captured at or before ``ts_capture``, the only one a sighting is judged against.

    Judging against alerts *before* the sighting (not the newest one known) makes the decision the same on a
    replay as on the first pass, where later alerts did not exist yet; and when a camera's clock jumps back,
    its sightings are judged against what came before them in its own time, so a jump longer than the cooldown
    opens a new alert instead of silencing the camera until its clock catches up."""
    best: PriorAlert | None = None
    for p in priors:
        if p.ts_capture <= ts_capture and (best is None or p.ts_capture >= best.ts_capture):
            best = p
    return best


def decide_alert(*, prior: PriorAlert | None, event_id: str, ts_capture: float, cooldown_s: float) -> AlertAction:
    """One alert per (person, camera) per cooldown window, in capture time.

    - no earlier alert → open;
    - the earlier alert was opened by this very sighting → repeat (at-least-once: the same alert id again, never a
      second one; receivers dedupe on it);
    - the earlier alert is less than ``cooldown_s`` older → suppress; exactly ``cooldown_s`` older → open.
    """
    if cooldown_s < 0:
        raise ConfigError(f"cooldown: expected >= 0 seconds, got {cooldown_s}")
    if prior is None:
        return AlertAction.open
    if prior.event_id == event_id:
        return AlertAction.repeat
    if ts_capture - prior.ts_capture < cooldown_s:
        return AlertAction.suppress
    return AlertAction.open


# ---- does a track name a listed person? ----------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class TrackFace:
    """One embedded face of a track, as the matcher saw it."""

    size: float  # shorter side of the face box, pixels
    weight: float  # argus.tracking.face_score: how fit the face is for identification, in [0, 1]
    candidates: tuple[tuple[str, float], ...]  # (person id, cosine), one per person; cohort ids included


@dataclass(frozen=True, kw_only=True)
class IdentifyRule:
    """What a track needs before it names anybody. Each number was chosen on the generated scenes
    (``python -m argus.trackeval --grid``: 1,296 settings over 18 scenes; README "Tracks and strangers"): with
    0.94, these gave 0 false alerts and 1 missed visit of 16 — min_size 60 missed 3, min_faces 3 missed 9,
    margin 0 let 1 stranger through, margin 0.05 missed 2. The reasons:

    - ``min_size``: a face smaller than this is tracked but never named — small faces embed close to everybody;
    - ``min_faces``: that many identification-grade faces must agree, so one lucky frame never alerts;
    - ``min_margin``: the named person must lead every other candidate — another listed person *or* a cohort face
      (an unrelated person who is not on any list) — by this much: a face close to everybody is evidence for nobody;
    - ``top_k``: the track's score is the mean of the person's best ``top_k`` face scores.
    """

    min_size: float = 40.0
    min_faces: int = 2
    min_margin: float = 0.03
    top_k: int = 3

    def __post_init__(self) -> None:
        if self.min_size < 0 or self.min_faces < 1 or not 0 <= self.min_margin <= 2 or self.top_k < 1:
            raise ConfigError(f"identify rule: expected min_size >= 0, min_faces >= 1, 0 <= min_margin <= 2, "
                              f"top_k >= 1, got {self}")


class TrackOutcome(str, Enum):
    matched = "matched"
    no_usable_face = "no_usable_face"  # every embedded face is below the identification floors
    too_few_faces = "too_few_faces"  # fewer agreeing faces than the rule asks
    below_threshold = "below_threshold"
    ambiguous = "ambiguous"  # the runner-up is too close
    not_listed = "not_listed"  # the closest identity is a cohort face: somebody, but nobody on a list


@dataclass(frozen=True, kw_only=True)
class TrackDecision:
    outcome: TrackOutcome
    person_id: str | None  # the best listed candidate (None when no face was usable)
    score: float  # its track-level score
    threshold: float | None
    margin: float  # over the best other identity, cohort included
    faces: int  # identification-grade faces considered
    supporting: int  # of those, the faces whose own best candidate is ``person_id``

    @property
    def matched(self) -> bool:
        return self.outcome is TrackOutcome.matched


def decide_track(faces: Sequence[TrackFace], *, listed: Mapping[str, str], thresholds: Thresholds,
                 rule: IdentifyRule, camera_threshold: float | None = None) -> TrackDecision:
    """Name a listed person for a whole track, or nobody.

    ``listed`` maps each watch-list person id to its watch-list; any other candidate id is a cohort face. The
    threshold is the person's watch-list threshold, raised to the camera's where the camera sets a stricter one
    (a far or badly lit camera); both must hold.
    """
    usable = [f for f in faces if f.size >= rule.min_size and f.weight > 0 and f.candidates]
    if not usable:
        return TrackDecision(outcome=TrackOutcome.no_usable_face, person_id=None, score=0.0, threshold=None,
                             margin=0.0, faces=0, supporting=0)
    k = min(rule.top_k, len(usable))
    per_face = [dict(f.candidates) for f in usable]
    ids = sorted({p for d in per_face for p in d})
    # mean of each identity's k best scores; a face that does not list the identity counts as -1 (the lowest cosine)
    scores = {p: sum(sorted((d.get(p, NO_RUNNER_UP_SCORE) for d in per_face), reverse=True)[:k]) / k for p in ids}
    ranked = sorted(ids, key=lambda p: (-scores[p], p))
    best = ranked[0]
    margin = scores[best] - (scores[ranked[1]] if len(ranked) > 1 else NO_RUNNER_UP_SCORE)
    supporting = sum(1 for d in per_face if max(d, key=lambda p: (d[p], p)) == best)
    if best not in listed:
        best_listed = next((p for p in ranked if p in listed), None)
        return TrackDecision(outcome=TrackOutcome.not_listed, person_id=best_listed,
                             score=scores[best_listed] if best_listed else 0.0, threshold=None,
                             margin=(scores[best_listed] - scores[best]) if best_listed else 0.0,
                             faces=len(usable), supporting=0)
    threshold = thresholds.for_watchlist(listed[best])
    if camera_threshold is not None:
        threshold = max(threshold, camera_threshold)
    def decided(outcome: TrackOutcome) -> TrackDecision:
        return TrackDecision(outcome=outcome, person_id=best, score=scores[best], threshold=threshold, margin=margin,
                             faces=len(usable), supporting=supporting)

    if scores[best] < threshold:
        return decided(TrackOutcome.below_threshold)
    if supporting < rule.min_faces:
        return decided(TrackOutcome.too_few_faces)
    if margin < rule.min_margin:
        return decided(TrackOutcome.ambiguous)
    return decided(TrackOutcome.matched)
