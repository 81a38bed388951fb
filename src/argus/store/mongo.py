"""The production event store: MongoDB over pymongo.

Collections: ``events``, ``alerts``, ``crops``, ``persons``, ``person_photos``, ``cameras``, ``camera_health``,
``api_keys``, ``audit``. ``_id`` is the event/alert/person/camera/key id, so every write is an upsert on the primary
key (a redelivered batch rewrites the same documents). Events go in one unordered ``bulk_write`` per batch. Writes
use ``$set`` (+ ``$setOnInsert``) rather than a whole-document replace so that the fields a replay must not clobber
survive it: an alert's triage state, and an event's ``alert_id`` when the replay carries none.

Timestamps are stored twice: epoch floats (``ts_capture``, exact, what the code compares) and BSON datetimes
(``captured_at``, ``matched_at``, ``alerted_at``) so analysts can query with dates in any MongoDB tool.

Retention (:class:`~argus.store.base.Retention`) is one TTL index on ``expires_at`` with ``expireAfterSeconds=0``
per collection that expires (``events``, ``alerts``, ``crops``, ``audit``); each document carries its own
``expires_at`` (= capture/alert/append time + that collection's days), so changing the retention later never
conflicts with the existing index, it only changes the expiry of new documents. Face crops expire *before* the
events they belong to, and a TTL index can only delete whole documents, so crops live in their own collection
``crops``: ``_id`` ``e:<event_id>`` or ``a:<alert_id>``, the JPEG as BSON binary, and ``expires_at`` = capture
time + ``min(crops_days, events_days or alerts_days)``. Reads join a page's crops with one ``$in`` query; documents
written before this layout (crop inline as ``crop_jpeg``) still read.

Audit chain: ``audit`` documents have ``_id = seq``. An append reads the head, builds the next record and inserts it
with that ``_id``; a second writer that raced it gets a duplicate-key error and retries on the new head, so two API
replicas never fork the chain. With an audit retention the oldest records expire by TTL; the chain check accepts
that missing prefix (:func:`argus.audit_trail.verify_chain`). Should every record expire, the next starts at seq 1.

The URI may carry a password: it never reaches logs or error messages (:func:`argus.cameras.redact_url`, and the
password is scrubbed from any driver message quoted in an error).
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from argus.audit_trail import AuditRecord, new_record
from argus.cameras import redact_url
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

EVENTS, ALERTS, PERSONS, CAMERAS = "events", "alerts", "persons", "cameras"
CROPS, PHOTOS, HEALTH, KEYS, AUDIT = "crops", "person_photos", "camera_health", "api_keys", "audit"
COLLECTIONS = (EVENTS, ALERTS, CROPS, PERSONS, PHOTOS, CAMERAS, HEALTH, KEYS, AUDIT)
#: Collections whose documents expire by TTL.
TTL_COLLECTIONS = (EVENTS, ALERTS, CROPS, AUDIT)
#: Appends that may lose the race for the next seq before one gives up (each retry reads the new head).
AUDIT_APPEND_TRIES = 200

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
    # keyset pages: (time desc, id desc); the watch-list filters; erasure's candidate scan; the audit trail
    (EVENTS, "ts_id", [("ts_capture", -1), ("_id", -1)]),
    (EVENTS, "watchlist_ts", [("watchlist", 1), ("ts_capture", -1)]),
    (EVENTS, "candidates", [("candidates.person_id", 1)]),
    (ALERTS, "ts_id", [("ts_alert", -1), ("_id", -1)]),
    (ALERTS, "watchlist_ts", [("watchlist", 1), ("ts_alert", -1)]),
    (ALERTS, "candidates", [("candidates.person_id", 1)]),
    (AUDIT, "ts_id", [("ts", -1), ("_id", -1)]),
    (AUDIT, "actor_ts", [("actor", 1), ("ts", -1)]),
    (AUDIT, "subject", [("subject", 1)]),
)
TTL_INDEX = "retention_ttl"
_TRIAGE_DEFAULTS: dict[str, Any] = {"status": "new", "acked_by": None, "acked_at": None, "note": ""}
_PASSWORD_RE = re.compile(r"^[a-z+]+://[^:@/]*:([^@/]+)@", re.IGNORECASE)


#: Server error codes that mean "not now" (the retryable-writes spec's network and time-limit codes, plus shutdown
#: and not-primary ones): HostUnreachable, HostNotFound, NetworkTimeout, SocketException, ExceededTimeLimit,
#: ReadConcernMajorityNotAvailableYet, ShutdownInProgress, InterruptedAtShutdown, NotWritablePrimary,
#: PrimarySteppedDown, InterruptedDueToReplStateChange.
_RETRY_LATER_CODES = frozenset({6, 7, 89, 9001, 262, 134, 91, 11600, 10107, 189, 11602})


def retry_later(e: Exception) -> bool:
    """Whether a pymongo error means the server is unreachable, failing over or slow — the operation was fine and
    will succeed later (StoreUnavailable: the runner holds the batch) — rather than one that never will.

    ConnectionFailure covers ServerSelectionTimeoutError, AutoReconnect, NetworkTimeout and NotPrimaryError (a
    server shutting down or stepping down); a server may also answer an OperationFailure whose code or label says
    the same."""
    from pymongo.errors import ConnectionFailure, ExecutionTimeout, PyMongoError, WTimeoutError

    if isinstance(e, ConnectionFailure | ExecutionTimeout | WTimeoutError):
        return True
    return isinstance(e, PyMongoError) and (getattr(e, "code", None) in _RETRY_LATER_CODES
                                            or e.has_error_label("RetryableWriteError"))


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


class MongoEventStore:
    name = "mongodb"

    def __init__(
        self, *, uri: str, database: str = "argus", retention: Retention | None = None,
        retention_days: int | None = None, timeout_s: float = 10.0,
    ) -> None:
        """``retention_days`` is the older one-number form (events, alerts and crops alike); ``retention`` wins."""
        try:
            from pymongo import MongoClient
        except ImportError as e:  # the server clients are an optional extra
            raise StoreError("the MongoDB event store needs pymongo: pip install 'argus-watch[mongo]'") from e
        if retention is None:
            retention = (Retention(events_days=retention_days, alerts_days=retention_days, crops_days=retention_days)
                         if retention_days is not None else Retention())
        self.retention = retention
        self._where = f"{redact_url(uri)}/{database}"
        m = _PASSWORD_RE.match(uri)
        self._secret = unquote(m.group(1)) if m else None
        self._secret_raw = m.group(1) if m else None
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
        self._crops = self._db[CROPS]
        self._photos = self._db[PHOTOS]
        self._health = self._db[HEALTH]
        self._keys = self._db[KEYS]
        self._audit = self._db[AUDIT]
        try:
            with self._op("ping", "admin"):
                self._client.admin.command("ping")
            self._ensure_indexes()
        except StoreError:
            self._client.close()
            raise
        log.info("event store: MongoDB at %s (retention %s)", self._where, retention)

    def _scrub(self, e: BaseException) -> str:
        msg = str(e)
        for s in (self._secret, self._secret_raw):
            if s:
                msg = msg.replace(s, "***")
        return msg

    @contextmanager
    def _op(self, what: str, collection: str) -> Iterator[None]:
        from pymongo.errors import PyMongoError

        try:
            yield
        except PyMongoError as e:
            kind = StoreUnavailable if retry_later(e) else StoreError
            raise kind(f"MongoDB {what} on {collection!r} at {self._where} failed: {self._scrub(e)}") from e

    def reset(self) -> None:
        """Drop every collection of this database and recreate the indexes. Only ``argus demo --distributed`` calls
        this, on its own database (``argus_demo``), so each demo run starts from an empty history."""
        for coll in COLLECTIONS:
            with self._op("drop", coll):
                self._db.drop_collection(coll)
        self._ensure_indexes()

    def _ensure_indexes(self) -> None:
        """Idempotent: create_index is a no-op when an identical index exists. Run at every start-up."""
        for coll, name, keys in INDEXES:
            with self._op(f"create_index {name}", coll):
                self._db[coll].create_index(keys, name=name)
        for coll in TTL_COLLECTIONS:
            with self._op(f"create_index {TTL_INDEX}", coll):
                self._db[coll].create_index([("expires_at", 1)], name=TTL_INDEX, expireAfterSeconds=0)

    @staticmethod
    def _expiry(ts: float, days: int | None) -> dict[str, Any]:
        return {"expires_at": _utc(ts) + timedelta(days=days)} if days is not None else {}

    def _crop_days(self, owner_days: int | None) -> int | None:
        """A crop never outlives the event or alert it belongs to."""
        kept = [d for d in (self.retention.crops_days, owner_days) if d is not None]
        return min(kept) if kept else None

    def _crop_write(self, key: str, crop: bytes | None, ts: float, owner_days: int | None) -> Any:
        from pymongo import DeleteOne, ReplaceOne

        if crop is None:  # like the row it mirrors: a rewrite without a crop leaves none
            return DeleteOne({"_id": key})
        return ReplaceOne({"_id": key}, {"crop": crop, **self._expiry(ts, self._crop_days(owner_days))},
                          upsert=True)

    def _crops_for(self, keys: list[str]) -> dict[str, bytes]:
        if not keys:
            return {}
        with self._op("find", CROPS):
            return {d["_id"]: bytes(d["crop"]) for d in self._crops.find({"_id": {"$in": keys}})}

    # -- events ---------------------------------------------------------------------------------------------

    def _event_update(self, e: SightingEvent) -> Any:
        from pymongo import UpdateOne

        doc = e.to_doc()
        doc.update(captured_at=_utc(e.ts_capture), matched_at=_utc(e.ts_match),
                   **self._expiry(e.ts_capture, self.retention.events_days))
        update: dict[str, Any] = {"$set": doc}
        if e.alert_id is None:  # a replay without the link must not erase a stored one
            del doc["alert_id"]
            update["$setOnInsert"] = {"alert_id": None}
        return UpdateOne({"_id": e.event_id}, update, upsert=True)

    def put_events(self, events: Sequence[SightingEvent]) -> None:
        if not events:
            return
        ops = [self._event_update(e) for e in events]
        crops = [self._crop_write(f"e:{e.event_id}", e.crop_jpeg, e.ts_capture, self.retention.events_days)
                 for e in events]
        with self._op(f"bulk upsert of {len(ops)} crop(s)", CROPS):  # crops first: an event never lacks its own
            self._crops.bulk_write(crops, ordered=False)
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
        flt = EventFilter(camera_ids=(camera_id,) if camera_id is not None else None, person_id=person_id,
                          emotion=emotion, since=since, until=until)
        return self._page_events(flt, check_limit(limit), None).items

    def count_events(self) -> int:
        with self._op("count_documents", EVENTS):
            return int(self._events.count_documents({}))

    # -- alerts ---------------------------------------------------------------------------------------------

    def put_alert(self, alert: AlertV3) -> None:
        doc = alert_doc(alert)
        doc.update(captured_at=_utc(alert.ts_capture), alerted_at=_utc(alert.ts_alert),
                   **self._expiry(alert.ts_alert, self.retention.alerts_days))
        crop = self._crop_write(f"a:{alert.alert_id}", alert.crop_jpeg or None, alert.ts_capture,
                                self.retention.alerts_days)
        with self._op(f"upsert of the crop of alert {alert.alert_id!r}", CROPS):
            self._crops.bulk_write([crop])
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
        flt = AlertFilter(camera_ids=(camera_id,) if camera_id is not None else None, person_id=person_id,
                          status=status, since=since, until=until)
        return self._page_alerts(flt, check_limit(limit), None).items

    def get_alert(self, alert_id: str) -> AlertRecord | None:
        with self._op(f"lookup of alert {alert_id!r}", ALERTS):
            doc = self._alerts.find_one({"_id": alert_id})
        return self._alert_records([doc])[0] if doc is not None else None

    def last_alert(self, person_id: str, camera_id: str, *, at_or_before: float | None = None) -> AlertV3 | None:
        query: dict[str, Any] = {"person_id": person_id, "camera_id": camera_id}
        if at_or_before is not None:
            query["ts_capture"] = {"$lte": float(at_or_before)}
        with self._op(f"last alert for person {person_id!r} on camera {camera_id!r}", ALERTS):
            doc = self._alerts.find_one(query, sort=[("ts_capture", -1)])
        return self._alert_records([doc])[0].alert if doc is not None else None

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
        return self._alert_records([doc])[0]

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

    # -- operator API: pages ----------------------------------------------------------------------------------

    def _find_page(self, coll: str, query: dict[str, Any], ts_field: str, n: int, cursor: str | None,
                   key_type: type[str] | type[int]) -> tuple[list[dict[str, Any]], bool]:
        if cursor is not None:
            c_ts, c_id = decode_cursor(cursor, key_type=key_type)
            query = {"$and": [query, {"$or": [{ts_field: {"$lt": c_ts}},
                                               {ts_field: {"$eq": c_ts}, "_id": {"$lt": c_id}}]}]}
        with self._op("find", coll):
            docs = list(self._db[coll].find(query).sort([(ts_field, -1), ("_id", -1)]).limit(n + 1))
        return docs[:n], len(docs) > n

    def _alert_records(self, docs: list[dict[str, Any]]) -> list[AlertRecord]:
        crops = self._crops_for([f"a:{d['_id']}" for d in docs])
        return [_alert_record(d, crops.get(f"a:{d['_id']}", d.get("crop_jpeg"))) for d in docs]

    def _page_alerts(self, flt: AlertFilter, n: int, cursor: str | None) -> Page[AlertRecord]:
        q = _common_query(flt.camera_ids, flt.person_id, flt.watchlist, flt.since, flt.until, "ts_alert")
        if flt.status is not None:
            q["status"] = {"$eq": flt.status}
        docs, more = self._find_page(ALERTS, q, "ts_alert", n, cursor, str)
        nxt = encode_cursor(float(docs[-1]["ts_alert"]), docs[-1]["_id"]) if more else None
        return Page(self._alert_records(docs), nxt)

    def _page_events(self, flt: EventFilter, n: int, cursor: str | None) -> Page[SightingEvent]:
        q = _common_query(flt.camera_ids, flt.person_id, flt.watchlist, flt.since, flt.until, "ts_capture")
        if flt.emotion is not None:
            q["emotion"] = {"$eq": flt.emotion}
        docs, more = self._find_page(EVENTS, q, "ts_capture", n, cursor, str)
        crops = self._crops_for([f"e:{d['_id']}" for d in docs])
        items = [SightingEvent.from_doc(d, crops.get(f"e:{d['_id']}", d.get("crop_jpeg"))) for d in docs]
        return Page(items, encode_cursor(float(docs[-1]["ts_capture"]), docs[-1]["_id"]) if more else None)

    def page_alerts(self, flt: AlertFilter, *, limit: int, cursor: str | None = None) -> Page[AlertRecord]:
        return self._page_alerts(flt, check_page_limit(limit), cursor)

    def page_events(self, flt: EventFilter, *, limit: int, cursor: str | None = None) -> Page[SightingEvent]:
        return self._page_events(flt, check_page_limit(limit), cursor)

    def page_audit(self, flt: AuditFilter, *, limit: int, cursor: str | None = None) -> Page[AuditRecord]:
        q: dict[str, Any] = {k: {"$eq": v} for k, v in (("actor", flt.actor), ("action", flt.action),
                                                         ("subject", flt.subject)) if v is not None}
        q.update(_range("ts", flt.since, flt.until))
        docs, more = self._find_page(AUDIT, q, "ts", check_page_limit(limit), cursor, int)
        items = [AuditRecord.from_doc(d) for d in docs]
        return Page(items, encode_cursor(items[-1].ts, int(docs[-1]["_id"])) if more else None)

    # -- operator API: persons, photos, cameras, health ---------------------------------------------------------

    def list_persons(self) -> list[PersonRecord]:
        with self._op("find", PERSONS):
            return [PersonRecord.from_doc(d) for d in self._persons.find({}).sort("_id", 1)]

    def put_person_photos(self, person_id: str, photos: Sequence[bytes]) -> None:
        for i, ph in enumerate(photos):
            if not isinstance(ph, bytes | bytearray | memoryview):
                raise InputError(f"photo {i} of person {person_id!r}: expected JPEG bytes, got {type(ph).__name__}")
        with self._op(f"replace of photos of person {person_id!r}", PHOTOS):
            self._photos.replace_one({"_id": person_id}, {"photos": [bytes(p) for p in photos]}, upsert=True)

    def get_person_photos(self, person_id: str) -> list[bytes]:
        with self._op(f"photos of person {person_id!r}", PHOTOS):
            doc = self._photos.find_one({"_id": {"$eq": person_id}})
        return [bytes(p) for p in doc["photos"]] if doc is not None else []

    def list_cameras(self) -> list[CameraRecord]:
        with self._op("find", CAMERAS):
            return [CameraRecord.from_doc(d) for d in self._cameras.find({}).sort("_id", 1)]

    def put_camera_health(self, camera_id: str, health: Mapping[str, Any]) -> None:
        with self._op(f"health of camera {camera_id!r}", HEALTH):
            self._health.replace_one({"_id": camera_id}, {"health": dict(health)}, upsert=True)

    def camera_health(self) -> dict[str, dict[str, Any]]:
        with self._op("find", HEALTH):
            return {d["_id"]: dict(d["health"]) for d in self._health.find({}).sort("_id", 1)}

    # -- operator API: API keys -----------------------------------------------------------------------------

    def put_api_key(self, rec: ApiKeyRecord) -> None:
        with self._op(f"upsert of API key {rec.key_id!r}", KEYS):
            self._keys.replace_one({"_id": rec.key_id}, rec.to_doc(), upsert=True)

    def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        with self._op(f"lookup of API key {key_id!r}", KEYS):
            doc = self._keys.find_one({"_id": {"$eq": key_id}})
        return ApiKeyRecord.from_doc(doc) if doc is not None else None

    def list_api_keys(self) -> list[ApiKeyRecord]:
        with self._op("find", KEYS):
            return [ApiKeyRecord.from_doc(d) for d in self._keys.find({}).sort("_id", 1)]

    def revoke_api_key(self, key_id: str, *, at: float) -> ApiKeyRecord:
        with self._op(f"revocation of API key {key_id!r}", KEYS):
            self._keys.update_one({"_id": {"$eq": key_id}, "revoked_at": None}, {"$set": {"revoked_at": float(at)}})
            doc = self._keys.find_one({"_id": {"$eq": key_id}})
        if doc is None:
            raise KeyNotFoundError(f"API key {key_id!r}: expected an existing key id, got an unknown one")
        return ApiKeyRecord.from_doc(doc)

    # -- operator API: audit chain --------------------------------------------------------------------------

    def append_audit(self, *, actor: str, role: str, action: str, subject: str | None = None,
                     details: Mapping[str, Any]) -> AuditRecord:
        from pymongo.errors import DuplicateKeyError

        for attempt in range(AUDIT_APPEND_TRIES):
            with self._op("read of the audit head", AUDIT):
                head = self._audit.find_one({}, sort=[("_id", -1)])
            rec = new_record(AuditRecord.from_doc(head) if head is not None else None, actor=actor, role=role,
                             action=action, subject=subject, details=details)
            doc = {"_id": rec.seq, **rec.to_doc(), "at": _utc(rec.ts),
                   **self._expiry(rec.ts, self.retention.audit_days)}
            try:
                with self._op(f"append of audit record {rec.seq}", AUDIT):
                    self._audit.insert_one(doc)
                return rec
            except StoreError as e:
                if not isinstance(e.__cause__, DuplicateKeyError):
                    raise
                time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))  # another writer took this seq
        raise StoreUnavailable(f"MongoDB append to {AUDIT!r} at {self._where}: expected to win the next seq within "
                               f"{AUDIT_APPEND_TRIES} tries, got contention every time")

    def audit_records(self) -> Iterator[AuditRecord]:
        with self._op("find", AUDIT):
            docs = list(self._audit.find({}).sort("_id", 1))
        for d in docs:
            yield AuditRecord.from_doc(d)

    def redact_audit_subject(self, person_id: str) -> int:
        with self._op("redaction of audit subjects", AUDIT):
            res = self._audit.update_many({"subject": {"$eq": person_id}},
                                          {"$set": {"subject": None, "subject_salt": None}})
        return int(res.modified_count)

    # -- operator API: erasure ------------------------------------------------------------------------------

    def erase_person(self, person_id: str) -> dict[str, int]:
        """Not one transaction (MongoDB needs a replica set for that): each step is idempotent, so an erasure that
        failed half-way is finished by running it again; its receipt then counts what that run removed."""
        pid = {"$eq": person_id}
        with self._op("find", EVENTS):
            ev_ids = [d["_id"] for d in self._events.find({"person_id": pid}, {"_id": 1})]
        with self._op("find", ALERTS):
            al_ids = [d["_id"] for d in self._alerts.find({"person_id": pid}, {"_id": 1})]
        with self._op("erasure", CROPS):
            keys = [f"e:{i}" for i in ev_ids] + [f"a:{i}" for i in al_ids]
            crops = self._crops.delete_many({"_id": {"$in": keys}}).deleted_count if keys else 0
        with self._op("erasure", EVENTS):
            events = self._events.delete_many({"person_id": pid}).deleted_count
        with self._op("erasure", ALERTS):
            alerts = self._alerts.delete_many({"person_id": pid}).deleted_count
        with self._op("erasure", PERSONS):
            persons = self._persons.delete_many({"_id": pid}).deleted_count
        with self._op("erasure", PHOTOS):
            doc = self._photos.find_one({"_id": pid})
            photos = len(doc["photos"]) if doc is not None else 0
            self._photos.delete_many({"_id": pid})
        scrubbed = 0
        for coll in (EVENTS, ALERTS):
            with self._op("erasure of candidates", coll):
                for d in list(self._db[coll].find({"candidates.person_id": pid}, {"candidates": 1})):
                    kept, changed = scrub_candidates(d.get("candidates"), person_id)
                    if changed:
                        self._db[coll].update_one({"_id": d["_id"]}, {"$set": {"candidates": kept}})
                        scrubbed += 1
        counts = {"events": int(events), "alerts": int(alerts), "crops": int(crops), "persons": int(persons),
                  "photos": photos, "candidates_scrubbed": scrubbed,
                  "audit_redacted": self.redact_audit_subject(person_id)}
        log.info("erased a person: %s", counts)  # the receipt's counts; never the id
        return counts

    def close(self) -> None:
        self._client.close()


def _common_query(camera_ids: tuple[str, ...] | None, person_id: str | None, watchlist: str | None,
                  since: float | None, until: float | None, ts_field: str) -> dict[str, Any]:
    """Values only ever appear under ``$eq`` / ``$in``: a string such as ``{"$ne": null}`` or ``$where`` is then a
    literal that matches nothing (the filters refuse non-strings before this)."""
    q: dict[str, Any] = {}
    if camera_ids is not None:
        q["camera_id"] = {"$in": list(camera_ids)}
    if person_id is not None:
        q["person_id"] = {"$eq": person_id}
    if watchlist is not None:
        q["watchlist"] = {"$eq": watchlist}
    q.update(_range(ts_field, since, until))
    return q


def _range(field: str, since: float | None, until: float | None) -> dict[str, Any]:
    cond: dict[str, float] = {}
    if since is not None:
        cond["$gte"] = since
    if until is not None:
        cond["$lt"] = until
    return {field: cond} if cond else {}


def _alert_record(doc: Mapping[str, Any], crop: bytes | None) -> AlertRecord:
    return AlertRecord(alert=alert_from_doc(doc, crop), status=check_status(doc.get("status", "new")),
                       acked_by=doc.get("acked_by"), acked_at=doc.get("acked_at"), note=doc.get("note") or "")
