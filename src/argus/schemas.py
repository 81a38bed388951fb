"""Versioned wire schemas for the four topics.

Each message is a frozen pydantic model whose ``schema_id`` names its topic and version (``argus.frames.v2``).
On the wire it is MessagePack: pixels and embeddings travel as raw bytes (JPEG, little-endian float32), never as JSON
floats, and a 1080p frame costs its JPEG size plus ~100 bytes. ``decode`` refuses anything that is not exactly a
known schema, with an error that says which field was wrong, so a malformed or future-version message is skipped and
counted instead of crashing a stage.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, TypeVar

import msgpack
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from argus.ecrl import Features
from argus.ecrl import Path as EmotionPath
from argus.errors import SchemaError
from argus.ids import PERSON_ID_PATTERN, SLUG_PATTERN

TOPIC_FRAMES = "argus.frames.v2"
TOPIC_FACES = "argus.faces.v3"
TOPIC_MATCHES = "argus.matches.v3"
TOPIC_ALERTS = "argus.alerts.v3"
#: Versions no stage reads any more, and what to do about a message of one (it is dead-lettered with this hint).
RETIRED_SCHEMAS = {
    **{f"argus.{t}.v1": "a pre-track version: drain the pipeline and upgrade every stage together (README 'Upgrading')"
       for t in ("faces", "matches", "alerts")},
    **{f"argus.{t}.v2": "a pre-ECRL version (no landmark features, no emotion path): drain the pipeline and upgrade "
                        "every stage together (README 'Upgrading')"
       for t in ("faces", "matches", "alerts")},
    "argus.frames.v1": "a pre-motion-gating frame (no keyframe flag, no motion regions): drain the pipeline and "
                       "upgrade ingest and inference together (README 'Upgrading')",
}
TOPIC_DEADLETTER = "argus.deadletter.v1"

CameraId = Annotated[str, Field(pattern=SLUG_PATTERN)]
#: Person ids follow the person-id rule (argus.ids.PERSON_ID_RULE), not the slug rule: records systems issue them.
PersonId = Annotated[str, Field(pattern=PERSON_ID_PATTERN)]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]
#: ``argus.ecrl.Path``: which way the emotion label was decided (the CNN alone, confirmed by the rules, ...).
PATHS: tuple[str, ...] = tuple(p.value for p in EmotionPath)


def _check_path(v: str) -> str:
    if v not in PATHS:
        raise ValueError(f"expected an emotion path ({', '.join(map(repr, PATHS))}), got {v!r}")
    return v


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)

    @field_validator("*")
    @classmethod
    def _fits_msgpack(cls, v: Any) -> Any:
        # Lax parsing turns "18446744073709551616" into an int MessagePack cannot carry: refuse it here, or the
        # stage that decoded it would crash re-encoding it (OverflowError) instead of dead-lettering it.
        if type(v) is int and not -(2**63) <= v < 2**64:
            raise ValueError(f"expected an integer in MessagePack's 64-bit range, got {v}")
        return v


class _Message(_Wire):
    SCHEMA: ClassVar[str]
    schema_id: str

    def key(self) -> bytes:
        """Every topic is keyed by camera: per-camera order, parallelism across cameras."""
        return str(getattr(self, "camera_id")).encode()  # noqa: B009 - every message has camera_id


class _FrameMessage(_Message):
    """A message about one camera frame: the camera, the frame's number and its capture time (the cooldown and every
    latency are measured from it). The frame-derived ids (``camera:seq:face``) rest on these three fields."""

    camera_id: CameraId
    seq: int = Field(ge=0)
    ts_capture: float = Field(gt=0)


def _f32_bytes(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, dtype="<f4").tobytes()


def _f32_array(b: bytes, name: str, n: int | None = None) -> np.ndarray:
    if len(b) % 4:
        raise SchemaError(f"{name}: expected float32 bytes (length a multiple of 4), got {len(b)} bytes")
    a = np.frombuffer(b, dtype="<f4").astype(np.float32)
    if n is not None and a.size != n:
        raise SchemaError(f"{name}: expected {n} float32 values, got {a.size}")
    return a


#: A box in frame pixels: x1, y1, x2, y2 (x2/y2 exclusive).
BoxWire = tuple[float, float, float, float]
#: Why ingest published a frame (argus.motion.Reason without "no_motion": a still frame is not published at all).
GATE_REASONS: tuple[str, ...] = ("ungated", "motion", "periodic_full_frame", "first_frame", "light_change_reset")
MAX_MOTION_REGIONS = 64  # more regions than this and ingest sends a keyframe instead: the whole frame moved


class FrameV2(_FrameMessage):
    """A sampled camera frame. Only ingest produces pixels; every later topic carries faces, not frames.

    v2 carries ingest's motion gate (argus.motion): ``keyframe`` asks inference for a full-frame detection (the
    periodic pass that finds a face standing still, the first frame, a light change, or gating off); otherwise
    ``motion`` lists where something moved, in frame pixels, and the detector needs to look only there and around
    the camera's open tracks. Frames in which nothing moved are not published at all (counted by ingest). The
    defaults (a keyframe, no regions) are exactly v1's meaning: detect everywhere.
    """

    SCHEMA: ClassVar[str] = TOPIC_FRAMES
    schema_id: Literal["argus.frames.v2"] = "argus.frames.v2"
    ts_ingest: float = Field(gt=0)
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    jpeg: bytes = Field(min_length=4)
    keyframe: bool = True
    gate: str = "ungated"
    motion: tuple[BoxWire, ...] = Field(default=(), max_length=MAX_MOTION_REGIONS)

    @field_validator("gate")
    @classmethod
    def _known_gate(cls, v: str) -> str:
        if v not in GATE_REASONS:
            raise ValueError(f"expected a gate reason ({', '.join(map(repr, GATE_REASONS))}), got {v!r}")
        return v

    @field_validator("motion")
    @classmethod
    def _finite_boxes(cls, v: tuple[BoxWire, ...]) -> tuple[BoxWire, ...]:
        for b in v:
            if not all(np.isfinite(x) for x in b) or not (b[2] > b[0] and b[3] > b[1]):
                raise ValueError(f"expected finite boxes with x2 > x1 and y2 > y1, got {list(b)}")
        return v


class Quality(_Wire):
    size: float = Field(ge=0)
    blur: float = Field(ge=0)


class FaceV3(_Wire):
    """One detected face and the track it belongs to. Only the faces the tracker picked for identification carry an
    embedding and a crop (``embedded``); the others are counted and tracked, not named.

    v3 adds what the matcher needs to decide the *track's* emotion the way paper 002 does (ECRL): the face's three
    landmark features (``ecrl``: brow height, brow width, mouth curvature as :class:`argus.ecrl.Features` computes
    them, absolute — the matcher makes them relative to the person's neutral baseline along the track; empty when
    no mesh was run), and how many test-time-augmented views were averaged into ``emotion`` (paper 003; 1 = plain).
    """

    index: int = Field(ge=0)
    track_id: str = Field(min_length=1)
    track_state: Literal["tentative", "confirmed", "lost"]
    face_score: Unit  # argus.tracking.face_score: size x sharpness x frontal pose x detector score
    box: tuple[float, float, float, float]
    landmarks: tuple[float, ...] = Field(min_length=10, max_length=10)
    det_score: Unit
    quality: Quality
    embedded: bool
    embedding: bytes  # little-endian float32, unit norm; empty when not embedded
    emotion: tuple[float, ...] = Field(min_length=7, max_length=7)
    crop_jpeg: bytes  # the aligned crop the embedder saw; empty when not embedded
    ecrl: tuple[float, ...] = ()  # () or (brow_height, brow_width, mouth_curvature), absolute (argus.ecrl.Features)
    emotion_views: int = Field(default=1, ge=1)  # TTA views averaged into ``emotion`` (1 = one plain view)

    @field_validator("ecrl")
    @classmethod
    def _three_finite_features(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if len(v) not in (0, 3) or not all(np.isfinite(x) for x in v):
            raise ValueError(f"expected no ECRL features or 3 finite ones, got {list(v)}")
        return v

    def ecrl_features(self) -> Features | None:
        """The face's ECRL features, or None when inference ran no mesh on it."""
        if not self.ecrl:
            return None
        return Features(brow_height=self.ecrl[0], brow_width=self.ecrl[1], mouth_curvature=self.ecrl[2])

    def embedding_array(self) -> np.ndarray:
        return _f32_array(self.embedding, "embedding")


