"""One supervised reader thread per camera: open, read, queue, reconnect — and never hang.

OpenCV's ``read()`` can block forever on a dead RTSP peer (opencv/opencv#22677: the FFmpeg interrupt callback
is not always consulted), and a timeout inside OpenCV cannot be trusted to fire. So every blocking call into a
source (open, read, close) runs on a worker thread and the supervisor waits for it with a deadline. When the
deadline passes the WATCHDOG trips: the worker (daemon) is abandoned together with its capture, the camera is
marked stale, and the supervisor reconnects on a fresh worker. Sources are written so that ``close()`` from the
supervisor is safe while the abandoned read is still blocked (see ``argus.ingest.sources``).

Failures never kill the thread: open/read errors reconnect with capped, jittered exponential backoff (jitter so
fifty cameras behind one dead switch do not reconnect in lock-step); a corrupt frame is counted and skipped.

A FLAPPING camera (its URL answers, delivers a few frames, fails, comes back, all night) must not be reconnected
at the first backoff step forever: every reconnect is a handshake and a decoder start on the camera or the NVR,
and an operator should see it as unstable, not healthy. So the backoff only starts over after a session that
stayed up for ``stable_after_s``; shorter sessions keep climbing towards the cap (each one still resets the
``max_failures`` count, since it did deliver frames) and are counted as ``flaps``.
Counters are plain integers exposed as a :class:`ReaderStats` snapshot: the metrics module reads them, this
module does not know Prometheus exists.
"""

from __future__ import annotations

import itertools
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

from argus.errors import ConfigError, InputError, SourceError
from argus.ingest.queue import DropOldestQueue
from argus.ingest.sources import CapturedFrame, FrameSource
from argus.retry import Backoff

__all__ = ["CameraReader", "ReaderGroup", "ReaderState", "ReaderStats"]

log = logging.getLogger(__name__)

R = TypeVar("R")


class ReaderState(str, Enum):
    idle = "idle"  # not started
    connecting = "connecting"
    streaming = "streaming"
    stale = "stale"  # the watchdog abandoned a hung call; reconnecting
    backoff = "backoff"  # waiting before the next reconnect
    ended = "ended"  # a finite stream (file) delivered its last frame
    failed = "failed"  # gave up after max_failures consecutive failed attempts
    stopped = "stopped"


@dataclass(frozen=True, kw_only=True)
class ReaderStats:
    """A consistent snapshot of one reader's counters (monotonic counters, except the gauges at the end)."""

    camera_id: str
    state: ReaderState
    frames_read: int
    frames_dropped: int
    reconnects: int
    open_errors: int
    read_errors: int
    decode_errors: int
    watchdog_trips: int
    flaps: int = 0  # sessions that delivered frames but failed before stable_after_s: the camera comes and goes
    last_frame_ts: float | None  # capture ts of the newest frame (epoch s)
    seconds_since_frame: float | None  # wall time since a frame last arrived: the "camera silent" signal
    queue_depth: int
    hung_threads: int  # abandoned workers still blocked inside the source
    last_backoff_s: float
    last_error: str | None


class _Hung(Exception):
    """A source call outlived its deadline."""


class _Stopping(Exception):
    """stop() was requested while waiting for a source call."""


