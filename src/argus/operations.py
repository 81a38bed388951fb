"""The operator actions, implemented once: the HTTP API (argus.api) and the CLI both call these functions.

Each action applies the rule, changes the gallery and the store together, and appends one record to the store's
hash-chained audit trail (argus.audit_trail) naming who did it, in which role, about whom (``subject``) and with
what effect (``details``). Person ids go in ``subject`` only — never in ``details``, nor display names or notes —
so an erasure can blank the subject and the chain still verifies while no record names the person any more.

Where the gallery keeps its own audit log (enroll, update, remove, watch-list, negative evidence, erase) the
store's record repeats the gallery's version and embeddings digest, so the two logs can be checked against each
other.

Calling convention (what argus.api and the CLI use): ``f(ctx, <the subject>, *, actor=name, role=role, ...)``,
where ``ctx`` is a :class:`Services` or a :class:`~argus.runtime.resources.Resources` (its gallery, store, face
pipeline — loaded only by the actions that need it — and settings), and history queries take the store's filter
objects (argus.store.base.AlertFilter / EventFilter / AuditFilter; a zone is resolved by :func:`resolve_cameras`).

Reads are audited too (an alert viewed, its crop fetched, a history query or export): who looked at whom is what
an oversight body asks about a watch-list system.
"""

from __future__ import annotations

import csv
import getpass
import io
import json
import logging
import time
import weakref
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from argus.decisions import Thresholds
from argus.enroll import PhotoChecks, PhotoVerdicts, check_photos, look_alikes
from argus.errors import ConfigError, InputError, NoFaceError
from argus.faces.align import EMBED_SIZE
from argus.faces.embedder import DEFAULT_MATCH_THRESHOLD
from argus.gallery.audit import ERASED_PREFIX, AuditEntry, erased_token, scrub_text
from argus.gallery.base import UNSET, Gallery, Person, Unset, WatchlistSpec, check_person_id, embeddings_sha256
from argus.imaging import decode_image
from argus.store.base import (
    AlertFilter,
    AlertNotFoundError,
    AlertRecord,
    AuditFilter,
    EventFilter,
    EventStore,
    Page,
    PersonRecord,
    SightingEvent,
    check_page_limit,
)
from argus.topology import ALL_TOPICS

if TYPE_CHECKING:
    from argus.audit_trail import AuditRecord
    from argus.faces.pipeline import FacePipeline
    from argus.runtime.resources import Resources

log = logging.getLogger(__name__)

ROLES: tuple[str, ...] = ("admin", "operator", "analyst", "auditor")
TriageAction = Literal["acknowledge", "dismiss", "not_this_person"]
#: What each triage action sets the alert's status to.
TRIAGE_STATUS: dict[str, str] = {"acknowledge": "acknowledged", "dismiss": "dismissed",
                                 "not_this_person": "not_this_person"}
#: Rows per store page while exporting: big enough to keep round trips few, small enough to stream.
EXPORT_PAGE = 500


@dataclass(frozen=True, kw_only=True)
class Actor:
    """Who performs an action and in which role: the API's authenticated principal, or the CLI's OS user."""

    name: str
    role: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InputError(f"actor name: expected a non-empty string, got {self.name!r}")
        if self.role not in ROLES:
            raise InputError(f"actor role: expected one of {list(ROLES)}, got {self.role!r}")

    @classmethod
    def cli(cls, name: str | None = None) -> Actor:
        """The CLI runs with the rights of whoever can reach the gallery files and the store: an admin, named by
        ``--actor`` or else the OS user, so the audit trail never says "unknown"."""
        if not name:
            try:
                name = getpass.getuser()
            except (KeyError, OSError) as e:  # no passwd entry, no LOGNAME: refuse rather than guess
                raise ConfigError("cannot tell who runs this command: pass --actor NAME") from e
        return cls(name=name, role="admin")


