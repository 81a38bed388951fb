"""Paper 002's ECRL: the three features on hand-made meshes, the rules, and the decision strategy as a table."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from argus import ecrl
from argus.ecrl import Features, Path, Thresholds, decide, features, rules_verdict
from argus.errors import InputError
from argus.faces.types import EMOTIONS


def _mesh(*, smile: float = 0.0, brow_up: float = 0.0, brows_in: float = 0.0) -> np.ndarray:
    """A 200 x 240 px face: every point at the centre, then the ones the features read, moved by the arguments
    (pixels: ``smile`` lifts the mouth corners, ``brow_up`` raises the brows, ``brows_in`` narrows each brow)."""
    m = np.full((468, 2), (100.0, 120.0))
    m[ecrl.FACE_LEFT], m[ecrl.FACE_RIGHT] = (0, 120), (200, 120)
    m[ecrl.FACE_TOP], m[ecrl.FACE_BOTTOM] = (100, 0), (100, 240)
    for brow, x0, x1 in ((ecrl.RIGHT_BROW, 40, 90), (ecrl.LEFT_BROW, 160, 110)):
        step = np.sign(x1 - x0) * brows_in / 2
        for i, x in zip(brow, np.linspace(x0 + step, x1 - step, len(brow)), strict=True):
            m[i] = (x, 80 - brow_up)
    m[ecrl.RIGHT_UPPER_LID], m[ecrl.LEFT_UPPER_LID] = (65, 98), (135, 98)
    m[ecrl.UPPER_LIP], m[ecrl.LOWER_LIP] = (100, 178), (100, 186)
    m[ecrl.MOUTH_RIGHT], m[ecrl.MOUTH_LEFT] = (70, 182 - smile), (130, 182 - smile)
    return m


def test_a_smile_curves_the_mouth_up_and_a_frown_down():
    assert features(_mesh(smile=6)).mouth_curvature == pytest.approx(6 / 60)
    assert features(_mesh(smile=-6)).mouth_curvature == pytest.approx(-6 / 60)
    assert features(_mesh()).mouth_curvature == pytest.approx(0.0)


def test_raised_brows_raise_the_relative_position_and_drawn_brows_shrink_the_width_ratio():
    neutral, raised, drawn = features(_mesh()), features(_mesh(brow_up=6)), features(_mesh(brows_in=8))
    assert neutral.brow_height == pytest.approx(18 / 240)
    assert raised.brow_height == pytest.approx(24 / 240) and raised.brow_width == pytest.approx(neutral.brow_width)
    assert neutral.brow_width == pytest.approx(100 / 200) and drawn.brow_width == pytest.approx(84 / 200)


def test_features_do_not_depend_on_the_face_size_in_pixels():
    a, b = features(_mesh(smile=4, brow_up=3)), features(_mesh(smile=4, brow_up=3) * 2.5)
    assert (a.brow_height, a.brow_width, a.mouth_curvature) == pytest.approx(
        (b.brow_height, b.brow_width, b.mouth_curvature))


@pytest.mark.parametrize("bad", [np.zeros((468, 4)), np.zeros((10, 2)), np.full((468, 2), np.nan), np.zeros((468, 2))])
def test_a_mesh_that_is_not_a_face_is_refused(bad):
    with pytest.raises(InputError, match="mesh"):
        features(bad)


T = Thresholds()


@pytest.mark.parametrize(("change", "expected"), [
    (Features(brow_height=0.0, brow_width=0.0, mouth_curvature=0.0), None),  # neutral: nothing to say
    (Features(brow_height=0.0, brow_width=0.0, mouth_curvature=-0.08), "sad"),  # AU15
    (Features(brow_height=-0.02, brow_width=-0.03, mouth_curvature=0.0), "angry"),  # AU4 lowered, together
    (Features(brow_height=0.0, brow_width=-0.03, mouth_curvature=-0.08), "disgust"),  # AU4 + corners down
    (Features(brow_height=0.03, brow_width=-0.03, mouth_curvature=0.0), "fear"),  # AU1+2 with AU4
    (Features(brow_height=0.03, brow_width=0.0, mouth_curvature=0.0), None),  # raised only: surprise, not checked
    (Features(brow_height=0.0, brow_width=0.0, mouth_curvature=0.1), None),  # a smile is no negative emotion
])
def test_each_rule_fires_on_its_action_units(change: Features, expected: str | None):
    assert rules_verdict(change, T) == expected


CNN_NEGATIVE = ("angry", "fear", "disgust", "sad")


def _expected(cnn: str, rules: str | None) -> tuple[str, Path]:
    if cnn in ("neutral", "happy", "surprise"):
        return cnn, Path.cnn
    if rules == cnn:
        return cnn, Path.confirmed
    if rules is not None and "disgust" in (cnn, rules):
        return rules, Path.rules
    return cnn, Path.cnn_kept


@pytest.mark.parametrize(("cnn", "rules"), list(itertools.product(EMOTIONS, (None, *CNN_NEGATIVE))))
def test_the_decision_strategy_for_every_cnn_label_and_rules_verdict(cnn: str, rules: str | None):
    v = decide(cnn, rules)
    assert (v.label, v.path) == _expected(cnn, rules)
    assert v.cnn == cnn


@pytest.mark.parametrize(("cnn", "rules", "label", "path"), [
    ("happy", "sad", "happy", Path.cnn),  # a trusted class is never second-guessed
    ("sad", "sad", "sad", Path.confirmed),
    ("sad", "angry", "sad", Path.cnn_kept),  # disagreement keeps the CNN
    ("sad", "disgust", "disgust", Path.rules),  # ... except disgust: the rules win
    ("disgust", "sad", "sad", Path.rules),
    ("disgust", None, "disgust", Path.cnn_kept),  # rules that cannot say win nothing
])
def test_the_papers_examples(cnn: str, rules: str | None, label: str, path: Path):
    v = decide(cnn, rules)
    assert (v.label, v.path) == (label, path)


def test_classify_reads_the_mesh_only_for_checked_labels_and_relative_to_the_persons_baseline():
    frown = _mesh(smile=-6)
    assert ecrl.classify("happy", np.zeros((1, 1))).path is Path.cnn  # no mesh needed (not even a valid one)
    baseline = features(frown)  # this person's neutral mouth is turned down
    assert ecrl.classify("sad", frown, baseline=baseline).path is Path.cnn_kept  # no change from their neutral
    assert ecrl.classify("sad", frown, baseline=features(_mesh())).path is Path.confirmed


def test_labels_outside_the_vocabulary_are_refused():
    with pytest.raises(InputError, match="cnn label"):
        decide("contempt", None)
    with pytest.raises(InputError, match="rules label"):
        decide("sad", "happy")
