"""Batch runs that end when the work is done: ``argus run <stage> --exit-when-drained``.

``--exit-when-idle S`` counts from the last message a stage received, but the matcher hears nothing for frames
without faces and the alerter nothing until a match, so "idle" is not "finished". A drained stage is one whose
input can never grow again and whose consumer group has committed all of it. The design:

- **The control topic** ``argus.control.v1`` (compacted, keyed by ``<stage>/<instance>``) holds each stage
  instance's latest :class:`~argus.schemas.StageStateV1`: ``started`` when it begins (re-sent every
  ``heartbeat_s`` as a heartbeat), ``finished`` once all its outputs are flushed (and, for a consumer, its input
  committed), ``stopped`` on SIGTERM before that. Every stage writes it, with or without the flag
  (:class:`StatusRecorder`), so a stage run as a service still tells batch consumers when its work ended.
- **Ingest is finished** when every one of its file cameras reached end of file: it flushes its frames, then
  writes ``finished`` (and exits, with the flag). Its instance is its shard (``shard-<i>`` of ``shards``): the
  drain waits for every shard ``0..shards-1`` to have finished, so an ingest shard that starts late is waited for
  rather than missed, and a restarted ingest replaces its own record instead of leaving a dead one behind.
- **A consuming stage is drained** when ingest is finished and then, in pipeline order, every consumer group from
  the first stage down to its own has no message left uncommitted on its input (``Bus.pending``). The order is
  what makes one pass sufficient: ingest's ``finished`` is written after its last frame was acknowledged, so once
  inference's group has committed every frame no new face can appear (a stage commits only after its outputs were
  flushed); once the matcher then has committed every face no new match can appear; and so on. Consumer
  instances' own records are therefore for people and tools (who ran, who finished); the decision needs only
  ingest's records and the committed offsets, which Kafka keeps per group, not per member.

The races, and what happens:

- *A consumer replica killed (SIGKILL) or added mid-stream*: nothing to do. Its uncommitted batch stays pending
  for its group and is redelivered to a surviving member after the rebalance; the drain condition holds only once
  someone committed it. A replica that joins after the others exited finds its group drained and exits at once.
- *Ingest killed without ``finished``*: its record stays ``started`` and its heartbeat stops. The drain keeps
  waiting — exiting would report success with footage never read — and says so (log, ``/readyz`` detail
  ``drain``): "ingest shard-0 silent for 40 s (killed or hung before its sources ended): start it again". A
  restarted ingest replays its files from the start (file frame ids are frame indices, so the replay lands on the
  same events) and then finishes. A SIGTERMed ingest says ``stopped``, with the same advice.
- *A zombie*: a member that lost its partitions in a rebalance while processing may still publish its batch
  after the new owner committed the same batch: duplicates, harmless (every write is idempotent), and a
  downstream stage that already exited leaves them uncommitted (visible as lag, not as missing data).
- *Stale records*: the control topic outlives a run. A new batch on the same topics must start ingest before its
  consumers (its ``started`` replaces last run's ``finished`` before anyone looks), or reset the control topic
  (``argus_dev.cluster.LocalCluster.reset`` deletes it with the other topics).
- *Live cameras* never end, so ``--exit-when-drained`` over them never exits: it is for recorded footage.

The same code runs on the in-memory bus (one process, the stages as threads) and on Kafka: it needs only
``publish``/``flush``, ``pending`` and ``Bus.read_all`` of the small control topic.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from argus.bus.base import Bus
from argus.errors import SchemaError, TransientError
from argus.retry import Backoff
from argus.schemas import TOPIC_CONTROL, StageStateV1, decode, encode
from argus.topology import INPUT_TOPICS, OUTPUT_TOPICS, consumer_group

log = logging.getLogger(__name__)

#: How often a running instance re-sends ``started`` (its heartbeat), and how long a silent record is trusted.
#: 5 s keeps the control topic tiny (a record per instance per 5 s); 30 s outlasts a GC pause or a slow flush.
HEARTBEAT_S = 5.0
LEASE_S = 30.0
#: The stage whose input is not a topic: the source of every chain.
SOURCE_STAGE = "ingest"
State = Literal["started", "finished", "stopped"]
_RETRY = Backoff(initial_s=0.2, factor=2.0, max_s=5.0, jitter=0.3)


@dataclass(frozen=True, kw_only=True)
class Link:
    """One consumer group and the topic it reads: a link of the chain a stage's drain is judged on."""

    stage: str
    group: str
    topic: str


