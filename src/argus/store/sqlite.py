"""The embedded event store: one SQLite file (stdlib ``sqlite3``), for the laptop demo and single-box sites.

Layout: the columns analysts filter on (camera, person, capture/alert time, emotion, status) are real indexed
columns; the full record is kept as a JSON document next to them, and the face crop as a BLOB (not base64: a crop
is evidence and 33 % bigger in base64). WAL mode lets the dashboard read while the alerter writes.

Thread safety: one connection shared under a lock. A connection per thread would be faster under contention, but
``:memory:`` databases are per-connection, and the alerter writes from one thread anyway.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from argus.errors import StoreError, StoreUnavailable
from argus.schemas import AlertV2
from argus.store.base import (
    AlertNotFoundError,
    AlertRecord,
    CameraRecord,
    PersonRecord,
    SightingEvent,
    alert_doc,
    alert_from_doc,
    check_limit,
    check_status,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id   TEXT PRIMARY KEY,
    camera_id  TEXT NOT NULL,
    person_id  TEXT NOT NULL,
    ts_capture REAL NOT NULL,
    emotion    TEXT NOT NULL,
    alert_id   TEXT,
    doc        TEXT NOT NULL,
    crop       BLOB
);
CREATE INDEX IF NOT EXISTS events_camera_ts  ON events (camera_id, ts_capture DESC);
CREATE INDEX IF NOT EXISTS events_person_ts  ON events (person_id, ts_capture DESC);
CREATE INDEX IF NOT EXISTS events_emotion_ts ON events (emotion, ts_capture DESC);
CREATE INDEX IF NOT EXISTS events_ts         ON events (ts_capture DESC);

CREATE TABLE IF NOT EXISTS alerts (
    alert_id   TEXT PRIMARY KEY,
    event_id   TEXT NOT NULL,
    camera_id  TEXT NOT NULL,
    person_id  TEXT NOT NULL,
    ts_capture REAL NOT NULL,
    ts_alert   REAL NOT NULL,
    status     TEXT NOT NULL DEFAULT 'new',
    acked_by   TEXT,
    acked_at   REAL,
    note       TEXT NOT NULL DEFAULT '',
    doc        TEXT NOT NULL,
    crop       BLOB
);
CREATE INDEX IF NOT EXISTS alerts_status_ts        ON alerts (status, ts_alert DESC);
CREATE INDEX IF NOT EXISTS alerts_camera_ts        ON alerts (camera_id, ts_alert DESC);
CREATE INDEX IF NOT EXISTS alerts_person_ts        ON alerts (person_id, ts_alert DESC);
CREATE INDEX IF NOT EXISTS alerts_person_camera_tc ON alerts (person_id, camera_id, ts_capture DESC);
CREATE INDEX IF NOT EXISTS alerts_ts               ON alerts (ts_alert DESC);

CREATE TABLE IF NOT EXISTS persons (person_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cameras (camera_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
"""

_EVENT_UPSERT = """
INSERT INTO events (event_id, camera_id, person_id, ts_capture, emotion, alert_id, doc, crop)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (event_id) DO UPDATE SET
    camera_id = excluded.camera_id, person_id = excluded.person_id, ts_capture = excluded.ts_capture,
    emotion = excluded.emotion, alert_id = COALESCE(excluded.alert_id, events.alert_id),
    doc = excluded.doc, crop = excluded.crop
"""

# Triage columns (status, acked_by, acked_at, note) are deliberately absent from the UPDATE: a replay keeps them.
_ALERT_UPSERT = """
INSERT INTO alerts (alert_id, event_id, camera_id, person_id, ts_capture, ts_alert, doc, crop)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (alert_id) DO UPDATE SET
    event_id = excluded.event_id, camera_id = excluded.camera_id, person_id = excluded.person_id,
    ts_capture = excluded.ts_capture, ts_alert = excluded.ts_alert, doc = excluded.doc, crop = excluded.crop
"""

_ALERT_COLS = "doc, crop, status, acked_by, acked_at, note"


