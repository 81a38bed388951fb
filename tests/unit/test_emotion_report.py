"""classification_report: the figures ``argus eval emotion`` prints, checked against tables computed by hand."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from argus.errors import InputError
from argus.evaluation import classification_report
from argus.faces.types import EMOTIONS

CLASSES = ("a", "b", "c", "d", "e")

# a: 3 samples, b: 2, c: 2 and never predicted, d: never occurs but predicted once, e: neither occurs nor predicted
#
#   true \ pred   a  b  c  d  e
#   a             2  1  0  0  0
#   b             0  1  0  1  0
#   c             1  1  0  0  0
#   d, e          0  0  0  0  0
MIXED = (
    [0, 0, 0, 1, 1, 2, 2],
    [0, 0, 1, 1, 3, 0, 1],
    {
        "n": 7,
        "accuracy": 3 / 7,
        "balanced_accuracy": (2 / 3 + 1 / 2 + 0) / 3,  # mean recall over a, b, c (d and e do not occur)
        "macro_f1": (2 / 3 + 2 / 5 + 0 + 0) / 4,  # mean F1 over a, b, c, d (e has none)
        "per_class": {
            "a": {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3, "predicted": 3},
            "b": {"precision": 1 / 3, "recall": 1 / 2, "f1": 2 / 5, "support": 2, "predicted": 3},
            "c": {"precision": None, "recall": 0.0, "f1": 0.0, "support": 2, "predicted": 0},
            "d": {"precision": 0.0, "recall": None, "f1": 0.0, "support": 0, "predicted": 1},
            "e": {"precision": None, "recall": None, "f1": None, "support": 0, "predicted": 0},
        },
        "absent_classes": ["d", "e"],
        "never_predicted": ["c", "e"],
        "confusion": [[2, 1, 0, 0, 0], [0, 1, 0, 1, 0], [1, 1, 0, 0, 0], [0] * 5, [0] * 5],
    },
)
# always the majority class on an 8:2 split: 80 % accurate, balanced accuracy 0.5 (chance for two classes)
MAJORITY = (
    [0] * 8 + [1] * 2,
    [0] * 10,
    {
        "n": 10,
        "accuracy": 0.8,
        "balanced_accuracy": 0.5,
        "macro_f1": (16 / 18 + 0) / 2,
        "per_class": {
            "a": {"precision": 0.8, "recall": 1.0, "f1": 16 / 18, "support": 8, "predicted": 10},
            "b": {"precision": None, "recall": 0.0, "f1": 0.0, "support": 2, "predicted": 0},
            "c": {"precision": None, "recall": None, "f1": None, "support": 0, "predicted": 0},
            "d": {"precision": None, "recall": None, "f1": None, "support": 0, "predicted": 0},
            "e": {"precision": None, "recall": None, "f1": None, "support": 0, "predicted": 0},
        },
        "absent_classes": ["c", "d", "e"],
        "never_predicted": ["b", "c", "d", "e"],
        "confusion": [[8, 0, 0, 0, 0], [2, 0, 0, 0, 0], [0] * 5, [0] * 5, [0] * 5],
    },
)
PERFECT = (
    [4, 0, 4, 2],
    [4, 0, 4, 2],
    {
        "n": 4,
        "accuracy": 1.0,
        "balanced_accuracy": 1.0,
        "macro_f1": 1.0,
        "per_class": {
            "a": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1, "predicted": 1},
            "b": {"precision": None, "recall": None, "f1": None, "support": 0, "predicted": 0},
            "c": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1, "predicted": 1},
            "d": {"precision": None, "recall": None, "f1": None, "support": 0, "predicted": 0},
            "e": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2, "predicted": 2},
        },
        "absent_classes": ["b", "d"],
        "never_predicted": ["b", "d"],
        "confusion": [[1, 0, 0, 0, 0], [0] * 5, [0, 0, 1, 0, 0], [0] * 5, [0, 0, 0, 0, 2]],
    },
)


def _assert_report(got: dict[str, Any], want: dict[str, Any]) -> None:
    for key in ("n", "absent_classes", "never_predicted", "confusion"):
        assert got[key] == want[key], key
    for key in ("accuracy", "balanced_accuracy", "macro_f1"):
        assert got[key] == pytest.approx(want[key], abs=1e-12), key
    assert list(got["per_class"]) == list(want["per_class"])
    for name, row in want["per_class"].items():
        for key, v in row.items():
            g = got["per_class"][name][key]
            assert (g is None) if v is None else g == pytest.approx(v, abs=1e-12), f"{name}.{key}: {g} != {v}"


@pytest.mark.parametrize(("y_true", "y_pred", "want"), [MIXED, MAJORITY, PERFECT], ids=["mixed", "majority", "perfect"])
def test_the_report_matches_the_hand_computed_table(y_true: list[int], y_pred: list[int], want: dict[str, Any]) -> None:
    got = classification_report(np.array(y_true), np.array(y_pred), CLASSES)
    _assert_report(got, want)
    assert got["classes"] == list(CLASSES)
    _assert_report(classification_report(y_true, y_pred, CLASSES), want)  # plain lists work too


def test_the_confusion_matrix_is_rows_true_columns_predicted() -> None:
    r = classification_report([0, 0, 0], [1, 1, 2], CLASSES)
    cm = np.array(r["confusion"])
    assert cm[0].tolist() == [0, 2, 1, 0, 0] and cm.sum() == 3
    assert r["per_class"]["a"]["support"] == 3 and r["per_class"]["b"]["predicted"] == 2


def test_the_default_classes_are_the_seven_emotions() -> None:
    r = classification_report(np.arange(7), np.arange(7))
    assert r["classes"] == list(EMOTIONS) and np.array_equal(np.array(r["confusion"]), np.eye(7, dtype=int))
    assert r["accuracy"] == r["balanced_accuracy"] == r["macro_f1"] == 1.0


def test_balanced_accuracy_weights_each_present_class_equally() -> None:
    # 90 happy all right, 10 sad all wrong: accuracy 0.9, balanced 0.5
    y_true = [EMOTIONS.index("happy")] * 90 + [EMOTIONS.index("sad")] * 10
    y_pred = [EMOTIONS.index("happy")] * 100
    r = classification_report(y_true, y_pred)
    assert r["accuracy"] == pytest.approx(0.9) and r["balanced_accuracy"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "classes", "message"),
    [
        ([0, 1], [0], CLASSES, "as many predictions as labels"),
        ([], [], CLASSES, "at least one"),
        ([0, 5], [0, 0], CLASSES, r"labels as class indices 0-4"),
        ([0, 1], [0, -1], CLASSES, r"predictions as class indices 0-4"),
        ([0.0, 1.0], [0, 1], CLASSES, r"labels as class indices"),
        ([0], [0], ("a", "a"), "distinct class names"),
        ([0], [0], (), "distinct class names"),
    ],
)
def test_bad_inputs_are_refused(y_true: list[Any], y_pred: list[Any], classes: tuple[str, ...], message: str) -> None:
    with pytest.raises(InputError, match=message):
        classification_report(y_true, y_pred, classes)
