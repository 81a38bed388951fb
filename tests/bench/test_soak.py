"""The soak (``argus bench soak``): its decisions as tables, /proc reading on real processes, and a 2-minute run
of the distributed pipeline on the real servers with a memory-growth and a lag bound.

The 2-minute bound, and why it is what it is (figures from the runs recorded in docs/soak/):

- *Memory: no process rises more than 128 MB over the fit window* (the Theil-Sen slope after the 30 s warm-up
  times the 90 s it covers). A 2-minute run cannot resolve MB/h: in the 30-minute run at 2x nominal
  (docs/soak/soak-30min.json) the inference stage's RSS ranged over 90 MB after warm-up with no trend (a
  micro-batch of decoded frames, detector pyramids, the consumer's fetch buffers come and go; +55 MB/h over 25
  min), and Triton's Python-backend stubs were still growing their arenas for new batch shapes between 30 s and
  2 min (952 -> 1037 MB in a 2-minute run at 1x). 128 MB is above both; a leak of one decoded 960x540 frame
  (1.5 MB) per analysed frame adds 135 MB over 90 s even at 1 frame/s and 675 MB at the CI camera's 5 fps, so
  the bound catches a per-frame leak, not a slow one. The slow ones are the 30-minute run's job (MB/h per process
  in the README).
- *Every frame accounted*: each frame ingest read is published or dropped by the drop-oldest policy (and
  counted), each published frame analysed or waiting in the inference lag, up to what is in flight between
  probes. Memory bounded by dropping, never by losing frames silently.
- *Lag bounded*: after warm-up, every consuming stage's backlog stays under ``LAG_BOUND_S`` (10 s) of the
  offered frames. The CI run uses one camera (1/3 of nominal load) so a 2-core CI machine carries it. Lag is a
  capacity figure, not a leak: nothing bounds Kafka's backlog by design (KEDA scales inference on it), so on a
  machine whose load average was above 4 per core during the run (other engineers' test suites on the shared
  development machine: 20-50 was seen) the pipeline gets under a quarter of the CPU it is sized for and the lag
  grows with the deficit; the test then reports the lag and skips only that judgement, after the memory and
  accounting assertions have held.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from argus_dev.devservers import Endpoint
from bench.common import BenchError
from bench.soak import (
    LAG_BOUND_S,
    Sample,
    ServerProcs,
    SoakRun,
    drops_from_metrics,
    growth_per_hour,
    plan_load,
    plot,
    results,
    rss_mb,
    run_soak,
    summarize,
    theil_sen_slope,
    tree_rss_mb,
    warmup_seconds,
    write_cameras,
)

CI_MINUTES = 2.0
CI_LOAD = 1 / 3
GROWTH_BOUND_MB = 128.0
#: Load average per core above which the lag is not judged (see the module docstring).
OVERSUBSCRIBED = 4


@pytest.mark.parametrize(("load", "cameras", "offered"), [
    (1.0, 3, 15.0),     # nominal: the demo's three cameras at 5 fps
    (2.0, 6, 30.0),     # the README's soak
    (1 / 3, 1, 5.0),    # the CI soak
    (0.01, 1, 5.0),     # never fewer than one camera
    (1.5, 4, 20.0),     # round(4.5) is 4: whole cameras, banker's rounding
    (10.0, 30, 150.0),
])
def test_load_multiplies_the_demo_cameras_at_their_fps(load: float, cameras: int, offered: float) -> None:
    plan = plan_load(load)
    assert (plan.cameras, plan.fps, plan.offered_fps) == (cameras, 5.0, offered)
    assert plan.effective_load == pytest.approx(cameras / 3)


@pytest.mark.parametrize("load", [0.0, -1.0, math.inf, math.nan])
def test_a_load_that_is_not_a_positive_multiple_is_refused(load: float) -> None:
    with pytest.raises(BenchError, match="expected a positive multiple"):
        plan_load(load)


@pytest.mark.parametrize(("minutes", "warmup"), [(2, 30.0), (0.5, 30.0), (8, 120.0), (30, 300.0), (480, 300.0)])
def test_warmup_is_a_quarter_of_the_run_between_half_a_minute_and_five(minutes: float, warmup: float) -> None:
    assert warmup_seconds(minutes) == warmup


@pytest.mark.parametrize(("ys", "slope"), [
    ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 1.0),                     # a line
    ([5.0, 5.0, 5.0, 5.0, 5.0, 5.0], 0.0),                     # flat
    ([1.0, 2.0, 300.0, 4.0, 5.0, 6.0], 1.0),                   # one outlier (a GC spike) does not move it
    ([10.0, 10.0, 10.0, 10.0, 0.0, 10.0], 0.0),                # nor a dip (pages returned, then re-used)
    ([6.0, 5.0, 4.0, 3.0, 2.0, 1.0], -1.0),                    # shrinking
])
def test_theil_sen_slope_is_robust_to_a_minority_of_outliers(ys: list[float], slope: float) -> None:
    assert theil_sen_slope([0, 1, 2, 3, 4, 5], ys) == pytest.approx(slope)


def test_theil_sen_slope_of_fewer_than_two_distinct_times_is_zero() -> None:
    assert theil_sen_slope([], []) == 0.0
    assert theil_sen_slope([3.0], [1.0]) == 0.0
    assert theil_sen_slope([3.0, 3.0], [1.0, 9.0]) == 0.0


def test_growth_per_hour_ignores_the_warm_up() -> None:
    ts = list(range(0, 120, 5))
    mb = [100.0 + 5 * t if t < 60 else 400.0 + t / 3600 for t in ts]  # a minute's steep start, then 1 MB/h
    assert growth_per_hour(ts, mb, warmup_s=60.0) == pytest.approx(1.0)
    assert growth_per_hour(ts, mb, warmup_s=0.0) > 1000  # the start-up rise counted as growth
    assert growth_per_hour(ts, mb, warmup_s=10_000.0) == 0.0


METRICS = {
    "ingest": """# TYPE argus_ingest_frames_dropped_total counter
