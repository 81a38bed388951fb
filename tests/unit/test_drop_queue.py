"""DropOldestQueue: bounded, never blocks the producer, keeps the newest items, counts every drop."""

from __future__ import annotations

import threading
import time

import pytest

from argus.errors import ConfigError
from argus.ingest.queue import DropOldestQueue


def test_full_queue_evicts_oldest_and_keeps_newest_n() -> None:
    q: DropOldestQueue[int] = DropOldestQueue(3)
    evicted = [q.put(i) for i in range(10)]
    assert evicted == [None, None, None, 0, 1, 2, 3, 4, 5, 6]
    assert q.dropped == 7
    assert q.depth == 3
    assert [q.get(timeout=0), q.get(timeout=0), q.get(timeout=0)] == [7, 8, 9]
    assert q.get(timeout=0) is None


def test_get_times_out_with_none_when_empty() -> None:
    q: DropOldestQueue[str] = DropOldestQueue(2)
    t0 = time.monotonic()
    assert q.get(timeout=0.15) is None
    assert 0.12 <= time.monotonic() - t0 < 1.0


def test_get_wakes_up_when_another_thread_puts() -> None:
    q: DropOldestQueue[str] = DropOldestQueue(2)
    threading.Timer(0.05, q.put, args=("frame",)).start()
    t0 = time.monotonic()
    assert q.get(timeout=5) == "frame"
    assert time.monotonic() - t0 < 2.0


def test_slow_consumer_under_backpressure_never_blocks_producers_and_accounts_for_every_item() -> None:
    q: DropOldestQueue[tuple[int, int]] = DropOldestQueue(8)
    per_producer = 5000
    got: list[tuple[int, int]] = []
    done = threading.Event()

    def produce(pid: int) -> None:
        for i in range(per_producer):
            q.put((pid, i))

    def consume() -> None:
        while not done.is_set() or q.depth:
            item = q.get(timeout=0.01)
            if item is not None:
                got.append(item)
                time.sleep(0.0005)  # slower than the producers

    consumer = threading.Thread(target=consume)
    consumer.start()
    producers = [threading.Thread(target=produce, args=(p,)) for p in range(3)]
    t0 = time.monotonic()
    for t in producers:
        t.start()
    for t in producers:
        t.join()
    produce_s = time.monotonic() - t0
    done.set()
    consumer.join(10)
    assert q.put_count == 3 * per_producer
    assert len(got) + q.dropped == 3 * per_producer
    assert q.dropped > 0
    assert produce_s < 5.0  # 15k puts with a consumer sleeping per item: only possible if put never waits
    assert len(set(got)) == len(got)  # nothing delivered twice
    for pid in range(3):  # what survives keeps each producer's order
        mine = [i for p, i in got if p == pid]
        assert mine == sorted(mine)


def test_put_sets_the_shared_notify_event() -> None:
    ev = threading.Event()
    q: DropOldestQueue[int] = DropOldestQueue(1, notify=ev)
    assert not ev.is_set()
    q.put(1)
    assert ev.is_set()


def test_drain_returns_everything_oldest_first() -> None:
    q: DropOldestQueue[int] = DropOldestQueue(4)
    for i in range(6):
        q.put(i)
    assert q.drain() == [2, 3, 4, 5]
    assert q.depth == 0


@pytest.mark.parametrize("size", [0, -1, 2.5, True])
def test_invalid_size_is_a_config_error(size: object) -> None:
    with pytest.raises(ConfigError, match="expected an int >= 1"):
        DropOldestQueue(size)  # type: ignore[arg-type]
