"""Request and response bodies of /api/v1, as pydantic models: every value typed, so the OpenAPI document says
exactly what goes in and out, and a filter value such as ``{"$ne": null}`` arrives as the string it is.

Responses never carry image bytes inline: crops and thumbnails have their own routes (``image/jpeg``), so the
permission to see a face is checked on its own (``alerts.crop``) and list responses stay small.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from argus.ids import PERSON_ID_PATTERN


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorOut(_Out):
    error: str = Field(description="Machine-readable error kind (bad_request, unauthorized, not_found, ...).")
    detail: Any = Field(description="What was wrong, for a person (never a secret or an internal trace).")


class HealthOut(_Out):
    status: Literal["ok"]


class ReadyOut(_Out):
    ready: bool
    checks: dict[str, str]


class PhotoVerdictOut(_Out):
    index: int = Field(description="Position of the photo in the upload (0-based).")
    filename: str
    accepted: bool
    code: str | None = Field(description="Why it was rejected, machine-readable (no_face, several_faces, too_small, "
                             "...); null when accepted.")
    reason: str = Field(description="Why it was rejected, for the operator.")
    face_px: float | None
    blur: float | None
    consistency: float | None = Field(description="Cosine to the other accepted photos (leave-one-out).")


class PersonOut(_Out):
    person_id: str
    display_name: str
    watchlist: str
    notes: str
    enrolled_at: float
    expires_at: float | None
    active: bool
    photos: int | None = Field(description="Enrolled thumbnails (GET .../photos/{n} for each); null in lists.")


class PersonPage(_Out):
    items: list[PersonOut]


class EnrollOut(_Out):
    person: PersonOut
    photos: list[PhotoVerdictOut]
    look_alikes: dict[str, float] = Field(description="Listed persons these photos already match (id -> cosine).")
    gallery_version: int


class PersonPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    notes: str | None = Field(default=None, max_length=10000)
    watchlist: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    expires_at: float | None = Field(default=None, ge=0, description="Epoch seconds; null removes the expiry "
                                     "(only when the field is present).")
    reason: str = Field(min_length=1, max_length=1000, description="Why (recorded in the audit trail).")


class ErasureOut(_Out):
    """argus.operations.ErasureReceipt.to_dict(), field for field."""

    person_id_digest: str = Field(description="sha256 of the person id, first 16 hex: the receipt names nobody.")
    gallery: dict[str, int] = Field(description="Removed from the gallery: embeddings, negatives, audit entries.")
    store: dict[str, int] = Field(description="Removed from the event store, per collection.")
    not_erased_at_once: list[str] = Field(description="What cannot be erased at once, and when it goes.")


class RemovedOut(_Out):
    person_id: str
    removed: bool
    gallery_version: int


class WatchlistOut(_Out):
    name: str
    threshold: float | None
    description: str
    legal_basis: str
    updated_at: float
    updated_by: str


class WatchlistIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threshold: float | None = Field(default=None, ge=-1.0, le=1.0, description="Cosine threshold; null: default.")
    description: str = Field(default="", max_length=2000)
    legal_basis: str = Field(default="", max_length=2000, description="Authorization reference for this list.")
    reason: str = Field(min_length=1, max_length=1000)


class LocationOut(_Out):
    lat: float | None = None
    lon: float | None = None
    address: str = ""
    zone: str = ""


class CameraOut(_Out):
    camera_id: str
    name: str
    location: LocationOut
    fps: float
    enabled: bool
    timezone: str | None = Field(description="IANA time zone of the camera (for its local time); null: unset.")
    health: dict[str, Any] | None = Field(description="state, fps, last_frame_ts, frames_dropped, reconnects, "
                                          "watchdog_trips, flaps, updated_at, last_frame_age_s (null: never "
                                          "reported).")


class MeOut(_Out):
    actor: str = Field(description="What the audit trail records for this caller (key:<id>, oidc:<sub>).")
    role: str
    permissions: list[str] = Field(description="Every permission the role holds, sorted.")


class MapOut(_Out):
    image: bool = Field(description="Whether GET /api/v1/map/image serves a background image.")
    refs: list[list[float]] = Field(description="Two reference points [x, y, lat, lon] (image pixels and "
                                    "degrees) placing the image; [] without an image.")


class CandidateOut(_Out):
    person_id: str
    display_name: str
    watchlist: str
    score: float


class EmotionChangeOut(_Out):
    seq: int
    ts: float
    label: str
    confidence: float
    path: str = Field(description="What decided the label (argus.ecrl.Path): 'cnn', 'cnn+rules', "
                                  "'cnn, rules disagreed' or 'rules'.")


class AlertOut(_Out):
    alert_id: str
    event_id: str
    track_id: str
    revision: int
    withdrawn: bool
    camera_id: str
    camera_name: str
    location: LocationOut
    person_id: str
    display_name: str
    watchlist: str
    score: float
    threshold: float
    margin: float
    candidates: list[CandidateOut]
    emotion: str
    emotion_path: str = Field(
        description="What decided the track's emotion (paper 002's ECRL): 'cnn' (a class the CNN is trusted on, or "
                    "no landmark features), 'cnn+rules' (the rules agree), 'cnn, rules disagreed' (the CNN's label "
                    "kept), 'rules' (disgust: the rules win).")
    emotion_timeline: list[EmotionChangeOut] = Field(
        description="The track's emotion (smoothed, then through the ECRL decision), each change with its frame, "
                    "time, confidence and path.")
    faces_seen: int = Field(description="Faces of the track detected.")
    faces_embedded: int = Field(description="Faces of the track embedded and matched (the best ones).")
    faces_supporting: int = Field(description="Embedded faces that agree on the person.")
    score_history: list[float] = Field(description="Each embedded face's cosine to the person, in track order.")
    ts_capture: float
    ts_alert: float
    status: str
    acked_by: str | None
    acked_at: float | None
    note: str
    has_crop: bool


class AlertPage(_Out):
    items: list[AlertOut]
    next_cursor: str | None


class TriageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["acknowledge", "dismiss", "not_this_person"]
    reason: str = Field(min_length=1, max_length=1000)


class EventOut(_Out):
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
    emotion: str
    emotion_path: str = Field(description="What decided the track's emotion (as on the alert).")
    det_score: float
    box: list[float]
    ts_capture: float
    ts_match: float
    alert_id: str | None
    track_id: str
    revision: int
    matched: bool


class EventPage(_Out):
    items: list[EventOut]
    next_cursor: str | None


class AuditOut(_Out):
    seq: int
    ts: float
    actor: str
    role: str
    action: str
    subject: str | None
    details: dict[str, Any]
    hash: str


class AuditPage(_Out):
    items: list[AuditOut]
    next_cursor: str | None


class KeyOut(_Out):
    key_id: str
    name: str
    role: str
    created_at: float
    created_by: str
    revoked_at: float | None


class KeyCreatedOut(KeyOut):
    key: str = Field(description="The full API key. Shown in this response only; only its hash is stored.")


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    role: Literal["admin", "operator", "analyst", "auditor"]


PERSON_ID_DOC = f"A person id ({PERSON_ID_PATTERN}), percent-encoded as one path segment."