class SqliteEventStore:
    name = "sqlite"

    def __init__(self, *, path: Path | str) -> None:
        """``path`` may be ``":memory:"`` (tests, throwaway demos). Whether event crops are kept is decided when
        the event is built (``SightingEvent.from_match(store_crop=...)``): a ``None`` crop is simply not stored."""
        self._path = str(path)
        self._lock = threading.Lock()
        memory = self._path == ":memory:"
        try:
            if not memory:
                Path(self._path).parent.mkdir(parents=True, exist_ok=True)
            self._conn: sqlite3.Connection | None = sqlite3.connect(
                self._path, check_same_thread=False, timeout=10.0
            )
            conn = self._conn
            if not memory:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    log.warning("event store %s: expected journal_mode wal, got %s", self._path, mode)
            # NORMAL is crash-safe in WAL mode (a power cut may lose the last commits, never corrupt the file).
            conn.execute("PRAGMA synchronous=NORMAL")
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"event store {self._path}: expected schema version <= {SCHEMA_VERSION}, got {version} "
                    "(written by a newer Argus)"
                )
            with conn:
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the event store at {self._path}: {e}") from e
        log.info("event store: SQLite at %s", self._path)

    @contextmanager
    def _op(self, what: str) -> Iterator[sqlite3.Connection]:
        """Serialise access and translate sqlite3 errors into StoreError naming the operation and the file."""
        with self._lock:
            if self._conn is None:
                raise StoreError(f"event store {self._path}: {what} after close()")
            try:
                yield self._conn
            except sqlite3.OperationalError as e:  # locked by another process, disk full: may pass later
                raise StoreUnavailable(f"event store {self._path}: {what} failed: {e}") from e
            except sqlite3.Error as e:
                raise StoreError(f"event store {self._path}: {what} failed: {e}") from e

    # -- events ---------------------------------------------------------------------------------------------

    def put_events(self, events: Sequence[SightingEvent]) -> None:
        if not events:
            return
        rows = [
            (
                e.event_id, e.camera_id, e.person_id, e.ts_capture, e.emotion, e.alert_id,
                json.dumps(e.to_doc(), separators=(",", ":")),
                e.crop_jpeg,
            )
            for e in events
        ]
        with self._op(f"upsert of {len(rows)} event(s) into events") as conn, conn:
            conn.executemany(_EVENT_UPSERT, rows)

    def query_events(
        self,
        *,
        camera_id: str | None = None,
        person_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        emotion: str | None = None,
        limit: int = 100,
    ) -> list[SightingEvent]:
        where, params = _where(
            [("camera_id = ?", camera_id), ("person_id = ?", person_id), ("emotion = ?", emotion),
             ("ts_capture >= ?", since), ("ts_capture < ?", until)]
        )
        sql = (f"SELECT doc, crop, alert_id FROM events{where} "
               "ORDER BY ts_capture DESC LIMIT ?")
        with self._op("query of events") as conn:
            rows = conn.execute(sql, [*params, check_limit(limit)]).fetchall()
        out = []
        for doc, crop, alert_id in rows:
            d = json.loads(doc)
            d["alert_id"] = alert_id  # the column wins: it may have been kept from an earlier upsert
            out.append(SightingEvent.from_doc(d, crop))
        return out

    def count_events(self) -> int:
        with self._op("count of events") as conn:
            return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    # -- alerts ---------------------------------------------------------------------------------------------

    def put_alert(self, alert: AlertV2) -> None:
        row = (
            alert.alert_id, alert.event_id, alert.camera_id, alert.person_id, alert.ts_capture, alert.ts_alert,
            json.dumps(alert_doc(alert), separators=(",", ":")), alert.crop_jpeg,
        )
        with self._op(f"upsert of alert {alert.alert_id!r} into alerts") as conn, conn:
            conn.execute(_ALERT_UPSERT, row)

    def query_alerts(
        self,
        *,
        camera_id: str | None = None,
        person_id: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[AlertRecord]:
        if status is not None:
            check_status(status)
        where, params = _where(
            [("camera_id = ?", camera_id), ("person_id = ?", person_id), ("status = ?", status),
             ("ts_alert >= ?", since), ("ts_alert < ?", until)]
        )
        sql = f"SELECT {_ALERT_COLS} FROM alerts{where} ORDER BY ts_alert DESC LIMIT ?"
        with self._op("query of alerts") as conn:
            rows = conn.execute(sql, [*params, check_limit(limit)]).fetchall()
        return [_alert_record(r) for r in rows]

    def get_alert(self, alert_id: str) -> AlertRecord | None:
        with self._op(f"lookup of alert {alert_id!r}") as conn:
            row = conn.execute(f"SELECT {_ALERT_COLS} FROM alerts WHERE alert_id = ?", (alert_id,)).fetchone()
        return _alert_record(row) if row is not None else None

    def last_alert(self, person_id: str, camera_id: str, *, at_or_before: float | None = None) -> AlertV2 | None:
        sql = ("SELECT doc, crop FROM alerts WHERE person_id = ? AND camera_id = ? AND ts_capture <= ? "
               "ORDER BY ts_capture DESC LIMIT 1")
        bound = float("inf") if at_or_before is None else float(at_or_before)
        with self._op(f"last alert for person {person_id!r} on camera {camera_id!r}") as conn:
            row = conn.execute(sql, (person_id, camera_id, bound)).fetchone()
        return alert_from_doc(json.loads(row[0]), row[1]) if row is not None else None

    def set_alert_status(self, alert_id: str, status: str, *, actor: str, note: str = "") -> AlertRecord:
        st = check_status(status)
        with self._op(f"status change of alert {alert_id!r}") as conn, conn:
            cur = conn.execute(
                "UPDATE alerts SET status = ?, acked_by = ?, acked_at = ?, note = ? WHERE alert_id = ?",
                (st, actor, time.time(), note, alert_id),
            )
            if cur.rowcount == 0:
                raise AlertNotFoundError(f"alert {alert_id!r}: expected an existing alert id, got an unknown one")
            row = conn.execute(f"SELECT {_ALERT_COLS} FROM alerts WHERE alert_id = ?", (alert_id,)).fetchone()
        log.info("alert %s set to %s by %s", alert_id, st, actor)
        return _alert_record(row)

    def count_alerts(self) -> int:
        with self._op("count of alerts") as conn:
            return int(conn.execute("SELECT COUNT(*) FROM alerts").fetchone()[0])

    # -- metadata -------------------------------------------------------------------------------------------

    def upsert_person(self, person: PersonRecord) -> None:
        with self._op(f"upsert of person {person.person_id!r} into persons") as conn, conn:
            conn.execute("INSERT INTO persons (person_id, doc) VALUES (?, ?) "
                         "ON CONFLICT (person_id) DO UPDATE SET doc = excluded.doc",
                         (person.person_id, json.dumps(person.to_doc())))

    def get_person(self, person_id: str) -> PersonRecord | None:
        with self._op(f"lookup of person {person_id!r}") as conn:
            row = conn.execute("SELECT doc FROM persons WHERE person_id = ?", (person_id,)).fetchone()
        return PersonRecord.from_doc(json.loads(row[0])) if row is not None else None

    def upsert_camera(self, camera: CameraRecord) -> None:
        with self._op(f"upsert of camera {camera.camera_id!r} into cameras") as conn, conn:
            conn.execute("INSERT INTO cameras (camera_id, doc) VALUES (?, ?) "
                         "ON CONFLICT (camera_id) DO UPDATE SET doc = excluded.doc",
                         (camera.camera_id, json.dumps(camera.to_doc())))

    def get_camera(self, camera_id: str) -> CameraRecord | None:
        with self._op(f"lookup of camera {camera_id!r}") as conn:
            row = conn.execute("SELECT doc FROM cameras WHERE camera_id = ?", (camera_id,)).fetchone()
        return CameraRecord.from_doc(json.loads(row[0])) if row is not None else None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None


def _where(conds: list[tuple[str, Any]]) -> tuple[str, list[Any]]:
    used = [(sql, v) for sql, v in conds if v is not None]
    if not used:
        return "", []
    return " WHERE " + " AND ".join(sql for sql, _ in used), [v for _, v in used]


def _alert_record(row: tuple[Any, ...]) -> AlertRecord:
    doc, crop, status, acked_by, acked_at, note = row
    return AlertRecord(alert=alert_from_doc(json.loads(doc), crop), status=check_status(status),
                       acked_by=acked_by, acked_at=acked_at, note=note or "")
