"""Gallery replication through Kafka (``ARGUS_GALLERY_SYNC=bus``): the topic is the truth, every replica follows it.

Why: with ``file`` sync every matcher replica mounts one ReadWriteMany directory and trusts NFS locking; many
clusters offer no such volume. Here every watch-list change is published to the compacted topic
:data:`argus.topology.TOPIC_GALLERY`, and each replica (matcher, API) builds its own gallery from it.

**The topic** (:data:`GALLERY_TOPIC_CONFIG`; one partition, so the log is one total order and "the gallery
version" is well defined — watch-list changes come at the rate of people, not frames):

- key ``person:<sha256(person_id)>`` → :class:`GalleryRecordV1` of kind ``person``: the person's *whole current
  state* (record, embeddings, negative evidence). Enroll, re-enroll, update, expiry and "not this person" all
  republish it, so compaction — which keeps the last record per key — keeps exactly the current watch-list.
- the same key with a **tombstone** (no value) for remove and erase: compaction deletes the person's earlier
  records, then (after ``delete.retention.ms``) the tombstone itself. The key is a digest, so not even the
  tombstone names the person.
- key ``watchlist:<name>`` → kind ``watchlist``: a watch-list spec (never deleted; specs are not personal data).
- key ``head`` → kind ``head``: published last in every change, carrying the gallery version it produced. A
  replica applies what it has read only when it reads a head, so a change made of many records (a bulk enrolment
  of 10,000 persons) becomes visible all at once, at one version. Compaction keeps the latest head, so a replica
  that reads the compacted log from the start ends at the same version as one that read every record: replicas
  converge to the same content *and* version (both are functions of the log).

**Snapshots for fast start**: each replica writes its gallery into its own directory (the FAISS format of
:mod:`argus.gallery.faiss_gallery`, plus ``replication.json`` with the log offset the snapshot reflects) every
``snapshot_every_s`` when it changed, and on close. On start it loads the snapshot and replays the topic from that
offset; replaying from an older offset is always safe (records are states, applying one twice changes nothing).
A snapshot older than :data:`TOMBSTONE_RETENTION_MS` is discarded (the replica replays from the start): past that,
a tombstone it has not seen may have been compacted away and a removed person would come back.

**Hot reload off the hot path**: a follower thread reads the topic, builds the next immutable snapshot and its
FAISS index, and only then swaps both in under the gallery lock (a pointer assignment); a search never waits for
a build. Writers (the API, the CLI) publish, flush (``acks=all``) and install the change they planned, so the
operator reads their own write; the follower then reads the same records back and rebuilds the same content.

**Writers**: one at a time is assumed (the API, or the CLI run inside it): a writer catches up with the log before
planning a change, but Kafka has no compare-and-set, so two writers racing can both publish version N+1. Replicas
still converge (they apply one log), only the version number means two states in a row. The gallery's own audit
log (``audit.jsonl``) stays with the writer, in its directory, as in ``file`` mode; the store's hash-chained
trail (argus.operations) is the copy every process shares. Erasure also rewrites the writer's audit log.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import msgpack
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from argus.errors import BusError, BusUnavailable, SchemaError, StoreError
from argus.gallery.audit import AuditEntry
from argus.gallery.base import Person, Snapshot, WatchlistSpec
from argus.gallery.faiss_gallery import FaissGallery, FileWriter, GalleryWriteError, write_error
from argus.topology import TOPIC_GALLERY

if TYPE_CHECKING:
    from argus.bus.kafka import KafkaSecurity

log = logging.getLogger(__name__)

#: How long Kafka keeps a tombstone after compacting the records it deletes. A replica's snapshot older than this
#: cannot be trusted (it may miss a tombstone that is gone), so it replays from the start instead.
TOMBSTONE_RETENTION_MS = 24 * 3600 * 1000
#: Segments roll hourly so compaction can act on them (the active segment is never compacted): an erased person's
#: earlier records are gone within about an hour plus the log cleaner's backoff.
SEGMENT_MS = 3600 * 1000
MAX_RECORD_BYTES = 4 * 1024 * 1024  # a person with ~8,000 embeddings of 128 floats
GALLERY_TOPIC_CONFIG: dict[str, str] = {
    "cleanup.policy": "compact",
    "delete.retention.ms": str(TOMBSTONE_RETENTION_MS),
    "segment.ms": str(SEGMENT_MS),
    "min.cleanable.dirty.ratio": "0.1",
    "max.message.bytes": str(MAX_RECORD_BYTES),
}
GALLERY_PARTITIONS = 1
HEAD_KEY = b"head"
SNAPSHOT_META = "replication.json"


@functools.lru_cache(maxsize=1 << 18)  # every apply looks up each person's key; a sha256 each time adds up
def person_log_key(person_id: str) -> bytes:
    """The topic key of a person: a digest, so a tombstone left after an erasure names nobody."""
    return b"person:" + hashlib.sha256(person_id.encode("utf-8")).hexdigest().encode()


def watchlist_log_key(name: str) -> bytes:
    return b"watchlist:" + name.encode("utf-8")


# ------------------------------------------------------------------------------------------------- the wire schema


class GalleryRecordV1(BaseModel):
    """One record of ``argus.gallery.v1`` (MessagePack; embeddings as raw little-endian float32 bytes)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)
    SCHEMA: ClassVar[str] = TOPIC_GALLERY

    schema_id: Literal["argus.gallery.v1"] = "argus.gallery.v1"
    kind: Literal["person", "watchlist", "head"]
    version: int = Field(ge=0)  # the gallery version of the change that wrote this record
    ts: float
    person: dict[str, Any] | None = None
    embeddings: bytes = b""  # (rows, dim) float32
    negatives: bytes = b""  # (n, dim) float32, n may be 0
    spec: dict[str, Any] | None = None

    def encode(self) -> bytes:
        return msgpack.packb(self.model_dump(mode="python"), use_bin_type=True)

    @classmethod
    def decode(cls, data: bytes) -> GalleryRecordV1:
        try:
            raw = msgpack.unpackb(data, raw=False, strict_map_key=True)
        except Exception as e:  # msgpack raises several unrelated exception types on garbage
            raise SchemaError(f"{TOPIC_GALLERY}: not a MessagePack record ({len(data)} bytes): {e}") from e
        if not isinstance(raw, dict) or raw.get("schema_id") != cls.SCHEMA:
            sid = raw.get("schema_id") if isinstance(raw, dict) else type(raw).__name__
            raise SchemaError(f"expected schema {cls.SCHEMA!r}, got {sid!r}")
        try:
            return cls.model_validate(raw)
        except ValidationError as e:
            errs = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()[:5])
            raise SchemaError(f"{TOPIC_GALLERY}: {errs}") from e