@dataclass(frozen=True, kw_only=True)
class DrainVerdict:
    """Whether a stage's input is finished; when not, what it waits for (for logs and ``/readyz``)."""

    drained: bool
    waiting_for: str = ""


def chain(input_topic: str, group: str, *, stage: str = "") -> tuple[Link, ...]:
    """The links a consumer of ``input_topic`` (in ``group``) is drained through, source first: the consuming
    stage that writes its input topic, that stage's own input, and so on up to ingest."""
    links = [Link(stage=stage or group, group=group, topic=input_topic)]
    seen = {input_topic}
    topic = input_topic
    while True:
        writers = [s for s, outs in OUTPUT_TOPICS.items() if topic in outs and s in INPUT_TOPICS]
        if not writers:
            return tuple(reversed(links))
        writer = writers[0]
        topic = INPUT_TOPICS[writer]
        if topic in seen:  # a cycle in the topology would be a bug; do not loop forever on it
            return tuple(reversed(links))
        seen.add(topic)
        links.append(Link(stage=writer, group=consumer_group(writer), topic=topic))


def latest_states(records: Iterable[bytes]) -> dict[str, StageStateV1]:
    """The newest record per instance (what compaction will leave), skipping any that do not decode."""
    out: dict[str, StageStateV1] = {}
    for value in records:
        try:
            st = decode(value, StageStateV1)
        except SchemaError as e:
            log.warning("control topic: skipped a record that is not %s: %s", TOPIC_CONTROL, e)
            continue
        k = f"{st.stage}/{st.instance}"
        if k not in out or st.ts >= out[k].ts:
            out[k] = st
    return out


def source_verdict(states: Iterable[StageStateV1], *, now: float, source: str = SOURCE_STAGE) -> DrainVerdict:
    """Whether every shard of the source stage has finished: a pure function of its records (table-tested)."""
    shards: dict[int, StageStateV1] = {}
    for st in states:
        if st.stage == source and (st.shard not in shards or st.ts >= shards[st.shard].ts):
            shards[st.shard] = st
    if not shards:
        return DrainVerdict(drained=False, waiting_for=f"{source} to start (no {source} record on {TOPIC_CONTROL})")
    expected = max(st.shards for st in shards.values())
    for i in range(expected):
        rec = shards.get(i)
        if rec is None:
            return DrainVerdict(drained=False, waiting_for=f"{source} shard {i}/{expected} to start")
        if rec.state == "finished":
            continue
        name = f"{source} {rec.instance} (shard {i}/{expected})"
        if rec.state == "stopped":
            return DrainVerdict(drained=False, waiting_for=f"{name}: stopped before its sources ended; start it "
                                                           f"again")
        silent = now - rec.ts
        if silent > rec.lease_s:
            return DrainVerdict(drained=False, waiting_for=f"{name}: silent for {silent:.0f}s (killed or hung "
                                                           f"before its sources ended); start it again")
        return DrainVerdict(drained=False, waiting_for=f"{name} to reach the end of its sources")
    return DrainVerdict(drained=True)


def decide(source: DrainVerdict, pending: Sequence[tuple[Link, int]]) -> DrainVerdict:
    """The drain rule, given the source's verdict and each link's uncommitted count read in chain order after it
    (the reader may stop at the first non-zero count: nothing after it matters)."""
    if not source.drained:
        return source
    for link, n in pending:
        if n:
            return DrainVerdict(drained=False, waiting_for=f"{link.group}: {n} message(s) on {link.topic} not "
                                                           f"yet committed")
    return DrainVerdict(drained=True)


class DrainCheck:
    """Reads the control topic and the chain's committed offsets, in the order that makes one pass sufficient.
    Every shard's ``finished`` is final for a run, so once seen the control topic is not read again (on Kafka each
    read is a short-lived consumer)."""

    def __init__(self, bus: Bus, links: Sequence[Link], *, clock: Callable[[], float] = time.time) -> None:
        self.bus = bus
        self.links = tuple(links)
        self.clock = clock
        self._source_done = False  # once every shard finished, the control topic need not be read again
        bus.ensure_topics([TOPIC_CONTROL])

    @classmethod
    def for_stage(cls, bus: Bus, stage: str) -> DrainCheck:
        """The check for a pipeline stage (``alerter``: the whole pipeline has drained)."""
        return cls(bus, chain(INPUT_TOPICS[stage], consumer_group(stage), stage=stage))

    def check(self) -> DrainVerdict:
        if self._source_done:
            source = DrainVerdict(drained=True)
        else:
            states = latest_states(r.value for r in self.bus.read_all(TOPIC_CONTROL))
            source = source_verdict(states.values(), now=self.clock())
            if not source.drained:
                return source
            self._source_done = True
        pending: list[tuple[Link, int]] = []
        for link in self.links:
            n = self.bus.pending(link.group, [link.topic])
            pending.append((link, n))
            if n:
                break
        return decide(source, pending)

    def states(self) -> Mapping[str, StageStateV1]:
        """Every instance's latest record, for tools and tests."""
        return latest_states(r.value for r in self.bus.read_all(TOPIC_CONTROL))


