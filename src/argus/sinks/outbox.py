"""A webhook that is slow or down must cost neither the alerter's stream nor the alert: deliver from an outbox.

Why an outbox and not "hold the batch": holding (raise a TransientError, commit nothing) would stop the whole
alerter while one receiver answers 500 for a minute — no events stored, no alerts on the topic or in the log, the
operator console blind — for a failure that concerns one downstream system. Why not "retry a few times and give
up" (the synchronous :class:`~argus.sinks.webhook.WebhookSink`): a one-minute outage outlasts any reasonable retry
budget inside a batch, so the alert would reach the store but never the dispatch system. So ``send()`` only writes
the alert's exact request body to an outbox (milliseconds: the stream goes on) and one delivery thread posts the
outbox oldest first, retrying what a retry can fix without limit in time (capped, jittered :class:`Backoff`), until
the receiver answers 2xx. The alert is in the event store either way.

Durability: :class:`SqliteOutbox` is a file (WAL, ``synchronous=FULL``), so alerts queued when the alerter is
killed are delivered by the next start on the same data directory; :class:`MemoryOutbox` is its in-memory twin
(tests, and a sink whose process has no disk). A crash between the receiver's 2xx and the outbox delete sends that
alert once more: the documented at-least-once duplicate, with the same ``Idempotency-Key`` (the alert id).

Bounds: a later revision of an alert still waiting replaces its body in place (the receiver gets the newest
revision, once, in the original order); a full outbox (``capacity``) drops its OLDEST entry — by policy, counted
as ``outcome="dropped"``, logged — so memory and disk stay bounded during a receiver outage of days. A request
the receiver refuses for good (4xx other than 408/429, e.g. a wrong signing key) is removed and counted as
``rejected``: retrying it would block every alert behind it forever.
"""

from __future__ import annotations

import logging
import random
import socket
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from argus.errors import ConfigError, SinkError
from argus.retry import Backoff
from argus.schemas import AlertV3
from argus.sinks.webhook import Attempt, WebhookSink, body_of

__all__ = ["DEFAULT_CAPACITY", "DELIVERY_BACKOFF", "MemoryOutbox", "Outbox", "OutboxSink", "OutboxStats",
           "Pending", "Poster", "SqliteOutbox", "durable_webhook", "metric_names"]

log = logging.getLogger(__name__)

#: Alerts an outbox holds before it drops its oldest (a crop is ~10-40 KB: 1,000 alerts stay under ~40 MB).
DEFAULT_CAPACITY = 1000
#: 0.5 s → 10 s between attempts while the receiver fails: the same cap as a held batch (runner), so a receiver
#: that comes back is served within ~10 s, and fifty alerters do not hammer it in lock-step (jitter).
DELIVERY_BACKOFF = Backoff(initial_s=0.5, factor=2.0, max_s=10.0, jitter=0.5)
#: Per-request timeout of the delivering sink: long, because nothing waits on it but the outbox; a receiver that
#: takes 10 s must get its answer through, not be timed out and sent the same alert again and again.
DELIVERY_TIMEOUT_S = 30.0


@dataclass(frozen=True, kw_only=True)
class Pending:
    """One queued request. ``version`` grows when a newer revision of the alert replaces the body."""

    position: int
    alert_id: str
    body: bytes
    version: int
    enqueued_at: float


class Outbox(Protocol):
    """Queued webhook requests, oldest first, one per alert id. Thread-safe."""

    capacity: int

    def put(self, alert_id: str, body: bytes, *, now: float) -> int:
        """Queue (or replace the waiting body of) ``alert_id``; returns how many oldest entries were dropped."""
        ...

    def head(self) -> Pending | None: ...

    def remove(self, entry: Pending) -> bool:
        """Remove ``entry`` if it is still the version queued; False when a newer revision replaced it."""
        ...

    def __len__(self) -> int: ...

    def close(self) -> None: ...


def _check_capacity(capacity: int) -> int:
    if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
        raise ConfigError(f"webhook outbox capacity: expected an int >= 1, got {capacity!r}")
    return capacity