@dataclass(frozen=True, kw_only=True)
class Services:
    """What the actions work on. ``pipeline`` is needed by enroll and not-this-person only (an API replica that
    only serves queries need not load the models); ``thresholds`` only for the look-alike warning on enroll."""

    gallery: Gallery
    store: EventStore
    pipeline: FacePipeline | Callable[[], FacePipeline] | None = None  # a callable: loaded on first need
    checks: PhotoChecks = field(default_factory=PhotoChecks)
    thresholds: Thresholds | None = None
    clock: Callable[[], float] = time.time

    @classmethod
    def from_resources(cls, res: Resources) -> Services:
        """The floors are the settings' (``ARGUS_MIN_FACE_SIZE``, ``ARGUS_MIN_QUALITY_BLUR``): a face the matcher
        would not name is not enrolled either. The pipeline is taken from ``res`` only when an action needs it."""
        s = res.settings
        return cls(gallery=res.gallery, store=res.store, pipeline=lambda: res.pipeline,
                   checks=PhotoChecks(min_face_px=float(s.min_face_size), min_blur=float(s.min_quality_blur)),
                   thresholds=s.thresholds())

    def need_pipeline(self, what: str) -> FacePipeline:
        if self.pipeline is None:
            raise ConfigError(f"{what} needs the face models: build Services with a pipeline")
        if callable(self.pipeline) and not hasattr(self.pipeline, "process"):
            return self.pipeline()
        return self.pipeline  # type: ignore[return-value]

    def threshold_for(self, watchlist: str) -> float:
        spec = self.gallery.watchlist(watchlist)
        if spec is not None and spec.threshold is not None:
            return float(spec.threshold)
        return self.thresholds.for_watchlist(watchlist) if self.thresholds else DEFAULT_MATCH_THRESHOLD


_FOR_RESOURCES: weakref.WeakKeyDictionary[Resources, Services] = weakref.WeakKeyDictionary()


def _svc(ctx: Services | Resources) -> Services:
    if isinstance(ctx, Services):
        return ctx
    cached = _FOR_RESOURCES.get(ctx)  # one Services per Resources: the settings' thresholds parsed once
    if cached is None:
        cached = _FOR_RESOURCES[ctx] = Services.from_resources(ctx)
    return cached


#: What a person id typed into a free-text detail (a reason) becomes: the record's subject names them already.
SUBJECT_MARK = "<subject>"


def _scrub(text: str, person_id: str) -> str:
    """``text`` without ``person_id`` as a whole token (the gallery log's rule, argus.gallery.audit.scrub_text).
    The chain's hash covers the details, so they cannot be redacted later the way a subject is: an id an operator
    typed into a reason is taken out before the record is written."""
    return scrub_text(text, person_id).replace(erased_token(person_id), SUBJECT_MARK)


def _audit(svc: Services, actor: Actor, action: str, *, subject: str | None = None,
           details: Mapping[str, Any], about: str | None = None) -> AuditRecord:
    """``about``: the person an erase record concerns without naming them (its subject is None)."""
    pid = about or subject
    clean = {k: _scrub(v, pid) if pid and isinstance(v, str) else v for k, v in details.items()}
    return svc.store.append_audit(actor=actor.name, role=actor.role, action=action, subject=subject, details=clean)


def audit(ctx: Services | Resources, *, actor: str, role: str, action: str, subject: str | None = None,
          details: Mapping[str, Any]) -> AuditRecord:
    """Append one record for an action done outside this module (an image served by the API)."""
    return _audit(_svc(ctx), Actor(name=actor, role=role), action, subject=subject, details=details)


def _reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InputError(f"reason: expected a non-empty string (recorded in the audit trail), got {reason!r}")
    return reason


def _last_gallery_entry(gallery: Gallery, action: str, person_id: str) -> AuditEntry | None:
    """The gallery's own audit entry for the change just made, to copy its version and digest."""
    for e in reversed(gallery.audit()):
        if e.action == action and e.person_id == person_id:
            return e
    return None


def _record_person(svc: Services, person: Person, *, actor: Actor, reason: str, status: str,
                   images: int | None = None) -> None:
    """Mirror the gallery entry into the store's persons collection (who the person is, for analysts)."""
    attrs: dict[str, Any] = {"gallery_version": svc.gallery.version, "changed_by": actor.name, "reason": reason,
                             "status": status, "expires_at": person.expires_at}
    old = svc.store.get_person(person.person_id)
    if images is None and old is not None:
        images = old.attributes.get("images")
    if images is not None:
        attrs["images"] = images
    svc.store.upsert_person(PersonRecord(person_id=person.person_id, display_name=person.display_name,
                                         watchlist=person.watchlist, note=person.notes, attributes=attrs,
                                         updated_at=svc.clock()))