class EndedTrackV2(_Wire):
    """A track that ended in this frame (the person left, the camera reset): downstream state for it can go."""

    track_id: str = Field(min_length=1)
    reason: str
    first_seq: int = Field(ge=0)
    last_seq: int = Field(ge=0)
    hits: int = Field(ge=0)


class FacesV3(_FrameMessage):
    """The faces of one frame with their tracks. A frame with neither faces nor ended tracks produces no message."""

    SCHEMA: ClassVar[str] = TOPIC_FACES
    schema_id: Literal["argus.faces.v3"] = "argus.faces.v3"
    ts_infer: float = Field(gt=0)
    frame_width: int = Field(gt=0)
    frame_height: int = Field(gt=0)
    detector: str
    embedder: str
    faces: tuple[FaceV3, ...]
    ended: tuple[EndedTrackV2, ...] = ()


class CandidateV1(_Wire):
    person_id: PersonId
    display_name: str
    watchlist: str
    score: float


class EmotionChangeV3(_Wire):
    """The track's emotion changed to ``label`` at frame ``seq`` (argus.emotion_track): the smoothed CNN label after
    paper 002's decision, ``path`` saying what decided it (an ``argus.ecrl.Path`` value)."""

    seq: int = Field(ge=0)
    ts: float
    label: str
    confidence: Unit
    path: str = EmotionPath.cnn.value

    _path = field_validator("path")(_check_path)


