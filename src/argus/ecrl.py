"""ECRL — the Emotion Classification Regular Library of paper 002 (ECCNN + ECRL): rules on facial-landmark
geometry that confirm or correct the CNN's emotion.

The paper names three geometric features and a decision strategy; it gives no thresholds. The features are
computed here from MediaPipe FaceMesh's 468 points (``argus.faces.mesh``), normalised by the face's own size, and
— where a track has one — taken relative to the person's own neutral baseline, because brows sit at different
heights on different faces. The rules are Ekman's FACS action units written as thresholds on those features; the
thresholds are starting values reasoned from FACS and the feature ranges on the repository's real faces, **not**
measured on a labelled data set (none can be installed here: see README "Emotion"). Each rule says which action
units it stands for.

Features (paper 002, eqs. 8-10):
- eyebrow relative position: mean brow-to-upper-eyelid height over face height (raised brows: AU1+AU2);
- eyebrow width ratio: total brow width over face width (brows drawn together: AU4 makes it smaller);
- mouth curvature: (mouth centre line − mean corner height) / |mouth width|, positive when the corners are above
  the centre (AU12, a smile), negative when below (AU15, a frown). Image y grows downwards.

Decision strategy, exactly as the paper: the CNN's neutral / happy / surprise are accepted as they are; its angry,
fear, disgust and sad are checked by the rules — agreement confirms, disagreement keeps the CNN's label — except
disgust, where the rules win. Every result records the path that decided it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from argus.errors import InputError
from argus.faces.types import EMOTIONS, check_array

MESH_POINTS = 468
# MediaPipe FaceMesh indices ("right" = the person's right, on the image's left)
FACE_LEFT, FACE_RIGHT, FACE_TOP, FACE_BOTTOM = 234, 454, 10, 152
RIGHT_BROW = (70, 63, 105, 66, 107)
LEFT_BROW = (336, 296, 334, 293, 300)
RIGHT_UPPER_LID, LEFT_UPPER_LID = 159, 386
MOUTH_RIGHT, MOUTH_LEFT, UPPER_LIP, LOWER_LIP = 61, 291, 13, 14

ACCEPTED = frozenset({"neutral", "happy", "surprise"})  # the CNN's strong classes: no second opinion
CHECKED = frozenset({"angry", "fear", "disgust", "sad"})


@dataclass(frozen=True, kw_only=True)
class Features:
    """The paper's three features for one face (dimensionless, face-size normalised)."""

    brow_height: float
    brow_width: float
    mouth_curvature: float

    def relative_to(self, baseline: Features | None) -> Features:
        """Changes against the person's neutral face along a track; the absolute values when there is none."""
        if baseline is None:
            return self
        return Features(brow_height=self.brow_height - baseline.brow_height,
                        brow_width=self.brow_width - baseline.brow_width,
                        mouth_curvature=self.mouth_curvature - baseline.mouth_curvature)


def features(mesh: np.ndarray) -> Features:
    """The three features from one face's mesh, (468, 2) or (468, 3) in any pixel scale."""
    m = np.asarray(mesh, np.float64)
    check_array("mesh", m, (MESH_POINTS, None))
    if m.shape[1] not in (2, 3) or not np.all(np.isfinite(m)):
        raise InputError(f"mesh: expected finite (468, 2|3) points, got shape {m.shape}")
    xy = m[:, :2]
    face_w = float(np.linalg.norm(xy[FACE_RIGHT] - xy[FACE_LEFT]))
    face_h = float(np.linalg.norm(xy[FACE_BOTTOM] - xy[FACE_TOP]))
    if face_w < 1e-6 or face_h < 1e-6:
        raise InputError(f"mesh: expected a face with extent, got width {face_w:.3g} and height {face_h:.3g}")
    brow_h = (float(np.mean(xy[RIGHT_UPPER_LID, 1] - xy[list(RIGHT_BROW), 1]))
              + float(np.mean(xy[LEFT_UPPER_LID, 1] - xy[list(LEFT_BROW), 1]))) / 2
    brow_w = (abs(xy[RIGHT_BROW[0], 0] - xy[RIGHT_BROW[-1], 0]) + abs(xy[LEFT_BROW[0], 0] - xy[LEFT_BROW[-1], 0]))
    mouth_w = abs(float(xy[MOUTH_LEFT, 0] - xy[MOUTH_RIGHT, 0]))
    if mouth_w < 1e-6:
        raise InputError("mesh: expected a mouth with width, got the two corners on one point")
    centre = (xy[UPPER_LIP, 1] + xy[LOWER_LIP, 1]) / 2
    corners = (xy[MOUTH_LEFT, 1] + xy[MOUTH_RIGHT, 1]) / 2
    return Features(brow_height=brow_h / face_h, brow_width=float(brow_w) / face_w,
                    mouth_curvature=float(centre - corners) / mouth_w)


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """Rule thresholds on the features *relative to a neutral baseline* (absolute-mode values below). Starting
    values, not measurements: see the module docstring."""

    smile: float = 0.06  # AU12: corners this far above the centre line (in mouth widths) is a smile
    frown: float = -0.04  # AU15: corners below the centre line
    brow_raise: float = 0.015  # AU1+AU2: brows up by 1.5 % of the face height
    brow_lower: float = -0.01  # AU4: brows down
    brows_together: float = -0.02  # AU4: the two brows 2 % of the face width narrower


