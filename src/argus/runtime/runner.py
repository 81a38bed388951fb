"""The loop every consuming stage shares: poll → decode → process → publish → flush → commit.

Stages only hold their logic (a :class:`Processor`); this module owns the delivery semantics and the error policy:
- at-least-once: offsets are committed only after the stage's outputs were flushed (acknowledged by the bus);
- micro-batching: a batch closes at ``batch_max`` messages or ``batch_wait_s`` after its first message;
- a message that cannot be decoded, or whose processing raises InputError, is logged with its topic/offset and
  reason, counted, and published to ``argus.deadletter.v1`` with its payload — the rest of the batch goes on;
- transient failures (backend, store, bus, sink) retry the whole batch with capped backoff and are only
  dead-lettered after ``max_retries``, so a short Triton or MongoDB outage loses nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from argus.bus.base import Bus, Consumer, Record
from argus.errors import ArgusError, InputError, SchemaError
from argus.metrics import StageMetrics
from argus.retry import Backoff
from argus.runtime.http import Health
from argus.schemas import TOPIC_DEADLETTER, DeadLetterV1, _Message, decode, encode
from argus.topology import consumer_group

if TYPE_CHECKING:
    from argus.runtime.resources import Resources

log = logging.getLogger(__name__)
In = TypeVar("In", bound=_Message)

#: Whole-batch retries on transient failures: 0.2, 0.4, 0.8, 1.6, 3.2 s (about 6 s over the default 5 retries).
RETRY_BACKOFF = Backoff(initial_s=0.2, factor=2.0, max_s=10.0, jitter=0.0)


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
        max_retries: int = 5,
        poll_timeout_s: float = 0.5,
        backoff: Backoff = RETRY_BACKOFF,
    ) -> None:
        self.p = processor
        self.stage = processor.stage
        self.bus = bus
        self.m = metrics
        self.health = health
        self.batch_max = batch_max
        self.batch_wait_s = batch_wait_s
        self.group = group or consumer_group(processor.stage)
        self.max_retries = max_retries
        self.backoff = backoff
        self.poll_timeout_s = poll_timeout_s
        bus.ensure_topics([processor.input_topic, *processor.output_topics, TOPIC_DEADLETTER])
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
        for rej in (o for o in results if isinstance(o, Reject)):
            self._dead_letter(rej.item.record, rej.kind, rej.error, camera_id=_camera(rej.item.message))
        for out in outputs:
            self.bus.publish(out.topic, key=out.message.key(), value=encode(out.message))
            self.m.messages_out.labels(out.topic).inc()
        self.bus.flush()
        self.consumer.commit(records)
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

    def _process_with_policy(self, items: list[Item[In]]) -> list[Output | Reject]:
        attempt = 0
        while True:
            try:
                return self.p.process(items)
            except InputError:
                return self._isolate(items)
            except ArgusError as e:
                attempt += 1
                kind = type(e).__name__
                self.m.errors.labels(kind).inc()
                if attempt > self.max_retries:
                    log.error("%s: giving up on a batch of %d after %d retries: %s",
                              self.p.stage, len(items), self.max_retries, e)
                    return [Reject(it, kind, e) for it in items]
                delay = self.backoff.delay(attempt - 1)
                log.warning("%s: transient failure (%s), retry %d/%d in %.1fs: %s",
                            self.p.stage, kind, attempt, self.max_retries, delay, e)
                self.health.beat()
                time.sleep(delay)

    def _isolate(self, items: list[Item[In]]) -> list[Output | Reject]:
        """A batch failed on bad input: process items one by one so only the bad ones are dead-lettered."""
        outputs: list[Output | Reject] = []
        for it in items:
            try:
                outputs += self._process_with_policy_single(it)
            except InputError as e:
                outputs.append(Reject(it, "input", e))
        return outputs

    def _process_with_policy_single(self, it: Item[In]) -> list[Output | Reject]:
        try:
            return self.p.process([it])
        except InputError:
            raise
        except ArgusError:
            return self._process_with_policy([it])

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
    def run(self, stop: threading.Event, *, idle_exit_s: float | None = None) -> None:
        """Loop until ``stop`` is set (SIGTERM) — or, for the demo, until idle for ``idle_exit_s``."""
        self.health.ready = True
        self.m.up.set(1)
        idle_since = time.monotonic()
        try:
            while not stop.is_set():
                if self.run_once():
                    idle_since = time.monotonic()
                elif idle_exit_s is not None and time.monotonic() - idle_since > idle_exit_s:
                    break
        finally:
            self.m.up.set(0)
            self.health.ready = False

    def close(self) -> None:
        self.consumer.close()
        self.p.close()


def _camera(msg: Any) -> str:
    return str(getattr(msg, "camera_id", ""))