class MemoryOutbox:
    """The in-memory twin: the same rules as :class:`SqliteOutbox`, gone with the process."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = _check_capacity(capacity)
        self._items: OrderedDict[str, Pending] = OrderedDict()
        self._next = 1
        self._lock = threading.Lock()

    def put(self, alert_id: str, body: bytes, *, now: float) -> int:
        with self._lock:
            old = self._items.get(alert_id)
            if old is not None:
                self._items[alert_id] = Pending(position=old.position, alert_id=alert_id, body=bytes(body),
                                                version=old.version + 1, enqueued_at=old.enqueued_at)
                return 0
            dropped = 0
            while len(self._items) >= self.capacity:
                self._items.popitem(last=False)
                dropped += 1
            self._items[alert_id] = Pending(position=self._next, alert_id=alert_id, body=bytes(body), version=1,
                                            enqueued_at=now)
            self._next += 1
            return dropped

    def head(self) -> Pending | None:
        with self._lock:
            return next(iter(self._items.values()), None)

    def remove(self, entry: Pending) -> bool:
        with self._lock:
            cur = self._items.get(entry.alert_id)
            if cur is None or cur.position != entry.position:
                return True  # already gone (dropped while in flight): nothing left to deliver for it
            if cur.version != entry.version:
                return False
            del self._items[entry.alert_id]
            return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def close(self) -> None:
        pass


class SqliteOutbox:
    """A durable outbox in one SQLite file: what was queued survives a SIGKILL of the alerter."""

    def __init__(self, path: Path, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = _check_capacity(capacity)
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("CREATE TABLE IF NOT EXISTS outbox (position INTEGER PRIMARY KEY AUTOINCREMENT, "
                             "alert_id TEXT NOT NULL UNIQUE, body BLOB NOT NULL, version INTEGER NOT NULL, "
                             "enqueued_at REAL NOT NULL)")
        except (OSError, sqlite3.Error) as e:
            raise ConfigError(f"webhook outbox: expected a writable SQLite file at {str(self.path)!r}, got "
                              f"{type(e).__name__}: {e}") from e

    def put(self, alert_id: str, body: bytes, *, now: float) -> int:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    if self._db.execute("UPDATE outbox SET body = ?, version = version + 1 WHERE alert_id = ?",
                                        (bytes(body), alert_id)).rowcount:
                        self._db.execute("COMMIT")
                        return 0
                    (n,) = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
                    dropped = max(0, n - self.capacity + 1)
                    if dropped:
                        self._db.execute("DELETE FROM outbox WHERE position IN "
                                         "(SELECT position FROM outbox ORDER BY position LIMIT ?)", (dropped,))
                    self._db.execute("INSERT INTO outbox (alert_id, body, version, enqueued_at) VALUES (?, ?, 1, ?)",
                                     (alert_id, bytes(body), now))
                    self._db.execute("COMMIT")
                    return dropped
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:  # disk full, read-only: the alert could not even be queued
                raise SinkError(f"webhook outbox {str(self.path)!r}: alert {alert_id} not queued, expected a "
                                f"writable outbox, got {type(e).__name__}: {e}") from e

    def head(self) -> Pending | None:
        with self._lock:
            row = self._db.execute("SELECT position, alert_id, body, version, enqueued_at FROM outbox "
                                   "ORDER BY position LIMIT 1").fetchone()
        if row is None:
            return None
        return Pending(position=row[0], alert_id=row[1], body=bytes(row[2]), version=row[3], enqueued_at=row[4])

    def remove(self, entry: Pending) -> bool:
        with self._lock:
            if self._db.execute("DELETE FROM outbox WHERE position = ? AND version = ?",
                                (entry.position, entry.version)).rowcount:
                return True
            row = self._db.execute("SELECT 1 FROM outbox WHERE position = ?", (entry.position,)).fetchone()
            return row is None

    def __len__(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(n)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class Poster(Protocol):
    """One delivery attempt (:meth:`argus.sinks.webhook.WebhookSink.attempt`)."""

    name: str
    url_redacted: str

    def attempt(self, data: bytes, alert_id: str) -> Attempt: ...


@dataclass(frozen=True, kw_only=True)
class OutboxStats:
    depth: int
    oldest_age_s: float  # 0 when empty: how late the receiver is
    delivered: int
    retried: int  # failed attempts that will be tried again
    rejected: int  # refused for good by the receiver (4xx), removed
    dropped: int  # oldest removed because the outbox was full
    attempts: int
    last_error: str | None


class OutboxSink:
    """An AlertSink whose ``send()`` queues and returns; a daemon thread delivers through ``poster``."""

    def __init__(self, poster: Poster, *, outbox: Outbox, backoff: Backoff = DELIVERY_BACKOFF,
                 registry: CollectorRegistry | None = None, stage: str = "alerter", drain_s: float = 2.0,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None) -> None:
        if drain_s < 0:
            raise ConfigError(f"webhook outbox: expected drain_s >= 0, got {drain_s}")
        self.poster, self.outbox, self.name = poster, outbox, poster.name
        self._backoff, self._drain_s, self._clock = backoff, drain_s, clock
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._stop = threading.Event()
        self._delivered = self._retried = self._rejected = self._dropped = self._attempts = 0
        self._last_error: str | None = None
        self._final: OutboxStats | None = None  # the last figures, once closed (a late scrape must not fail)
        if len(outbox):
            log.info("webhook %s: %d alert(s) queued by an earlier run; delivering them first",
                     poster.url_redacted, len(outbox))
        self._thread = threading.Thread(target=self._run, name=f"argus-{self.name}-outbox", daemon=True)
        self._thread.start()
        if registry is not None:
            registry.register(_OutboxCollector(self, stage))

    def __repr__(self) -> str:
        return f"OutboxSink({self.poster!r}, depth={len(self.outbox)})"

    def send(self, alert: AlertV3) -> None:
        """Queue the alert (bounded: one local write); SinkError only when it could not even be queued."""
        dropped = self.outbox.put(alert.alert_id, body_of(alert), now=self._clock())
        if dropped:
            with self._lock:
                self._dropped += dropped
            log.error("webhook %s: outbox full (%d alerts); dropped the %d oldest to queue alert %s (they are in "
                      "the event store)", self.poster.url_redacted, self.outbox.capacity, dropped, alert.alert_id)
        self._idle.clear()
        self._wake.set()

    def stats(self) -> OutboxStats:
        if self._final is not None:
            return self._final
        head = self.outbox.head()
        with self._lock:
            return OutboxStats(depth=len(self.outbox),
                               oldest_age_s=max(0.0, self._clock() - head.enqueued_at) if head else 0.0,
                               delivered=self._delivered, retried=self._retried, rejected=self._rejected,
                               dropped=self._dropped, attempts=self._attempts, last_error=self._last_error)

    def wait_idle(self, timeout_s: float) -> bool:
        """True once the outbox is empty (everything delivered or rejected) within ``timeout_s``."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if len(self.outbox) == 0 and self._idle.wait(0.05):
                return True
            self._idle.wait(0.05)
        return len(self.outbox) == 0

    def _run(self) -> None:
        streak = 0
        while not self._stop.is_set():
            entry = self.outbox.head()
            if entry is None:
                self._idle.set()
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            outcome = self.poster.attempt(entry.body, entry.alert_id)
            with self._lock:
                self._attempts += 1
            if outcome.ok:
                self.outbox.remove(entry)  # False: a newer revision came meanwhile; it goes out next
                with self._lock:
                    self._delivered += 1
                if streak:
                    log.info("webhook %s: delivering again after %d failed attempt(s); %d alert(s) queued",
                             self.poster.url_redacted, streak, len(self.outbox))
                streak = 0
                continue
            with self._lock:
                self._last_error = outcome.reason
            if not outcome.retry:
                self.outbox.remove(entry)
                with self._lock:
                    self._rejected += 1
                log.error("webhook %s: alert %s refused (%s), not retried: a retry would be refused again "
                          "(it is in the event store)", self.poster.url_redacted, entry.alert_id, outcome.reason)
                continue
            delay = self._backoff.delay(streak, self._rng)
            with self._lock:
                self._retried += 1
            if streak < 3 or streak % 20 == 0:
                log.warning("webhook %s: alert %s attempt failed (%s); %d queued, retrying in %.2f s",
                            self.poster.url_redacted, entry.alert_id, outcome.reason, len(self.outbox), delay)
            streak += 1
            self._stop.wait(delay)

    def close(self) -> None:
        """Deliver what is queued for up to ``drain_s``, then stop; a durable outbox keeps the rest."""
        if self._drain_s and len(self.outbox):
            self.wait_idle(self._drain_s)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=1.0)
        left = len(self.outbox)
        if left:
            kept = "kept for the next start" if isinstance(self.outbox, SqliteOutbox) else "LOST (in-memory outbox)"
            log.warning("webhook %s: %d alert(s) not delivered at shutdown, %s", self.poster.url_redacted, left, kept)
        if not self._thread.is_alive():  # a request still in flight keeps its connection: leave the file open
            self._final = self.stats()
            self.outbox.close()