#: The neutral reference when a track has no baseline of its own: the median features of the repository's real faces
#: that mini-Xception calls neutral with p >= 0.6 (7 faces among 57 from assets/: stills, strangers and clip frames;
#: FaceMesh on MTCNN boxes). Interquartile ranges: brow height 0.085-0.109, brow width 0.564-0.622, curvature
#: 0.014-0.077; the 31 faces called happy with p >= 0.6 have a median curvature of 0.111 (smile threshold: 0.098).
TYPICAL_NEUTRAL = Features(brow_height=0.0964, brow_width=0.602, mouth_curvature=0.0377)


def rules_verdict(change: Features, t: Thresholds | None = None) -> str | None:
    """The emotion the geometry supports among the checked ones (or ``None``: the rules cannot say).

    - sad: AU15 (corners down) with brows not raised — FACS sadness is AU1+AU4+AU15; inner-brow raise is too
      subtle for these features, so the frown carries it;
    - disgust: AU4 brows drawn together while the corners go down (AU10/AU15 raise the upper lip and depress the
      corners) and the brows are *not* raised;
    - angry: AU4 brows lowered and drawn together, mouth flat (AU23/24 press the lips: no curve either way);
    - fear: AU1+AU2 raised brows with AU4 drawing them together (the fear brow), mouth not smiling.
    """
    t = t or Thresholds()
    raised = change.brow_height >= t.brow_raise
    lowered = change.brow_height <= t.brow_lower
    together = change.brow_width <= t.brows_together
    frown = change.mouth_curvature <= t.frown
    smile = change.mouth_curvature >= t.smile
    if raised and together and not smile:
        return "fear"
    if lowered and together and not frown and not smile:
        return "angry"
    if together and frown and not raised:
        return "disgust"
    if frown and not raised:
        return "sad"
    return None


class Path(str, Enum):
    cnn = "cnn"  # a class the CNN is trusted on: accepted without rules
    confirmed = "cnn+rules"  # the rules agree with the CNN
    cnn_kept = "cnn, rules disagreed"  # the rules disagree (or cannot say); the CNN is kept
    rules = "rules"  # disgust: the rules win over the CNN


@dataclass(frozen=True, kw_only=True)
class Verdict:
    label: str
    path: Path
    cnn: str
    rules: str | None


def decide(cnn_label: str, rules_label: str | None) -> Verdict:
    """Paper 002's decision strategy (its Fig. 6)."""
    if cnn_label not in EMOTIONS:
        raise InputError(f"cnn label: expected one of {', '.join(EMOTIONS)}, got {cnn_label!r}")
    if rules_label is not None and rules_label not in CHECKED:
        raise InputError(f"rules label: expected one of {', '.join(sorted(CHECKED))} or None, got {rules_label!r}")
    if cnn_label in ACCEPTED:
        return Verdict(label=cnn_label, path=Path.cnn, cnn=cnn_label, rules=None)
    if rules_label == cnn_label:
        return Verdict(label=cnn_label, path=Path.confirmed, cnn=cnn_label, rules=rules_label)
    if rules_label is not None and "disgust" in (rules_label, cnn_label):
        return Verdict(label=rules_label, path=Path.rules, cnn=cnn_label, rules=rules_label)
    return Verdict(label=cnn_label, path=Path.cnn_kept, cnn=cnn_label, rules=rules_label)


def classify(cnn_label: str, mesh: np.ndarray, *, baseline: Features | None = None,
             thresholds: Thresholds | None = None) -> Verdict:
    """The CNN's label, confirmed or corrected by the rules on this face's mesh (relative to ``baseline``, the
    person's neutral features along the track, else to :data:`TYPICAL_NEUTRAL`)."""
    if cnn_label in ACCEPTED:
        return decide(cnn_label, None)  # no mesh needed: the paper skips the rules for these
    change = features(mesh).relative_to(baseline or TYPICAL_NEUTRAL)
    return decide(cnn_label, rules_verdict(change, thresholds))
