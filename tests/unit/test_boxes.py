"""Box geometry used by both face detectors: NMS must match the plain greedy definition exactly."""

from __future__ import annotations

import numpy as np
import pytest

from argus.errors import InputError
from argus.faces.boxes import (
    NmsMode,
    apply_regression,
    batched_nms,
    clip_boxes,
    crop_and_resize,
    iou,
    nms,
    square_boxes,
)


def _greedy_nms(boxes: np.ndarray, scores: np.ndarray, thr: float, mode: str) -> list[int]:
    """Textbook O(N^2) loop, written independently of the vectorised implementation."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    removed: set[int] = set()
    keep: list[int] = []
    for i in order:
        if i in removed:
            continue
        keep.append(i)
        for j in order:
            if j in removed or j == i or j in keep:
                continue
            ax1, ay1, ax2, ay2 = boxes[i]
            bx1, by1, bx2, by2 = boxes[j]
            inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
            a = (ax2 - ax1) * (ay2 - ay1)
            b = (bx2 - bx1) * (by2 - by1)
            ov = inter / (a + b - inter) if mode == "union" else inter / min(a, b)
            if ov > thr:
                removed.add(j)
    return keep


def test_iou_of_known_boxes() -> None:
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10], [2, 2, 4, 4]], float)
    got = iou(a, b)
    np.testing.assert_allclose(got[0], [50 / 150, 0.0, 1.0, 4 / 100])
    np.testing.assert_allclose(iou(a, b, mode="min")[0], [0.5, 0.0, 1.0, 1.0])


def test_nms_suppresses_overlaps_and_keeps_score_order() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [21, 21, 31, 31]], float)
    scores = np.array([0.8, 0.9, 0.7, 0.95])
    assert nms(boxes, scores, 0.5).tolist() == [3, 1]


def test_nms_min_mode_removes_box_nested_in_a_bigger_one() -> None:
    boxes = np.array([[0, 0, 100, 100], [40, 40, 60, 60]], float)
    scores = np.array([0.9, 0.8])
    assert nms(boxes, scores, 0.5, mode="union").tolist() == [0, 1]  # IoU 0.04
    assert nms(boxes, scores, 0.5, mode="min").tolist() == [0]  # fully inside


@pytest.mark.parametrize("mode", ["union", "min"])
def test_nms_matches_plain_greedy_loop_on_random_boxes(mode: NmsMode) -> None:
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 100, (300, 2))
    wh = rng.uniform(5, 40, (300, 2))
    boxes = np.hstack([xy, xy + wh])
    scores = rng.uniform(0, 1, 300)
    assert nms(boxes, scores, 0.4, mode).tolist() == _greedy_nms(boxes, scores, 0.4, mode)


def test_nms_of_nothing_is_empty() -> None:
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).shape == (0,)


def test_nms_rejects_mismatched_scores() -> None:
    with pytest.raises(InputError, match="expected 2 scores, got 3"):
        nms(np.zeros((2, 4)), np.zeros(3), 0.5)


def test_batched_nms_never_suppresses_across_groups() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], float)
    scores = np.array([0.9, 0.8, 0.7])
    groups = np.array([0, 1, 0])
    assert batched_nms(boxes, scores, groups, 0.5).tolist() == [0, 1]


def test_square_boxes_grow_the_short_side_around_the_centre() -> None:
    sq = square_boxes(np.array([[10, 20, 30, 60]], float))
    np.testing.assert_allclose(sq, [[0, 20, 40, 60]])


def test_clip_boxes_clamps_to_frame() -> None:
    got = clip_boxes(np.array([[-5, -5, 50, 50, 0.9]]), width=40, height=30)
    np.testing.assert_allclose(got, [[0, 0, 40, 30, 0.9]])


def test_apply_regression_moves_edges_by_fractions_of_size() -> None:
    got = apply_regression(np.array([[0, 0, 10, 20]], float), np.array([[0.1, -0.1, 0.2, 0.5]]))
    np.testing.assert_allclose(got, [[1, -2, 12, 30]])


def test_crop_and_resize_zero_pads_outside_the_frame() -> None:
    img = np.full((10, 10, 3), 200, np.uint8)
    out = crop_and_resize(img, np.array([[-10, 0, 10, 10]], float), 4, interpolation=0)
    assert out.shape == (1, 4, 4, 3)
    assert np.all(out[0, :, :2] == 0) and np.all(out[0, :, 2:] == 200)