@dataclass(eq=False)
class _Call:
    fn: Callable[[], Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class _Worker:
    """A daemon thread that runs source calls one at a time, so a hung call can be abandoned with its thread."""

    _ids = itertools.count()

    def __init__(self, camera_id: str) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name=f"argus-src-{camera_id}-{next(self._ids)}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (call := self._calls.get()) is not None:
            try:
                call.result = call.fn()
            except BaseException as e:
                call.error = e
            finally:
                call.done.set()

    def submit(self, fn: Callable[[], Any]) -> _Call:
        call = _Call(fn)
        self._calls.put(call)
        return call

    def shutdown(self) -> None:
        self._calls.put(None)


class CameraReader:
    """Reads one FrameSource on its own thread into a DropOldestQueue until stopped or the stream ends."""

    def __init__(
        self,
        source: FrameSource,
        *,
        queue: DropOldestQueue[CapturedFrame] | None = None,
        queue_size: int = 16,
        open_timeout_s: float = 15.0,
        read_timeout_s: float = 15.0,
        close_timeout_s: float = 2.0,
        backoff: Backoff | None = None,
        max_failures: int | None = None,
        max_consecutive_decode_errors: int = 50,
        stable_after_s: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        for name, v in (("open_timeout_s", open_timeout_s), ("read_timeout_s", read_timeout_s),
                        ("close_timeout_s", close_timeout_s), ("stable_after_s", stable_after_s)):
            if not v > 0:
                raise ConfigError(f"camera {source.camera_id!r}: {name}: expected > 0, got {v!r}")
        if max_failures is not None and max_failures < 1:
            raise ConfigError(f"camera {source.camera_id!r}: max_failures: expected None or >= 1, got {max_failures}")
        self.source = source
        self.camera_id = source.camera_id
        self.queue: DropOldestQueue[CapturedFrame] = queue if queue is not None else DropOldestQueue(queue_size)
        self._open_timeout = open_timeout_s
        self._read_timeout = read_timeout_s
        self._close_timeout = close_timeout_s
        self._backoff = backoff or Backoff()
        self._max_failures = max_failures
        self._max_decode = max_consecutive_decode_errors
        self._stable_after = stable_after_s
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._worker: _Worker | None = None
        self._abandoned: list[threading.Thread] = []
        # counters (guarded by _lock)
        self._state = ReaderState.idle
        self._frames = 0
        self._dropped = 0
        self._reconnects = 0
        self._open_errors = 0
        self._read_errors = 0
        self._decode_errors = 0
        self._trips = 0
        self._flaps = 0
        self._streaming_since: float | None = None  # monotonic start of the current session's streaming
        self._last_ts: float | None = None
        self._last_frame_mono: float | None = None
        self._started_mono: float | None = None
        self._last_backoff = 0.0
        self._last_error: str | None = None

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> CameraReader:
        if self._thread is not None:
            raise ConfigError(f"camera {self.camera_id!r}: reader already started")
        self._started_mono = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"argus-reader-{self.camera_id}", daemon=True)
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Signal the thread without waiting (lets a group stop all cameras in parallel)."""
        self._stop.set()

    def stop(self, timeout: float = 2.0) -> bool:
        """Ask the thread to finish, wait up to ``timeout``; True once it has exited (a hung source cannot hold it)."""
        self._stop.set()
        t = self._thread
        if t is None:
            self._set(state=ReaderState.stopped)
            return True
        t.join(timeout)
        return not t.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        t = self._thread
        if t is not None:
            t.join(timeout)
        return t is None or not t.is_alive()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def state(self) -> ReaderState:
        with self._lock:
            return self._state

    def stats(self) -> ReaderStats:
        now = time.monotonic()
        with self._lock:
            self._abandoned = [t for t in self._abandoned if t.is_alive()]
            ref = self._last_frame_mono if self._last_frame_mono is not None else self._started_mono
            return ReaderStats(
                camera_id=self.camera_id, state=self._state, frames_read=self._frames, frames_dropped=self._dropped,
                reconnects=self._reconnects, open_errors=self._open_errors, read_errors=self._read_errors,
                decode_errors=self._decode_errors, watchdog_trips=self._trips, flaps=self._flaps,
                last_frame_ts=self._last_ts,
                seconds_since_frame=None if ref is None else now - ref, queue_depth=self.queue.depth,
                hung_threads=len(self._abandoned), last_backoff_s=self._last_backoff, last_error=self._last_error,
            )

    # ---------------------------------------------------------------- internals
    def _set(self, **kw: Any) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self, f"_{k}", v)

    def _bump(self, counter: str, error: str | None = None) -> None:
        with self._lock:
            setattr(self, f"_{counter}", getattr(self, f"_{counter}") + 1)
            if error is not None:
                self._last_error = error

    def _call(self, fn: Callable[[], R], deadline_s: float, what: str) -> R:
        """Run a source call on the worker; raise _Hung past the deadline, _Stopping on stop()."""
        if self._worker is None:
            self._worker = _Worker(self.camera_id)
        call = self._worker.submit(fn)
        end = time.monotonic() + deadline_s
        while not call.done.wait(min(0.05, max(0.0, end - time.monotonic()))):
            if self._stop.is_set():
                self._abandon_worker()
                raise _Stopping
            if time.monotonic() >= end:
                self._abandon_worker()
                raise _Hung(f"{what}() did not return within {deadline_s:g} s")
        if call.error is not None:
            raise call.error
        return call.result

    def _abandon_worker(self) -> None:
        w, self._worker = self._worker, None
        if w is not None:
            w.shutdown()  # if the hung call ever returns, the thread exits
            with self._lock:
                self._abandoned.append(w.thread)

    def _close_source(self) -> None:
        if self._stop.is_set() and self._worker is not None:
            # Stopping: close on the current worker but don't let a slow close delay stop().
            self._worker.submit(self.source.close)
            return
        try:
            self._call(self.source.close, self._close_timeout, "close")
        except (_Hung, _Stopping):
            log.warning("camera %r: close() did not return within %g s; capture abandoned",
                        self.camera_id, self._close_timeout)
        except Exception as e:
            log.warning("camera %r: close() failed: %s", self.camera_id, e)

    def _run(self) -> None:
        failures = 0  # consecutive sessions without a frame (max_failures)
        streak = 0  # consecutive sessions that were not stable (the backoff step)
        try:
            while not self._stop.is_set():
                self._streaming_since = None
                outcome = self._session()
                if outcome in (ReaderState.ended, ReaderState.stopped):
                    self._set(state=outcome)
                    return
                if outcome is ReaderState.streaming:  # delivered frames before failing: a fresh failure streak
                    failures = 0
                    up = time.monotonic() - (self._streaming_since or time.monotonic())
                    if up >= self._stable_after:
                        streak = 0
                    else:
                        self._bump("flaps")
                failures += 1
                streak += 1
                if self._max_failures is not None and failures >= self._max_failures:
                    log.error("camera %r: giving up after %d consecutive failed attempts (last error: %s)",
                              self.camera_id, failures, self._last_error)
                    self._set(state=ReaderState.failed)
                    return
                delay = self._backoff.delay(streak - 1, self._rng)
                self._set(state=ReaderState.backoff, last_backoff=delay)
                log.info("camera %r: reconnecting in %.2f s (attempt %d)", self.camera_id, delay, failures)
                if self._stop.wait(delay):
                    break
                self._bump("reconnects")
            self._set(state=ReaderState.stopped)
        finally:
            if self._worker is not None:
                self._worker.shutdown()
                self._worker = None

    def _session(self) -> ReaderState:
        """One capture session: open, read until failure/end/stop. Returns streaming if any frame was delivered."""
        cid = self.camera_id
        self._set(state=ReaderState.connecting)
        try:
            self._call(self.source.open, self._open_timeout, "open")
        except _Stopping:
            return ReaderState.stopped
        except _Hung as e:
            self._bump("trips", str(e))
            self._bump("open_errors")
            self._set(state=ReaderState.stale)
            log.error("camera %r: watchdog: %s; abandoning the capture", cid, e)
            self._close_source()
            return ReaderState.stale
        except Exception as e:
            self._bump("open_errors", str(e))
            if isinstance(e, SourceError):
                log.warning("camera %r: open failed: %s", cid, e)
            else:
                log.exception("camera %r: unexpected error opening the source", cid)
            self._close_source()
            return ReaderState.connecting
        self._set(state=ReaderState.streaming)
        self._streaming_since = time.monotonic()
        delivered = False
        decode_streak = 0
        while True:
            if self._stop.is_set():
                self._close_source()
                return ReaderState.stopped
            try:
                frame = self._call(self.source.read, self._read_timeout, "read")
            except _Stopping:
                self._close_source()
                return ReaderState.stopped
            except _Hung as e:
                self._bump("trips", str(e))
                self._set(state=ReaderState.stale)
                log.error("camera %r: watchdog: %s; marking stale and reconnecting", cid, e)
                self._close_source()
                return ReaderState.streaming if delivered else ReaderState.stale
            except InputError as e:
                self._bump("decode_errors", str(e))
                decode_streak += 1
                if decode_streak <= 3 or decode_streak % 100 == 0:
                    log.warning("camera %r: skipped a corrupt frame (%d in a row): %s", cid, decode_streak, e)
                if decode_streak >= self._max_decode:
                    self._bump("read_errors", f"{decode_streak} corrupt frames in a row")
                    log.error("camera %r: %d corrupt frames in a row; reconnecting", cid, decode_streak)
                    self._close_source()
                    return ReaderState.streaming if delivered else ReaderState.connecting
                continue
            except Exception as e:
                self._bump("read_errors", str(e))
                if isinstance(e, SourceError):
                    log.warning("camera %r: read failed: %s", cid, e)
                else:
                    log.exception("camera %r: unexpected error reading the source", cid)
                self._close_source()
                return ReaderState.streaming if delivered else ReaderState.connecting
            if frame is None:
                log.info("camera %r: end of stream", cid)
                self._close_source()
                return ReaderState.ended
            decode_streak = 0
            delivered = True
            evicted = self.queue.put(frame)
            with self._lock:
                self._frames += 1
                if evicted is not None:
                    self._dropped += 1
                self._last_ts = frame.ts
                self._last_frame_mono = time.monotonic()
                self._state = ReaderState.streaming


class ReaderGroup:
    """Readers for many cameras, each with its own bounded queue, drained fairly by one consumer.

    Per-camera queues mean a chatty camera can only evict its own old frames, never a quiet camera's.
    """

    def __init__(self, readers: Iterable[CameraReader], *, notify: threading.Event | None = None) -> None:
        self.readers = list(readers)
        ids = [r.camera_id for r in self.readers]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ConfigError(f"ReaderGroup: expected unique camera ids, got duplicates {', '.join(dup)}")
        self._notify = notify or threading.Event()
        self._next = 0

    @classmethod
    def for_sources(cls, sources: Iterable[FrameSource], *, queue_size: int = 16, **reader_kw: Any) -> ReaderGroup:
        notify = threading.Event()
        readers = [CameraReader(s, queue=DropOldestQueue(queue_size, notify=notify), **reader_kw) for s in sources]
        return cls(readers, notify=notify)

    def start(self) -> ReaderGroup:
        for r in self.readers:
            r.start()
        return self

    def stop(self, timeout: float = 2.0) -> bool:
        for r in self.readers:
            r.request_stop()
        end = time.monotonic() + timeout
        return all(r.stop(max(0.0, end - time.monotonic())) for r in self.readers)

    @property
    def finished(self) -> bool:
        """Every reader has exited (files ended, gave up, or stopped) and every queue is empty."""
        return all(not r.running for r in self.readers) and all(r.queue.depth == 0 for r in self.readers)

    def get(self, timeout: float | None = None) -> CapturedFrame | None:
        """Next frame from any camera, round-robin across cameras; None after ``timeout`` with nothing queued."""
        end = None if timeout is None else time.monotonic() + timeout
        n = len(self.readers)
        while True:
            self._notify.clear()
            for k in range(n):
                r = self.readers[(self._next + k) % n]
                item = r.queue.get_nowait()
                if item is not None:
                    self._next = (self._next + k + 1) % n
                    return item
            if self.finished:
                return None
            remaining = None if end is None else end - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            self._notify.wait(0.1 if remaining is None else min(remaining, 0.1))

    def stats(self) -> dict[str, ReaderStats]:
        return {r.camera_id: r.stats() for r in self.readers}
