"""Gallery replication on the real broker (ARGUS_GALLERY_SYNC=bus): two FAISS replicas converge, a replica that
starts late catches up (from nothing, and from its own snapshot), an erasure leaves a tombstone and no trace in
any replica's files; plus the compaction rules on the in-memory twin (the broker's log cleaner cannot be made to
run on demand)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from argus.gallery.base import Person
from argus.gallery.replication import (
    GALLERY_TOPIC_CONFIG,
    TOMBSTONE_RETENTION_MS,
    BusGallery,
    KafkaGalleryLog,
    MemoryGalleryLog,
)

DIM = 128


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _wait(cond: Callable[[], bool], timeout_s: float = 20.0) -> float:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout_s, "not converged in time"
        time.sleep(0.005)
    return time.monotonic() - t0


def _state(g: BusGallery) -> tuple[int, list[tuple[str, str]]]:
    return g.version, sorted((p.person_id, p.display_name) for p in g.persons())


@pytest.fixture
def topic_logs(kafka_server) -> Iterator[Callable[[], KafkaGalleryLog]]:
    topic = f"argus.test-gallery-{uuid.uuid4().hex[:8]}.v1"
    opened: list[KafkaGalleryLog] = []

    def open_log() -> KafkaGalleryLog:
        opened.append(KafkaGalleryLog(bootstrap=kafka_server.address, topic=topic))
        return opened[-1]

    yield open_log
    for log in opened:
        log.close()


@pytest.mark.integration
def test_two_matcher_replicas_serve_an_enrolment_within_seconds(topic_logs, tmp_path: Path):
    rng = np.random.default_rng(0)
    api = BusGallery(log=topic_logs(), path=tmp_path / "api", dim=DIM, poll_s=0.05)
    m1 = BusGallery(log=topic_logs(), path=tmp_path / "m1", dim=DIM, poll_s=0.05)
    m2 = BusGallery(log=topic_logs(), path=tmp_path / "m2", dim=DIM, poll_s=0.05)
    try:
        emb = _unit(rng, 3)
        api.enroll(Person(person_id="P-100", display_name="J. Doe"), emb, actor="t", reason="case 1")
        took = _wait(lambda: all(g.search(emb[:1], 1)[0][:1] and g.search(emb[:1], 1)[0][0].person_id == "P-100"
                                 for g in (m1, m2)))
        assert took < 10.0
        assert _state(m1) == _state(m2) == _state(api) == (1, [("P-100", "J. Doe")])
    finally:
        for g in (api, m1, m2):
            g.close()


@pytest.mark.integration
def test_a_late_replica_catches_up_from_nothing_and_from_its_snapshot(topic_logs, tmp_path: Path):
    rng = np.random.default_rng(1)
    api = BusGallery(log=topic_logs(), path=tmp_path / "api", dim=DIM, follow=False)
    early = BusGallery(log=topic_logs(), path=tmp_path / "early", dim=DIM, follow=False)
    api.enroll_many([(Person(person_id=f"P-{i}", display_name=f"n{i}"), _unit(rng, 2)) for i in range(50)],
                    actor="t", reason="bulk")
    early.catch_up()
    assert early.write_snapshot()
    snap_offset = early.offset
    early.close()
    api.remove("P-3", actor="t", reason="gone")
    api.enroll(Person(person_id="P-99", display_name="late"), _unit(rng, 1), actor="t", reason="new")
    late = BusGallery(log=topic_logs(), path=tmp_path / "late", dim=DIM, follow=False)  # an empty directory
    restarted = BusGallery(log=topic_logs(), path=tmp_path / "early", dim=DIM, follow=False)  # its own snapshot
    try:
        assert _state(late) == _state(restarted) == _state(api)
        assert api.version == 3 and len(late) == 50
        assert restarted.offset > snap_offset > 0  # it replayed the tail only
    finally:
        for g in (api, late, restarted):
            g.close()


@pytest.mark.integration
def test_erasure_leaves_no_trace_in_any_replica_and_the_topic_is_compacted(topic_logs, tmp_path: Path,
                                                                            kafka_server):
    rng = np.random.default_rng(2)
    log = topic_logs()
    api = BusGallery(log=log, path=tmp_path / "api", dim=DIM, follow=False)
    m1 = BusGallery(log=topic_logs(), path=tmp_path / "m1", dim=DIM, follow=False)
    api.enroll(Person(person_id="case-4711", display_name="Erase Me"), _unit(rng, 2), actor="t", reason="r")
    api.enroll(Person(person_id="P-keep", display_name="Keep"), _unit(rng, 1), actor="t", reason="r")
    m1.catch_up()
    m1.write_snapshot()
    api.erase("case-4711", actor="t", reason="erasure request")
    m1.catch_up()
    m1.write_snapshot()
    assert _state(m1) == _state(api) == (3, [("P-keep", "Keep")])
    for f in (tmp_path / "m1").iterdir():
        assert b"case-4711" not in f.read_bytes() and b"Erase Me" not in f.read_bytes(), f.name
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=kafka_server.address)
    try:
        res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, log.topic)])
        text = repr(res)
        for key, want in GALLERY_TOPIC_CONFIG.items():
            assert f"'{key}'" in text and want in text, key
        assert len(admin.describe_topics([log.topic])[0]["partitions"]) == 1
    finally:
        admin.close()
        api.close()
        m1.close()


def test_a_replica_of_the_compacted_log_converges_with_one_that_read_everything(tmp_path: Path):
    rng = np.random.default_rng(3)
    log = MemoryGalleryLog()
    api = BusGallery(log=log, path=tmp_path / "api", dim=DIM, follow=False)
    for i in range(5):
        api.enroll(Person(person_id=f"P-{i}", display_name=f"n{i}"), _unit(rng, 1), actor="t", reason="r")
    api.update_person("P-1", display_name="renamed", actor="t", reason="r")
    api.erase("P-2", actor="t", reason="r")
    full = BusGallery(log=log, path=tmp_path / "full", dim=DIM, follow=False)
    log.compact(drop_tombstones=True)  # the cleaner ran and delete.retention.ms passed
    compacted = BusGallery(log=log, path=tmp_path / "compacted", dim=DIM, follow=False)
    assert _state(compacted) == _state(full) == _state(api)
    assert ("P-1", "renamed") in _state(compacted)[1] and "P-2" not in {p for p, _ in _state(compacted)[1]}


def test_a_snapshot_older_than_the_tombstone_retention_is_replayed_from_the_start(tmp_path: Path):
    rng = np.random.default_rng(4)
    log = MemoryGalleryLog()
    api = BusGallery(log=log, path=tmp_path / "api", dim=DIM, follow=False)
    api.enroll(Person(person_id="P-1", display_name="a"), _unit(rng, 1), actor="t", reason="r")
    api.enroll(Person(person_id="P-2", display_name="b"), _unit(rng, 1), actor="t", reason="r")
    old = BusGallery(log=log, path=tmp_path / "m", dim=DIM, follow=False, clock=lambda: 1_000_000.0)
    old.write_snapshot()
    api.remove("P-1", actor="t", reason="r")
    log.compact(drop_tombstones=True)  # the tombstone is gone: only a replay from the start can know P-1 left
    later = 1_000_000.0 + TOMBSTONE_RETENTION_MS / 1000 + 1
    m = BusGallery(log=log, path=tmp_path / "m", dim=DIM, follow=False, clock=lambda: later)
    assert _state(m) == _state(api) == (3, [("P-2", "b")])


def test_operations_in_bus_mode_keep_both_audit_logs_and_every_replica_on_one_version(tmp_path: Path):
    from argus import operations as ops
    from argus.store.sqlite import SqliteEventStore

    rng = np.random.default_rng(5)
    log = MemoryGalleryLog()
    api = BusGallery(log=log, path=tmp_path / "api", dim=DIM, follow=False)
    matcher = BusGallery(log=log, path=tmp_path / "m", dim=DIM, follow=False)
    svc = ops.Services(gallery=api, store=SqliteEventStore(path=tmp_path / "events.sqlite"))
    api.enroll(Person(person_id="P-7", display_name="Seven"), _unit(rng, 2), actor="t", reason="r")
    ops.update_person(svc, "P-7", actor="alice", role="admin", reason="expiry", expires_at=4e9)
    ops.set_watchlist(svc, name="vip", threshold=0.6, actor="alice", role="admin", reason="spec")
    ops.erase_person(svc, "P-7", actor="alice", role="admin", reason="erasure request")
    matcher.catch_up()
    assert _state(matcher) == _state(api) == (4, [])
    records = {r.action: r for r in svc.store.audit_records()}
    gallery_log = {e.action: e for e in api.audit()}
    for action in ("update", "watchlist", "erase"):
        assert records[action].details["gallery_version"] == gallery_log[action].version
    assert matcher.watchlist("vip") == api.watchlist("vip")
    receipt_line = next(ln for ln in ops.not_erasable_now() if "argus.gallery.v1" in ln)
    assert "tombstone" in receipt_line and "1 h" in receipt_line and "24 h later" in receipt_line


def test_resources_build_a_replica_when_the_setting_says_bus(tmp_path: Path):
    from argus.config import load_settings
    from argus.errors import ConfigError
    from argus.runtime.resources import Resources

    log = MemoryGalleryLog()
    with Resources(load_settings(data_dir=tmp_path, gallery_sync="bus"), gallery_log=log) as res:
        g = res.gallery
        assert isinstance(g, BusGallery) and g.log is log and g.path == tmp_path / "gallery"
    assert g._thread is not None and not g._thread.is_alive()  # closed with its Resources
    with Resources(load_settings(data_dir=tmp_path, gallery_sync="bus", gallery="memory")) as res, \
            pytest.raises(ConfigError, match="ARGUS_GALLERY=faiss"):
        res.gallery  # noqa: B018
    with Resources(load_settings(data_dir=tmp_path / "f")) as res:
        assert type(res.gallery).__name__ == "FaissGallery"  # file sync stays the default