def metric_names(stage: str = "alerter") -> tuple[str, ...]:
    """The series the outbox exports (tools/k8s_check.py checks dashboard and alert rules against them)."""
    p = f"argus_{stage}_webhook"
    return f"{p}_outbox_depth", f"{p}_outbox_oldest_age_seconds", f"{p}_deliveries_total"


class _OutboxCollector(Collector):
    """Reads the sink's counters at scrape time (no second copy of them to keep in step)."""

    def __init__(self, sink: OutboxSink, stage: str) -> None:
        self._sink, self._names = sink, metric_names(stage)

    def collect(self) -> Iterator[Metric]:
        st = self._sink.stats()
        depth_name, age_name, deliveries_name = self._names
        depth = GaugeMetricFamily(depth_name, "Alerts queued for the webhook, not yet delivered.")
        depth.add_metric([], st.depth)
        age = GaugeMetricFamily(age_name, "Age of the oldest alert waiting for the webhook (0 when none waits).")
        age.add_metric([], st.oldest_age_s)
        out = CounterMetricFamily(deliveries_name.removesuffix("_total"),
                                  "Webhook delivery attempts by outcome (delivered, retried, rejected = refused for "
                                  "good, dropped = outbox full).", labels=["outcome"])
        for outcome in ("delivered", "retried", "rejected", "dropped"):
            out.add_metric([outcome], getattr(st, outcome))
        yield from (depth, age, out)


def durable_webhook(*, url: str, secret: str, data_dir: Path, registry: CollectorRegistry | None = None,
                    capacity: int = DEFAULT_CAPACITY) -> OutboxSink:
    """The alerter's webhook: signed POSTs from a durable outbox under ``data_dir/outbox/``.

    One file per host name: a restarted alerter (same pod name, same data directory) delivers what its
    predecessor queued, and two replicas sharing a volume never deliver from one file.
    """
    poster = WebhookSink(url=url, secret=secret, timeout_s=DELIVERY_TIMEOUT_S)
    outbox = SqliteOutbox(Path(data_dir) / "outbox" / f"webhook-{socket.gethostname()}.sqlite", capacity)
    return OutboxSink(poster, outbox=outbox, registry=registry)