def _rows(data: bytes, dim: int, what: str) -> np.ndarray:
    """A read-only view of the bytes (no copy: the snapshot concatenates, and so copies, them anyway)."""
    if len(data) % (4 * dim):
        raise SchemaError(f"{TOPIC_GALLERY}: {what}: expected a multiple of {4 * dim} bytes, got {len(data)}")
    return np.frombuffer(data, dtype="<f4").reshape(-1, dim)


def person_record(snap: Snapshot, person_id: str) -> bytes:
    i = snap.index_of[person_id]
    return GalleryRecordV1(kind="person", version=snap.version, ts=time.time(), person=snap.persons[i].to_dict(),
                           embeddings=snap.rows_of(person_id).astype("<f4").tobytes(),
                           negatives=snap.negatives_of(person_id).astype("<f4").tobytes()).encode()


def changes_between(before: Snapshot, after: Snapshot) -> list[tuple[bytes, bytes | None]]:
    """The records that take a replica holding ``before`` to ``after``, head last. A pure function of the two
    snapshots, so every change (enroll, update, negative, remove, erase, spec) is published the same way."""
    out: list[tuple[bytes, bytes | None]] = []
    for pid in before.index_of.keys() - after.index_of.keys():
        out.append((person_log_key(pid), None))
    for pid, i in after.index_of.items():
        j = before.index_of.get(pid)
        if (j is None or before.persons[j] != after.persons[i]
                or not np.array_equal(before.rows_of(pid), after.rows_of(pid))
                or not np.array_equal(before.negatives_of(pid), after.negatives_of(pid))):
            out.append((person_log_key(pid), person_record(after, pid)))
    for name, spec in after.watchlists.items():
        if before.watchlists.get(name) != spec:
            out.append((watchlist_log_key(name), GalleryRecordV1(kind="watchlist", version=after.version,
                                                                 ts=time.time(), spec=spec.to_dict()).encode()))
    out.append((HEAD_KEY, GalleryRecordV1(kind="head", version=after.version, ts=time.time()).encode()))
    return out