# ---- enroll, update, remove, erase --------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class EnrollOutcome(PhotoVerdicts):
    """What an enrolment did: every photo's verdict (in upload order), the person as enrolled — None when no
    photo passed, in which case nothing was changed — the gallery version and embeddings digest (as the gallery's
    and the store's audit logs both record them), and listed persons the photos already match (person id ->
    cosine), which the operator should see before the camera confuses the two."""

    person: Person | None
    gallery_version: int
    embeddings_sha256: str = ""
    look_alikes: dict[str, float] = field(default_factory=dict)
    audit_seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"person": None if self.person is None else self.person.to_dict(), "accepted": len(self.accepted),
                "rejected": len(self.rejected), "photos": [p.to_dict() for p in self.photos],
                "gallery_version": self.gallery_version, "embeddings_sha256": self.embeddings_sha256,
                "look_alikes": self.look_alikes, "audit_seq": self.audit_seq}


def enroll_person(ctx: Services | Resources, *, person_id: str, display_name: str,
                  photos: Sequence[tuple[str, bytes | None]], actor: str, role: str, reason: str,
                  watchlist: str = "default", notes: str = "", expires_at: float | None = None) -> EnrollOutcome:
    """Check every photo, enroll the person from those that pass (re-enrolling replaces their embeddings), store
    the record and the thumbnails, audit ``enroll``. When no photo passes nothing changes and nothing is audited
    (the outcome's ``person`` is None and each photo says why); bad arguments are an InputError before any check."""
    svc, who, reason = _svc(ctx), Actor(name=actor, role=role), _reason(reason)
    person = Person(person_id=person_id, display_name=display_name, watchlist=watchlist, notes=notes,
                    enrolled_at=svc.clock(), expires_at=expires_at)
    checked = check_photos(svc.need_pipeline("enrolment"), photos, svc.checks)
    if not checked.accepted:
        return EnrollOutcome(person=None, photos=checked.photos, gallery_version=svc.gallery.version)
    emb = checked.embeddings()
    similar = look_alikes(svc.gallery, person, emb, svc.threshold_for(watchlist))
    svc.gallery.enroll(person, emb, actor=who.name, reason=reason)
    entry = _last_gallery_entry(svc.gallery, "enroll", person.person_id)
    version = entry.version if entry is not None else svc.gallery.version
    digest = entry.embeddings_sha256 if entry is not None else embeddings_sha256(emb)
    _record_person(svc, person, actor=who, reason=reason, status="enrolled", images=len(checked.accepted))
    svc.store.put_person_photos(person.person_id, checked.thumbnails())
    rec = _audit(svc, who, "enroll", subject=person.person_id, details={
        "reason": reason, "watchlist": watchlist, "gallery_version": version, "embeddings_sha256": digest,
        "accepted": len(checked.accepted), "rejected": len(checked.rejected),
        "rejected_codes": [p.code for p in checked.rejected], "look_alikes": len(similar),
        "expires_at": expires_at,
    })
    return EnrollOutcome(person=person, photos=checked.photos, gallery_version=version, embeddings_sha256=digest,
                         look_alikes=similar, audit_seq=rec.seq)


#: The API's name for :func:`enroll_person`.
enroll = enroll_person


def update_person(ctx: Services | Resources, person_id: str, *, actor: str, role: str, reason: str,
                  display_name: str | None = None, notes: str | None = None, watchlist: str | None = None,
                  expires_at: float | Unset | None = UNSET) -> Person:
    """Change who a person is or for how long they are searched, not their face; audit ``update`` with the names
    of the fields changed (the new values can be personal data, so they stay in the gallery and the store)."""
    svc, who, reason = _svc(ctx), Actor(name=actor, role=role), _reason(reason)
    person = svc.gallery.update_person(person_id, display_name=display_name, notes=notes, watchlist=watchlist,
                                       expires_at=expires_at, actor=who.name, reason=reason)
    changed = [name for name, v in (("display_name", display_name), ("notes", notes), ("watchlist", watchlist))
               if v is not None] + ([] if expires_at is UNSET else ["expires_at"])
    _record_person(svc, person, actor=who, reason=reason, status="enrolled")
    entry = _last_gallery_entry(svc.gallery, "update", person.person_id)
    _audit(svc, who, "update", subject=person.person_id, details={
        "reason": reason, "fields": changed, "watchlist": person.watchlist, "expires_at": person.expires_at,
        "gallery_version": entry.version if entry is not None else svc.gallery.version})
    return person


