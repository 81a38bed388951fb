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
from argus.faces.pipeline import FacePipeline
from argus.gallery.base import Gallery, Person
from argus.imaging import read_image
from argus.store.base import EventStore, PersonRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnrollResult:
    person_id: str
    accepted: list[str]
    rejected: dict[str, str]  # path -> reason


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


def enroll_person(
    *, pipeline: FacePipeline, gallery: Gallery, person: Person, images: list[Path], actor: str, reason: str,
    store: EventStore | None = None,
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
    gallery.enroll(person, np.stack(embeddings).astype(np.float32), actor=actor, reason=reason)
    if store is not None:
        record_person(store, person, gallery=gallery, actor=actor, reason=reason, images=len(embeddings))
    return EnrollResult(person.person_id, accepted, rejected)
