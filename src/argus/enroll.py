"""Enrollment: turn a few photos of a person into gallery embeddings, refusing photos that can't be trusted.

A watch-list entry is only as good as its photos: an image with no face, or with several (whose face would we
enroll?), is rejected with a message naming the file; the person is enrolled from the remaining good photos.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from argus.errors import InputError, NoFaceError
from argus.faces.embedder import DEFAULT_MATCH_THRESHOLD
from argus.faces.pipeline import FacePipeline
from argus.gallery.base import COHORT_WATCHLIST, Gallery, Person
from argus.imaging import read_image
from argus.store.base import EventStore, PersonRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class EnrollResult:
    person_id: str
    accepted: list[str]
    rejected: dict[str, str]  # path -> reason
    look_alikes: dict[str, float]  # person already listed -> cosine to the new photos, at or above the threshold


def embed_single_face(pipeline: FacePipeline, path: Path) -> np.ndarray:
    """The embedding of the one face in ``path``; NoFaceError if it has none or several."""
    img = read_image(str(path))
    faces = pipeline.process([img])[0]
    if not faces:
        raise NoFaceError(f"{path}: no face found (expected exactly one)")
    if len(faces) > 1:
        raise NoFaceError(f"{path}: {len(faces)} faces found (expected exactly one; crop the photo to one person)")
    return faces[0].embedding


def record_person(store: EventStore, person: Person, *, gallery: Gallery, actor: str, reason: str,
                  images: int = 0, removed: bool = False) -> None:
    """Mirror a watch-list change into the store's ``persons`` collection, so analysts can join events to who
    a person is (and see that an entry was removed) without reading the gallery files. The gallery's audit log
    stays the authoritative record of every change."""
    attributes = {"gallery_version": gallery.version, "changed_by": actor, "reason": reason,
                  "status": "removed" if removed else "enrolled"}
    if not removed:
        attributes["images"] = images
    store.upsert_person(PersonRecord(person_id=person.person_id, display_name=person.display_name,
                                     watchlist=person.watchlist, note=person.notes, attributes=attributes))


def look_alikes(gallery: Gallery, person: Person, embeddings: np.ndarray, threshold: float) -> dict[str, float]:
    """Listed persons (cohort excluded) whom the new photos already match at ``threshold``: two entries that match
    each other will name one for the other on camera, so the operator is told before it happens."""
    if len(gallery) == 0:
        return {}
    found: dict[str, float] = {}
    for cands in gallery.search(embeddings, 5):
        for c in cands:
            if c.person_id != person.person_id and c.watchlist != COHORT_WATCHLIST and c.score >= threshold:
                found[c.person_id] = max(found.get(c.person_id, -1.0), float(c.score))
    return dict(sorted(found.items(), key=lambda kv: -kv[1]))


def enroll_person(
    *, pipeline: FacePipeline, gallery: Gallery, person: Person, images: list[Path], actor: str, reason: str,
    store: EventStore | None = None, threshold: float = DEFAULT_MATCH_THRESHOLD,
) -> EnrollResult:
    accepted: list[str] = []
    rejected: dict[str, str] = {}
    embeddings: list[np.ndarray] = []
    for path in images:
        try:
            embeddings.append(embed_single_face(pipeline, path))
            accepted.append(str(path))
        except InputError as e:
            rejected[str(path)] = str(e)
            log.warning("enroll %s: rejected %s", person.person_id, e)
    if not embeddings:
        raise NoFaceError(
            f"cannot enroll {person.person_id!r}: none of {len(images)} image(s) had exactly one face: "
            + "; ".join(rejected.values())
        )
    stacked = np.stack(embeddings).astype(np.float32)
    similar = look_alikes(gallery, person, stacked, threshold)
    for other, score in similar.items():
        log.warning("enroll %s: already matches listed person %s at cosine %.3f (threshold %.2f): one may be "
                    "named for the other on camera", person.person_id, other, score, threshold)
    gallery.enroll(person, stacked, actor=actor, reason=reason)
    if store is not None:
        record_person(store, person, gallery=gallery, actor=actor, reason=reason, images=len(embeddings))
    return EnrollResult(person_id=person.person_id, accepted=accepted, rejected=rejected, look_alikes=similar)