class TrackMatchV3(_Wire):
    """A track's decision, revised as better faces arrive, with the evidence a reviewer needs to judge it.

    ``revision`` counts the decisions published for this track (1 = first); ``matched`` False withdraws an earlier
    match (later faces disagreed). The face fields are the track's best embedded face so far.
    """

    track_id: str = Field(min_length=1)
    revision: int = Field(ge=1)
    matched: bool
    outcome: str  # argus.decisions.TrackOutcome
    face_index: int = Field(ge=0)  # the face of this frame that led to this revision
    event_id: str
    box: tuple[float, float, float, float]
    det_score: Unit
    quality: Quality
    emotion: tuple[float, ...] = Field(min_length=7, max_length=7)  # smoothed along the track, not one frame's
    emotion_label: str  # the track's label: smoothed, then confirmed or corrected by the ECRL rules
    emotion_path: str  # the argus.ecrl.Path that decided ``emotion_label``
    emotion_timeline: tuple[EmotionChangeV3, ...] = ()  # when the track's emotion changed (bounded)
    crop_jpeg: bytes
    person_id: PersonId
    display_name: str
    watchlist: str
    score: float  # the track-level score (mean of the person's best face scores)
    threshold: float
    margin: float  # lead over the best other identity, cohort faces included: small = ambiguous
    candidates: tuple[CandidateV1, ...]  # top-k of the best face, best first, one per person
    faces_seen: int = Field(ge=1)
    faces_embedded: int = Field(ge=1)
    faces_supporting: int = Field(ge=0)
    score_history: tuple[float, ...]  # the person's score on each embedded face, in capture order
    first_seq: int = Field(ge=0)
    ts_first: float = Field(gt=0)

    _path = field_validator("emotion_path")(_check_path)


class MatchesV3(_FrameMessage):
    SCHEMA: ClassVar[str] = TOPIC_MATCHES
    schema_id: Literal["argus.matches.v3"] = "argus.matches.v3"
    ts_match: float = Field(gt=0)
    gallery_version: int = Field(ge=0)
    matches: tuple[TrackMatchV3, ...] = Field(min_length=1)


class LocationV1(_Wire):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    address: str
    zone: str


class AlertV3(_Message):
    """Who was seen, where and when, with the evidence (score, threshold, margin, runner-ups, crop, the track).

    One alert per track: later, better faces *revise* it (same ``alert_id``, higher ``revision``; ``withdrawn``
    when the track no longer names anybody) — never a second alert for the same visit.
    """

    SCHEMA: ClassVar[str] = TOPIC_ALERTS
    schema_id: Literal["argus.alerts.v3"] = "argus.alerts.v3"
    alert_id: str
    event_id: str
    track_id: str = ""
    revision: int = Field(default=1, ge=1)
    withdrawn: bool = False
    faces_seen: int = Field(default=1, ge=1)
    faces_embedded: int = Field(default=1, ge=1)
    faces_supporting: int = Field(default=1, ge=0)
    score_history: tuple[float, ...] = ()
    emotion_timeline: tuple[EmotionChangeV3, ...] = ()
    camera_id: CameraId
    camera_name: str
    location: LocationV1
    person_id: PersonId
    display_name: str
    watchlist: str
    score: float
    threshold: float
    margin: float
    candidates: tuple[CandidateV1, ...]
    emotion: str
    emotion_path: str = EmotionPath.cnn.value  # what decided ``emotion`` (argus.ecrl.Path); alerts before v3: "cnn"
    emotion_probs: tuple[float, ...] = Field(min_length=7, max_length=7)
    det_score: Unit
    quality: Quality
    box: tuple[float, float, float, float]
    crop_jpeg: bytes
    seq: int = Field(ge=0)
    ts_capture: float = Field(gt=0)
    ts_alert: float = Field(gt=0)
    gallery_version: int = Field(ge=0)

    _path = field_validator("emotion_path")(_check_path)


