"""Camera health in the event store: what each reader is doing, so operators see it through the API.

Prometheus already has every counter, but an operator asking "is gate-3 live?" through the API (or a console
that has no Prometheus) needs the answer where the rest of their data is. Ingest is the only process that knows,
so it writes one small document per camera every ``ARGUS_CAMERA_HEALTH_INTERVAL_S``. The writes run on their own
thread and every failure is swallowed (logged once per outage, counted by the caller): a slow or absent store must
never cost a frame.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from argus.errors import InputError
from argus.ingest.reader import ReaderStats

log = logging.getLogger(__name__)

__all__ = ["HEALTH_KEYS", "CameraHealthRecorder", "HealthStore", "health_doc"]

#: The keys of each camera's health document (docs/operator-api-design.md, "Cameras").
#: ``watchdog_trips`` (reads that hung and were abandoned) and ``flaps`` (sessions that came up and failed before they
#: were stable) tell "wedged" and "flapping" apart from "down", which ``state`` and ``reconnects`` alone cannot.
HEALTH_KEYS = ("state", "fps", "last_frame_ts", "frames_dropped", "reconnects", "watchdog_trips", "flaps",
               "updated_at")


class HealthStore(Protocol):
    """The one store method the recorder needs (argus.store.base.EventStore has it)."""

    def put_camera_health(self, camera_id: str, health: Mapping[str, Any]) -> None: ...


def health_doc(stats: ReaderStats, previous: ReaderStats | None, elapsed_s: float, *, now: float) -> dict[str, Any]:
    """One camera's health. ``fps`` is frames read over the last ``elapsed_s`` (since ``previous``), so it says
    what the camera delivers now, not its average since start-up; without a previous snapshot it is 0."""
    if elapsed_s < 0:
        raise InputError(f"expected elapsed_s >= 0, got {elapsed_s}")
    frames = stats.frames_read - (previous.frames_read if previous is not None else stats.frames_read)
    fps = round(frames / elapsed_s, 3) if previous is not None and elapsed_s > 0 else 0.0
    return {"state": stats.state.value, "fps": fps, "last_frame_ts": stats.last_frame_ts,
            "frames_dropped": stats.frames_dropped, "reconnects": stats.reconnects,
            "watchdog_trips": stats.watchdog_trips, "flaps": stats.flaps, "updated_at": now}


class CameraHealthRecorder:
    """Writes every camera's :func:`health_doc` to the store every ``interval_s`` on a daemon thread.

    ``store`` is a callable so that opening the store is itself retried each interval: ingest must start and
    stream even when MongoDB is down at that moment. ``on_failure`` is called once per failed write (ingest
    counts them as ``argus_ingest_health_write_failures_total``).
    """

    def __init__(self, stats: Callable[[], Mapping[str, ReaderStats]], store: Callable[[], HealthStore], *,
                 interval_s: float, on_failure: Callable[[BaseException], None] | None = None,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        if not interval_s > 0:
            raise InputError(f"expected interval_s > 0, got {interval_s}")
        self._stats, self._store, self.interval_s = stats, store, interval_s
        self._on_failure = on_failure
        self._clock, self._monotonic = clock, monotonic
        self._prev: dict[str, ReaderStats] = {}
        self._prev_at: float | None = None
        self._failing = False
        self._recorded = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def prime(self) -> None:
        """Take the baseline the first interval's fps is measured from (call when the readers start)."""
        self._prev, self._prev_at = dict(self._stats()), self._monotonic()

    def record(self) -> int:
        """Write one document per camera now; returns how many the store took. Never raises for a store error."""
        now_mono, now = self._monotonic(), self._clock()
        elapsed = now_mono - self._prev_at if self._prev_at is not None else 0.0
        current = dict(self._stats())
        written = 0
        try:
            store = self._store()
        except Exception as e:  # opening the store failed (MongoDB down): every camera's write failed
            for _ in current:
                self._failed(e)
            self._prev, self._prev_at = current, now_mono
            return 0
        for cam, st in current.items():
            doc = health_doc(st, self._prev.get(cam), elapsed, now=now)
            try:
                store.put_camera_health(cam, doc)
            except Exception as e:  # StoreError, a driver error, anything: health is best effort, frames are not
                self._failed(e)
                continue
            written += 1
        if written and self._failing and written == len(current):
            log.info("camera health: the store accepts writes again")
            self._failing = False
        self._recorded = self._recorded or written > 0
        self._prev, self._prev_at = current, now_mono
        return written

    def _failed(self, e: BaseException) -> None:
        if not self._failing:
            log.warning("camera health: the store refused a write (%s: %s); ingest goes on, retrying every %.1f s",
                        type(e).__name__, e, self.interval_s)
            self._failing = True
        if self._on_failure is not None:
            self._on_failure(e)

    def start(self) -> CameraHealthRecorder:
        if self._thread is None:
            self.prime()
            self._thread = threading.Thread(target=self._loop, name="ingest-camera-health", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.record()

    def stop(self, *, final: bool = True) -> None:
        """Stop the thread; with ``final``, write once more (the readers' last state, e.g. stopped) — only if the
        store was reachable before, so a stage that never wrote does not open the store just to say goodbye."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval_s + 5.0)
            self._thread = None
            if final and self._recorded:
                self.record()