def apply_records(snap: Snapshot, records: Sequence[LogRecord]) -> Snapshot:
    """``snap`` with ``records`` applied (last record per key wins), at the version of the last head among them.
    Persons changed move to the end (as a re-enrolment does), the others keep their rows."""
    latest: dict[bytes, bytes | None] = {}
    version = snap.version
    for r in records:
        if r.key == HEAD_KEY:
            if r.value is not None:
                version = GalleryRecordV1.decode(r.value).version
        else:
            latest[r.key] = r.value
    if not latest:
        return Snapshot.build(dim=snap.dim, version=version, persons=snap.persons, counts=snap.counts.tolist(),
                              embeddings=snap.embeddings, watchlists=snap.watchlists, negatives=snap.negatives)
    dim = snap.dim
    keep = [i for i, p in enumerate(snap.persons) if person_log_key(p.person_id) not in latest]
    persons = [snap.persons[i] for i in keep]
    counts = snap.counts[keep].tolist()
    kept = np.zeros(len(snap.persons), dtype=bool)
    kept[keep] = True
    parts = [snap.embeddings[kept[snap.row_person]]] if keep else []
    negatives = {p.person_id: snap.negatives[p.person_id] for p in persons if p.person_id in snap.negatives}
    watchlists = dict(snap.watchlists)
    for key, value in latest.items():
        if value is None:
            continue  # a tombstone: the person (if we had them) is already left out
        rec = GalleryRecordV1.decode(value)
        if rec.kind == "watchlist" and rec.spec is not None:
            spec = WatchlistSpec.from_dict(rec.spec)
            watchlists[spec.name] = spec
        elif rec.kind == "person" and rec.person is not None:
            person = Person.from_dict(rec.person)
            if person_log_key(person.person_id) != key:
                raise SchemaError(f"{TOPIC_GALLERY}: record for key {key!r} names another person")
            emb = _rows(rec.embeddings, dim, "embeddings")
            persons.append(person)
            counts.append(int(emb.shape[0]))
            parts.append(emb)
            if rec.negatives:
                negatives[person.person_id] = _rows(rec.negatives, dim, "negatives")
    emb_all = np.concatenate(parts, axis=0) if parts else np.zeros((0, dim), np.float32)
    return Snapshot.build(dim=dim, version=version, persons=persons, counts=counts, embeddings=emb_all,
                          watchlists=watchlists, negatives=negatives)


# ------------------------------------------------------------------------------------------------- the log seam


@dataclass(frozen=True, kw_only=True)
class LogRecord:
    offset: int
    key: bytes
    value: bytes | None  # None: a tombstone


class GalleryLog(Protocol):
    """The replicated gallery's log: one ordered, compacted partition every replica reads from any offset."""

    topic: str

    def append(self, records: Sequence[tuple[bytes, bytes | None]]) -> None:
        """Append in order; durable (acknowledged by every in-sync replica) when this returns, else BusError."""
        ...

    def read(self, start: int, *, max_records: int, timeout_s: float) -> list[LogRecord]:
        """Records at offsets >= ``start``, in order (compaction may leave gaps); waits at most ``timeout_s`` for
        the first one."""
        ...

    def end_offset(self) -> int:
        """The offset the next appended record will get."""
        ...

    def close(self) -> None: ...


class MemoryGalleryLog:
    """In-memory twin: one list shared by every replica in the process; :meth:`compact` does what Kafka's log
    cleaner does (last record per key, tombstones dropped when ``drop_tombstones``), offsets kept."""

    topic = TOPIC_GALLERY

    def __init__(self) -> None:
        self._records: list[LogRecord] = []
        self._next = 0
        self._cond = threading.Condition()

    def append(self, records: Sequence[tuple[bytes, bytes | None]]) -> None:
        for _key, value in records:
            if value is not None and len(value) > MAX_RECORD_BYTES:
                raise BusError(f"{self.topic}: record of {len(value)} bytes, expected <= {MAX_RECORD_BYTES}")
        with self._cond:
            for key, value in records:
                self._records.append(LogRecord(offset=self._next, key=key, value=value))
                self._next += 1
            self._cond.notify_all()

    def read(self, start: int, *, max_records: int, timeout_s: float) -> list[LogRecord]:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                out = [r for r in self._records if r.offset >= start][:max_records]
                remaining = deadline - time.monotonic()
                if out or remaining <= 0:
                    return out
                self._cond.wait(remaining)

    def end_offset(self) -> int:
        with self._cond:
            return self._next

    def compact(self, *, drop_tombstones: bool = False) -> None:
        with self._cond:
            last = {r.key: r.offset for r in self._records}
            self._records = [r for r in self._records if last[r.key] == r.offset
                             and not (drop_tombstones and r.value is None)]

    def close(self) -> None:
        pass


