"""The capacity formulas (bench/capacity.py, written out in docs/capacity.md): the arithmetic only, not the load run.

The load run needs real servers and minutes; these keep the formulas the document quotes from drifting away from the
code that checks them, and pin the decisions (replicas at a utilisation ceiling, partitions with room to grow, the
steady window a stage's cost is measured over).
"""

from __future__ import annotations

import math

import pytest

from bench.capacity import (
    FrameCosts,
    Load,
    Retention,
    Sizes,
    cores_per_stage,
    partitions,
    plan,
    predict_window,
    replicas,
    stage_cpu_ms,
    steady_window,
)
from bench.common import BenchError

COSTS = FrameCosts(read_ms=2.0, gate_ms=1.0, encode_ms=3.0, produce_msg_ms=0.5, consume_msg_ms=0.25,
                   inference_ms=100.0, matcher_ms=0.75, alerter_ms=2.0)
SIZES = Sizes(frame_msg=60_000, faces_msg_base=200, face_bytes=300, embedded_face_bytes=9_000, match_msg=10_000,
              event_doc=1_500, crop_doc=8_000, alert_doc=2_000)


@pytest.mark.parametrize(("share", "matches", "expected"), [
    # ingest pays read + gate for every frame read: per published frame that is divided by the share
    (1.0, 0.0, {"ingest": 6.5, "inference": 100.75, "matcher": 1.0, "alerter": 2.25}),
    (0.5, 0.0, {"ingest": 9.5, "inference": 100.75, "matcher": 1.0, "alerter": 2.25}),
    (1.0, 0.5, {"ingest": 6.5, "inference": 100.75, "matcher": 1.25, "alerter": 2.25}),
])
def test_stage_cost_per_message_sums_its_terms(share: float, matches: float, expected: dict[str, float]) -> None:
    assert stage_cpu_ms(COSTS, published_share=share, matches_per_frame=matches) == pytest.approx(expected)


def test_cores_scale_with_cameras_and_published_share() -> None:
    full = cores_per_stage(COSTS, Load(cameras=1000, fps=5))
    gated = cores_per_stage(COSTS, Load(cameras=1000, fps=5, published_share=0.5))
    assert full["inference"] == pytest.approx(5000 * 100.75 / 1000)
    assert gated["inference"] == pytest.approx(full["inference"] / 2)
    # ingest still reads (and gates) every frame: half the frames published is not half its cost
    assert gated["ingest"] == pytest.approx(5000 * (3.0 + 0.5 * 3.5) / 1000)
    assert full["alerter"] == 0.0  # no matches, no alerter work


@pytest.mark.parametrize(("cores", "per_replica", "headroom", "expected"), [
    (0.0, 2, 0.7, 1), (1.4, 2, 0.7, 1), (1.41, 2, 0.7, 2), (100.0, 2, 0.7, 72), (100.0, 16, 1.0, 7)])
def test_replicas_keep_each_under_the_utilisation_ceiling(cores: float, per_replica: int, headroom: float,
                                                           expected: int) -> None:
    assert replicas(cores, cores_per_replica=per_replica, headroom=headroom) == expected


@pytest.mark.parametrize(("reps", "expected"), [(1, 6), (3, 6), (4, 8), (72, 144)])
def test_partitions_leave_room_for_twice_the_replicas(reps: int, expected: int) -> None:
    assert partitions(reps) == expected


def test_predicted_window_is_messages_at_cost_plus_idle_burn() -> None:
    assert predict_window(per_msg_ms=20.0, messages=500, seconds=10.0, idle_cores=0.05) == pytest.approx(10.5)


@pytest.mark.parametrize("bad", [
    {"per_msg_ms": -1.0, "messages": 1, "seconds": 1, "idle_cores": 0},
    {"per_msg_ms": 1.0, "messages": -1, "seconds": 1, "idle_cores": 0}])
def test_negative_terms_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(BenchError, match="expected non-negative"):
        predict_window(**bad)


def test_a_load_outside_its_ranges_is_refused() -> None:
    with pytest.raises(BenchError, match="published_share"):
        Load(cameras=10, fps=5, published_share=1.5)


def test_plan_for_1000_cameras_adds_up() -> None:
    load = Load(cameras=1000, fps=5, published_share=1.0, matches_per_frame=0.01)
    p = plan(load=load, costs=COSTS, sizes=SIZES, faces_per_frame=1.0, embedded_per_frame=0.1,
             alerts_per_match=0.1, retention=Retention(events_days=90, alerts_days=365, crops_days=30,
                                                       kafka_hours=6), node_cores=2)
    assert p["total_cores"] == pytest.approx(sum(p["cores"].values()))
    assert p["replicas"]["inference"] == math.ceil(p["cores"]["inference"] / 1.4)
    faces_msg = 200 + 300 * 0.9 + 9_000 * 0.1
    assert p["kafka_bytes_per_s"]["frames"] == pytest.approx(5000 * 60_000)
    assert p["kafka_bytes_per_s"]["faces"] == pytest.approx(5000 * faces_msg)
    assert p["kafka_bytes_per_s"]["matches"] == pytest.approx(50 * 10_000)
    ingress = 5000 * 60_000 + 5000 * faces_msg + 50 * 10_000
    assert p["kafka_disk_gb"] == pytest.approx(ingress * 3 * 6 * 3600 / 1e9)
    assert p["mongo_writes_per_s"] == pytest.approx(50 * 2 + 5)
    day = 86400
    assert p["mongo_storage_gb"] == pytest.approx((50 * 1_500 * day * 90 + 50 * 8_000 * day * 30
                                                   + 5 * 2_000 * day * 365) / 1e9)
    assert p["partitions"]["frames"] == 2 * p["replicas"]["inference"]


@pytest.mark.parametrize(("counts", "expected"), [
    ([0, 0, 10, 50, 90, 100, 100], (2, 4)),  # 10 % .. 90 % of the final count
    ([0, 100, 100], (0, 2)),  # done between two samples: first move to the end
    ([5, 5, 5], None),  # never moved
])
def test_steady_window_brackets_the_middle_of_a_stages_work(counts: list[float],
                                                            expected: tuple[int, int] | None) -> None:
    samples = [(float(i), float(i), float(c)) for i, c in enumerate(counts)]
    assert steady_window(samples) == expected
