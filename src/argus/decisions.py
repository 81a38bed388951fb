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

    ``from_settings`` resolves the default: ``ARGUS_MATCH_THRESHOLD`` when set (non-zero), else the embedder's
    measured default — so a site that configures nothing gets the number that was measured, not a guess.
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

    def for_watchlist(self, watchlist: str) -> float:
        return self.per_watchlist.get(watchlist, self.default)


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