def remove_person(ctx: Services | Resources, person_id: str, *, actor: str, role: str, reason: str) -> int:
    """Take a person off the watch-list (the history of their sightings stays; that is :func:`erase_person`).
    Their photo thumbnails go: a person nobody searches for needs no biometric picture on file. Returns the
    gallery version after the change; an unknown person is an InputError (from the gallery)."""
    svc, who, reason = _svc(ctx), Actor(name=actor, role=role), _reason(reason)
    check_person_id(person_id)
    gone = svc.gallery.get(person_id)
    svc.gallery.remove(person_id, actor=who.name, reason=reason)
    entry = _last_gallery_entry(svc.gallery, "remove", person_id)
    if gone is not None:
        _record_person(svc, gone, actor=who, reason=reason, status="removed")
    svc.store.put_person_photos(person_id, [])
    _audit(svc, who, "remove", subject=person_id, details={
        "reason": reason, "gallery_version": entry.version if entry is not None else svc.gallery.version,
        "embeddings_sha256": entry.embeddings_sha256 if entry is not None else "",
        "n_embeddings": entry.n_embeddings if entry is not None else 0})
    return svc.gallery.version


@dataclass(frozen=True, kw_only=True)
class ErasureReceipt:
    """What an erasure removed (counts per gallery part and store collection) and what it could not remove at
    once, in words the requester can be given: Kafka keeps records until its retention deletes them, backups and
    copies already sent elsewhere are outside Argus. ``person_id_digest`` is how the gallery's log now names the
    person (sha256, first 16 hex), for the requester who knows the id; the store's ``erase`` record has neither."""

    person_id_digest: str
    gallery: dict[str, int]
    store: dict[str, int]
    not_erased_at_once: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"person_id_digest": self.person_id_digest, "gallery": dict(self.gallery), "store": dict(self.store),
                "not_erased_at_once": list(self.not_erased_at_once)}


def _kafka_retention_hours(topic: str) -> float:
    from argus.bus.kafka import topic_config

    return int(topic_config(topic)["retention.ms"]) / 3_600_000


def _gallery_topic_line() -> str:
    """The replicated gallery (ARGUS_GALLERY_SYNC=bus): what compaction does with an erased person, and when."""
    from argus.gallery.replication import SEGMENT_MS, TOMBSTONE_RETENTION_MS
    from argus.topology import TOPIC_GALLERY

    return (f"Kafka topic {TOPIC_GALLERY} (when the gallery replicates through Kafka): every replica drops the "
            f"person at once, and their snapshots at the next snapshot; the person's earlier records (their "
            f"embeddings) are superseded by a tombstone keyed by a digest of the id, and the broker deletes them "
            f"when it compacts the topic (segments roll every {SEGMENT_MS / 3_600_000:g} h: within about that, plus "
            f"the log cleaner's delay); the tombstone itself, which names nobody, is deleted "
            f"{TOMBSTONE_RETENTION_MS / 3_600_000:g} h later")


def not_erasable_now() -> tuple[str, ...]:
    """Where a person's data may still be after an erasure, and until when. Topic names and retentions come from
    argus.topology and the topic configs Argus creates (argus.bus.kafka.topic_config), so this list follows them."""
    out = [f"Kafka topic {t}: records written before the erasure (frames, face crops, matches, alerts or dead "
           f"letters that may show or name the person) cannot be deleted one by one; they are deleted when the "
           f"topic's retention ({_kafka_retention_hours(t):g} h) passes" for t in ALL_TOPICS]
    out.append(_gallery_topic_line())
    out += [
        "Backups of the event store (MongoDB dumps, SQLite file copies) and of the gallery directory taken before "
        "the erasure keep the person until they expire under the site's backup policy; restoring one must be "
        "followed by erasing the person again",
        "Alerts already delivered to sinks (webhook receivers, log files, Kafka consumers of the alerts topic) "
        "are outside Argus: ask their owners to delete them",
    ]
    return tuple(out)


