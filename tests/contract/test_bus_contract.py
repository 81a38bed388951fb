"""One bus contract, run on the in-memory bus and on a real Apache Kafka broker."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import pytest

from argus.bus.base import Bus, Consumer, Record


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.integration)])
def bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    if request.param == "memory":
        from argus.bus.memory import MemoryBus

        b: Bus = MemoryBus(partitions=3)
    else:
        from argus.bus.kafka import KafkaBus

        server = request.getfixturevalue("kafka_server")
        b = KafkaBus(bootstrap=server.address, partitions=3)
    yield b
    b.close()


def _topic() -> str:
    return f"argus.test-{uuid.uuid4().hex[:8]}.v1"


def _drain(c: Consumer, want: int, timeout_s: float = 20.0) -> list[Record]:
    got: list[Record] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < deadline:
        got += c.poll(max_records=100, timeout_s=0.5)
    return got


def test_every_published_message_reaches_the_group_once(bus: Bus):
    t = _topic()
    bus.ensure_topics([t])
    for i in range(30):
        bus.publish(t, key=f"cam-{i % 4}".encode(), value=f"m{i}".encode())
    bus.flush()
    c = bus.consumer([t], group="g1")
    got = _drain(c, 30)
    assert sorted(r.value for r in got) == sorted(f"m{i}".encode() for i in range(30))
    c.close()


def test_one_key_keeps_its_order_on_one_partition(bus: Bus):
    t = _topic()
    bus.ensure_topics([t])
    for i in range(20):
        bus.publish(t, key=b"cam-a", value=str(i).encode())
        bus.publish(t, key=b"cam-b", value=str(100 + i).encode())
    bus.flush()
    c = bus.consumer([t], group="g-order")
    got = _drain(c, 40)
    a = [r for r in got if r.key == b"cam-a"]
    assert len({r.partition for r in a}) == 1
    assert [int(r.value) for r in sorted(a, key=lambda r: r.offset)] == list(range(20))
    c.close()


def test_uncommitted_messages_are_redelivered_to_the_next_consumer_of_the_group(bus: Bus):
    t = _topic()
    bus.ensure_topics([t])
    for i in range(10):
        bus.publish(t, key=b"cam", value=str(i).encode())
    bus.flush()
    c1 = bus.consumer([t], group="g-redeliver")
    first = _drain(c1, 10)
    c1.commit([r for r in first if int(r.value) < 4])  # crash after processing 0..3 only
    c1.close()
    c2 = bus.consumer([t], group="g-redeliver")
    again = _drain(c2, 6)
    assert sorted(int(r.value) for r in again) == [4, 5, 6, 7, 8, 9]
    c2.commit(again)
    c2.close()
    c3 = bus.consumer([t], group="g-redeliver")
    assert c3.poll(max_records=10, timeout_s=1.0 if bus.name == "kafka" else 0.1) == []
    c3.close()


def test_groups_are_independent(bus: Bus):
    t = _topic()
    bus.ensure_topics([t])
    bus.publish(t, key=b"k", value=b"x")
    bus.flush()
    a, b = bus.consumer([t], group="ga"), bus.consumer([t], group="gb")
    ra, rb = _drain(a, 1), _drain(b, 1)
    assert [r.value for r in ra] == [b"x"] and [r.value for r in rb] == [b"x"]
    a.close()
    b.close()


def test_a_frame_sized_message_round_trips(bus: Bus):
    t = _topic()
    bus.ensure_topics([t])
    payload = os.urandom(1_500_000)  # a 1080p JPEG is 100-200 kB; leave headroom for 4K
    bus.publish(t, key=b"cam", value=payload)
    bus.flush()
    c = bus.consumer([t], group="g-big")
    got = _drain(c, 1)
    assert got and got[0].value == payload
    c.close()


def test_poll_waits_at_most_its_timeout_on_an_idle_topic(bus: Bus):
    t = _topic()
    bus.ensure_topics([t])
    c = bus.consumer([t], group="g-idle")
    c.poll(max_records=1, timeout_s=2.0)  # first poll may include group join on Kafka
    t0 = time.monotonic()
    assert c.poll(max_records=1, timeout_s=0.3) == []
    assert time.monotonic() - t0 < 2.0
    c.close()



def test_pending_counts_what_a_group_has_not_committed_yet(bus: Bus):
    t = _topic()
    bus.ensure_topics([t])
    for i in range(12):
        bus.publish(t, key=f"cam-{i % 3}".encode(), value=b"x")
    bus.flush()
    assert sum(bus.end_offsets(t)) == 12
    assert bus.pending("g-lag", [t]) == 12  # a group that never committed owes everything
    c = bus.consumer([t], group="g-lag")
    got = _drain(c, 12)
    assert len(got) == 12
    assert bus.pending("g-lag", [t]) == 12  # consumed is not done: only a commit counts
    one_partition = [r for r in got if r.partition == got[0].partition]
    c.commit(one_partition)
    assert bus.pending("g-lag", [t]) == 12 - len(one_partition)
    c.commit(got)
    assert bus.pending("g-lag", [t]) == 0
    c.close()


def test_read_all_returns_every_record_without_taking_anything_from_a_group(bus: Bus):
    t = _topic()
    bus.ensure_topics([t])
    assert bus.read_all(t) == []
    for i in range(7):
        bus.publish(t, key=f"ingest/shard-{i % 2}".encode(), value=f"v{i}".encode())
    bus.flush()
    got = bus.read_all(t)
    assert sorted(r.value for r in got) == sorted(f"v{i}".encode() for i in range(7))
    per_key = {}
    for r in sorted(got, key=lambda r: (r.partition, r.offset)):
        per_key[r.key] = r.value
    assert per_key == {b"ingest/shard-0": b"v6", b"ingest/shard-1": b"v5"}  # per-key order: the last one wins
    def order(rs: list[Record]) -> list[tuple[int, int, bytes]]:
        return sorted((r.partition, r.offset, r.value) for r in rs)

    assert order(bus.read_all(t)) == order(got)  # reading again sees the same: no group, no position moved
    c = bus.consumer([t], group="g-after-read-all")
    assert len(_drain(c, 7)) == 7  # and a group still gets everything
    c.close()