class KafkaGalleryLog:
    """The topic on Apache Kafka: created compacted with one partition; read without a consumer group (every
    replica reads everything, from the offset of its own snapshot), so a replica joining never rebalances anyone."""

    def __init__(self, *, bootstrap: str, topic: str = TOPIC_GALLERY, client_id: str = "argus-gallery",
                 security: KafkaSecurity | None = None) -> None:
        """``security``: the same TLS / SASL settings as the stages' bus (``Settings.kafka_security``)."""
        from kafka import KafkaConsumer, KafkaProducer
        from kafka.structs import TopicPartition

        self.topic = topic
        self._bootstrap = bootstrap
        self._security: dict[str, Any] = security.client_config() if security is not None else {}
        self._ensure_topic(client_id)
        try:
            self._producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), client_id=client_id,
                                           **self._security,
                                           acks="all", enable_idempotence=True, linger_ms=2,
                                           max_request_size=MAX_RECORD_BYTES, retries=2**31 - 1,
                                           delivery_timeout_ms=120_000)
            self._consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=None, **self._security,
                                           client_id=f"{client_id}-follower", enable_auto_commit=False,
                                           auto_offset_reset="earliest", max_partition_fetch_bytes=4 * MAX_RECORD_BYTES,
                                           fetch_max_bytes=8 * MAX_RECORD_BYTES)
        except Exception as e:
            raise BusError(f"cannot connect the gallery log to Kafka at {bootstrap}: {e}") from e
        self._tp = TopicPartition(topic, 0)
        self._consumer.assign([self._tp])
        self._position: int | None = None
        self._mu = threading.Lock()  # kafka-python's consumer is not thread-safe

    def _ensure_topic(self, client_id: str) -> None:
        from kafka.admin import KafkaAdminClient, NewTopic
        from kafka.errors import TopicAlreadyExistsError

        try:
            admin = KafkaAdminClient(bootstrap_servers=self._bootstrap.split(","), client_id=client_id,
                                     **self._security)
        except Exception as e:
            raise BusError(f"cannot reach Kafka at {self._bootstrap}: {e}") from e
        try:
            if self.topic not in set(admin.list_topics()):
                with contextlib.suppress(TopicAlreadyExistsError):  # another replica created it meanwhile
                    admin.create_topics([NewTopic(self.topic, num_partitions=GALLERY_PARTITIONS, replication_factor=1,
                                                  topic_configs=GALLERY_TOPIC_CONFIG)])
                    log.info("created Kafka topic %s (compacted)", self.topic)
            admin.wait_for_topics([self.topic], timeout_ms=30_000)
        except Exception as e:
            raise BusError(f"cannot create the gallery topic {self.topic} on {self._bootstrap}: {e}") from e
        finally:
            admin.close()

    def append(self, records: Sequence[tuple[bytes, bytes | None]]) -> None:
        try:
            futures = [self._producer.send(self.topic, key=k, value=v, partition=0) for k, v in records]
            self._producer.flush(timeout=30)
        except Exception as e:
            raise BusUnavailable(f"cannot publish {len(records)} gallery record(s) to {self.topic}: {e}") from e
        failed = [f for f in futures if not f.succeeded()]
        if failed:
            exc = failed[0].exception if failed[0].is_done else "not acknowledged in time"
            raise BusUnavailable(f"{len(failed)} gallery record(s) not acknowledged by {self.topic}: {exc}")

    def read(self, start: int, *, max_records: int, timeout_s: float) -> list[LogRecord]:
        with self._mu:
            try:
                if self._position != start:
                    self._consumer.seek(self._tp, start)
                batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
            except Exception as e:
                raise BusUnavailable(f"cannot read {self.topic} from offset {start}: {e}") from e
            out = [LogRecord(offset=r.offset, key=bytes(r.key or b""),
                             value=None if r.value is None else bytes(r.value))
                   for recs in batches.values() for r in recs if r.offset >= start]
            out.sort(key=lambda r: r.offset)
            self._position = out[-1].offset + 1 if out else start
            return out

    def end_offset(self) -> int:
        with self._mu:
            try:
                return int(self._consumer.end_offsets([self._tp])[self._tp])
            except Exception as e:
                raise BusUnavailable(f"cannot read the end offset of {self.topic}: {e}") from e

    def close(self) -> None:
        for c in (self._producer, self._consumer):
            try:
                c.close()
            except Exception as e:
                log.warning("closing the gallery log client failed: %s", e)