def instance_id() -> str:
    """A consumer instance's name on the control topic: host (the pod), process and a random suffix, so two
    replicas in one process (tests) or a restarted pod never share a record."""
    return f"{socket.gethostname()[:60]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class StatusRecorder:
    """Writes one instance's record: :meth:`started`, :meth:`beat` (re-sends ``started`` when due),
    :meth:`finished`, :meth:`stopped`.

    Heartbeats are best effort (a broker outage is logged and the next one tries again); ``finished`` is retried
    until the broker takes it or ``stop`` is set, because consumers waiting for it would otherwise wait forever.
    """

    def __init__(self, bus: Bus, *, stage: str, instance: str | None = None, shard: int = 0, shards: int = 1,
                 heartbeat_s: float = HEARTBEAT_S, lease_s: float = LEASE_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.bus = bus
        self.stage = stage
        self.instance = instance or instance_id()
        self.shard, self.shards = shard, shards
        self.heartbeat_s, self.lease_s = heartbeat_s, lease_s
        self.clock = clock
        self.ts_started = clock()
        self.state: State | None = None
        self._last_beat = float("-inf")
        bus.ensure_topics([TOPIC_CONTROL])

    @classmethod
    def for_source(cls, bus: Bus, *, shard: int, shards: int) -> StatusRecorder:
        """Ingest's recorder: its instance is its shard, so a restart replaces its record."""
        return cls(bus, stage=SOURCE_STAGE, instance=f"shard-{shard}", shard=shard, shards=shards)

    def _record(self, state: State) -> StageStateV1:
        now = self.clock()
        return StageStateV1(stage=self.stage, instance=self.instance, state=state,
                            shard=self.shard, shards=self.shards, ts_started=self.ts_started, ts=now,
                            lease_s=self.lease_s)

    def _send(self, state: State) -> None:
        self.state = state  # what the instance is, even while the broker cannot be told (the next beat retries)
        self._last_beat = time.monotonic()
        rec = self._record(state)
        self.bus.publish(TOPIC_CONTROL, key=rec.key(), value=encode(rec))
        self.bus.flush(timeout_s=2.0)  # bounded: with the broker away, a beat must not stall the stage loop for 30 s

    def started(self) -> None:
        self.ts_started = self.clock()
        self._best_effort("started")

    def beat(self) -> None:
        """Re-send ``started`` when a heartbeat is due (cheap to call every loop)."""
        if self.state == "started" and time.monotonic() - self._last_beat >= self.heartbeat_s:
            self._best_effort("started")

    def finished(self, stop: threading.Event | None = None) -> bool:
        """Record ``finished``, retrying through a broker outage; False if ``stop`` was set first."""
        attempt = 0
        while True:
            try:
                self._send("finished")
                log.info("%s %s: finished (recorded on %s)", self.stage, self.instance, TOPIC_CONTROL)
                return True
            except TransientError as e:
                self.state = "started"  # not recorded yet: stopped() must still say so if we give up
                delay = _RETRY.delay(attempt)
                attempt += 1
                log.warning("%s: cannot record 'finished' yet (%s); retrying in %.1fs", self.stage, e, delay)
                if stop is not None and stop.wait(delay):
                    return False
                if stop is None:
                    time.sleep(delay)

    def stopped(self) -> None:
        """Stopped before finishing (SIGTERM): say so, best effort, unless already finished."""
        if self.state != "finished":
            self._best_effort("stopped")

    def _best_effort(self, state: State) -> None:
        try:
            self._send(state)
        except TransientError as e:
            log.warning("%s: cannot record %r on %s now (%s); the next heartbeat tries again",
                        self.stage, state, TOPIC_CONTROL, e)