argus_ingest_frames_dropped_total{camera="north-gate-0"} 3.0
argus_ingest_frames_dropped_total{camera="market-square-0"} 4.0
# TYPE argus_ingest_read_errors_total counter
argus_ingest_read_errors_total{camera="north-gate-0",kind="decode"} 1.0
argus_ingest_read_errors_total{camera="north-gate-0",kind="open"} 0.0
# TYPE argus_ingest_frames_read_total counter
argus_ingest_frames_read_total{camera="north-gate-0"} 500.0
""",
    "inference": """# TYPE argus_inference_errors_total counter
argus_inference_errors_total{kind="TransientError"} 2.0
""",
    "matcher": "",
}


def test_drops_are_summed_over_cameras_by_reason_and_kind() -> None:
    assert drops_from_metrics(METRICS) == {"ingest_backpressure": 7.0, "ingest_read_error:decode": 1.0,
                                           "ingest_read_error:open": 0.0, "inference_error:TransientError": 2.0}


def test_no_drop_counter_reads_as_no_drops() -> None:
    text = '# TYPE argus_ingest_frames_read_total counter\nargus_ingest_frames_read_total{camera="a"} 9.0\n'
    assert drops_from_metrics({"ingest": text, "matcher": ""}) == {}


@pytest.mark.parametrize(("read", "published", "dropped", "analysed", "waiting", "accounted"), [
    (1000, 900, 100, 850, 50, True),     # every frame somewhere
    (1000, 990, 0, 900, 80, True),       # ten in ingest's queue, ten in a micro-batch: in flight
    (1000, 900, 100, 900, 0, True),      # all analysed
    (1000, 800, 100, 800, 0, False),     # 100 read frames neither published nor counted as dropped
    (1000, 900, 100, 500, 50, False),    # 350 published frames neither analysed nor waiting
    (1000, 900, 100, 1000, 0, False),    # more analysed than published: a counter is wrong
])
def test_every_frame_read_is_published_dropped_analysed_or_waiting(
        read: float, published: float, dropped: float, analysed: float, waiting: float, accounted: bool) -> None:
    from bench.soak import accounting

    out = accounting(read=read, published=published, dropped=dropped, analysed=analysed, waiting=waiting,
                     cameras=1, offered_fps=5)
    assert out["in_flight_slack"] == 16 + 16 + 25
    assert out["every_frame_accounted"] is accounted, out


def test_rss_of_a_process_tree_counts_its_children(tmp_path: Path) -> None:
    from bench.common import children_map as _children_map

    code = "import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', " \
           "'b = b\"x\" * (64 << 20); import time; time.sleep(60)']); time.sleep(60)"
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 20
        total, n = 0.0, 0
        while time.monotonic() < deadline:
            total, n = tree_rss_mb(parent.pid, _children_map())  # type: ignore[assignment]
            if n == 2 and total > 64:
                break
            time.sleep(0.2)
        own = rss_mb(parent.pid)
        assert n == 2 and own is not None and total >= own + 64, (total, n, own)
    finally:
        parent.kill()
        parent.wait()
    assert rss_mb(parent.pid) is None and tree_rss_mb(parent.pid, {})[0] is None


def test_every_camera_loops_its_demo_clip_for_the_whole_run(tmp_path: Path) -> None:
    import tomllib

    import cv2

    path = write_cameras(plan_load(2), tmp_path, seconds=600)
    cams = tomllib.loads(path.read_text())["camera"]
    assert [c["id"] for c in cams] == ["north-gate-0", "market-square-0", "station-hall-0",
                                      "north-gate-1", "market-square-1", "station-hall-1"]
    assert all(c["fps"] == 5.0 for c in cams)
    entries = Path(cams[0]["url"]).read_text().splitlines()[1:]
    clip = cv2.VideoCapture(str(tmp_path / "clips" / entries[0].split()[1]), cv2.CAP_FFMPEG)
    fps, frames = clip.get(cv2.CAP_PROP_FPS), int(clip.get(cv2.CAP_PROP_FRAME_COUNT))
    clip.release()
    assert len(entries) * frames / fps >= 600, f"{len(entries)} passes of {frames / fps:.1f} s"
    cap = cv2.VideoCapture(cams[0]["url"], cv2.CAP_FFMPEG)  # the production reader plays on into the next pass
    try:
        assert cap.isOpened()
        n = 0
        while n <= frames + 5 and cap.grab():
            n += 1
        assert n > frames and cap.get(cv2.CAP_PROP_POS_MSEC) / 1000 > frames / fps
    finally:
        cap.release()


def _fake_summary() -> dict[str, Any]:
    samples = [Sample(t=float(t), rss_mb={"stage:ingest": 300.0 + t / 100, "server:kafka": 500.0},
                      lag={"inference": int(5 + t % 3), "matcher": 0}, drops={"ingest_backpressure": float(t // 50)},
                      frames_read=5.0 * t, frames_published=5.0 * t - t // 50, frames_analysed=5.0 * t - t // 50 - 6,
                      load_avg=1.5)
               for t in range(0, 121, 5)]
    run = SoakRun(minutes=2, plan=plan_load(1 / 3), interval_s=5, warmup_s=30, samples=samples,
                  processes={"stage:ingest": 1, "server:kafka": 2}, started=datetime.now(UTC),
                  stage_restarts={"ingest": 0})
    return summarize(run, command="argus bench soak --minutes 2", machine={"cores": 2})


def test_summary_reports_growth_lag_drops_and_load_and_the_plot_is_written(tmp_path: Path) -> None:
    s = _fake_summary()
    assert s["processes"]["stage:ingest"]["growth_mb_per_h"] == pytest.approx(36.0)
    assert s["processes"]["stage:ingest"]["growth_mb_over_fit"] == pytest.approx(0.9)  # 36 MB/h over 90 s
    assert s["processes"]["server:kafka"]["growth_mb_per_h"] == 0.0
    assert s["lag"]["inference"]["max_after_warmup"] == 7 and s["lag_bounded"]
    assert s["drops"] == {"ingest_backpressure": 2} and s["load_avg"]["mean"] == 1.5
    assert s["accounting"]["every_frame_accounted"] and s["frames"]["published"] == 598
    lines = {r.name: r for r in results(s)}
    assert lines["max_lag_inference"].meets_target is True
    assert lines["rss_growth_mb_per_h_stage_ingest"].ratio == pytest.approx(36.0 / 300.3, rel=1e-3)
    plot(s, tmp_path / "soak.png")
    import cv2

    img = cv2.imread(str(tmp_path / "soak.png"))
    assert img is not None and img.shape[:2] == (1400, 1400) and float(np.std(img)) > 10


def test_a_backlog_over_the_bound_is_not_bounded() -> None:
    grow = [Sample(t=float(t), rss_mb={"stage:ingest": 1.0}, lag={"inference": t}, drops={}, frames_read=0,
                   frames_analysed=0, load_avg=0.0) for t in range(0, 121, 5)]  # one frame/s more than it carries
    run = SoakRun(minutes=2, plan=plan_load(1 / 3), interval_s=5, warmup_s=30, samples=grow,
                  processes={"stage:ingest": 1}, started=datetime.now(UTC), stage_restarts={})
    out = summarize(run, command="x", machine={})
    assert out["lag_bound_messages"] == LAG_BOUND_S * 5
    assert not out["lag_bounded"] and out["lag"]["inference"]["trend_per_min_after_warmup"] == pytest.approx(60.0)


def test_bench_accepts_the_soak_form_and_refuses_a_bad_load() -> None:
    proc = subprocess.run([sys.executable, "-m", "bench", "soak", "--minutes", "1", "--load", "0"],
                          cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode != 0 and "expected a positive multiple of nominal load" in proc.stderr
    assert proc.stdout == ""


@pytest.mark.integration
@pytest.mark.e2e
def test_two_minute_soak_grows_no_process_memory_and_keeps_lag_bounded(
        kafka_server: Endpoint, mongo_server: Endpoint, triton_server: Endpoint, tmp_path: Path) -> None:
    servers = ServerProcs(kafka=kafka_server.address, triton=triton_server.address, mongo_uri=mongo_server.address,
                          pids={"kafka": kafka_server.pid, "mongodb-wire": mongo_server.pid,
                                "triton": triton_server.pid})
    run = run_soak(servers, minutes=CI_MINUTES, load=CI_LOAD, work=tmp_path, interval_s=5.0)
    s = summarize(run, command="test_soak", machine={"cores": 2})
    (tmp_path / "summary.json").write_text(json.dumps(s, indent=1))
    assert set(s["processes"]) == {"stage:ingest", "stage:inference", "stage:matcher", "stage:alerter",
                                   "server:kafka", "server:mongodb-wire", "server:triton"}
    assert s["frames"]["analysed"] > 0 and s["ended_early"] is None, s["frames"]
    assert s["accounting"]["every_frame_accounted"], s["accounting"]
    assert all(n == 0 for n in s["stage_restarts"].values())
    for name, p in s["processes"].items():
        assert p["growth_mb_over_fit"] < GROWTH_BOUND_MB, f"{name}: {p}"
    cores = os.cpu_count() or 1
    if s["load_avg"]["mean"] > OVERSUBSCRIBED * cores and not s["lag_bounded"]:
        pytest.skip(f"memory and accounting held; lag not judged: the machine's load average was "
                    f"{s['load_avg']['mean']} on {cores} cores (the pipeline had under 1/{OVERSUBSCRIBED} of the "
                    f"CPU it is sized for); lag {s['lag']}")
    assert s["lag_bounded"], s["lag"]