def erase_person(ctx: Services | Resources, person_id: str, *, actor: str, role: str,
                 reason: str) -> ErasureReceipt:
    """Erase a person everywhere Argus can (the right to erasure): gallery entry, embeddings, negative evidence and
    the gallery's audit mentions; the store's events, alerts, crops, person record and photos, their place in
    others' candidate lists and the audit trail's subjects. The ``erase`` record holds the counts and neither the
    id nor a digest of it (its gallery version links it to the gallery log's entry)."""
    svc, who, reason = _svc(ctx), Actor(name=actor, role=role), _reason(reason)
    check_person_id(person_id)
    # The store first: its erasure is idempotent, the gallery's is not (a second call on a fully erased person is
    # "unknown"), so a retry after a crash between the two still completes both.
    s = svc.store.erase_person(person_id)
    try:
        g = svc.gallery.erase(person_id, actor=who.name, reason=reason)
    except InputError:
        if not any(s.values()):
            raise  # known nowhere: a typo, not an erasure
        g = {"embeddings": 0, "negatives": 0, "audit_entries_redacted": 0}  # the gallery had already forgotten
    _audit(svc, who, "erase", subject=None, about=person_id, details={
        "reason": reason, "gallery": dict(g), "store": dict(s), "gallery_version": svc.gallery.version})
    log.info("erasure by %s: gallery %s, store %s", who.name, g, s)
    return ErasureReceipt(person_id_digest=erased_token(person_id).removeprefix(ERASED_PREFIX), gallery=dict(g),
                          store=dict(s), not_erased_at_once=not_erasable_now())


def set_watchlist(ctx: Services | Resources, *, name: str, threshold: float | None, actor: str, role: str,
                  reason: str, description: str = "", legal_basis: str = "") -> WatchlistSpec:
    """Create or change a watch-list's spec: its own threshold and the authorization it rests on."""
    svc, who, reason = _svc(ctx), Actor(name=actor, role=role), _reason(reason)
    spec = WatchlistSpec(name=name, threshold=threshold, description=description, legal_basis=legal_basis,
                         updated_at=svc.clock(), updated_by=who.name)
    svc.gallery.set_watchlist(spec, actor=who.name, reason=reason)
    stored = svc.gallery.watchlist(name) or spec
    _audit(svc, who, "watchlist", details={"reason": reason, **stored.to_dict(),
                                           "gallery_version": svc.gallery.version})
    return stored


# ---- triage --------------------------------------------------------------------------------------------------------
def _get_alert(svc: Services, alert_id: str) -> AlertRecord:
    if not isinstance(alert_id, str) or not alert_id:
        raise InputError(f"alert_id: expected a non-empty string, got {alert_id!r}")
    rec = svc.store.get_alert(alert_id)
    if rec is None:
        raise AlertNotFoundError(f"alert {alert_id!r}: expected an existing alert id, got an unknown one")
    return rec


def embed_alert_crop(pipeline: FacePipeline, crop_jpeg: bytes, *, where: str) -> np.ndarray:
    """The embedding of an alert's evidence crop, as one (1, dim) float32 row.

    ``crop_jpeg`` is the *aligned* crop the embedder saw (services/inference/stage.py encodes
    ``FrameFaces.crops[j]``, 150 x 150), so it is embedded as it is, not detected and aligned a second time: that
    would resample an image already on the embedder's template. The JPEG round trip barely moves the embedding
    (cosine >= 0.998 to the original on 5 real faces at quality 70 and 85). A crop of another size (a frame crop
    from some other writer) goes through detection and alignment and must hold exactly one face.
    """
    if not crop_jpeg:
        raise InputError(f"{where}: has no stored crop (ARGUS_STORE_CROPS off, or the crop expired), so no negative "
                         "evidence can be taken from it")
    img = decode_image(bytes(crop_jpeg), where=f"{where} crop")
    if img.shape[:2] == (EMBED_SIZE, EMBED_SIZE):
        return pipeline.embedder.embed(np.ascontiguousarray(img[None]))
    faces = pipeline.process([img])[0]
    if len(faces) != 1:
        raise NoFaceError(f"{where} crop: expected exactly one face, got {len(faces)}")
    return faces[0].embedding[None].astype(np.float32)