# ------------------------------------------------------------------------------------------------- the replica


class BusGallery(FaissGallery):
    """A FAISS gallery that follows the gallery topic (module docstring). ``path`` is this replica's own
    directory (snapshots; the writer's audit log) — never shared. ``follow=False`` starts no thread (tests and
    tools call :meth:`catch_up` themselves)."""

    def __init__(self, *, log: GalleryLog, path: Path | str, dim: int, index: str = "flat",
                 use_gpu: bool | None = None, omp_threads: int = 0, writer: FileWriter | None = None,
                 snapshot_every_s: float = 30.0, follow: bool = True, poll_s: float = 0.2,
                 clock: Callable[[], float] = time.time) -> None:
        self.log = log
        self._follow_mu = threading.RLock()
        self._offset = 0  # the next log offset to read; everything before it is in _snap (or pending)
        self._pending: list[LogRecord] = []  # records read after the last head: applied when the next head comes
        self._clock = clock
        self._snapshot_every_s = snapshot_every_s
        self._snapshot_offset = -1
        self._last_snapshot = 0.0
        self._seen_version = -1
        self.snapshot_error: GalleryWriteError | StoreError | None = None
        #: The longest a swap kept searches out (the lock held for two assignments): what "no stall" rests on.
        self.swap_hold_s_max = 0.0
        super().__init__(path=path, dim=dim, index=index, use_gpu=use_gpu, omp_threads=omp_threads, writer=writer)
        self._adopt_snapshot()
        self.catch_up()
        self._stop = threading.Event()
        self._poll_s = poll_s
        self._thread: threading.Thread | None = None
        if follow:
            self._thread = threading.Thread(target=self._follow, name="gallery-follower", daemon=True)
            self._thread.start()

    def __repr__(self) -> str:
        return f"BusGallery(topic={self.log.topic!r}, path={str(self.path)!r}, version={self.version}, " \
               f"persons={len(self)}, offset={self._offset})"

    @contextlib.contextmanager
    def _flock(self, *, exclusive: bool) -> Iterator[None]:
        """No cross-process lock: the directory belongs to this replica alone."""
        yield

    # ------------------------------------------------------------------------------------------- snapshots

    def _adopt_snapshot(self) -> None:
        """Keep what FaissGallery loaded from ``path`` only if its offsets are known and fresh enough."""
        meta = self._read_snapshot_meta()
        ok = (meta is not None and meta.get("topic") == self.log.topic and meta.get("version") == self._snap.version
              and isinstance(meta.get("offset"), int)
              and (self._clock() - float(meta.get("written_at", 0))) * 1000 < TOMBSTONE_RETENTION_MS)
        if ok and meta is not None:
            self._offset = int(meta["offset"])
            self._snapshot_offset = self._offset
            log.info("gallery %s: snapshot version %d at offset %d; replaying %s from there", self.path,
                     self.version, self._offset, self.log.topic)
            return
        if self._snap.version or meta is not None:
            log.info("gallery %s: snapshot unusable (%s); replaying %s from the start", self.path,
                     "no offsets" if meta is None else "stale or of another topic", self.log.topic)
        self._install_snapshot(Snapshot.empty(self.dim))
        self._offset = 0

    def _read_snapshot_meta(self) -> dict[str, Any] | None:
        try:
            meta = json.loads((self.path / SNAPSHOT_META).read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.warning("gallery %s: cannot read %s: %s", self.path, SNAPSHOT_META, e)
            return None
        return meta if isinstance(meta, dict) else None

    def write_snapshot(self) -> bool:
        """Persist the current snapshot and its offset (the FAISS files first, then ``replication.json``, so a
        crash in between leaves an older offset: a longer, harmless replay). False when nothing changed since the
        last one. A read-only or full directory raises GalleryWriteError; the replica keeps serving."""
        with self._follow_mu:  # _snap, _offset and _pending move together under it
            snap = self._snap
            offset = self._pending[0].offset if self._pending else self._offset
        if offset == self._snapshot_offset:
            return False
        meta = json.dumps({"topic": self.log.topic, "offset": offset, "version": snap.version,
                           "written_at": self._clock()}).encode()
        self._persist(snap)
        self._writer.write(self.path / SNAPSHOT_META, lambda f: f.write(meta))
        self._snapshot_offset = offset
        self._last_snapshot = time.monotonic()
        return True

    # ------------------------------------------------------------------------------------------- following

    def _install_snapshot(self, snap: Snapshot) -> None:
        """Build the index off the lock, then swap snapshot and index together (a search sees one or the other)."""
        index = self._build_index(snap.embeddings) if snap.embeddings is not self._snap.embeddings else None
        with self._mu:
            t0 = time.perf_counter()
            if index is not None:
                self._index = index
            self._snap = snap
            self.swap_hold_s_max = max(self.swap_hold_s_max, time.perf_counter() - t0)

    def _apply(self, records: list[LogRecord]) -> bool:
        """Caller holds ``_follow_mu``. Applies through the last head among ``records``; keeps the rest pending."""
        if not records:
            return False
        self._offset = records[-1].offset + 1
        batch = self._pending + records
        last_head = max((i for i, r in enumerate(batch) if r.key == HEAD_KEY), default=-1)
        if last_head < 0:
            self._pending = batch
            return False
        self._pending = batch[last_head + 1 :]
        self._install_snapshot(apply_records(self._snap, batch[: last_head + 1]))
        return True

    def catch_up(self, *, timeout_s: float = 30.0) -> bool:
        """Read the log up to the end it has now (start-up, before a write); True when the gallery changed."""
        deadline = time.monotonic() + timeout_s
        changed = False
        with self._follow_mu:
            end = self.log.end_offset()
            while self._offset < end:
                recs = self.log.read(self._offset, max_records=50_000, timeout_s=0.5)
                changed = self._apply(recs) or changed
                if not recs and time.monotonic() > deadline:
                    raise BusUnavailable(f"gallery {self.log.topic}: caught up only to offset {self._offset} of "
                                         f"{end} in {timeout_s:.0f} s")
        return changed

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                with self._follow_mu:
                    recs = self.log.read(self._offset, max_records=50_000, timeout_s=self._poll_s)
                    if recs:
                        self._apply(recs)
                if (self._snapshot_every_s >= 0
                        and time.monotonic() - self._last_snapshot >= self._snapshot_every_s):
                    self._snapshot_quietly()
            except Exception as e:  # the follower must outlive an outage; the replica serves what it has
                log.warning("gallery follower of %s: %s (retrying)", self.log.topic, e)
                self._stop.wait(1.0)

    def _snapshot_quietly(self) -> None:
        try:
            self.write_snapshot()
            self.snapshot_error = None
        except (GalleryWriteError, StoreError) as e:
            if self.snapshot_error is None or str(self.snapshot_error) != str(e):
                log.error("gallery snapshot not written (the replica keeps serving version %d from memory and "
                          "the log; a restart replays further): %s", self.version, e)
            self.snapshot_error = e
            self._last_snapshot = time.monotonic()

    def reload_if_changed(self) -> bool:
        """The follower thread does the work; this only says whether the version moved since the last call."""
        if self._thread is None:
            self.catch_up(timeout_s=5.0)
        v = self.version
        changed, self._seen_version = v != self._seen_version, v
        return changed

    @property
    def offset(self) -> int:
        return self._offset

    # ------------------------------------------------------------------------------------------- writing

    @contextlib.contextmanager
    def _write_guard(self) -> Iterator[None]:
        """The follower lock before ``_mu`` (the follower's order), then catch up: plan on the latest state."""
        with self._follow_mu, self._mu:
            self.catch_up()
            yield

    def _commit(self, before: Snapshot, after: Snapshot, entries: Sequence[AuditEntry]) -> None:
        """Publish (durably), then install ``after`` and write the writer's audit entries. A directory that cannot
        take the audit entries is refused before anything is published."""
        if not os.access(self.path, os.W_OK):
            raise write_error(self.path, PermissionError(13, "directory not writable"), what="directory")
        self.log.append(changes_between(before, after))
        self._install_snapshot(after)
        try:
            self._audit_log.append(entries)
        except StoreError as e:
            raise StoreError(f"gallery {self.log.topic}: version {after.version} published but its audit "
                             f"entries were not written to {self.path}: {e}") from e

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._snapshot_quietly()  # the log is its builder's to close (Resources closes it after the gallery)
