"""Delivery semantics of the shared stage loop, on the in-memory bus (the same loop runs on Kafka)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import msgpack
import pytest
from prometheus_client import CollectorRegistry

from argus.bus.memory import MemoryBus
from argus.errors import BackendUnavailable, BusUnavailable, ConfigError, InputError
from argus.metrics import StageMetrics
from argus.retry import Backoff
from argus.runtime.http import Health
from argus.runtime.runner import Item, Output, Reject, StageRunner
from argus.schemas import TOPIC_DEADLETTER, TOPIC_FRAMES, DeadLetterV1, FrameV2, decode, encode

OUT = "argus.test-out.v1"


def frame(seq: int, cam: str = "cam-1", jpeg: bytes = b"\xff\xd8ok") -> FrameV2:
    now = time.time()
    return FrameV2(camera_id=cam, seq=seq, ts_capture=now, ts_ingest=now, width=4, height=4, jpeg=jpeg)


class Echo:
    """Copies frames to OUT; frames whose JPEG is b'bad' are rejected; can fail transiently or crash."""

    stage = "echo"
    input_topic = TOPIC_FRAMES
    input_type = FrameV2
    output_topics = (OUT,)

    def __init__(self) -> None:
        self.transient_failures = 0
        self.crash_on_seq: int | None = None
        self.config_error_on_seq: int | None = None
        self.calls = 0

    def process(self, items: Sequence[Item[FrameV2]]) -> list[Output | Reject]:
        self.calls += 1
        if self.transient_failures:
            self.transient_failures -= 1
            raise BackendUnavailable("triton unavailable")
        out: list[Output | Reject] = []
        for it in items:
            if it.message.seq == self.crash_on_seq:
                raise RuntimeError("process killed")
            if it.message.seq == self.config_error_on_seq:
                raise ConfigError(f"frame {it.message.seq}: camera not in the registry")
            if it.message.jpeg == b"\xff\xd8bad":
                out.append(Reject(it, "corrupt_frame", InputError(f"frame {it.message.seq} corrupt")))
            elif it.message.jpeg == b"\xff\xd8raise":
                raise InputError(f"frame {it.message.seq} unreadable")
            else:
                out.append(Output(OUT, it.message))
        return out

    def close(self) -> None:
        pass


def make(bus: MemoryBus, proc: Echo, **kw: object) -> StageRunner[FrameV2]:
    return StageRunner(processor=proc, bus=bus, metrics=StageMetrics("echo", registry=CollectorRegistry()),
                       health=Health(), batch_max=8, batch_wait_s=0.01, poll_timeout_s=0.05,
                       backoff=Backoff(initial_s=0.001, max_s=0.01, jitter=0.0), **kw)  # type: ignore[arg-type]


def outputs(bus: MemoryBus, topic: str = OUT) -> list[bytes]:
    c = bus.consumer([topic], group=f"reader-{time.monotonic_ns()}")
    got = [r.value for r in c.poll(max_records=1000, timeout_s=0.05)]
    c.close()
    return got


def publish(bus: MemoryBus, *frames: FrameV2 | bytes) -> None:
    bus.ensure_topics([TOPIC_FRAMES])
    for f in frames:
        bus.publish(TOPIC_FRAMES, key=b"cam-1", value=f if isinstance(f, bytes) else encode(f))


def test_malformed_and_rejected_messages_are_dead_lettered_with_the_reason_and_the_rest_flows():
    bus = MemoryBus(partitions=1)
    runner = make(bus, Echo())
    publish(bus, frame(1), b"\x92not-a-frame", frame(2, jpeg=b"\xff\xd8bad"), frame(3))
    while runner.run_once():
        pass
    assert [decode(v, FrameV2).seq for v in outputs(bus)] == [1, 3]
    dead = [decode(v, DeadLetterV1) for v in outputs(bus, TOPIC_DEADLETTER)]
    assert [(d.error_kind, d.source_offset) for d in dead] == [("schema", 1), ("corrupt_frame", 2)]
    assert "frame 2 corrupt" in dead[1].error and dead[1].camera_id == "cam-1"
    assert dead[0].payload == b"\x92not-a-frame"  # the original bytes are kept for replay


def test_an_input_error_raised_for_one_item_is_isolated_from_its_batch():
    bus = MemoryBus(partitions=1)
    runner = make(bus, Echo())
    publish(bus, frame(1), frame(2, jpeg=b"\xff\xd8raise"), frame(3))
    runner.run_once()
    assert [decode(v, FrameV2).seq for v in outputs(bus)] == [1, 3]
    assert [decode(v, DeadLetterV1).error_kind for v in outputs(bus, TOPIC_DEADLETTER)] == ["input"]


def test_transient_failures_are_retried_and_nothing_is_lost():
    bus = MemoryBus(partitions=1)
    proc = Echo()
    proc.transient_failures = 2
    runner = make(bus, proc)
    publish(bus, frame(1), frame(2))
    runner.run_once()
    assert proc.calls == 3
    assert [decode(v, FrameV2).seq for v in outputs(bus)] == [1, 2]
    assert outputs(bus, TOPIC_DEADLETTER) == []
    assert runner.health.ready is True and "unavailable" not in runner.health.detail


def test_an_outage_holds_the_batch_uncommitted_and_not_ready_never_dead_letters_it():
    bus = MemoryBus(partitions=1)
    proc = Echo()
    proc.transient_failures = 10**9  # Triton stays down
    runner = make(bus, proc)
    publish(bus, frame(1), frame(2))
    stop = threading.Event()
    t = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    t.start()
    deadline = time.monotonic() + 5
    while proc.calls < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.calls >= 5  # far more attempts than the old five-retry limit would allow, still holding
    assert runner.health.ready is False and "BackendUnavailable" in str(runner.health.detail["unavailable"])
    assert runner.health.alive()
    assert outputs(bus, TOPIC_DEADLETTER) == [] and outputs(bus) == []
    assert bus.pending("argus-echo", [TOPIC_FRAMES]) == 2  # nothing committed
    stop.set()  # SIGTERM while holding: the batch stays for the next owner
    t.join(timeout=5)
    assert not t.is_alive()
    assert bus.pending("argus-echo", [TOPIC_FRAMES]) == 2
    runner.consumer.close()
    # the server is back: a new runner (the restarted stage) gets the same batch and finishes it
    proc.transient_failures = 0
    again = make(bus, proc)
    again.run_once()
    assert [decode(v, FrameV2).seq for v in outputs(bus)] == [1, 2]
    assert bus.pending("argus-echo", [TOPIC_FRAMES]) == 0


def test_an_error_no_retry_can_fix_is_dead_lettered_at_once_for_its_item_only():
    bus = MemoryBus(partitions=1)
    proc = Echo()
    proc.config_error_on_seq = 2
    runner = make(bus, proc)
    publish(bus, frame(1), frame(2), frame(3))
    runner.run_once()
    assert [decode(v, FrameV2).seq for v in outputs(bus)] == [1, 3]
    dead = [decode(v, DeadLetterV1) for v in outputs(bus, TOPIC_DEADLETTER)]
    assert [(d.error_kind, d.source_offset) for d in dead] == [("ConfigError", 1)]
    assert proc.calls == 4  # the batch once, then each item once: no retries of the hopeless one


def test_a_broker_that_does_not_acknowledge_holds_the_batch_and_publishes_it_again():
    bus = FlakyFlushBus(partitions=1, failures=2)
    proc = Echo()
    runner = make(bus, proc)
    publish(bus, frame(1))
    runner.run_once()
    assert bus.flush_calls == 3
    assert [decode(v, FrameV2).seq for v in outputs(bus)] == [1, 1, 1]  # at-least-once: the same message again
    assert bus.pending("argus-echo", [TOPIC_FRAMES]) == 0


class FlakyFlushBus(MemoryBus):
    """A broker whose acknowledgements fail a few times (a fault a real broker cannot be made to produce on
    demand); publishing works."""

    def __init__(self, *, partitions: int, failures: int) -> None:
        super().__init__(partitions=partitions)
        self.failures = failures
        self.flush_calls = 0

    def flush(self, timeout_s: float = 30.0) -> None:
        self.flush_calls += 1
        if self.failures:
            self.failures -= 1
            raise BusUnavailable("not acknowledged in time")


def test_a_crash_before_commit_redelivers_the_whole_batch_to_the_restarted_stage():
    bus = MemoryBus(partitions=1)
    proc = Echo()
    proc.crash_on_seq = 2
    runner = make(bus, proc)
    publish(bus, frame(1), frame(2), frame(3))
    with pytest.raises(RuntimeError):
        runner.run_once()
    runner.consumer.close()
    assert bus.pending("argus-echo", [TOPIC_FRAMES]) == 3  # nothing was committed
    restarted = make(bus, Echo())
    restarted.run_once()
    assert bus.pending("argus-echo", [TOPIC_FRAMES]) == 0
    assert sorted(decode(v, FrameV2).seq for v in outputs(bus)) == [1, 2, 3]


def test_micro_batch_closes_at_batch_max():
    bus = MemoryBus(partitions=1)
    runner = make(bus, Echo())
    publish(bus, *[frame(i) for i in range(20)])
    assert runner.run_once() == 8


def test_dead_letter_payload_decodes_as_msgpack_map():
    bus = MemoryBus(partitions=1)
    runner = make(bus, Echo())
    publish(bus, b"\x01")
    runner.run_once()
    raw = msgpack.unpackb(outputs(bus, TOPIC_DEADLETTER)[0])
    assert raw["schema_id"] == "argus.deadletter.v1" and raw["stage"] == "echo"