def triage_alert(ctx: Services | Resources, alert_id: str, *, action: str, actor: str, role: str,
                 reason: str = "") -> AlertRecord:
    """Acknowledge, dismiss (false alarm) or say "not this person": a dismissal that also records the alert's face
    as negative evidence for the person it named, so the matcher stops naming them for faces like it. Not this
    person needs a reason (it changes what the matcher does); the others take one as the alert's note."""
    svc, who = _svc(ctx), Actor(name=actor, role=role)
    if action not in TRIAGE_STATUS:
        raise InputError(f"triage action: expected one of {list(TRIAGE_STATUS)}, got {action!r}")
    rec = _get_alert(svc, alert_id)
    person_id = rec.alert.person_id
    details: dict[str, Any] = {"alert_id": alert_id, "action": action, "status": TRIAGE_STATUS[action],
                               "previous_status": rec.status, "reason": reason}
    if action == "not_this_person":
        reason = _reason(reason)
        emb = embed_alert_crop(svc.need_pipeline("not-this-person"), rec.alert.crop_jpeg, where=f"alert {alert_id}")
        svc.gallery.add_negative(person_id, emb, actor=who.name, reason=reason, ref=alert_id)
        entry = _last_gallery_entry(svc.gallery, "negative", person_id)
        details.update(negatives=int(emb.shape[0]), gallery_version=svc.gallery.version,
                       embeddings_sha256=entry.embeddings_sha256 if entry is not None else embeddings_sha256(emb))
    out = svc.store.set_alert_status(alert_id, TRIAGE_STATUS[action], actor=who.name, note=reason)
    _audit(svc, who, "alert.triage", subject=person_id, details=details)
    return out


#: The API's name for :func:`triage_alert`.
triage = triage_alert


def view_alert(ctx: Services | Resources, alert_id: str, *, actor: str, role: str) -> AlertRecord:
    svc = _svc(ctx)
    rec = _get_alert(svc, alert_id)
    _audit(svc, Actor(name=actor, role=role), "alert.view", subject=rec.alert.person_id,
           details={"alert_id": alert_id})
    return rec


def alert_crop(ctx: Services | Resources, alert_id: str, *, actor: str, role: str) -> bytes:
    """The evidence image (JPEG); an alert without a stored crop is an InputError saying so."""
    svc = _svc(ctx)
    rec = _get_alert(svc, alert_id)
    if not rec.alert.crop_jpeg:
        raise InputError(f"alert {alert_id!r}: expected a stored crop, got none (ARGUS_STORE_CROPS off or expired)")
    _audit(svc, Actor(name=actor, role=role), "alert.crop", subject=rec.alert.person_id,
           details={"alert_id": alert_id, "image": "crop", "bytes": len(rec.alert.crop_jpeg)})
    return bytes(rec.alert.crop_jpeg)


class PhotoNotFoundError(InputError):
    """The person an alert names has no enrolled photo in the store (enrolled before photos were kept)."""


def enrolled_photo(ctx: Services | Resources, alert_id: str, *, actor: str, role: str) -> bytes:
    """The first enrolled thumbnail of the person the alert names, to set beside its crop; audited like the crop
    (seeing a face is an access to biometric data)."""
    svc = _svc(ctx)
    rec = _get_alert(svc, alert_id)
    photos = svc.store.get_person_photos(rec.alert.person_id)
    if not photos:
        raise PhotoNotFoundError(f"no enrolled photo for the person of alert {alert_id!r}")
    _audit(svc, Actor(name=actor, role=role), "alert.crop", subject=rec.alert.person_id,
           details={"alert_id": alert_id, "image": "enrolled", "bytes": len(photos[0])})
    return bytes(photos[0])


# ---- history ------------------------------------------------------------------------------------------------------
def resolve_cameras(ctx: Services | Resources, *, camera_ids: Sequence[str] | None = None,
                    zone: str | None = None) -> tuple[str, ...] | None:
    """Camera and zone filters as the store's camera-id tuple: a zone is the cameras whose location says so (an
    unknown zone matches nothing rather than everything); both given means cameras in both."""
    ids = None if camera_ids is None else tuple(camera_ids)
    if zone is None:
        return ids
    if not isinstance(zone, str):
        raise InputError(f"zone: expected a string, got {type(zone).__name__}")
    in_zone = sorted(c.camera_id for c in _svc(ctx).store.list_cameras() if c.location.zone == zone)
    return tuple(in_zone) if ids is None else tuple(c for c in ids if c in set(in_zone))


def _filter_details(flt: AlertFilter | EventFilter | AuditFilter, hidden: str) -> dict[str, Any]:
    """The filter as audited: every field set, but the person id (field ``hidden``), which goes to ``subject``."""
    return {f.name: (list(v) if isinstance(v, tuple) else v) for f in fields(flt)
            if f.name != hidden and (v := getattr(flt, f.name)) is not None}


