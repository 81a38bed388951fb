"""``argus bench soak --minutes N --load X``: the distributed pipeline under sustained load, watched over time.

What runs: the four stages as separate processes (:class:`argus_dev.cluster.LocalCluster`, the container entry
point each) over a real Kafka broker, the MongoDB-wire server and Triton, started on free ports for this run and
stopped after it, exactly as the end-to-end benchmark starts its servers.

Nominal load (X = 1) is the demo's camera registry (``assets/demo/cameras.toml``): three cameras at their
configured 5 fps, paced in real time like live cameras (``ARGUS_INGEST_FILES_REALTIME=true``) and the default
drop-oldest ingest queue (``ARGUS_INGEST_QUEUE``), so 15 frames/s offered. **X multiplies the cameras, not the
fps**: ``round(3 X)`` cameras, camera *k* playing demo camera ``k mod 3``'s clip at 5 fps. A city grows by adding
cameras; a camera's fps is a fixed property of its registry entry, and more streams is what multiplies the
per-camera state (reader threads, queues, trackers, health documents) a soak is meant to exercise. Each camera
loops its clip for the whole run through an FFmpeg ``ffconcat`` playlist of the clip repeated (the production
OpenCV source, no test-only reader): frame sequence numbers keep rising, so every sighting is a new event in the
history, as with a live camera.

What is reported, every ``--interval`` seconds:

- resident memory (``VmRSS`` from ``/proc``) of every process: each stage, and each server with its children
  (Triton's Python-backend stubs, a launcher's JVM), summed over the process tree;
- consumer lag per consuming stage (``Bus.pending`` of its group on its input topic);
- frames dropped, by reason: ingest's backpressure drops (``argus_ingest_frames_dropped_total``), read/decode
  errors and watchdog trips, items each stage counted as failed, and dead-lettered messages;
- the machine's 1-minute load average (the machine is shared: other runs' load is part of the picture).

At the end: memory growth per hour per process as the Theil–Sen slope (median of pairwise slopes — one GC or an
allocator returning pages moves it little, unlike a least-squares line) over the samples after the warm-up (model
sessions, JIT, Kafka's page cache and JVM heap sizing settle there), max and final lag, drops, a PNG plot
(OpenCV drawing: no plotting dependency) and a JSON summary with every sample, plus the usual bench JSON lines on
stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import shutil
import statistics
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from prometheus_client import CollectorRegistry

from argus.bus.kafka import KafkaBus
from argus.demo import enroll_demo_watchlist
from argus.runtime.resources import Resources
from argus.schemas import TOPIC_DEADLETTER
from argus.topology import INPUT_TOPICS, consumer_group
from argus_dev.cluster import LocalCluster, Servers
from bench.common import REPO_ROOT, BenchError, Context, Result, children_map, load_avg, machine_info

AREA = "soak"
DEMO_CAMERAS = REPO_ROOT / "assets" / "demo" / "cameras.toml"
#: Cameras and fps at X = 1: the demo's registry.
NOMINAL = tomllib.loads(DEMO_CAMERAS.read_text())["camera"]
#: A lag this many seconds of the offered frames, after the warm-up, still counts as bounded: an alert at most
#: this late behind its capture because of queueing, and what one micro-batch of every camera plus a rebalance
#: can hold.
LAG_BOUND_S = 10.0
DEFAULT_OUT = REPO_ROOT / "bench" / "results" / "soak"


# ------------------------------------------------------------------------------------------------- decisions

@dataclass(frozen=True, kw_only=True)
class LoadPlan:
    """Cameras for a load multiple: ``cameras`` registry entries, each a demo camera's clip at its fps."""

    load: float
    cameras: int
    fps: float

    @property
    def offered_fps(self) -> float:
        return self.cameras * self.fps

    @property
    def effective_load(self) -> float:
        """What the rounding to whole cameras made of the requested multiple."""
        return self.cameras / len(NOMINAL)


def plan_load(load: float, nominal_cameras: int = len(NOMINAL), fps: float = float(NOMINAL[0]["fps"])) -> LoadPlan:
    """X times nominal as whole cameras (at least one); a multiple that is not positive and finite is refused."""
    if not (isinstance(load, (int, float)) and math.isfinite(load) and load > 0):
        raise BenchError(f"--load: expected a positive multiple of nominal load such as 2, got {load!r}")
    return LoadPlan(load=float(load), cameras=max(1, round(nominal_cameras * load)), fps=fps)


