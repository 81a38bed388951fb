"""The production event store: MongoDB over pymongo.

Collections ``events``, ``alerts``, ``persons``, ``cameras``; ``_id`` is the event/alert/person/camera id, so
every write is an upsert on the primary key (a redelivered batch rewrites the same documents). Events go in one
unordered ``bulk_write`` per batch. Writes use ``$set`` (+ ``$setOnInsert``) rather than a whole-document replace so
that the fields a replay must not clobber survive it: an alert's triage state, and an event's ``alert_id`` when the
replay carries none.

Timestamps are stored twice: epoch floats (``ts_capture``, exact, what the code compares) and BSON datetimes
(``captured_at``, ``matched_at``, ``alerted_at``) so analysts can query with dates in any MongoDB tool. Retention is
a TTL index on ``expires_at`` (= capture/alert time + ``retention_days``) with ``expireAfterSeconds=0``: changing the
retention later never conflicts with the existing index, it only changes the expiry of new documents.

The URI may carry a password: it never reaches logs or error messages (:func:`argus.cameras.redact_url`, and the
password is scrubbed from any driver message quoted in an error).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from argus.cameras import redact_url
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

EVENTS, ALERTS, PERSONS, CAMERAS = "events", "alerts", "persons", "cameras"

# (collection, index name, keys) for analysts' queries; each compound index ends in the sort key (newest first).
INDEXES: tuple[tuple[str, str, list[tuple[str, int]]], ...] = (
    (EVENTS, "camera_ts", [("camera_id", 1), ("ts_capture", -1)]),
    (EVENTS, "person_ts", [("person_id", 1), ("ts_capture", -1)]),
    (EVENTS, "emotion_ts", [("emotion", 1), ("ts_capture", -1)]),
    (EVENTS, "ts", [("ts_capture", -1)]),
    (ALERTS, "status_ts", [("status", 1), ("ts_alert", -1)]),
    (ALERTS, "camera_ts", [("camera_id", 1), ("ts_alert", -1)]),
    (ALERTS, "person_ts", [("person_id", 1), ("ts_alert", -1)]),
    (ALERTS, "person_camera_tc", [("person_id", 1), ("camera_id", 1), ("ts_capture", -1)]),  # last_alert
    (ALERTS, "ts", [("ts_alert", -1)]),
    (PERSONS, "watchlist", [("watchlist", 1), ("person_id", 1)]),
    (CAMERAS, "zone", [("location.zone", 1), ("camera_id", 1)]),
)
TTL_INDEX = "retention_ttl"
_TRIAGE_DEFAULTS: dict[str, Any] = {"status": "new", "acked_by": None, "acked_at": None, "note": ""}
_PASSWORD_RE = re.compile(r"^[a-z+]+://[^:@/]*:([^@/]+)@", re.IGNORECASE)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


class MongoEventStore:
    name = "mongodb"

    def __init__(
        self, *, uri: str, database: str = "argus", retention_days: int | None = 90, timeout_s: float = 10.0
    ) -> None:
        try:
            from pymongo import MongoClient
        except ImportError as e:  # the server clients are an optional extra
            raise StoreError("the MongoDB event store needs pymongo: pip install 'argus-watch[mongo]'") from e
        if retention_days is not None and retention_days < 1:
            raise StoreError(f"retention_days: expected None or >= 1, got {retention_days}")
        self._where = f"{redact_url(uri)}/{database}"
        m = _PASSWORD_RE.match(uri)
        self._secret = unquote(m.group(1)) if m else None
        self._secret_raw = m.group(1) if m else None
        self._retention = timedelta(days=retention_days) if retention_days is not None else None
        ms = int(timeout_s * 1000)
        try:
            self._client: Any = MongoClient(
                uri, tz_aware=True, appname="argus", serverSelectionTimeoutMS=ms, connectTimeoutMS=ms,
                socketTimeoutMS=max(ms, 30_000),
            )
        except Exception as e:  # ConfigurationError / InvalidURI / ValueError on a malformed URI
            raise StoreError(f"cannot configure a MongoDB client for {self._where}: {self._scrub(e)}") from e
        self._db = self._client[database]
        self._events = self._db[EVENTS]
        self._alerts = self._db[ALERTS]
        self._persons = self._db[PERSONS]
        self._cameras = self._db[CAMERAS]
        try:
            with self._op("ping", "admin"):
                self._client.admin.command("ping")
            self._ensure_indexes()
        except StoreError:
            self._client.close()
            raise
        log.info("event store: MongoDB at %s (retention %s days)", self._where, retention_days)

    def _scrub(self, e: BaseException) -> str:
        msg = str(e)
        for s in (self._secret, self._secret_raw):
            if s:
                msg = msg.replace(s, "***")
        return msg

    @contextmanager
    def _op(self, what: str, collection: str) -> Iterator[None]:
        from pymongo.errors import ConnectionFailure, ExecutionTimeout, PyMongoError, WTimeoutError

        try:
            yield
        except PyMongoError as e:
            # unreachable, failing over or slow: the write was fine and will succeed later; anything else will not
            transient = isinstance(e, ConnectionFailure | ExecutionTimeout | WTimeoutError)
            kind = StoreUnavailable if transient else StoreError
            raise kind(f"MongoDB {what} on {collection!r} at {self._where} failed: {self._scrub(e)}") from e

    def reset(self) -> None:
        """Drop every collection of this database and recreate the indexes. Only ``argus demo --distributed`` calls
        this, on its own database (``argus_demo``), so each demo run starts from an empty history."""
        for coll in (EVENTS, ALERTS, PERSONS, CAMERAS):
            with self._op("drop", coll):
                self._db.drop_collection(coll)
        self._ensure_indexes()

    def _ensure_indexes(self) -> None:
        """Idempotent: create_index is a no-op when an identical index exists. Run at every start-up."""
        for coll, name, keys in INDEXES:
            with self._op(f"create_index {name}", coll):
                self._db[coll].create_index(keys, name=name)
        for coll in (EVENTS, ALERTS):
            with self._op(f"create_index {TTL_INDEX}", coll):
                self._db[coll].create_index([("expires_at", 1)], name=TTL_INDEX, expireAfterSeconds=0)

    def _expiry(self, ts: float) -> dict[str, Any]:
        return {"expires_at": _utc(ts) + self._retention} if self._retention is not None else {}

    # -- events ---------------------------------------------------------------------------------------------

    def _event_update(self, e: SightingEvent) -> Any:
        from pymongo import UpdateOne

        doc = e.to_doc()
        doc.update(crop_jpeg=e.crop_jpeg, captured_at=_utc(e.ts_capture), matched_at=_utc(e.ts_match),
                   **self._expiry(e.ts_capture))
        update: dict[str, Any] = {"$set": doc}
        if e.alert_id is None:  # a replay without the link must not erase a stored one
            del doc["alert_id"]
            update["$setOnInsert"] = {"alert_id": None}
        return UpdateOne({"_id": e.event_id}, update, upsert=True)

    def put_events(self, events: Sequence[SightingEvent]) -> None:
        if not events:
            return
        ops = [self._event_update(e) for e in events]
        with self._op(f"bulk upsert of {len(ops)} event(s)", EVENTS):
            self._events.bulk_write(ops, ordered=False)

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
        flt = _filter(camera_id=camera_id, person_id=person_id, emotion=emotion)
        flt.update(_range("ts_capture", since, until))
        with self._op("find", EVENTS):
            docs = list(self._events.find(flt).sort("ts_capture", -1).limit(check_limit(limit)))
        return [SightingEvent.from_doc(d, d.get("crop_jpeg")) for d in docs]

    def count_events(self) -> int:
        with self._op("count_documents", EVENTS):
            return int(self._events.count_documents({}))

    # -- alerts ---------------------------------------------------------------------------------------------

    def put_alert(self, alert: AlertV2) -> None:
        doc = alert_doc(alert)
        doc.update(crop_jpeg=alert.crop_jpeg, captured_at=_utc(alert.ts_capture), alerted_at=_utc(alert.ts_alert),
                   **self._expiry(alert.ts_alert))
        with self._op(f"upsert of alert {alert.alert_id!r}", ALERTS):
            self._alerts.update_one({"_id": alert.alert_id}, {"$set": doc, "$setOnInsert": _TRIAGE_DEFAULTS},
                                    upsert=True)

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
        flt = _filter(camera_id=camera_id, person_id=person_id, status=status)
        flt.update(_range("ts_alert", since, until))
        with self._op("find", ALERTS):
            docs = list(self._alerts.find(flt).sort("ts_alert", -1).limit(check_limit(limit)))
        return [_alert_record(d) for d in docs]

    def get_alert(self, alert_id: str) -> AlertRecord | None:
        with self._op(f"lookup of alert {alert_id!r}", ALERTS):
            doc = self._alerts.find_one({"_id": alert_id})
        return _alert_record(doc) if doc is not None else None

    def last_alert(self, person_id: str, camera_id: str, *, at_or_before: float | None = None) -> AlertV2 | None:
        query: dict[str, Any] = {"person_id": person_id, "camera_id": camera_id}
        if at_or_before is not None:
            query["ts_capture"] = {"$lte": float(at_or_before)}
        with self._op(f"last alert for person {person_id!r} on camera {camera_id!r}", ALERTS):
            doc = self._alerts.find_one(query, sort=[("ts_capture", -1)])
        return alert_from_doc(doc, doc.get("crop_jpeg")) if doc is not None else None

    def set_alert_status(self, alert_id: str, status: str, *, actor: str, note: str = "") -> AlertRecord:
        from pymongo import ReturnDocument

        st = check_status(status)
        now = time.time()
        with self._op(f"status change of alert {alert_id!r}", ALERTS):
            doc = self._alerts.find_one_and_update(
                {"_id": alert_id},
                {"$set": {"status": st, "acked_by": actor, "acked_at": now, "acked_at_date": _utc(now), "note": note}},
                return_document=ReturnDocument.AFTER,
            )
        if doc is None:
            raise AlertNotFoundError(f"alert {alert_id!r}: expected an existing alert id, got an unknown one")
        log.info("alert %s set to %s by %s", alert_id, st, actor)
        return _alert_record(doc)

    def count_alerts(self) -> int:
        with self._op("count_documents", ALERTS):
            return int(self._alerts.count_documents({}))

    # -- metadata -------------------------------------------------------------------------------------------

    def upsert_person(self, person: PersonRecord) -> None:
        with self._op(f"upsert of person {person.person_id!r}", PERSONS):
            self._persons.replace_one({"_id": person.person_id}, person.to_doc(), upsert=True)

    def get_person(self, person_id: str) -> PersonRecord | None:
        with self._op(f"lookup of person {person_id!r}", PERSONS):
            doc = self._persons.find_one({"_id": person_id})
        return PersonRecord.from_doc(doc) if doc is not None else None

    def upsert_camera(self, camera: CameraRecord) -> None:
        with self._op(f"upsert of camera {camera.camera_id!r}", CAMERAS):
            self._cameras.replace_one({"_id": camera.camera_id}, camera.to_doc(), upsert=True)

    def get_camera(self, camera_id: str) -> CameraRecord | None:
        with self._op(f"lookup of camera {camera_id!r}", CAMERAS):
            doc = self._cameras.find_one({"_id": camera_id})
        return CameraRecord.from_doc(doc) if doc is not None else None

    def close(self) -> None:
        self._client.close()


def _filter(**eq: str | None) -> dict[str, Any]:
    return {k: v for k, v in eq.items() if v is not None}


def _range(field: str, since: float | None, until: float | None) -> dict[str, Any]:
    cond: dict[str, float] = {}
    if since is not None:
        cond["$gte"] = since
    if until is not None:
        cond["$lt"] = until
    return {field: cond} if cond else {}


def _alert_record(doc: Mapping[str, Any]) -> AlertRecord:
    return AlertRecord(alert=alert_from_doc(doc, doc.get("crop_jpeg")), status=check_status(doc.get("status", "new")),
                       acked_by=doc.get("acked_by"), acked_at=doc.get("acked_at"), note=doc.get("note") or "")
