"""``--exit-when-drained``: the drain rule as a table, and the stage loop on the in-memory bus (the same code runs
on Kafka: tests/e2e/test_replicas.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Literal

import pytest
from prometheus_client import CollectorRegistry

from argus.bus.memory import MemoryBus
from argus.errors import BusUnavailable
from argus.metrics import StageMetrics
from argus.retry import Backoff
from argus.runtime.drain import (
    DrainCheck,
    DrainVerdict,
    Link,
    StatusRecorder,
    chain,
    decide,
    latest_states,
    source_verdict,
)
from argus.runtime.http import Health
from argus.runtime.runner import Item, Output, Reject, StageRunner
from argus.schemas import (
    TOPIC_CONTROL,
    TOPIC_FACES,
    TOPIC_FRAMES,
    TOPIC_MATCHES,
    FrameV2,
    StageStateV1,
    decode,
    encode,
)
from argus.topology import consumer_group

NOW = 1_000_000.0
State = Literal["started", "finished", "stopped"]


def rec(state: State, *, shard: int = 0, shards: int = 1, age_s: float = 1.0, lease_s: float = 30.0,
        stage: str = "ingest") -> StageStateV1:
    return StageStateV1(stage=stage, instance=f"shard-{shard}", state=state, shard=shard,
                        shards=shards, ts_started=NOW - 100, ts=NOW - age_s, lease_s=lease_s)


@pytest.mark.parametrize(("records", "drained", "says"), [
    ([], False, "ingest to start"),
    ([rec("started")], False, "to reach the end of its sources"),
    ([rec("started", age_s=45)], False, "silent for 45s"),
    ([rec("stopped")], False, "stopped before its sources ended"),
    ([rec("finished")], True, ""),
    ([rec("finished", age_s=3600)], True, ""),  # finished needs no heartbeat
    ([rec("finished", shards=2)], False, "shard 1/2 to start"),  # a late shard is waited for, not missed
    ([rec("finished", shards=2), rec("started", shard=1, shards=2)], False, "shard-1"),
    ([rec("finished", shards=2), rec("finished", shard=1, shards=2)], True, ""),
    ([rec("finished", age_s=50), rec("started", age_s=1)], False, "end of its sources"),  # restarted: newest wins
    ([rec("finished", stage="inference")], False, "ingest to start"),  # consumers' records do not count
])
def test_the_source_is_finished_only_when_every_shard_said_finished(records, drained, says):
    v = source_verdict(records, now=NOW)
    assert v.drained is drained
    assert says in v.waiting_for


INF, MAT, ALE = (Link(stage=s, group=consumer_group(s), topic=t) for s, t in
                 (("inference", TOPIC_FRAMES), ("matcher", TOPIC_FACES), ("alerter", TOPIC_MATCHES)))
DONE = DrainVerdict(drained=True)


@pytest.mark.parametrize(("source", "pending", "drained", "says"), [
    (DrainVerdict(drained=False, waiting_for="ingest to start"), [], False, "ingest to start"),
    (DONE, [(INF, 0), (MAT, 0), (ALE, 0)], True, ""),
    (DONE, [(INF, 3)], False, "argus-inference: 3 message(s) on argus.frames"),
    (DONE, [(INF, 0), (MAT, 0), (ALE, 1)], False, "argus-alerter"),
    (DONE, [(INF, 0), (MAT, 2), (ALE, 0)], False, "argus-matcher"),  # upstream lag blocks an empty own input
])
def test_a_stage_is_drained_when_the_source_finished_and_every_group_up_to_it_committed(source, pending, drained,
                                                                                        says):
    v = decide(source, pending)
    assert v.drained is drained and says in v.waiting_for


def test_the_alerters_chain_runs_from_the_first_consumer_down_to_itself():
    assert chain(TOPIC_MATCHES, "argus-alerter", stage="alerter") == (INF, MAT, ALE)
    assert chain(TOPIC_FRAMES, "argus-inference", stage="inference") == (INF,)


def test_latest_state_per_instance_wins_and_garbage_is_skipped():
    old, new = rec("started", age_s=10), rec("finished", age_s=1)
    states = latest_states([encode(new), b"\x00garbage", encode(old)])
    assert list(states.values()) == [new]


# ---- the stage loop on the in-memory bus ----------------------------------------------------------------------

class Copy:
    """Copies each frame to ``out`` (or drops it: a frame without faces); optionally slow."""

    input_type = FrameV2

    def __init__(self, stage: str, input_topic: str, out: str, *, drop: bool = False, delay_s: float = 0.0) -> None:
        self.stage, self.input_topic = stage, input_topic
        self.output_topics: tuple[str, ...] = (out,)
        self.drop, self.delay_s = drop, delay_s
        self.seen: list[int] = []

    def process(self, items: Sequence[Item[FrameV2]]) -> list[Output | Reject]:
        time.sleep(self.delay_s)
        self.seen += [it.message.seq for it in items]
        return [] if self.drop else [Output(self.output_topics[0], it.message) for it in items]

    def close(self) -> None:
        pass


def runner(bus: MemoryBus, proc: Copy) -> StageRunner[FrameV2]:
    return StageRunner(processor=proc, bus=bus, metrics=StageMetrics(proc.stage, registry=CollectorRegistry()),
                       health=Health(), batch_max=4, batch_wait_s=0.005, poll_timeout_s=0.02,
                       backoff=Backoff(initial_s=0.001, max_s=0.01, jitter=0.0), drain_check_s=0.02)


def publish_frames(bus: MemoryBus, n: int, cameras: int = 3) -> None:
    bus.ensure_topics([TOPIC_FRAMES])
    for i in range(n):
        f = FrameV2(camera_id=f"cam-{i % cameras}", seq=i, ts_capture=time.time(), ts_ingest=time.time(),
                    width=4, height=4, jpeg=b"\xff\xd8ok")
        bus.publish(TOPIC_FRAMES, key=f.key(), value=encode(f))


def start(r: StageRunner[FrameV2], stop: threading.Event) -> threading.Thread:
    t = threading.Thread(target=r.run, args=(stop,), kwargs={"exit_when_drained": True}, daemon=True)
    t.start()
    return t


def test_stages_wait_while_ingest_runs_and_exit_once_it_finished_and_everything_is_committed():
    bus = MemoryBus(partitions=3)
    ingest = StatusRecorder.for_source(bus, shard=0, shards=1)
    ingest.started()
    inference = Copy("inference", TOPIC_FRAMES, TOPIC_FACES, delay_s=0.01)
    matcher = Copy("matcher", TOPIC_FACES, TOPIC_MATCHES)
    stop = threading.Event()
    runners = [runner(bus, inference), runner(bus, matcher)]
    threads = [start(r, stop) for r in runners]
    publish_frames(bus, 20)
    time.sleep(0.5)  # every frame is through, but ingest has not said it finished: nobody may exit
    assert all(t.is_alive() for t in threads)
    assert "ingest shard-0 (shard 0/1) to reach the end of its sources" in str(runners[1].health.detail["drain"])
    publish_frames(bus, 5)  # ingest's last frames, then its "finished"
    ingest.finished()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    assert sorted(matcher.seen) == sorted([*range(20), *range(5)])
    states = DrainCheck(bus, []).states()
    assert {k.split("/")[0]: v.state for k, v in states.items()} == {
        "ingest": "finished", "inference": "finished", "matcher": "finished"}


def test_a_stage_that_hears_nothing_still_exits_once_upstream_drained():
    bus = MemoryBus(partitions=3)
    ingest = StatusRecorder.for_source(bus, shard=0, shards=1)
    ingest.started()
    publish_frames(bus, 12)
    ingest.finished()
    inference = Copy("inference", TOPIC_FRAMES, TOPIC_FACES, drop=True, delay_s=0.01)  # no frame has a face
    matcher = Copy("matcher", TOPIC_FACES, TOPIC_MATCHES)
    stop = threading.Event()
    threads = [start(runner(bus, matcher), stop), start(runner(bus, inference), stop)]
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    assert len(inference.seen) == 12 and matcher.seen == []


def test_an_ingest_killed_before_it_finished_is_waited_for_and_named():
    bus = MemoryBus(partitions=1)
    dead = StatusRecorder(bus, stage="ingest", instance="shard-0", lease_s=0.05)
    dead.started()  # ... and then SIGKILL: no heartbeat, no "finished"
    r = runner(bus, Copy("inference", TOPIC_FRAMES, TOPIC_FACES))
    stop = threading.Event()
    t = start(r, stop)
    time.sleep(0.4)
    assert t.is_alive()
    said = str(r.health.detail["drain"])
    assert "silent for" in said and "start it again" in said
    StatusRecorder.for_source(bus, shard=0, shards=1).finished()  # the restarted ingest replays and finishes
    t.join(10)
    assert not t.is_alive()


def test_a_replica_that_dies_mid_batch_leaves_it_pending_and_the_survivor_drains_it():
    bus = MemoryBus(partitions=3)
    publish_frames(bus, 30)
    StatusRecorder.for_source(bus, shard=0, shards=1).finished()
    doomed = runner(bus, Copy("inference", TOPIC_FRAMES, TOPIC_FACES))
    doomed._collect()  # took a batch ... and died before processing or committing it (SIGKILL)
    doomed.consumer.close()
    survivor_proc = Copy("inference", TOPIC_FRAMES, TOPIC_FACES)
    survivor = runner(bus, survivor_proc)
    t = start(survivor, threading.Event())
    t.join(10)
    assert not t.is_alive()
    assert sorted(survivor_proc.seen) == list(range(30))
    assert bus.pending("argus-inference", [TOPIC_FRAMES]) == 0
    late_proc = Copy("inference", TOPIC_FRAMES, TOPIC_FACES)  # a replica that joins after the work was done
    late = start(runner(bus, late_proc), threading.Event())
    late.join(5)
    assert not late.is_alive() and late_proc.seen == []


def test_sigterm_before_the_input_drained_records_stopped_not_finished():
    bus = MemoryBus(partitions=1)
    r = runner(bus, Copy("inference", TOPIC_FRAMES, TOPIC_FACES))
    stop = threading.Event()
    t = start(r, stop)
    time.sleep(0.1)
    stop.set()
    t.join(5)
    (state,) = [decode(x.value, StageStateV1) for x in bus.read_all(TOPIC_CONTROL)][-1:]
    assert (state.stage, state.state) == ("inference", "stopped")


class FlakyFlushBus(MemoryBus):
    """A broker that does not acknowledge for a while (a fault a real broker cannot produce on demand)."""

    def __init__(self, failures: int) -> None:
        super().__init__(partitions=1)
        self.failures = failures

    def flush(self, timeout_s: float = 30.0) -> None:
        if self.failures:
            self.failures -= 1
            raise BusUnavailable("not acknowledged in time")


def test_finished_is_retried_through_a_broker_outage_and_a_heartbeat_is_not():
    bus = FlakyFlushBus(failures=1)
    rec_ = StatusRecorder.for_source(bus, shard=0, shards=1)
    rec_.started()  # best effort: the outage is logged, the next beat tries again
    bus.failures = 2
    assert rec_.finished(threading.Event()) is True
    assert DrainCheck(bus, []).check() == DrainVerdict(drained=True)