MESSAGE_TYPES: dict[str, type[_Message]] = {m.SCHEMA: m for m in (FrameV2, FacesV3, MatchesV3, AlertV3)}
M = TypeVar("M", bound=_Message)


def encode(msg: _Message) -> bytes:
    return msgpack.packb(msg.model_dump(mode="python"), use_bin_type=True)


def decode(data: bytes, expected: type[M]) -> M:
    """Decode bytes into ``expected``; raise SchemaError naming what was wrong (never a library traceback)."""
    try:
        raw: Any = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as e:  # msgpack raises several unrelated exception types on garbage
        raise SchemaError(f"not a MessagePack message ({len(data)} bytes): {e}") from e
    if not isinstance(raw, dict):
        raise SchemaError(f"expected a map with a schema_id, got {type(raw).__name__}")
    sid = raw.get("schema_id")
    if sid != expected.SCHEMA:
        known = ", ".join(sorted(MESSAGE_TYPES))
        hint = f": {RETIRED_SCHEMAS[sid]}" if isinstance(sid, str) and sid in RETIRED_SCHEMAS else ""
        raise SchemaError(f"expected schema {expected.SCHEMA!r}, got {sid!r}{hint} (known schemas: {known})")
    try:
        return expected.model_validate(raw)
    except ValidationError as e:
        errs = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()[:5])
        raise SchemaError(f"{sid}: {errs}") from e


def embedding_bytes(v: np.ndarray) -> bytes:
    return _f32_bytes(v)


def embedding_from_bytes(b: bytes, dim: int) -> np.ndarray:
    return _f32_array(b, "embedding", dim)


class DeadLetterV1(_Message):
    """A message a stage could not process, kept with the reason so nothing is silently lost."""

    SCHEMA: ClassVar[str] = TOPIC_DEADLETTER
    schema_id: Literal["argus.deadletter.v1"] = "argus.deadletter.v1"
    camera_id: str  # may be unknown ("") when the message could not be decoded at all
    stage: str
    source_topic: str
    source_partition: int
    source_offset: int
    error_kind: str
    error: str
    ts: float
    payload: bytes

    def key(self) -> bytes:
        return self.camera_id.encode()


MESSAGE_TYPES[DeadLetterV1.SCHEMA] = DeadLetterV1


#: Small, compacted, keyed by ``<stage>/<instance>``: each stage instance's latest state, what
#: ``argus run <stage> --exit-when-drained`` reads to know that its upstream has finished (argus.runtime.drain).
TOPIC_CONTROL = "argus.control.v1"


class StageStateV1(_Message):
    """One stage instance's state on the control topic: ``started`` (re-sent as a heartbeat every few seconds),
    ``finished`` (every output flushed and committed: ingest's sources all ended, or a consumer drained) or
    ``stopped`` (SIGTERM before it finished). ``ts`` older than ``lease_s`` means the instance died or hung without
    saying so (SIGKILL, a lost node). Ingest's instance is its shard (``shard`` of ``shards``), so a restarted
    ingest replaces its own record instead of leaving a dead one behind."""

    SCHEMA: ClassVar[str] = TOPIC_CONTROL
    schema_id: Literal["argus.control.v1"] = "argus.control.v1"
    stage: str = Field(pattern=SLUG_PATTERN)
    instance: str = Field(min_length=1, max_length=200)
    state: Literal["started", "finished", "stopped"]
    shard: int = Field(default=0, ge=0)
    shards: int = Field(default=1, ge=1)
    ts_started: float = Field(gt=0)
    ts: float = Field(gt=0)
    lease_s: float = Field(gt=0)

    def key(self) -> bytes:
        return f"{self.stage}/{self.instance}".encode()


MESSAGE_TYPES[StageStateV1.SCHEMA] = StageStateV1
