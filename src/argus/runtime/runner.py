"""The loop every consuming stage shares: poll → decode → process → publish → flush → commit.

Stages only hold their logic (a :class:`Processor`); this module owns the delivery semantics and the error policy:
- at-least-once: offsets are committed only after the stage's outputs were flushed (acknowledged by the bus);
- micro-batching: a batch closes at ``batch_max`` messages or ``batch_wait_s`` after its first message;
- a message that cannot be decoded, or whose processing raises InputError, is logged with its topic/offset and
  reason, counted, and published to ``argus.deadletter.v1`` with its payload — the rest of the batch goes on;
- an error retrying cannot fix (any other ArgusError: configuration, unknown camera, malformed stored record) is
  dead-lettered at once for the items that cause it, without retries;
- an outage (:class:`~argus.errors.TransientError`: Triton, the store or the broker unavailable) holds the batch:
  nothing is committed or dead-lettered, the stage reports not ready, and the batch is retried with capped backoff
  for as long as it takes, then the stage resumes where it stopped. A stop request (SIGTERM) while holding leaves
  the batch uncommitted, for the next owner of the partition.
- every instance records ``started`` (with a heartbeat), then ``finished`` or ``stopped`` on ``argus.control.v1``;
  with ``exit_when_drained`` the loop returns once its input is finished — ingest finished and every consumer
  group from the first stage down to this one committed all of its input (the design: argus.runtime.drain).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from argus.bus.base import Bus, Consumer, Record
from argus.errors import ArgusError, BusError, InputError, SchemaError, TransientError
from argus.metrics import StageMetrics
from argus.retry import Backoff
from argus.runtime.drain import DrainCheck, StatusRecorder, chain
from argus.runtime.http import Health
from argus.schemas import TOPIC_CONTROL, TOPIC_DEADLETTER, DeadLetterV1, _Message, decode, encode
from argus.topology import consumer_group

if TYPE_CHECKING:
    from argus.runtime.resources import Resources

log = logging.getLogger(__name__)
In = TypeVar("In", bound=_Message)

#: Waits while a dependency is unavailable: 0.2, 0.4, 0.8 … then every 10 s (jittered so replicas do not retry in
#: lock-step against a server that is coming back), for as long as the outage lasts.
RETRY_BACKOFF = Backoff(initial_s=0.2, factor=2.0, max_s=10.0, jitter=0.3)
R = TypeVar("R")


class _Abandoned(Exception):
    """Stop was requested while a batch was held for an unavailable dependency: leave it uncommitted."""


@dataclass(frozen=True)
class Output:
    topic: str
    message: _Message


@dataclass(frozen=True)
class Item(Generic[In]):
    record: Record
    message: In


@dataclass(frozen=True)
class Reject:
    """An input the processor refused (corrupt JPEG, no usable face data): dead-lettered, the batch goes on."""

    item: Item[Any]
    kind: str
    error: Exception


class Processor(Protocol[In]):
    stage: str
    input_topic: str
    input_type: type[In]
    output_topics: tuple[str, ...]

    def process(self, items: Sequence[Item[In]]) -> list[Output | Reject]:
        """Outputs for a batch. Return a Reject (or raise InputError) for bad items; raise other ArgusErrors
        for transient failures, which are retried."""
        ...

    def close(self) -> None: ...


class StageRunner(Generic[In]):
    def __init__(
        self,
        *,
        processor: Processor[In],
        bus: Bus,
        metrics: StageMetrics,
        health: Health,
        batch_max: int = 8,
        batch_wait_s: float = 0.02,
        group: str | None = None,
        poll_timeout_s: float = 0.5,
        backoff: Backoff = RETRY_BACKOFF,
        drain_check_s: float = 1.0,
    ) -> None:
        self.p = processor
        self.stage = processor.stage
        self.bus = bus
        self.m = metrics
        self.health = health
        self.batch_max = batch_max
        self.batch_wait_s = batch_wait_s
        self.group = group or consumer_group(processor.stage)
        self._stop = threading.Event()  # replaced by run()'s; set: a held batch is abandoned, uncommitted
        self.backoff = backoff
        self.poll_timeout_s = poll_timeout_s
        self.drain_check_s = drain_check_s
        bus.ensure_topics([processor.input_topic, *processor.output_topics, TOPIC_DEADLETTER, TOPIC_CONTROL])
        self.status = StatusRecorder(bus, stage=processor.stage)
        self.consumer: Consumer = bus.consumer([processor.input_topic], group=self.group)

    @classmethod
    def for_stage(cls, processor: Processor[In], resources: Resources, metrics: StageMetrics) -> StageRunner[In]:
        """The runner every service uses: the shared bus, a fresh Health, the stage's batch settings."""
        s = resources.settings
        return cls(processor=processor, bus=resources.bus, metrics=metrics, health=Health(),
                   batch_max=s.batch_max_for(processor.stage), batch_wait_s=s.batch_wait_ms / 1000)

    # ---- batching -------------------------------------------------------------------------------------------
    def _collect(self) -> list[Record]:
        batch = self.consumer.poll(max_records=self.batch_max, timeout_s=self.poll_timeout_s)
        if not batch:
            return batch
        deadline = time.monotonic() + self.batch_wait_s
        while len(batch) < self.batch_max and (left := deadline - time.monotonic()) > 0:
            batch += self.consumer.poll(max_records=self.batch_max - len(batch), timeout_s=left)
        return batch

    # ---- one batch ------------------------------------------------------------------------------------------
    def run_once(self) -> int:
        """Process one batch; returns how many records it consumed (0 when the topic was idle)."""
        self.health.beat()
        records = self._collect()
        if not records:
            self.m.consumer_lag.set(self.consumer.lag())
            return 0
        t0 = time.perf_counter()
        items: list[Item[In]] = []
        for r in records:
            try:
                items.append(Item(r, decode(r.value, self.p.input_type)))
            except SchemaError as e:
                self._dead_letter(r, "schema", e, camera_id=(r.key or b"").decode(errors="replace"))
        results = self._process_with_policy(items) if items else []
        outputs = [o for o in results if isinstance(o, Output)]
        rejects = [o for o in results if isinstance(o, Reject)]
        self._hold_while_unavailable("publish", lambda: self._publish(outputs, rejects))
        self._hold_while_unavailable("commit", lambda: self.consumer.commit(records))  # a broker outage, waited out
        self.m.messages_in.labels("ok").inc(len(items))
        self.m.batch_size.observe(len(records))
        self.m.processing_seconds.observe(time.perf_counter() - t0)
        now = time.time()
        for out in outputs:
            ts = getattr(out.message, "ts_capture", None)
            if ts:
                self.m.e2e_latency.observe(max(0.0, now - ts))
        self.m.consumer_lag.set(self.consumer.lag())
        return len(records)

    def _publish(self, outputs: list[Output], rejects: list[Reject]) -> None:
        """Publish and flush everything the batch produced; after a failed flush all of it is published again
        (the broker may hold some of it twice: every downstream write is idempotent)."""
        for rej in rejects:
            self._dead_letter(rej.item.record, rej.kind, rej.error, camera_id=_camera(rej.item.message))
        for out in outputs:
            self.bus.publish(out.topic, key=out.message.key(), value=encode(out.message))
            self.m.messages_out.labels(out.topic).inc()
        self.bus.flush()

    def _hold_while_unavailable(self, what: str, fn: Callable[[], R]) -> R:
        """Run ``fn`` until no TransientError stops it: capped backoff, not ready meanwhile, ready again after."""
        attempt = 0
        while True:
            try:
                result = fn()
            except TransientError as e:
                attempt += 1
                kind = type(e).__name__
                self.m.errors.labels(kind).inc()
                self.health.ready = False
                self.health.detail["unavailable"] = f"{kind}: {str(e)[:200]}"
                delay = self.backoff.delay(attempt - 1)
                log.warning("%s: %s held, dependency unavailable (%s), attempt %d, next in %.1fs: %s",
                            self.p.stage, what, kind, attempt, delay, e)
                self.health.beat()  # alive and waiting, not hung: liveness stays green, readiness does not
                if self._stop.wait(delay):
                    raise _Abandoned(f"{self.p.stage}: stopped while {what} was held; nothing committed") from e
                continue
            if attempt:
                log.info("%s: %s resumed after %d attempt(s)", self.p.stage, what, attempt)
                self.health.ready = True
                self.health.detail.pop("unavailable", None)
            return result

    def _process_with_policy(self, items: list[Item[In]]) -> list[Output | Reject]:
        try:
            return self._hold_while_unavailable("batch", lambda: self.p.process(items))
        except _Abandoned:
            raise
        except ArgusError as e:  # InputError, or an error no retry can fix: find the items that cause it
            if len(items) == 1:
                return [self._reject(items[0], e)]
            return self._isolate(items)

    def _isolate(self, items: list[Item[In]]) -> list[Output | Reject]:
        """A batch failed on bad input (or on an error no retry fixes): process items one by one so only those
        that cause it are dead-lettered."""
        outputs: list[Output | Reject] = []
        for it in items:
            try:
                outputs += self._hold_while_unavailable("item", functools.partial(self.p.process, [it]))
            except _Abandoned:
                raise
            except ArgusError as e:
                outputs.append(self._reject(it, e))
        return outputs

    def _reject(self, it: Item[In], e: ArgusError) -> Reject:
        return Reject(it, "input" if isinstance(e, InputError) else type(e).__name__, e)

    def _dead_letter(self, r: Record, kind: str, err: Exception, *, camera_id: str) -> None:
        self.m.messages_in.labels("error").inc()
        self.m.errors.labels(kind).inc()
        log.error("%s: skipped %s[%d]@%d (camera %r): %s: %s",
                  self.p.stage, r.topic, r.partition, r.offset, camera_id or "?", kind, err)
        dl = DeadLetterV1(camera_id=camera_id, stage=self.p.stage, source_topic=r.topic,
                          source_partition=r.partition, source_offset=r.offset, error_kind=kind,
                          error=str(err)[:2000], ts=time.time(), payload=r.value)
        self.bus.publish(TOPIC_DEADLETTER, key=dl.key(), value=encode(dl))

    # ---- loop -----------------------------------------------------------------------------------------------
    def run(self, stop: threading.Event, *, idle_exit_s: float | None = None,
            exit_when_drained: bool = False) -> None:
        """Loop until ``stop`` is set (SIGTERM) — or until idle for ``idle_exit_s``, or, with
        ``exit_when_drained``, until the input is finished (checked every ``drain_check_s`` while idle)."""
        self._stop = stop
        self.health.ready = True
        self.m.up.set(1)
        self.status.started()
        drain = DrainCheck(self.bus, chain(self.p.input_topic, self.group, stage=self.stage)) \
            if exit_when_drained else None
        idle_since = last_check = time.monotonic()
        drained = False
        try:
            while not stop.is_set():
                self.status.beat()
                if self.run_once():
                    idle_since = time.monotonic()
                    continue
                now = time.monotonic()
                if idle_exit_s is not None and now - idle_since > idle_exit_s:
                    break
                if drain is not None and now - last_check >= self.drain_check_s:
                    last_check = now
                    if drained := self._drained(drain):
                        break
        except _Abandoned as e:
            log.info("%s", e)
        finally:
            if drained:
                self.status.finished(stop)
            else:
                self.status.stopped()
            self.m.up.set(0)
            self.health.ready = False

    def _drained(self, drain: DrainCheck) -> bool:
        """One drain check; a broker that cannot answer now means "not yet", never "drained"."""
        try:
            verdict = drain.check()
        except BusError as e:
            log.warning("%s: cannot tell whether the input is drained (%s); asking again", self.stage, e)
            return False
        if verdict.drained:
            log.info("%s: input drained (upstream finished, group %s committed everything): exiting",
                     self.stage, self.group)
            self.health.detail.pop("drain", None)
            return True
        if self.health.detail.get("drain") != verdict.waiting_for:
            log.info("%s: not drained yet, waiting for %s", self.stage, verdict.waiting_for)
            self.health.detail["drain"] = verdict.waiting_for
        return False

    def close(self) -> None:
        self.consumer.close()
        self.p.close()


def _camera(msg: Any) -> str:
    return str(getattr(msg, "camera_id", ""))