def warmup_seconds(minutes: float) -> float:
    """The first quarter of the run, at least 30 s and at most 5 min: model sessions, Triton's stubs, the JVM's
    heap and Kafka's page cache reach their working size there (seen in the runs: most of a process's rise is in
    its first minute), and the fit must still have most of the run to look at."""
    return min(300.0, max(30.0, minutes * 60 * 0.25))


def theil_sen_slope(ts: Sequence[float], ys: Sequence[float]) -> float:
    """Median of the slopes between every pair of samples (units of y per unit of t); 0.0 with under two
    distinct times. Robust to a minority of outliers: a GC pause or a burst of allocation moves it little."""
    t = np.asarray(ts, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    if t.shape != y.shape:
        raise BenchError(f"theil_sen_slope: expected as many times as values, got {t.size} and {y.size}")
    i, j = np.triu_indices(t.size, k=1)
    dt = t[j] - t[i]
    keep = dt != 0
    if not keep.any():
        return 0.0
    return float(np.median((y[j] - y[i])[keep] / dt[keep]))


def growth_per_hour(ts: Sequence[float], mb: Sequence[float], warmup_s: float) -> float:
    """MB per hour after the warm-up (Theil–Sen over the samples with t >= warmup_s)."""
    pairs = [(t, m) for t, m in zip(ts, mb, strict=True) if t >= warmup_s]
    if len(pairs) < 2:
        return 0.0
    return theil_sen_slope([p[0] for p in pairs], [p[1] for p in pairs]) * 3600.0


#: (metric, label that names the reason or None, reason prefix): the counters whose increase is a frame or
#: message that did not go all the way through.
DROP_COUNTERS: tuple[tuple[str, str | None, str], ...] = (
    ("argus_ingest_frames_dropped_total", None, "ingest_backpressure"),
    ("argus_ingest_read_errors_total", "kind", "ingest_read_error"),
    ("argus_ingest_watchdog_trips_total", None, "ingest_watchdog"),
    ("argus_inference_errors_total", "kind", "inference_error"),
    ("argus_matcher_errors_total", "kind", "matcher_error"),
    ("argus_alerter_errors_total", "kind", "alerter_error"),
)


def drops_from_metrics(texts: Mapping[str, str]) -> dict[str, float]:
    """Frames/messages lost so far, by reason, from each stage's /metrics text (stage -> exposition text).
    Reasons are bounded: a counter's name plus its ``kind`` label, never a camera (summed over cameras)."""
    from prometheus_client.parser import text_string_to_metric_families

    wanted = {name: (label, reason) for name, label, reason in DROP_COUNTERS}
    out: dict[str, float] = {}
    for text in texts.values():
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if s.name not in wanted:
                    continue
                label, reason = wanted[s.name]
                key = f"{reason}:{s.labels.get(label, '?')}" if label else reason
                out[key] = out.get(key, 0.0) + float(s.value)
    return out


#: Frames a sample may see in flight between the counters it reads one after the other: ingest's queue per
#: camera (``ARGUS_INGEST_QUEUE``'s default, 16), two inference micro-batches (8 each), and 5 s of the offered
#: frames (stats are exported once a second and the probes of a loaded machine take seconds).
def accounting(*, read: float, published: float, dropped: float, analysed: float, waiting: float, cameras: int,
               offered_fps: float) -> dict[str, float | bool]:
    """Every frame ingest read is published or dropped by policy (counted), and every published frame is analysed
    or waiting in the inference lag, up to what a sample sees in flight. A frame that is neither is lost."""
    slack = 16 * cameras + 2 * 8 + 5 * offered_fps
    at_ingest = read - published - dropped
    at_inference = published - analysed - waiting
    return {"read_not_published_nor_dropped": at_ingest, "published_not_analysed_nor_waiting": at_inference,
            "in_flight_slack": slack,
            "every_frame_accounted": -slack <= at_ingest <= slack and -slack <= at_inference <= slack}


def counter_total(text: str, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(float(s.value) for fam in text_string_to_metric_families(text) for s in fam.samples if s.name == name)


# ------------------------------------------------------------------------------------------------- /proc

def rss_mb(pid: int) -> float | None:
    """VmRSS of one process in MB (MiB), None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return 0.0  # a zombie has no VmRSS line


def tree_rss_mb(pid: int, kids: Mapping[int, list[int]]) -> tuple[float | None, int]:
    """(RSS of ``pid`` and all its descendants in MB, number of processes), (None, 0) when ``pid`` is gone."""
    root = rss_mb(pid)
    if root is None:
        return None, 0
    total, n, todo = root, 1, list(kids.get(pid, ()))
    while todo:
        p = todo.pop()
        r = rss_mb(p)
        if r is not None:
            total += r
            n += 1
        todo.extend(kids.get(p, ()))
    return total, n


# ------------------------------------------------------------------------------------------------- cameras

def write_cameras(plan: LoadPlan, work: Path, seconds: float) -> Path:
    """A registry of ``plan.cameras`` cameras, each looping its demo clip for at least ``seconds``."""
    base = DEMO_CAMERAS.parent
    lines: list[str] = []
    clips = work / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    for k in range(plan.cameras):
        cam = NOMINAL[k % len(NOMINAL)]
        src = (base / cam["url"]).resolve()
        link = clips / f"{k:03d}{src.suffix}"
        if not link.exists():
            link.symlink_to(src)
        cap = cv2.VideoCapture(str(src), cv2.CAP_FFMPEG)
        try:
            fps, count = cap.get(cv2.CAP_PROP_FPS) or 0.0, cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0
        finally:
            cap.release()
        if fps <= 0 or count <= 0:
            raise BenchError(f"cannot read the length of {src}: fps {fps}, frames {count}")
        repeats = math.ceil(seconds / (count / fps)) + 1
        playlist = clips / f"{k:03d}.ffconcat"  # relative names only: FFmpeg's safe mode refuses absolute ones
        playlist.write_text("ffconcat version 1.0\n" + f"file {link.name}\n" * repeats)
        loc = cam["location"]
        lines += ["[[camera]]", f'id = "{cam["id"]}-{k // len(NOMINAL)}"',
                  f'name = "{cam["name"]} (soak copy {k // len(NOMINAL)})"', f'url = "{playlist}"',
                  f"fps = {plan.fps}", "", "[camera.location]", f"lat = {loc['lat']}", f"lon = {loc['lon']}",
                  f'address = "{loc["address"]}"', f'zone = "{loc["zone"]}"', ""]
    path = work / "cameras.toml"
    path.write_text("\n".join(lines))
    return path


# ------------------------------------------------------------------------------------------------- the run

@dataclass(frozen=True, kw_only=True)
class ServerProcs:
    """The servers a soak runs against: addresses, and the pid of each one whose memory is watched."""

    kafka: str
    triton: str
    mongo_uri: str = field(repr=False)
    pids: dict[str, int]


@dataclass(kw_only=True)
class Sample:
    t: float
    rss_mb: dict[str, float | None]
    lag: dict[str, int | None]
    drops: dict[str, float]
    frames_read: float
    frames_analysed: float
    load_avg: float
    frames_published: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {"t": round(self.t, 2), "rss_mb": {k: None if v is None else round(v, 2)
                                                  for k, v in self.rss_mb.items()},
                "lag": self.lag, "drops": self.drops, "frames_read": self.frames_read,
                "frames_published": self.frames_published, "frames_analysed": self.frames_analysed,
                "load_avg": self.load_avg}


@dataclass(kw_only=True)
class SoakRun:
    minutes: float
    plan: LoadPlan
    interval_s: float
    warmup_s: float
    samples: list[Sample]
    processes: dict[str, int]
    started: datetime
    stage_restarts: dict[str, int]
    #: Why sampling stopped before ``minutes`` (a stage died), or None.
    ended_early: str | None = None


def _sample(t: float, cluster: LocalCluster, servers: ServerProcs, bus: KafkaBus, prev: Sample | None,
            log: Callable[[str], None]) -> Sample:
    """One point of every series. A stage too busy to answer /metrics in time (the machine is shared) or a lag
    read that fails keeps the previous value / a gap: a slow probe is not the end of a soak."""
    kids = children_map()
    rss = {f"stage:{s}": tree_rss_mb(p.pid, kids)[0] if p.pid is not None and p.alive else None
           for s, p in cluster.procs.items()}
    rss.update({f"server:{n}": tree_rss_mb(pid, kids)[0] for n, pid in servers.pids.items()})
    lag: dict[str, int | None] = {}
    for s, topic in INPUT_TOPICS.items():
        try:
            lag[s] = bus.pending(consumer_group(s), [topic])
        except Exception as e:  # a broker hiccup is a gap in the series
            log(f"soak: lag of {s} unavailable at {t:.0f}s: {type(e).__name__}: {e}")
            lag[s] = None
    texts: dict[str, str] = {}
    for s, p in cluster.procs.items():
        try:
            texts[s] = p.metrics_text()
        except Exception as e:
            log(f"soak: /metrics of {s} unavailable at {t:.0f}s: {e}")
    drops = drops_from_metrics(texts)
    if prev is not None:  # a stage that did not answer keeps its last counts
        drops = {**prev.drops, **drops}
    with contextlib.suppress(Exception):
        drops["dead_lettered"] = float(sum(bus.end_offsets(TOPIC_DEADLETTER)))
    read = counter_total(texts["ingest"], "argus_ingest_frames_read_total") if "ingest" in texts else None
    published = counter_total(texts["ingest"], "argus_ingest_frames_published_total") if "ingest" in texts else None
    analysed = counter_total(texts["inference"], "argus_inference_frames_total") if "inference" in texts else None
    return Sample(t=t, rss_mb=rss, lag=lag, drops=drops,
                  frames_read=read if read is not None else (prev.frames_read if prev else 0.0),
                  frames_analysed=analysed if analysed is not None else (prev.frames_analysed if prev else 0.0),
                  frames_published=published if published is not None else (prev.frames_published if prev else 0.0),
                  load_avg=load_avg())


def run_soak(servers: ServerProcs, *, minutes: float, load: float, work: Path, interval_s: float = 10.0,
             log: Callable[[str], None] = lambda _m: None,
             checkpoint: Callable[[SoakRun], None] | None = None, checkpoint_every_s: float = 300.0) -> SoakRun:
    """Run the four stage processes against ``servers`` at ``load`` x nominal for ``minutes``, sampling every
    ``interval_s``; the stages are stopped (SIGTERM) at the end, the servers are the caller's. ``checkpoint``
    gets the run so far every ``checkpoint_every_s`` (a long soak that is interrupted still leaves its data).
    A stage that dies ends the sampling (``ended_early`` says which, with its log's last lines)."""
    if not (minutes > 0 and math.isfinite(minutes)):
        raise BenchError(f"--minutes: expected a positive number of minutes, got {minutes!r}")
    plan = plan_load(load)
    duration = minutes * 60.0
    cameras = write_cameras(plan, work, duration + 300.0)
    cluster = LocalCluster(servers=Servers(kafka=servers.kafka, triton=servers.triton, mongo_uri=servers.mongo_uri),
                           data_dir=work / "data", cameras_file=cameras, database="argus_soak",
                           overrides={"ingest_files_realtime": True, "ingest_queue": 16})
    cluster.reset()
    with Resources(cluster.settings, registry=CollectorRegistry()) as res:
        enroll_demo_watchlist(res)
    bus = KafkaBus(bootstrap=servers.kafka)
    run = SoakRun(minutes=minutes, plan=plan, interval_s=interval_s, warmup_s=warmup_seconds(minutes), samples=[],
                  processes={**{f"stage:{s}": 0 for s in cluster.procs},
                             **{f"server:{n}": pid for n, pid in servers.pids.items()}},
                  started=datetime.now(UTC), stage_restarts={})
    try:
        with cluster.running():
            run.processes.update({f"stage:{s}": p.pid or 0 for s, p in cluster.procs.items()})
            log(f"soak: {plan.cameras} cameras x {plan.fps:g} fps ({plan.offered_fps:g} frames/s offered, "
                f"{plan.effective_load:g}x nominal) for {minutes:g} min")
            t0 = time.monotonic()
            next_t, next_ckpt = t0, t0 + checkpoint_every_s
            while True:
                now = time.monotonic()
                if now < next_t:
                    time.sleep(next_t - now)
                t = time.monotonic() - t0
                run.samples.append(_sample(t, cluster, servers, bus, run.samples[-1] if run.samples else None, log))
                dead = [s for s, p in cluster.procs.items() if not p.alive]
                if dead:
                    p = cluster.procs[dead[0]]
                    run.ended_early = (f"stage(s) {dead} exited at {t:.0f}s (status "
                                       f"{p.proc.returncode if p.proc else None}); last lines of {p.log_path}:\n"
                                       f"{p.log_tail()}")
                    log(f"soak: {run.ended_early}")
                    break
                if len(run.samples) % max(1, int(60 / interval_s)) == 1:
                    last = run.samples[-1]
                    log(f"soak {t / 60:5.1f} min: lag {last.lag}, rss MB "
                        + ", ".join(f"{k.split(':')[1]} {v:.0f}" for k, v in last.rss_mb.items() if v is not None)
                        + f", analysed {last.frames_analysed:.0f}/{last.frames_read:.0f} read, load {last.load_avg}")
                if t >= duration:
                    break
                if checkpoint is not None and time.monotonic() >= next_ckpt and len(run.samples) >= 2:
                    next_ckpt += checkpoint_every_s
                    try:
                        checkpoint(run)
                    except Exception as e:  # a failed checkpoint must not end the soak
                        log(f"soak: checkpoint failed: {type(e).__name__}: {e}")
                next_t += interval_s
    finally:
        bus.close()
    run.stage_restarts = {s: p.starts - 1 for s, p in cluster.procs.items()}
    return run


# ------------------------------------------------------------------------------------------------- summary

def summarize(run: SoakRun, *, command: str, machine: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON summary: per-process growth after warm-up, lag, drops, the load average, every sample."""
    ss = run.samples
    if len(ss) < 2:
        raise BenchError(f"a soak needs at least two samples, got {len(ss)}")
    after = [s for s in ss if s.t >= run.warmup_s] or ss[-2:]
    procs: dict[str, Any] = {}
    for name in run.processes:
        pts = [(s.t, s.rss_mb.get(name)) for s in ss if s.rss_mb.get(name) is not None]
        if len(pts) < 2:
            continue
        t_, m_ = [p[0] for p in pts], [float(p[1]) for p in pts if p[1] is not None]
        warm = [m for t, m in zip(t_, m_, strict=True) if t >= run.warmup_s] or m_[-1:]
        per_h = growth_per_hour(t_, m_, run.warmup_s)
        fit_s = max(0.0, t_[-1] - run.warmup_s)
        procs[name] = {"pid": run.processes[name], "rss_mb_start": round(m_[0], 1),
                       "rss_mb_after_warmup": round(warm[0], 1), "rss_mb_end": round(m_[-1], 1),
                       "rss_mb_max": round(max(m_), 1),
                       "rss_mb_range_after_warmup": round(max(warm) - min(warm), 1),
                       "growth_mb_per_h": round(per_h, 2),
                       "growth_mb_over_fit": round(per_h * fit_s / 3600, 1),
                       "growth_mb_after_warmup": round(m_[-1] - warm[0], 1)}
    offered = run.plan.offered_fps
    bound = LAG_BOUND_S * offered
    lag: dict[str, Any] = {}
    for stage in ss[0].lag:
        vals = [(s.t, v) for s in ss if (v := s.lag.get(stage)) is not None]
        warm_vals = [(t, v) for t, v in vals if t >= run.warmup_s]
        trend = theil_sen_slope([t for t, _ in warm_vals], [float(v) for _, v in warm_vals])
        mx_warm = max((v for _, v in warm_vals), default=0)
        lag[stage] = {"max": max((v for _, v in vals), default=0),
                      "max_after_warmup": mx_warm, "end": vals[-1][1] if vals else None,
                      "mean_after_warmup": round(statistics.fmean([float(v) for _, v in warm_vals]), 1)
                      if warm_vals else None,
                      "trend_per_min_after_warmup": round(trend * 60, 2),
                      "bounded": mx_warm <= bound}
    last, first_warm = ss[-1], after[0]
    backpressure = last.drops.get("ingest_backpressure", 0.0)
    seconds = last.t - ss[0].t
    loads = [s.load_avg for s in ss]
    return {
        "command": command,
        "started": run.started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "minutes": run.minutes,
        "load": {"requested": run.plan.load, "effective": run.plan.effective_load, "cameras": run.plan.cameras,
                 "fps_per_camera": run.plan.fps, "offered_frames_per_s": offered,
                 "nominal": f"{len(NOMINAL)} demo cameras x {NOMINAL[0]['fps']} fps (assets/demo/cameras.toml); "
                            "X multiplies the cameras"},
        "interval_s": run.interval_s, "warmup_s": run.warmup_s, "samples_n": len(ss),
        "growth_fit": "Theil-Sen slope of RSS over the samples after warm-up, MB (MiB) per hour",
        "processes": procs,
        "lag": lag, "lag_bound_messages": bound,
        "lag_bound": f"{LAG_BOUND_S:g} s of offered frames ({bound:g} messages) after warm-up",
        "lag_bounded": all(v["bounded"] for v in lag.values()),
        "drops": {k: int(v) for k, v in sorted(last.drops.items())},
        "frames": {"read": int(last.frames_read), "published": int(last.frames_published),
                   "analysed": int(last.frames_analysed),
                   "analysed_per_s_after_warmup": round((last.frames_analysed - first_warm.frames_analysed)
                                                        / max(1e-9, last.t - first_warm.t), 2),
                   "read_per_s": round(last.frames_read / max(1e-9, seconds), 2)},
        "accounting": accounting(read=last.frames_read, published=last.frames_published,
                                 dropped=backpressure, analysed=last.frames_analysed,
                                 waiting=float(last.lag.get("inference") or 0), cameras=run.plan.cameras,
                                 offered_fps=offered),
        "stage_restarts": run.stage_restarts, "ended_early": run.ended_early,
        "load_avg": {"start": loads[0], "end": loads[-1], "min": min(loads), "max": max(loads),
                     "mean": round(statistics.fmean(loads), 2),
                     "note": "1-minute load average of the whole machine, shared with other runs; cores "
                             f"{machine.get('cores')}"},
        "machine": dict(machine),
        "samples": [s.as_json() for s in ss],
    }


def results(summary: Mapping[str, Any]) -> list[Result]:
    """The bench JSON lines: per-process growth per hour against its size after warm-up (ratio = fraction of
    itself per hour), per-stage max lag against one second of offered frames (ratio = seconds of backlog),
    drops against frames read."""
    params = {"minutes": summary["minutes"], "cameras": summary["load"]["cameras"],
              "load": summary["load"]["effective"], "warmup_s": summary["warmup_s"],
              "load_avg_mean": summary["load_avg"]["mean"]}
    out: list[Result] = []
    for name, p in summary["processes"].items():
        out.append(Result(AREA, f"rss_growth_mb_per_h_{name.replace(':', '_')}", p["growth_mb_per_h"], "MB/h",
                          "RSS after warm-up (MB)", p["rss_mb_after_warmup"], params={**params, **p},
                          note="Theil-Sen slope after warm-up; ratio = share of its own size per hour"))
    offered = summary["load"]["offered_frames_per_s"]
    for stage, v in summary["lag"].items():
        out.append(Result(AREA, f"max_lag_{stage}", float(v["max_after_warmup"]) or 0.0, "messages",
                          "frames offered per second", offered, target=summary["lag_bound"],
                          meets_target=bool(v["bounded"]), params={**params, **v},
                          note="ratio = seconds of offered frames waiting"))
    drops = float(sum(summary["drops"].values()))
    out.append(Result(AREA, "frames_dropped", drops, "frames", "frames read by ingest",
                      float(summary["frames"]["read"]) or None, params={**params, **summary["drops"]},
                      note="every reason: ingest backpressure, read errors, watchdog, stage errors, dead letters"))
    return out


# ------------------------------------------------------------------------------------------------- plot

_COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def _bgr(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    return rgb[2], rgb[1], rgb[0]


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * e:
            return m * e
    return 10 * e


def _panel(img: np.ndarray, box: tuple[int, int, int, int], title: str, ylabel: str, x_max: float,
           series: Sequence[tuple[str, Sequence[float], Sequence[float | None]]], warmup_min: float) -> None:
    x0, y0, w, h = box
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, title, (x0, y0 - 12), font, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    ys = [float(v) for _, _, vs in series for v in vs if v is not None]
    y_max = _nice_max(max(ys, default=1.0) * 1.05)
    px = lambda t: int(x0 + w * t / x_max)  # noqa: E731
    py = lambda v: int(y0 + h - h * v / y_max)  # noqa: E731
    cv2.rectangle(img, (x0, y0), (px(min(warmup_min, x_max)), y0 + h), (235, 235, 235), -1)
    for k in range(6):
        yv = y_max * k / 5
        cv2.line(img, (x0, py(yv)), (x0 + w, py(yv)), (210, 210, 210), 1)
        label = f"{yv:,.0f}" if y_max >= 10 else f"{yv:.1f}"
        cv2.putText(img, label, (x0 - 8 - 9 * len(label), py(yv) + 5), font, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
    step = _nice_max(x_max / 6)
    xv = 0.0
    while xv <= x_max + 1e-9:
        cv2.line(img, (px(xv), y0 + h), (px(xv), y0 + h + 5), (60, 60, 60), 1)
        cv2.putText(img, f"{xv:g}", (px(xv) - 8, y0 + h + 20), font, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
        xv += step
    cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), (0, 0, 0), 1)
    cv2.putText(img, ylabel, (x0 + 5, y0 + 15), font, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
    ly = y0 + 14
    for i, (name, tx, vs) in enumerate(series):
        color = _bgr(_COLORS[i % len(_COLORS)])
        pts = [(px(t), py(float(v))) for t, v in zip(tx, vs, strict=True) if v is not None]
        if len(pts) >= 2:
            cv2.polylines(img, [np.asarray(pts, dtype=np.int32)], False, color, 2, cv2.LINE_AA)
        cv2.line(img, (x0 + w + 15, ly - 4), (x0 + w + 35, ly - 4), color, 2)
        cv2.putText(img, name[:34], (x0 + w + 40, ly), font, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        ly += 17


def plot(summary: Mapping[str, Any], path: Path) -> None:
    """Four panels over minutes: RSS per process, lag per stage, cumulative drops by reason, throughput with the
    machine's load average; the warm-up shaded."""
    ss = summary["samples"]
    tmin = [s["t"] / 60 for s in ss]
    x_max = max(tmin[-1], 1e-3)
    W, H, left, top, pw, ph = 1400, 1400, 80, 70, 950, 250
    img = np.full((H, W, 3), 255, np.uint8)
    ld = summary["load"]
    head = (f"argus bench soak: {summary['minutes']:g} min at {ld['effective']:g}x nominal "
            f"({ld['cameras']} cameras x {ld['fps_per_camera']:g} fps), started {summary['started']}, "
            f"load avg mean {summary['load_avg']['mean']} (shared machine)")
    cv2.putText(img, head, (left, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    warm = summary["warmup_s"] / 60
    names = list(summary["processes"])
    rss = [(f"{n} {summary['processes'][n]['growth_mb_per_h']:+.1f} MB/h", tmin,
            [s["rss_mb"].get(n) for s in ss]) for n in names]
    _panel(img, (left, top + 20, pw, ph), "Resident memory per process (MB, VmRSS of the process tree)", "MB",
           x_max, rss, warm)
    lags = [(f"{st} (max {summary['lag'][st]['max_after_warmup']})", tmin, [s["lag"].get(st) for s in ss])
            for st in summary["lag"]]
    _panel(img, (left, top + 20 + ph + 70, pw, ph), "Consumer lag per stage (messages)", "messages", x_max,
           lags, warm)
    reasons = sorted({k for s in ss for k in s["drops"]})
    drops = [(f"{r} ({summary['drops'].get(r, 0)})", tmin, [s["drops"].get(r, 0.0) for s in ss]) for r in reasons]
    _panel(img, (left, top + 20 + 2 * (ph + 70), pw, ph), "Frames/messages dropped, cumulative, by reason",
           "count", x_max, drops or [("none", tmin, [0.0] * len(ss))], warm)
    k = max(1, round(30 / summary["interval_s"]))  # rates over 30 s: inference counts its frames per micro-batch
    rates = [(name, tmin[k:],
              [(b[key] - a[key]) / max(1e-9, b["t"] - a["t"]) for a, b in zip(ss, ss[k:], strict=False)])
             for name, key in (("frames read by ingest /s", "frames_read"), ("frames analysed /s", "frames_analysed"))]
    rates.append((f"offered {ld['offered_frames_per_s']:g} frames/s", tmin, [ld["offered_frames_per_s"]] * len(ss)))
    rates.append(("machine load average (1 min)", tmin, [s["load_avg"] for s in ss]))
    _panel(img, (left, top + 20 + 3 * (ph + 70), pw, ph), "Throughput (frames/s) and the shared machine's load",
           "frames/s | load", x_max, rates, warm)
    cv2.putText(img, "minutes (grey: warm-up, excluded from the growth fit)", (left + pw // 2 - 200, H - 15),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise BenchError(f"OpenCV could not write the plot to {path}")


# ------------------------------------------------------------------------------------------------- CLI

def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="argus bench soak", description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--minutes", type=float, default=30.0, help="how long the load runs (default 30)")
    ap.add_argument("--load", type=float, default=1.0,
                    help="multiple of nominal load: round(3 x LOAD) demo cameras at 5 fps (default 1)")
    ap.add_argument("--interval", type=float, default=0.0,
                    help="seconds between samples (default: 5 s up to 5 min runs, else 10 s)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help="where soak-<N>min.json and soak-<N>min.png go (default bench/results/soak)")
    return ap


@contextlib.contextmanager
def _servers(ctx: Context) -> Iterator[ServerProcs]:
    from bench import servers

    with servers.serve(ctx, "kafka") as kafka, servers.serve(ctx, "mongo") as mongo, \
            servers.serve(ctx, "triton") as triton:
        yield ServerProcs(kafka=kafka.address, triton=triton.address, mongo_uri=mongo.address,
                          pids={"kafka": kafka.pid, "mongodb-wire": mongo.pid, "triton": triton.pid})


def write_outputs(summary: dict[str, Any], out: Path) -> tuple[Path, Path]:
    tag = f"soak-{summary['minutes']:g}min"
    out.mkdir(parents=True, exist_ok=True)
    js, png = out / f"{tag}.json", out / f"{tag}.png"
    js.write_text(json.dumps(summary, indent=1, sort_keys=False) + "\n")
    plot(summary, png)
    return js, png


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)
    machine = machine_info()
    machine["load_avg_start"] = load_avg()
    command = "argus bench soak" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    t_start = time.monotonic()

    def log(msg: str) -> None:
        sys.stderr.write(f"[soak {time.monotonic() - t_start:7.1f}s] {msg}\n")
        sys.stderr.flush()

    def emit(r: Result) -> None:
        sys.stdout.write(json.dumps(r.as_json(machine), sort_keys=True) + "\n")
        sys.stdout.flush()

    interval = args.interval or (5.0 if args.minutes <= 5 else 10.0)
    plan_load(args.load)  # refuse a bad multiple before any server starts
    work = Path(tempfile.mkdtemp(prefix="argus-soak-"))
    try:
        ctx = Context(quick=False, gpu=False, work_dir=work, emit=emit, log=log)

        def checkpoint(partial: SoakRun) -> None:
            summary = summarize(partial, command=command, machine=machine)
            summary["in_progress"] = True
            js, _ = write_outputs(summary, args.out)
            log(f"checkpoint: {js} ({len(partial.samples)} samples)")

        with _servers(ctx) as srv:
            run = run_soak(srv, minutes=args.minutes, load=args.load, work=work / "run", interval_s=interval,
                           log=log, checkpoint=checkpoint)
        summary = summarize(run, command=command, machine=machine)
        summary["in_progress"] = False
        js, png = write_outputs(summary, args.out)
        for r in results(summary):
            emit(r)
        log(f"wrote {js} and {png}; lag bounded: {summary['lag_bounded']}; growth MB/h: "
            + ", ".join(f"{k} {v['growth_mb_per_h']:+.1f}" for k, v in summary["processes"].items()))
        return 1 if run.ended_early else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)
