"""Event store contract: the sighting history, the alerts analysts triage, and the person/camera metadata.

Every write is an idempotent upsert keyed by a deterministic id (``event_id`` and ``alert_id``, the rules
in :mod:`argus.ids`), because the bus delivers at least once: a redelivered batch must rewrite the
same rows, never add new ones. Two details make replays harmless beyond "same key":

* re-upserting an alert keeps its triage state (status, acked_by, acked_at, note) — an analyst's "dismissed" must
  survive the alerter replaying the match that raised it;
* re-upserting an event without an ``alert_id`` keeps the one already stored — on a replay the alerter sees its own
  earlier alert (cooldown) and writes the event again without the link.

Persons and cameras are small frozen dataclasses (:class:`PersonRecord`, :class:`CameraRecord`) rather than free
dicts: analysts join on them, so their fields are fixed; ``attributes`` carries anything site-specific.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar, cast, get_args

from argus.audit_trail import AuditRecord
from argus.errors import InputError, StoreError
from argus.ids import event_id
from argus.schemas import AlertV3, LocationV1, MatchesV3, TrackMatchV3

if TYPE_CHECKING:
    from argus.cameras import Camera

__all__ = [
    "ALERT_STATUSES",
    "MAX_PAGE",
    "AlertFilter",
    "AlertNotFoundError",
    "AlertRecord",
    "AlertStatus",
    "ApiKeyRecord",
    "AuditFilter",
    "CameraRecord",
    "EventFilter",
    "EventStore",
    "KeyNotFoundError",
    "Page",
    "PersonRecord",
    "Retention",
    "SightingEvent",
    "check_status",
    "decode_cursor",
    "encode_cursor",
]

T = TypeVar("T")
#: The most rows one page may ask for: a bigger page is a bulk export, which has its own route.
MAX_PAGE = 1000

AlertStatus = Literal["new", "acknowledged", "dismissed", "not_this_person"]
ALERT_STATUSES: tuple[str, ...] = get_args(AlertStatus)


class AlertNotFoundError(StoreError):
    """``set_alert_status`` named an alert the store does not hold (typo, or already expired by retention)."""


class KeyNotFoundError(StoreError):
    """``revoke_api_key`` named a key id the store does not hold."""


def check_status(status: str) -> AlertStatus:
    if status not in ALERT_STATUSES:
        raise StoreError(f"alert status: expected one of {', '.join(ALERT_STATUSES)}, got {status!r}")
    return cast(AlertStatus, status)


@dataclass(frozen=True, kw_only=True)
class SightingEvent:
    """One watch-list match of one face, as kept in the history (alert or not: cooldown-suppressed sightings too)."""

    event_id: str
    camera_id: str
    seq: int
    face_index: int
    person_id: str
    display_name: str
    watchlist: str
    score: float
    threshold: float
    margin: float
    candidates: tuple[dict[str, Any], ...]  # {person_id, display_name, watchlist, score}, best first
    emotion: str
    emotion_probs: tuple[float, ...]
    det_score: float
    quality: dict[str, float]  # {size, blur}
    box: tuple[float, float, float, float]
    ts_capture: float  # epoch seconds, camera clock
    ts_match: float
    gallery_version: int
    crop_jpeg: bytes | None = None  # None when ARGUS_STORE_CROPS is off
    alert_id: str | None = None  # set on the sighting that raised (or revised) an alert
    track_id: str = ""  # the face track this decision is about
    revision: int = 1  # the track's decision number (a later revision names another person or withdraws)
    matched: bool = True  # False: this revision withdrew the track's earlier match
    faces_seen: int = 1
    faces_embedded: int = 1
    emotion_timeline: tuple[dict[str, Any], ...] = ()  # {seq, ts, label, confidence, path}: the emotion's changes
    emotion_path: str = "cnn"  # the argus.ecrl.Path that decided ``emotion`` (events stored before v3: "cnn")

    @classmethod
    def from_match(
        cls, matches: MatchesV3, match: TrackMatchV3, *, store_crop: bool = True, alert_id: str | None = None
    ) -> SightingEvent:
        return cls(
            event_id=match.event_id or event_id(matches.camera_id, matches.seq, match.face_index),
            camera_id=matches.camera_id,
            seq=matches.seq,
            face_index=match.face_index,
            person_id=match.person_id,
            display_name=match.display_name,
            watchlist=match.watchlist,
            score=float(match.score),
            threshold=float(match.threshold),
            margin=float(match.margin),
            candidates=tuple(c.model_dump() for c in match.candidates),
            emotion=match.emotion_label,
            emotion_probs=tuple(float(p) for p in match.emotion),
            det_score=float(match.det_score),
            quality=match.quality.model_dump(),
            box=match.box,
            ts_capture=matches.ts_capture,
            ts_match=matches.ts_match,
            gallery_version=matches.gallery_version,
            crop_jpeg=match.crop_jpeg if store_crop else None,
            alert_id=alert_id,
            track_id=match.track_id,
            revision=match.revision,
            matched=match.matched,
            faces_seen=match.faces_seen,
            faces_embedded=match.faces_embedded,
            emotion_timeline=tuple(c.model_dump() for c in match.emotion_timeline),
            emotion_path=match.emotion_path,
        )

    def with_alert(self, alert_id: str) -> SightingEvent:
        return replace(self, alert_id=alert_id)

    def to_doc(self) -> dict[str, Any]:
        """Plain fields without the crop (each store keeps the crop in its native binary type)."""
        d = asdict(self)
        d.pop("crop_jpeg")
        d["candidates"] = [dict(c) for c in self.candidates]
        d["emotion_probs"] = list(self.emotion_probs)
        d["box"] = list(self.box)
        return d

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any], crop: bytes | None) -> SightingEvent:
        try:
            return cls(
                event_id=str(doc["event_id"]),
                camera_id=str(doc["camera_id"]),
                seq=int(doc["seq"]),
                face_index=int(doc["face_index"]),
                person_id=str(doc["person_id"]),
                display_name=str(doc["display_name"]),
                watchlist=str(doc["watchlist"]),
                score=float(doc["score"]),
                threshold=float(doc["threshold"]),
                margin=float(doc["margin"]),
                candidates=tuple(dict(c) for c in doc["candidates"]),
                emotion=str(doc["emotion"]),
                emotion_probs=tuple(float(p) for p in doc["emotion_probs"]),
                det_score=float(doc["det_score"]),
                quality={k: float(v) for k, v in doc["quality"].items()},
                box=cast(tuple[float, float, float, float], tuple(float(v) for v in doc["box"])),
                ts_capture=float(doc["ts_capture"]),
                ts_match=float(doc["ts_match"]),
                gallery_version=int(doc["gallery_version"]),
                crop_jpeg=bytes(crop) if crop is not None else None,
                alert_id=doc.get("alert_id"),
                track_id=str(doc.get("track_id", "")),
                revision=int(doc.get("revision", 1)),
                matched=bool(doc.get("matched", True)),
                faces_seen=int(doc.get("faces_seen", 1)),
                faces_embedded=int(doc.get("faces_embedded", 1)),
                emotion_timeline=tuple({"path": "cnn", **dict(c)} for c in doc.get("emotion_timeline", ())),
                emotion_path=str(doc.get("emotion_path", "cnn")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise StoreError(f"stored event {doc.get('event_id')!r} is malformed: {e!r}") from e


def alert_doc(alert: AlertV3) -> dict[str, Any]:
    """AlertV3 as a plain document without the crop (JSON-safe: tuples become lists)."""
    d = alert.model_dump(mode="json", exclude={"crop_jpeg"})
    return d


def alert_from_doc(doc: Mapping[str, Any], crop: bytes | None) -> AlertV3:
    """The stored alert as today's AlertV3. Alerts stored by an older version (``argus.alerts.v1``/``v2`` docs) read
    too: the stored ``schema_id`` is not checked (the wire's version, not the store's), and the fields added since
    have defaults (``emotion_path`` and each timeline entry's ``path``: "cnn", what decided them before ECRL)."""
    fields = {k: v for k, v in doc.items() if k in AlertV3.model_fields and k != "schema_id"}
    fields["crop_jpeg"] = bytes(crop) if crop is not None else b""
    try:
        return AlertV3.model_validate(fields)
    except Exception as e:  # pydantic ValidationError: name the alert, not the library
        raise StoreError(f"stored alert {doc.get('alert_id')!r} is malformed: {e}") from e


@dataclass(frozen=True)
class AlertRecord:
    """A stored alert plus its triage state. The alert itself stays exactly the AlertV3 that went out."""

    alert: AlertV3
    status: AlertStatus = "new"
    acked_by: str | None = None
    acked_at: float | None = None
    note: str = ""

    @property
    def alert_id(self) -> str:
        return self.alert.alert_id


@dataclass(frozen=True, kw_only=True)
class PersonRecord:
    """Who a watch-list entry is, for analysts (the gallery holds the embeddings; this holds the context)."""

    person_id: str
    display_name: str
    watchlist: str
    note: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    updated_at: float = field(default_factory=time.time)

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> PersonRecord:
        return cls(person_id=str(doc["person_id"]), display_name=str(doc["display_name"]),
                   watchlist=str(doc["watchlist"]), note=str(doc.get("note", "")),
                   attributes=dict(doc.get("attributes") or {}), updated_at=float(doc["updated_at"]))


@dataclass(frozen=True, kw_only=True)
class CameraRecord:
    """Where a camera stands. ``url`` is always stored redacted: the store is read by people, not by ingest."""

    camera_id: str
    name: str
    location: LocationV1
    url: str = ""
    fps: float = 0.0
    enabled: bool = True
    updated_at: float = field(default_factory=time.time)
    timezone: str | None = None  # IANA name from the registry: the console shows the camera's local time

    @classmethod
    def from_camera(cls, camera: Camera) -> CameraRecord:
        from argus.cameras import redact_url

        loc = camera.location
        return cls(camera_id=camera.id, name=camera.name, url=redact_url(camera.url), fps=camera.fps,
                   enabled=camera.enabled, timezone=camera.timezone,
                   location=LocationV1(lat=loc.lat, lon=loc.lon, address=loc.address, zone=loc.zone))

    def to_doc(self) -> dict[str, Any]:
        d = asdict(self)
        d["location"] = self.location.model_dump()
        return d

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> CameraRecord:
        return cls(camera_id=str(doc["camera_id"]), name=str(doc["name"]),
                   location=LocationV1.model_validate(doc["location"]), url=str(doc.get("url", "")),
                   fps=float(doc.get("fps", 0.0)), enabled=bool(doc.get("enabled", True)),
                   updated_at=float(doc["updated_at"]),
                   timezone=str(doc["timezone"]) if doc.get("timezone") is not None else None)


@dataclass(frozen=True, kw_only=True)
class Retention:
    """How long each collection is kept, days; None keeps it forever. Crops go before the events they belong to
    (they are the most sensitive part of the evidence); the audit trail is kept forever unless an auditor says."""

    events_days: int | None = 90
    alerts_days: int | None = 365
    crops_days: int | None = 30
    audit_days: int | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise StoreError(f"retention {f.name}: expected None or an integer >= 1, got {v!r}")

    @staticmethod
    def seconds(days: int | None) -> float | None:
        return days * 86_400.0 if days is not None else None


@dataclass(frozen=True, kw_only=True)
class ApiKeyRecord:
    """An API key as stored: only the sha256 of its secret, so a copy of the store cannot be used to log in."""

    key_id: str
    name: str
    role: str
    secret_sha256: str
    created_at: float
    created_by: str
    revoked_at: float | None = None

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> ApiKeyRecord:
        rev = doc.get("revoked_at")
        return cls(key_id=str(doc["key_id"]), name=str(doc["name"]), role=str(doc["role"]),
                   secret_sha256=str(doc["secret_sha256"]), created_at=float(doc["created_at"]),
                   created_by=str(doc["created_by"]), revoked_at=float(rev) if rev is not None else None)


def _check_filter(obj: object) -> None:
    """Filter values are literals compared by equality. A non-string (a dict such as ``{"$ne": None}`` that a JSON
    body could smuggle in) is refused here, so no store can ever pass it on as a query operator."""
    for f in fields(obj):  # type: ignore[arg-type]
        v = getattr(obj, f.name)
        if v is None:
            continue
        if f.name in ("since", "until"):
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise InputError(f"filter {f.name}: expected epoch seconds (a finite number), got {v!r}")
        elif f.name == "camera_ids":
            if isinstance(v, str) or not isinstance(v, tuple | list) or not all(isinstance(c, str) for c in v):
                raise InputError(f"filter camera_ids: expected a tuple of strings, got {v!r}")
            object.__setattr__(obj, f.name, tuple(v))
        elif not isinstance(v, str):
            raise InputError(f"filter {f.name}: expected a string, got {type(v).__name__} {v!r}")


@dataclass(frozen=True, kw_only=True)
class AlertFilter:
    """All optional, combined with AND; ``since <= ts_alert < until``. A zone is resolved to camera ids by the
    caller; an empty ``camera_ids`` matches nothing."""

    camera_ids: tuple[str, ...] | None = None
    person_id: str | None = None
    watchlist: str | None = None
    status: str | None = None
    since: float | None = None
    until: float | None = None

    def __post_init__(self) -> None:
        _check_filter(self)


@dataclass(frozen=True, kw_only=True)
class EventFilter:
    """All optional, combined with AND; ``since <= ts_capture < until``."""

    camera_ids: tuple[str, ...] | None = None
    person_id: str | None = None
    watchlist: str | None = None
    emotion: str | None = None
    since: float | None = None
    until: float | None = None

    def __post_init__(self) -> None:
        _check_filter(self)


@dataclass(frozen=True, kw_only=True)
class AuditFilter:
    """All optional, combined with AND; ``since <= ts < until``. ``subject`` matches only unredacted records."""

    actor: str | None = None
    action: str | None = None
    subject: str | None = None
    since: float | None = None
    until: float | None = None

    def __post_init__(self) -> None:
        _check_filter(self)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(ts: float, key: str | int) -> str:
    """Opaque keyset cursor: the (time, id) of the last row of a page. Ordering is (time desc, id desc), so rows
    with equal times are neither lost nor repeated across pages."""
    raw = json.dumps([ts, key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, key_type: type[str] | type[int]) -> tuple[float, Any]:
    def bad() -> InputError:
        shown = cursor if len(cursor) <= 80 else cursor[:80] + "..."
        return InputError(f"cursor: expected the next_cursor of a previous page, got {shown!r}")

    if not isinstance(cursor, str) or len(cursor) > 1024:
        raise bad()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        val = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad() from None
    if not isinstance(val, list) or len(val) != 2:
        raise bad()
    ts, key = val
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise bad()
    if isinstance(key, bool) or not isinstance(key, key_type):
        raise bad()
    return float(ts), key


def check_page_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InputError(f"page limit: expected an integer 1..{MAX_PAGE}, got {limit!r}")
    return limit


class EventStore(Protocol):
    """Sighting history and alerts. All writes are idempotent upserts; all queries return newest first."""

    def put_events(self, events: Sequence[SightingEvent]) -> None:
        """Upsert by event_id. An event without alert_id never clears one already stored."""
        ...

    def put_alert(self, alert: AlertV3) -> None:
        """Upsert by alert_id; a new alert starts as status "new", an existing one keeps its triage state."""
        ...

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
        """Filters combine with AND; ``since <= ts_capture < until``; newest ts_capture first."""
        ...

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
        """Filters combine with AND; ``since <= ts_alert < until``; newest ts_alert first."""
        ...

    def get_alert(self, alert_id: str) -> AlertRecord | None: ...

    def last_alert(self, person_id: str, camera_id: str, *, at_or_before: float | None = None) -> AlertV3 | None:
        """The alert with the latest *capture* time for (person, camera), optionally among those captured at or
        before ``at_or_before``: the cooldown runs in capture time and judges a sighting by what came before it."""
        ...

    def set_alert_status(self, alert_id: str, status: str, *, actor: str, note: str = "") -> AlertRecord:
        """Triage an alert; raises AlertNotFoundError for an unknown id, StoreError for an unknown status."""
        ...

    def upsert_person(self, person: PersonRecord) -> None: ...

    def get_person(self, person_id: str) -> PersonRecord | None: ...

    def upsert_camera(self, camera: CameraRecord) -> None: ...

    def get_camera(self, camera_id: str) -> CameraRecord | None: ...

    def count_events(self) -> int: ...

    def count_alerts(self) -> int: ...

    # -- operator API (docs/operator-api-design.md "Event store") -----------------------------------------------

    def page_alerts(self, flt: AlertFilter, *, limit: int, cursor: str | None = None) -> Page[AlertRecord]:
        """Newest ts_alert first (ties by alert id desc); ``cursor`` is a previous page's ``next_cursor``."""
        ...

    def page_events(self, flt: EventFilter, *, limit: int, cursor: str | None = None) -> Page[SightingEvent]:
        """Newest ts_capture first (ties by event id desc)."""
        ...

    def page_audit(self, flt: AuditFilter, *, limit: int, cursor: str | None = None) -> Page[AuditRecord]:
        """Newest ts first (ties by seq desc)."""
        ...

    def list_persons(self) -> list[PersonRecord]: ...

    def put_person_photos(self, person_id: str, photos: Sequence[bytes]) -> None:
        """Replace the person's enrolled thumbnails (JPEG bytes, made by the caller)."""
        ...

    def get_person_photos(self, person_id: str) -> list[bytes]: ...

    def list_cameras(self) -> list[CameraRecord]: ...

    def put_camera_health(self, camera_id: str, health: Mapping[str, Any]) -> None: ...

    def camera_health(self) -> dict[str, dict[str, Any]]: ...

    def put_api_key(self, rec: ApiKeyRecord) -> None: ...

    def get_api_key(self, key_id: str) -> ApiKeyRecord | None: ...

    def list_api_keys(self) -> list[ApiKeyRecord]: ...

    def revoke_api_key(self, key_id: str, *, at: float) -> ApiKeyRecord:
        """Mark revoked (an already revoked key keeps its first revocation time); KeyNotFoundError if unknown."""
        ...

    def append_audit(self, *, actor: str, role: str, action: str, subject: str | None = None,
                     details: Mapping[str, Any]) -> AuditRecord:
        """Append the next record of the chain atomically, even with several writers (API replicas)."""
        ...

    def audit_records(self) -> Iterator[AuditRecord]:
        """Every stored audit record, ascending seq, as stored (verification must see tampering)."""
        ...

    def redact_audit_subject(self, person_id: str) -> int:
        """Blank subject and salt of every record about ``person_id`` (digests stay: the chain still verifies)."""
        ...

    def erase_person(self, person_id: str) -> dict[str, int]:
        """Delete every trace of the person; counts per collection: events, alerts, crops, persons, photos,
        candidates_scrubbed, audit_redacted."""
        ...

    def close(self) -> None: ...


def scrub_candidates(candidates: Any, person_id: str) -> tuple[list[Any], bool]:
    """A candidate list without ``person_id`` (erasure: another person's sighting must not keep naming them)."""
    kept = [c for c in (candidates or []) if not (isinstance(c, Mapping) and c.get("person_id") == person_id)]
    return kept, len(kept) != len(candidates or [])


def check_limit(limit: int) -> int:
    if not isinstance(limit, int) or limit < 1:
        raise StoreError(f"query limit: expected a positive integer, got {limit!r}")
    return limit
