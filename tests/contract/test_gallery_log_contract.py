"""One contract for the replicated gallery's log (argus.gallery.replication.GalleryLog), on the in-memory twin and
on a real Apache Kafka broker, and for two BusGallery replicas following it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from argus.gallery.base import Person, WatchlistSpec
from argus.gallery.replication import (
    HEAD_KEY,
    BusGallery,
    GalleryLog,
    GalleryRecordV1,
    MemoryGalleryLog,
    person_log_key,
)

DIM = 16
OpenLog = Callable[[], GalleryLog]


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.integration)])
def open_log(request: pytest.FixtureRequest) -> Iterator[OpenLog]:
    """A factory of clients on one fresh topic: each call is another replica's connection (the memory twin is one
    shared object, as the processes of one demo share it)."""
    opened: list[GalleryLog] = []
    if request.param == "memory":
        shared = MemoryGalleryLog()

        def factory() -> GalleryLog:
            return shared
    else:
        from argus.gallery.replication import KafkaGalleryLog

        server = request.getfixturevalue("kafka_server")
        topic = f"argus.test-gallery-{uuid.uuid4().hex[:8]}.v1"

        def factory() -> GalleryLog:
            log = KafkaGalleryLog(bootstrap=server.address, topic=topic)
            opened.append(log)
            return log
    yield factory
    for log in opened:
        log.close()


def _read_all(log: GalleryLog, start: int, want: int, timeout_s: float = 20.0) -> list:
    got: list = []
    deadline = time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < deadline:
        got += log.read(got[-1].offset + 1 if got else start, max_records=1000, timeout_s=0.5)
    return got


def test_appended_records_read_back_in_order_with_tombstones(open_log: OpenLog):
    log = open_log()
    start = log.end_offset()
    log.append([(b"k1", b"a"), (b"k2", b"b"), (b"k1", None), (b"head", b"h")])
    got = _read_all(log, start, 4)
    assert [(r.key, r.value) for r in got] == [(b"k1", b"a"), (b"k2", b"b"), (b"k1", None), (b"head", b"h")]
    assert [r.offset for r in got] == sorted(r.offset for r in got) and got[0].offset >= start
    assert log.end_offset() == got[-1].offset + 1


def test_reading_from_an_offset_skips_what_came_before(open_log: OpenLog):
    log = open_log()
    log.append([(f"k{i}".encode(), str(i).encode()) for i in range(6)])
    first = _read_all(log, 0, 6)
    later = _read_all(log, first[3].offset, 3)
    assert [r.value for r in later] == [b"3", b"4", b"5"]


def test_another_replicas_client_sees_the_same_records(open_log: OpenLog):
    a, b = open_log(), open_log()
    a.append([(b"x", b"1"), (b"y", None)])
    got = _read_all(b, 0, 2)
    assert [(r.key, r.value) for r in got] == [(b"x", b"1"), (b"y", None)]


def test_a_read_at_the_end_waits_at_most_its_timeout(open_log: OpenLog):
    log = open_log()
    log.append([(b"x", b"1")])
    end = log.end_offset()
    t0 = time.monotonic()
    assert log.read(end, max_records=10, timeout_s=0.3) == []
    assert time.monotonic() - t0 < 3.0


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _wait(cond: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "replicas did not converge in time"
        time.sleep(0.02)


def test_two_replicas_converge_on_every_kind_of_change(open_log: OpenLog, tmp_path: Path):
    rng = np.random.default_rng(1)
    writer = BusGallery(log=open_log(), path=tmp_path / "w", dim=DIM, poll_s=0.1)
    replica = BusGallery(log=open_log(), path=tmp_path / "r", dim=DIM, poll_s=0.1)
    try:
        e1, e2, neg = _unit(rng, 2), _unit(rng, 3), _unit(rng, 1)
        writer.enroll_many([(Person(person_id="P-1", display_name="One"), e1),
                            (Person(person_id="P-2", display_name="Two", watchlist="vip"), e2)],
                           actor="t", reason="bulk")
        writer.update_person("P-1", expires_at=4e9, actor="t", reason="expiry")
        writer.add_negative("P-2", neg, actor="t", reason="not them", ref="alert-1")
        writer.set_watchlist(WatchlistSpec(name="vip", threshold=0.7), actor="t", reason="spec")
        writer.remove("P-1", actor="t", reason="gone")
        _wait(lambda: replica.version == writer.version)
        assert replica.version == 5
        assert [p.person_id for p in replica.persons()] == ["P-2"]
        assert replica.get("P-2") == writer.get("P-2")
        np.testing.assert_array_equal(replica.negatives("P-2"), neg)
        assert replica.watchlist("vip") == writer.watchlist("vip")
        assert replica.search(e2[:1], 1)[0][0].person_id == "P-2"
    finally:
        writer.close()
        replica.close()


def test_erasure_publishes_a_tombstone_keyed_by_a_digest(open_log: OpenLog, tmp_path: Path):
    rng = np.random.default_rng(2)
    writer = BusGallery(log=open_log(), path=tmp_path / "w", dim=DIM, follow=False)
    log = open_log()
    start = log.end_offset()
    writer.enroll(Person(person_id="case/17", display_name="X"), _unit(rng, 1), actor="t", reason="r")
    writer.erase("case/17", actor="t", reason="erasure request")
    recs = _read_all(log, start, 4)
    key = person_log_key("case/17")
    assert [(r.key, r.value is None) for r in recs if r.key != HEAD_KEY] == [(key, False), (key, True)]
    assert b"case/17" not in key
    assert GalleryRecordV1.decode(recs[-1].value).version == writer.version  # the head is last
    writer.close()
