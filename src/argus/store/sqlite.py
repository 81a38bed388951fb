"""The embedded event store: one SQLite file (stdlib ``sqlite3``), for the laptop demo and single-box sites.

Layout: the columns analysts filter on (camera, person, capture/alert time, emotion, status) are real indexed
columns; the full record is kept as a JSON document next to them, and the face crop as a BLOB (not base64: a crop
is evidence and 33 % bigger in base64). WAL mode lets the dashboard read while the alerter writes.

Thread safety: one connection shared under a lock. A connection per thread would be faster under contention, but
``:memory:`` databases are per-connection; ``argus up`` runs the API and the alerter in one process, and each
method holds the lock for its whole transaction, so the audit chain cannot fork (append reads the last record and
inserts the next one in one ``BEGIN IMMEDIATE`` transaction, which also keeps out another *process*).

Retention: :meth:`SqliteEventStore.purge_expired` deletes events, alerts and audit records older than their
:class:`~argus.store.base.Retention` and blanks crops (the ``crop`` column of events and alerts) older than
``crops_days`` — judged by the rows' own capture/alert time against the retention in force now; the alerter runs it
hourly. ``secure_delete`` is on, so erased rows are overwritten in the file rather than left in free pages.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from argus.audit_trail import AuditRecord, new_record
from argus.errors import InputError, StoreError, StoreUnavailable
from argus.schemas import AlertV3
from argus.store.base import (
    AlertFilter,
    AlertNotFoundError,
    AlertRecord,
    ApiKeyRecord,
    AuditFilter,
    CameraRecord,
    EventFilter,
    KeyNotFoundError,
    Page,
    PersonRecord,
    Retention,
    SightingEvent,
    alert_doc,
    alert_from_doc,
    check_limit,
    check_page_limit,
    check_status,
    decode_cursor,
    encode_cursor,
    scrub_candidates,
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

CREATE TABLE IF NOT EXISTS person_photos (
    person_id TEXT NOT NULL, n INTEGER NOT NULL, photo BLOB NOT NULL, PRIMARY KEY (person_id, n)
);
CREATE TABLE IF NOT EXISTS camera_health (camera_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (key_id TEXT PRIMARY KEY, doc TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS audit (
    seq            INTEGER PRIMARY KEY,
    ts             REAL NOT NULL,
    actor          TEXT NOT NULL,
    role           TEXT NOT NULL,
    action         TEXT NOT NULL,
    subject        TEXT,
    subject_salt   TEXT,
    subject_digest TEXT,
    details        TEXT NOT NULL,
    prev_ts        REAL,
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_ts      ON audit (ts DESC, seq DESC);
CREATE INDEX IF NOT EXISTS audit_subject ON audit (subject);
"""
_AUDIT_COLS = ("seq, ts, actor, role, action, subject, subject_salt, subject_digest, details, prev_ts, prev_hash, "
               "hash")

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

    def __init__(self, *, path: Path | str, retention: Retention | None = None) -> None:
        """``path`` may be ``":memory:"`` (tests, throwaway demos). Whether event crops are kept is decided when
        the event is built (``SightingEvent.from_match(store_crop=...)``): a ``None`` crop is simply not stored."""
        self._path = str(path)
        self.retention = retention if retention is not None else Retention()
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
            conn.execute("PRAGMA secure_delete=ON")  # an erased person's rows are zeroed, not left in free pages
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
        flt = EventFilter(camera_ids=(camera_id,) if camera_id is not None else None, person_id=person_id,
                          emotion=emotion, since=since, until=until)
        return self._page_events(flt, check_limit(limit), None).items

    def count_events(self) -> int:
        with self._op("count of events") as conn:
            return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    # -- alerts ---------------------------------------------------------------------------------------------

    def put_alert(self, alert: AlertV3) -> None:
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
        flt = AlertFilter(camera_ids=(camera_id,) if camera_id is not None else None, person_id=person_id,
                          status=status, since=since, until=until)
        return self._page_alerts(flt, check_limit(limit), None).items

    def get_alert(self, alert_id: str) -> AlertRecord | None:
        with self._op(f"lookup of alert {alert_id!r}") as conn:
            row = conn.execute(f"SELECT {_ALERT_COLS} FROM alerts WHERE alert_id = ?", (alert_id,)).fetchone()
        return _alert_record(row) if row is not None else None

    def last_alert(self, person_id: str, camera_id: str, *, at_or_before: float | None = None) -> AlertV3 | None:
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

    # -- operator API: pages ----------------------------------------------------------------------------------

    def _page(self, what: str, sql_from: str, conds: list[tuple[str, list[Any]]], ts_col: str, id_col: str,
              n: int, cursor: str | None, key_type: type[str] | type[int]) -> tuple[list[tuple[Any, ...]], bool]:
        if cursor is not None:
            c_ts, c_id = decode_cursor(cursor, key_type=key_type)
            conds = [*conds, (f"({ts_col} < ? OR ({ts_col} = ? AND {id_col} < ?))", [c_ts, c_ts, c_id])]
        where = " WHERE " + " AND ".join(c for c, _ in conds) if conds else ""
        params = [p for _, ps in conds for p in ps]
        sql = f"{sql_from}{where} ORDER BY {ts_col} DESC, {id_col} DESC LIMIT ?"
        with self._op(what) as conn:
            rows = conn.execute(sql, [*params, n + 1]).fetchall()
        return rows[:n], len(rows) > n

    def page_alerts(self, flt: AlertFilter, *, limit: int, cursor: str | None = None) -> Page[AlertRecord]:
        return self._page_alerts(flt, check_page_limit(limit), cursor)

    def page_events(self, flt: EventFilter, *, limit: int, cursor: str | None = None) -> Page[SightingEvent]:
        return self._page_events(flt, check_page_limit(limit), cursor)

    def _page_alerts(self, flt: AlertFilter, limit: int, cursor: str | None) -> Page[AlertRecord]:
        conds = _common_conds(flt.camera_ids, flt.person_id, flt.watchlist, flt.since, flt.until, "ts_alert")
        if flt.status is not None:
            conds.append(("status = ?", [flt.status]))
        rows, more = self._page("page of alerts", f"SELECT {_ALERT_COLS}, ts_alert, alert_id FROM alerts", conds,
                                "ts_alert", "alert_id", limit, cursor, str)
        items = [_alert_record(r[:6]) for r in rows]
        return Page(items, encode_cursor(rows[-1][6], rows[-1][7]) if more else None)

    def _page_events(self, flt: EventFilter, limit: int, cursor: str | None) -> Page[SightingEvent]:
        conds = _common_conds(flt.camera_ids, flt.person_id, flt.watchlist, flt.since, flt.until, "ts_capture")
        if flt.emotion is not None:
            conds.append(("emotion = ?", [flt.emotion]))
        rows, more = self._page("page of events", "SELECT doc, crop, alert_id, ts_capture, event_id FROM events",
                                conds, "ts_capture", "event_id", limit, cursor, str)
        items = [_event(r[0], r[1], r[2]) for r in rows]
        return Page(items, encode_cursor(rows[-1][3], rows[-1][4]) if more else None)

    def page_audit(self, flt: AuditFilter, *, limit: int, cursor: str | None = None) -> Page[AuditRecord]:
        conds: list[tuple[str, list[Any]]] = [
            (f"{col} = ?", [v]) for col, v in (("actor", flt.actor), ("action", flt.action),
                                                ("subject", flt.subject)) if v is not None
        ]
        conds += _range_conds("ts", flt.since, flt.until)
        rows, more = self._page("page of audit records", f"SELECT {_AUDIT_COLS} FROM audit", conds, "ts", "seq",
                                check_page_limit(limit), cursor, int)
        items = [_audit(r) for r in rows]
        return Page(items, encode_cursor(items[-1].ts, items[-1].seq) if more else None)

    # -- operator API: persons, photos, cameras, health ---------------------------------------------------------

    def list_persons(self) -> list[PersonRecord]:
        with self._op("list of persons") as conn:
            rows = conn.execute("SELECT doc FROM persons ORDER BY person_id").fetchall()
        return [PersonRecord.from_doc(json.loads(r[0])) for r in rows]

    def put_person_photos(self, person_id: str, photos: Sequence[bytes]) -> None:
        for i, ph in enumerate(photos):
            if not isinstance(ph, bytes | bytearray | memoryview):
                raise InputError(f"photo {i} of person {person_id!r}: expected JPEG bytes, got {type(ph).__name__}")
        with self._op(f"replace of photos of person {person_id!r}") as conn, conn:
            conn.execute("DELETE FROM person_photos WHERE person_id = ?", (person_id,))
            conn.executemany("INSERT INTO person_photos (person_id, n, photo) VALUES (?, ?, ?)",
                             [(person_id, i, bytes(ph)) for i, ph in enumerate(photos)])

    def get_person_photos(self, person_id: str) -> list[bytes]:
        with self._op(f"photos of person {person_id!r}") as conn:
            rows = conn.execute("SELECT photo FROM person_photos WHERE person_id = ? ORDER BY n",
                                (person_id,)).fetchall()
        return [bytes(r[0]) for r in rows]

    def list_cameras(self) -> list[CameraRecord]:
        with self._op("list of cameras") as conn:
            rows = conn.execute("SELECT doc FROM cameras ORDER BY camera_id").fetchall()
        return [CameraRecord.from_doc(json.loads(r[0])) for r in rows]

    def put_camera_health(self, camera_id: str, health: Mapping[str, Any]) -> None:
        doc = json.dumps(dict(health), separators=(",", ":"))
        with self._op(f"health of camera {camera_id!r}") as conn, conn:
            conn.execute("INSERT INTO camera_health (camera_id, doc) VALUES (?, ?) "
                         "ON CONFLICT (camera_id) DO UPDATE SET doc = excluded.doc", (camera_id, doc))

    def camera_health(self) -> dict[str, dict[str, Any]]:
        with self._op("camera health") as conn:
            rows = conn.execute("SELECT camera_id, doc FROM camera_health ORDER BY camera_id").fetchall()
        return {cid: json.loads(doc) for cid, doc in rows}

    # -- operator API: API keys -----------------------------------------------------------------------------

    def put_api_key(self, rec: ApiKeyRecord) -> None:
        with self._op(f"upsert of API key {rec.key_id!r}") as conn, conn:
            conn.execute("INSERT INTO api_keys (key_id, doc) VALUES (?, ?) "
                         "ON CONFLICT (key_id) DO UPDATE SET doc = excluded.doc",
                         (rec.key_id, json.dumps(rec.to_doc())))

    def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        with self._op(f"lookup of API key {key_id!r}") as conn:
            row = conn.execute("SELECT doc FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        return ApiKeyRecord.from_doc(json.loads(row[0])) if row is not None else None

    def list_api_keys(self) -> list[ApiKeyRecord]:
        with self._op("list of API keys") as conn:
            rows = conn.execute("SELECT doc FROM api_keys ORDER BY key_id").fetchall()
        return [ApiKeyRecord.from_doc(json.loads(r[0])) for r in rows]

    def revoke_api_key(self, key_id: str, *, at: float) -> ApiKeyRecord:
        with self._op(f"revocation of API key {key_id!r}") as conn, conn:
            row = conn.execute("SELECT doc FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
            if row is None:
                raise KeyNotFoundError(f"API key {key_id!r}: expected an existing key id, got an unknown one")
            rec = ApiKeyRecord.from_doc(json.loads(row[0]))
            if rec.revoked_at is None:
                rec = replace(rec, revoked_at=float(at))
                conn.execute("UPDATE api_keys SET doc = ? WHERE key_id = ?", (json.dumps(rec.to_doc()), key_id))
        return rec

    # -- operator API: audit chain --------------------------------------------------------------------------

    def append_audit(self, *, actor: str, role: str, action: str, subject: str | None = None,
                     details: Mapping[str, Any]) -> AuditRecord:
        with self._op(f"append of audit record {action!r}") as conn:
            conn.execute("BEGIN IMMEDIATE")  # read the head and write the next record as one step
            try:
                row = conn.execute(f"SELECT {_AUDIT_COLS} FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
                rec = new_record(_audit(row) if row is not None else None, actor=actor, role=role, action=action,
                                 subject=subject, details=details)
                conn.execute(f"INSERT INTO audit ({_AUDIT_COLS}) VALUES ({', '.join('?' * 12)})", _audit_row(rec))
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
        return rec

    def audit_records(self) -> Iterator[AuditRecord]:
        with self._op("read of the audit trail") as conn:
            rows = conn.execute(f"SELECT {_AUDIT_COLS} FROM audit ORDER BY seq").fetchall()
        for r in rows:
            yield _audit(r)

    def redact_audit_subject(self, person_id: str) -> int:
        with self._op("redaction of audit subjects") as conn, conn:
            return _redact(conn, person_id)

    # -- operator API: erasure and retention ----------------------------------------------------------------

    def erase_person(self, person_id: str) -> dict[str, int]:
        needle = json.dumps(person_id)
        with self._op("erasure of a person") as conn, conn:
            crops = sum(int(conn.execute(f"SELECT COUNT(*) FROM {t} WHERE person_id = ? AND crop IS NOT NULL",
                                         (person_id,)).fetchone()[0]) for t in ("events", "alerts"))
            counts = {
                "events": conn.execute("DELETE FROM events WHERE person_id = ?", (person_id,)).rowcount,
                "alerts": conn.execute("DELETE FROM alerts WHERE person_id = ?", (person_id,)).rowcount,
                "crops": crops,
                "persons": conn.execute("DELETE FROM persons WHERE person_id = ?", (person_id,)).rowcount,
                "photos": conn.execute("DELETE FROM person_photos WHERE person_id = ?", (person_id,)).rowcount,
            }
            scrubbed = 0
            for table, key in (("events", "event_id"), ("alerts", "alert_id")):
                rows = conn.execute(f"SELECT {key}, doc FROM {table} WHERE instr(doc, ?) > 0", (needle,)).fetchall()
                for k, doc in rows:
                    d = json.loads(doc)
                    d["candidates"], changed = scrub_candidates(d.get("candidates"), person_id)
                    if changed:
                        conn.execute(f"UPDATE {table} SET doc = ? WHERE {key} = ?",
                                     (json.dumps(d, separators=(",", ":")), k))
                        scrubbed += 1
            counts["candidates_scrubbed"] = scrubbed
            counts["audit_redacted"] = _redact(conn, person_id)
        log.info("erased a person: %s", counts)  # the receipt's counts; never the id
        return counts

    def purge_expired(self, now: float | None = None) -> dict[str, int]:
        """Delete what retention expired at ``now``; counts per collection. The newest audit record is always
        kept, so the chain goes on from it instead of starting again at seq 1."""
        at = time.time() if now is None else float(now)
        r = self.retention
        counts = {"events": 0, "alerts": 0, "crops": 0, "audit": 0}
        with self._op("purge of expired rows") as conn, conn:
            if (s := Retention.seconds(r.crops_days)) is not None:
                for table, ts in (("events", "ts_capture"), ("alerts", "ts_capture")):
                    counts["crops"] += conn.execute(
                        f"UPDATE {table} SET crop = NULL WHERE crop IS NOT NULL AND {ts} < ?", (at - s,)).rowcount
            if (s := Retention.seconds(r.events_days)) is not None:
                counts["events"] = conn.execute("DELETE FROM events WHERE ts_capture < ?", (at - s,)).rowcount
            if (s := Retention.seconds(r.alerts_days)) is not None:
                counts["alerts"] = conn.execute("DELETE FROM alerts WHERE ts_alert < ?", (at - s,)).rowcount
            if (s := Retention.seconds(r.audit_days)) is not None:
                counts["audit"] = conn.execute(
                    "DELETE FROM audit WHERE ts < ? AND seq < (SELECT MAX(seq) FROM audit)", (at - s,)).rowcount
        if any(counts.values()):
            log.info("event store %s: retention purged %s", self._path, counts)
        return counts

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


def _range_conds(col: str, since: float | None, until: float | None) -> list[tuple[str, list[Any]]]:
    out: list[tuple[str, list[Any]]] = []
    if since is not None:
        out.append((f"{col} >= ?", [since]))
    if until is not None:
        out.append((f"{col} < ?", [until]))
    return out


def _common_conds(camera_ids: tuple[str, ...] | None, person_id: str | None, watchlist: str | None,
                  since: float | None, until: float | None, ts_col: str) -> list[tuple[str, list[Any]]]:
    """Every value is a bound parameter: compared as a literal, whatever it looks like."""
    conds: list[tuple[str, list[Any]]] = []
    if camera_ids is not None:
        conds.append((f"camera_id IN ({', '.join('?' * len(camera_ids))})", list(camera_ids)) if camera_ids
                     else ("0", []))
    if person_id is not None:
        conds.append(("person_id = ?", [person_id]))
    if watchlist is not None:
        conds.append(("json_extract(doc, '$.watchlist') = ?", [watchlist]))
    return conds + _range_conds(ts_col, since, until)


def _event(doc: str, crop: bytes | None, alert_id: str | None) -> SightingEvent:
    d = json.loads(doc)
    d["alert_id"] = alert_id  # the column wins: it may have been kept from an earlier upsert
    return SightingEvent.from_doc(d, crop)


def _audit(row: tuple[Any, ...]) -> AuditRecord:
    seq, ts, actor, role, action, subject, salt, digest, details, prev_ts, prev_hash, h = row
    return AuditRecord(seq=int(seq), ts=float(ts), actor=actor, role=role, action=action, subject=subject,
                       subject_salt=salt, subject_digest=digest, details=json.loads(details),
                       prev_ts=float(prev_ts) if prev_ts is not None else None, prev_hash=prev_hash, hash=h)


def _audit_row(r: AuditRecord) -> tuple[Any, ...]:
    return (r.seq, r.ts, r.actor, r.role, r.action, r.subject, r.subject_salt, r.subject_digest,
            json.dumps(r.details, separators=(",", ":")), r.prev_ts, r.prev_hash, r.hash)


def _redact(conn: sqlite3.Connection, person_id: str) -> int:
    return conn.execute("UPDATE audit SET subject = NULL, subject_salt = NULL WHERE subject = ?",
                        (person_id,)).rowcount


def _alert_record(row: tuple[Any, ...]) -> AlertRecord:
    doc, crop, status, acked_by, acked_at, note = row
    return AlertRecord(alert=alert_from_doc(json.loads(doc), crop), status=check_status(status),
                       acked_by=acked_by, acked_at=acked_at, note=note or "")