def _audited_page(svc: Services, who: Actor, action: str, flt: AlertFilter | EventFilter | AuditFilter,
                  hidden: str, page: Page[Any], cursor: str | None) -> Page[Any]:
    """Record who read which part of the history: the filter (its person id as the subject) and how much came back."""
    _audit(svc, who, action, subject=getattr(flt, hidden), details={
        "filter": _filter_details(flt, hidden), "count": len(page.items), "cursor": cursor is not None})
    return page


def query_alerts(ctx: Services | Resources, flt: AlertFilter, *, actor: str, role: str, limit: int = 100,
                 cursor: str | None = None) -> Page[AlertRecord]:
    svc = _svc(ctx)
    page = svc.store.page_alerts(flt, limit=check_page_limit(limit), cursor=cursor)
    return _audited_page(svc, Actor(name=actor, role=role), "alerts.query", flt, "person_id", page, cursor)


def query_events(ctx: Services | Resources, flt: EventFilter, *, actor: str, role: str, limit: int = 100,
                 cursor: str | None = None) -> Page[SightingEvent]:
    svc = _svc(ctx)
    page = svc.store.page_events(flt, limit=check_page_limit(limit), cursor=cursor)
    return _audited_page(svc, Actor(name=actor, role=role), "events.query", flt, "person_id", page, cursor)


def query_audit(ctx: Services | Resources, flt: AuditFilter, *, actor: str, role: str, limit: int = 100,
                cursor: str | None = None) -> Page[AuditRecord]:
    """The audit trail, itself audited (``audit.query``): who reads who did what is part of the record."""
    svc = _svc(ctx)
    page = svc.store.page_audit(flt, limit=check_page_limit(limit), cursor=cursor)
    return _audited_page(svc, Actor(name=actor, role=role), "audit.query", flt, "subject", page, cursor)


#: The export's columns, in order: a sighting without the crop bytes (evidence images are fetched one by one,
#: audited); candidates, box, quality as JSON text in CSV.
EXPORT_COLUMNS: tuple[str, ...] = (
    "event_id", "ts_capture", "camera_id", "person_id", "display_name", "watchlist", "score", "threshold",
    "margin", "emotion", "track_id", "revision", "matched", "alert_id", "gallery_version", "det_score", "box",
    "quality", "candidates", "faces_seen", "faces_embedded",
)


def _export_row(e: SightingEvent) -> dict[str, Any]:
    doc = e.to_doc()
    return {c: doc.get(c) for c in EXPORT_COLUMNS}


def export_events(ctx: Services | Resources, flt: EventFilter, *, fmt: str, actor: str, role: str,
                  max_rows: int | None = None) -> Generator[str, None, None]:
    """Every matching sighting, newest first, as text chunks — CSV with a header row, or JSON Lines (one object
    per line) — produced a store page at a time, so an export of a year never sits in memory. The
    ``events.export`` record is appended when the stream ends, finished or closed early by a client that went
    away, with the rows actually sent (``complete`` says which)."""
    if fmt not in ("csv", "json"):
        raise InputError(f"export format: expected 'csv' or 'json', got {fmt!r}")
    if max_rows is not None and (isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1):
        raise InputError(f"max_rows: expected an integer >= 1 or None, got {max_rows!r}")
    return _export(_svc(ctx), Actor(name=actor, role=role), flt, fmt, max_rows)


def _csv_line(values: Sequence[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


def _csv_cell(v: Any) -> Any:
    if isinstance(v, list | tuple | dict):
        return json.dumps(v, separators=(",", ":"), default=str)
    return "" if v is None else v


def _export(svc: Services, who: Actor, flt: EventFilter, fmt: str,
            max_rows: int | None) -> Generator[str, None, None]:
    sent = 0
    complete = False
    try:
        if fmt == "csv":
            yield _csv_line(EXPORT_COLUMNS)
        cursor: str | None = None
        while max_rows is None or sent < max_rows:
            page = svc.store.page_events(flt, limit=EXPORT_PAGE, cursor=cursor)
            for e in page.items[: None if max_rows is None else max_rows - sent]:
                row = _export_row(e)
                sent += 1  # counted when handed over: a client that leaves after it still received it
                if fmt == "csv":
                    yield _csv_line([_csv_cell(row[c]) for c in EXPORT_COLUMNS])
                else:
                    yield json.dumps(row, default=str) + "\n"
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        complete = True
    finally:
        _audit(svc, who, "events.export", subject=flt.person_id, details={
            "filter": _filter_details(flt, "person_id"), "format": fmt, "count": sent, "complete": complete})
