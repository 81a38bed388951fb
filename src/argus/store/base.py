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

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast, get_args

from argus.errors import StoreError
from argus.ids import event_id
from argus.schemas import AlertV2, LocationV1, MatchesV2, TrackMatchV2

if TYPE_CHECKING:
    from argus.cameras import Camera

__all__ = [
    "ALERT_STATUSES",
    "AlertNotFoundError",
    "AlertRecord",
    "AlertStatus",
    "CameraRecord",
    "EventStore",
    "PersonRecord",
    "SightingEvent",
    "check_status",
]

AlertStatus = Literal["new", "acknowledged", "dismissed"]
ALERT_STATUSES: tuple[str, ...] = get_args(AlertStatus)


class AlertNotFoundError(StoreError):
    """``set_alert_status`` named an alert the store does not hold (typo, or already expired by retention)."""


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
    emotion_timeline: tuple[dict[str, Any], ...] = ()  # {seq, ts, label, confidence}: the track's emotion changes

    @classmethod
    def from_match(
        cls, matches: MatchesV2, match: TrackMatchV2, *, store_crop: bool = True, alert_id: str | None = None
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
                emotion_timeline=tuple(dict(c) for c in doc.get("emotion_timeline", ())),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise StoreError(f"stored event {doc.get('event_id')!r} is malformed: {e!r}") from e


def alert_doc(alert: AlertV2) -> dict[str, Any]:
    """AlertV2 as a plain document without the crop (JSON-safe: tuples become lists)."""
    d = alert.model_dump(mode="json", exclude={"crop_jpeg"})
    return d


def alert_from_doc(doc: Mapping[str, Any], crop: bytes | None) -> AlertV2:
    fields = {k: v for k, v in doc.items() if k in AlertV2.model_fields}
    fields["crop_jpeg"] = bytes(crop) if crop is not None else b""
    try:
        return AlertV2.model_validate(fields)
    except Exception as e:  # pydantic ValidationError: name the alert, not the library
        raise StoreError(f"stored alert {doc.get('alert_id')!r} is malformed: {e}") from e


@dataclass(frozen=True)
class AlertRecord:
    """A stored alert plus its triage state. The alert itself stays exactly the AlertV2 that went out."""

    alert: AlertV2
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

    @classmethod
    def from_camera(cls, camera: Camera) -> CameraRecord:
        from argus.cameras import redact_url

        loc = camera.location
        return cls(camera_id=camera.id, name=camera.name, url=redact_url(camera.url), fps=camera.fps,
                   enabled=camera.enabled,
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
                   updated_at=float(doc["updated_at"]))


class EventStore(Protocol):
    """Sighting history and alerts. All writes are idempotent upserts; all queries return newest first."""

    def put_events(self, events: Sequence[SightingEvent]) -> None:
        """Upsert by event_id. An event without alert_id never clears one already stored."""
        ...

    def put_alert(self, alert: AlertV2) -> None:
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

    def last_alert(self, person_id: str, camera_id: str, *, at_or_before: float | None = None) -> AlertV2 | None:
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

    def close(self) -> None: ...


def check_limit(limit: int) -> int:
    if not isinstance(limit, int) or limit < 1:
        raise StoreError(f"query limit: expected a positive integer, got {limit!r}")
    return limit
