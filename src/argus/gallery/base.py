"""The watch-list gallery contract: who is enrolled, and who a probe embedding looks like.

Both implementations (the numpy :class:`~argus.gallery.memory.MemoryGallery` and the persisted
:class:`~argus.gallery.faiss_gallery.FaissGallery`) hold their contents in an immutable :class:`Snapshot` and
replace it wholesale on every change. That keeps searches consistent while a change or a hot reload is applied,
makes a failed write leave the old state untouched, and lets both implementations share the validation and the
"one entry per person" bookkeeping so they cannot drift apart.
"""

from __future__ import annotations

import enum
import hashlib
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Final, Literal, Protocol, runtime_checkable

import numpy as np

from argus.errors import InputError
from argus.gallery.audit import AuditEntry, erased_token, scrub_text
from argus.ids import PERSON_ID_RULE, SLUG_RULE, is_person_id, is_slug

#: Embeddings come out of an L2-normalising embedder; the same tolerance as :class:`argus.faces.types.Face`.
NORM_TOLERANCE = 0.01
#: The watch-list of cohort persons: unrelated people who are never named, only searched with the listed ones so a
#: face that resembles everybody finds a cohort face as its runner-up (see argus.decisions.decide_track).
COHORT_WATCHLIST = "cohort"
MAX_DISPLAY_NAME = 200


class _Unset(enum.Enum):
    UNSET = "UNSET"


#: "Leave this field as it is" for :meth:`Gallery.update_person`, where None means something (no expiry).
UNSET: Final = _Unset.UNSET
Unset = Literal[_Unset.UNSET]


def _check_slug(name: str, value: object) -> None:
    if not is_slug(value):
        raise InputError(f"{name}: expected {SLUG_RULE}, got {value!r}")


def check_person_id(value: object, name: str = "person_id") -> str:
    """Person ids come from the records systems that issue them (``P-100``, ``case/2026:17``), so they follow the
    person-id rule, not the slug rule; anything outside it (``../x``, a newline) is refused before it is stored."""
    if not is_person_id(value):
        raise InputError(f"{name}: expected {PERSON_ID_RULE}, got {value!r}")
    return str(value)


def _check_epoch(name: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise InputError(f"{name}: expected epoch seconds >= 0{' or None' if optional else ''}, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class Person:
    """One enrolled identity. ``watchlist`` lets alert policy differ per list (vip vs banned).

    ``expires_at`` (epoch seconds, None = never) is when the authorization to search for this person ends: from
    then on the matcher never names them (:meth:`active`), though they stay enrolled until someone removes them.
    """

    person_id: str
    display_name: str
    watchlist: str = "default"
    notes: str = ""
    enrolled_at: float = field(default_factory=time.time)
    expires_at: float | None = None

    def __post_init__(self) -> None:
        check_person_id(self.person_id)
        _check_slug("watchlist", self.watchlist)
        if not isinstance(self.display_name, str) or not self.display_name.strip():
            raise InputError(
                f"display_name of {self.person_id}: expected a non-empty string, got {self.display_name!r}"
            )
        if len(self.display_name) > MAX_DISPLAY_NAME:
            raise InputError(
                f"display_name of {self.person_id}: expected at most {MAX_DISPLAY_NAME} chars, "
                f"got {len(self.display_name)}"
            )
        if not isinstance(self.notes, str):
            raise InputError(f"notes of {self.person_id}: expected a string, got {type(self.notes).__name__}")
        if (
            isinstance(self.enrolled_at, bool)
            or not isinstance(self.enrolled_at, int | float)
            or not math.isfinite(self.enrolled_at)
            or self.enrolled_at < 0
        ):
            raise InputError(
                f"enrolled_at of {self.person_id}: expected epoch seconds >= 0, got {self.enrolled_at!r}"
            )
        _check_epoch(f"expires_at of {self.person_id}", self.expires_at, optional=True)

    def active(self, now: float) -> bool:
        """May this person be named at wall-clock ``now``? Not at or after ``expires_at``."""
        return self.expires_at is None or now < self.expires_at

    def to_dict(self) -> dict[str, object]:
        return {
            "person_id": self.person_id,
            "display_name": self.display_name,
            "watchlist": self.watchlist,
            "notes": self.notes,
            "enrolled_at": float(self.enrolled_at),
            "expires_at": None if self.expires_at is None else float(self.expires_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Person:
        try:
            return cls(
                person_id=data["person_id"],  # type: ignore[arg-type]
                display_name=data["display_name"],  # type: ignore[arg-type]
                watchlist=data.get("watchlist", "default"),  # type: ignore[arg-type]
                notes=data.get("notes", ""),  # type: ignore[arg-type]
                enrolled_at=data["enrolled_at"],  # type: ignore[arg-type]
                expires_at=data.get("expires_at"),  # type: ignore[arg-type]
            )
        except KeyError as e:
            raise InputError(f"person record: expected key {e.args[0]!r}, got keys {sorted(data)}") from e


@dataclass(frozen=True, kw_only=True)
class WatchlistSpec:
    """What a watch-list is for and how strict it is, kept with the gallery so every matcher applies the same.

    ``threshold`` None leaves the configured default in force (``ARGUS_WATCHLIST_THRESHOLDS``, then
    ``ARGUS_MATCH_THRESHOLD``, then the model's); ``legal_basis`` is the authorization the list rests on (a court
    order, a policy reference), so an auditor can ask "by what right was this list searched".
    """

    name: str
    threshold: float | None
    description: str = ""
    legal_basis: str = ""
    updated_at: float = 0.0
    updated_by: str = ""

    def __post_init__(self) -> None:
        _check_slug("watchlist name", self.name)
        t = self.threshold
        if t is not None and (isinstance(t, bool) or not isinstance(t, int | float) or not -1.0 <= t <= 1.0):
            raise InputError(f"threshold of watch-list {self.name}: expected a cosine in [-1, 1] or None, got {t!r}")
        for name in ("description", "legal_basis", "updated_by"):
            if not isinstance(getattr(self, name), str):
                raise InputError(f"{name} of watch-list {self.name}: expected a string, "
                                 f"got {type(getattr(self, name)).__name__}")
        _check_epoch(f"updated_at of watch-list {self.name}", self.updated_at, optional=False)

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "threshold": None if self.threshold is None else float(self.threshold),
                "description": self.description, "legal_basis": self.legal_basis,
                "updated_at": float(self.updated_at), "updated_by": self.updated_by}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> WatchlistSpec:
        try:
            return cls(name=data["name"], threshold=data["threshold"],  # type: ignore[arg-type]
                       description=data.get("description", ""),  # type: ignore[arg-type]
                       legal_basis=data.get("legal_basis", ""),  # type: ignore[arg-type]
                       updated_at=data.get("updated_at", 0.0),  # type: ignore[arg-type]
                       updated_by=data.get("updated_by", ""))  # type: ignore[arg-type]
        except KeyError as e:
            raise InputError(f"watch-list record: expected key {e.args[0]!r}, got keys {sorted(data)}") from e


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """A gallery person a probe resembles; ``score`` is the cosine similarity of the person's best embedding."""

    person_id: str
    display_name: str
    watchlist: str
    score: float


@runtime_checkable
class Gallery(Protocol):
    """The watch-list the matcher searches and the enrollment CLI edits.

    Every change bumps ``version`` (a batch from :meth:`enroll_many` is one change) and appends one audit entry per
    person touched, so "who put this person on the list, when and why" always has an answer.
    """

    @property
    def dim(self) -> int: ...

    @property
    def version(self) -> int: ...

    def enroll(self, person: Person, embeddings: np.ndarray, *, actor: str, reason: str) -> None:
        """Add ``person`` with ``embeddings`` (M, dim) float32 unit rows; re-enrolling an id replaces its rows."""
        ...

    def enroll_many(
        self, items: Sequence[tuple[Person, np.ndarray]], *, actor: str, reason: str
    ) -> None:
        """Enroll several people as one atomic change (one write, one version bump): bulk imports."""
        ...

    def remove(self, person_id: str, *, actor: str, reason: str) -> None:
        """Take ``person_id`` off the watch-list; an unknown id is an InputError."""
        ...

    def persons(self) -> list[Person]: ...

    def get(self, person_id: str) -> Person | None: ...

    def search(self, queries: np.ndarray, k: int) -> list[list[Candidate]]:
        """For each (N, dim) query row: at most ``k`` distinct persons, best first."""
        ...

    def reload_if_changed(self) -> bool:
        """Pick up changes another process made to the same store; True when something was reloaded."""
        ...

    def audit(self) -> list[AuditEntry]: ...

    def __len__(self) -> int: ...

    def update_person(self, person_id: str, *, display_name: str | None = None, notes: str | None = None,
                      watchlist: str | None = None, expires_at: float | Unset | None = UNSET, actor: str,
                      reason: str) -> Person:
        """Change an enrolled person's metadata (None / UNSET: leave as is; ``expires_at=None`` clears the expiry);
        the embeddings are untouched. Audited as ``update``."""
        ...

    def watchlists(self) -> list[WatchlistSpec]:
        """Every watch-list with a spec, by name."""
        ...

    def watchlist(self, name: str) -> WatchlistSpec | None: ...

    def set_watchlist(self, spec: WatchlistSpec, *, actor: str, reason: str) -> None:
        """Create or replace a watch-list's spec (stamped with ``actor`` and now). Audited as ``watchlist``."""
        ...

    def add_negative(self, person_id: str, embeddings: np.ndarray, *, actor: str, reason: str, ref: str) -> None:
        """Record faces that are *not* ``person_id`` (an operator said "not this person" on alert ``ref``)."""
        ...

    def negatives(self, person_id: str) -> np.ndarray:
        """``person_id``'s negative evidence, (n, dim) float32 unit rows; 0 rows when none (or unknown)."""
        ...

    def erase(self, person_id: str, *, actor: str, reason: str) -> dict[str, int]:
        """Remove the person, their embeddings and negatives, and redact their id from the audit log.

        Returns ``{"embeddings": n, "negatives": m, "audit_entries_redacted": k}``. A person already removed but
        still named in the audit log can be erased too (an erasure request after removal, or a retry after a crash
        between the two steps)."""
        ...


# --------------------------------------------------------------------------------------------------------------
# Validation shared by both implementations, so both reject the same inputs with the same messages.


def check_unit_rows(name: str, value: object, dim: int, *, allow_empty: bool) -> np.ndarray:
    """Return ``value`` as a C-contiguous (M, dim) float32 array, or raise InputError saying what was wrong.

    No silent casting: a float64 or un-normalised matrix means the caller skipped a step (normalisation, the
    embedder's dtype), and scores computed from it would not be cosines.
    """
    if not isinstance(value, np.ndarray):
        raise InputError(f"{name}: expected a numpy array of shape (M, {dim}), got {type(value).__name__}")
    if value.ndim != 2 or value.shape[1] != dim:
        raise InputError(f"{name}: expected shape (M, {dim}), got {value.shape}")
    if value.dtype != np.float32:
        raise InputError(f"{name}: expected dtype float32, got {value.dtype}")
    if value.shape[0] == 0:
        if allow_empty:
            return np.ascontiguousarray(value)
        raise InputError(f"{name}: expected at least one row, got shape {value.shape}")
    if not np.isfinite(value).all():
        bad = int(np.flatnonzero(~np.isfinite(value).all(axis=1))[0])
        raise InputError(f"{name} row {bad}: expected finite values, got NaN or inf")
    norms = np.linalg.norm(value, axis=1)
    off = np.abs(norms - 1.0)
    worst = int(np.argmax(off))
    if off[worst] > NORM_TOLERANCE:
        raise InputError(
            f"{name} row {worst}: expected unit L2 norm (±{NORM_TOLERANCE}), got {float(norms[worst]):.4f}"
        )
    return np.ascontiguousarray(value)


def check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise InputError(f"k: expected an integer >= 1, got {k!r}")
    return int(k)


def check_actor_reason(actor: object, reason: object) -> None:
    """An audit entry without a who and a why is useless, so both are mandatory."""
    for name, value in (("actor", actor), ("reason", reason)):
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{name}: expected a non-empty string, got {value!r}")


def embeddings_sha256(embeddings: np.ndarray) -> str:
    """Digest of the raw little-endian float32 bytes: identifies exactly which vectors were enrolled."""
    arr = np.ascontiguousarray(embeddings, dtype="<f4")
    return hashlib.sha256(arr.reshape(-1).view(np.uint8).data).hexdigest()


# --------------------------------------------------------------------------------------------------------------
# The immutable contents of a gallery.


@dataclass(frozen=True)
class Snapshot:
    """Persons in row order and their embeddings; each person's rows are contiguous.

    Internal to the gallery package (shared by both implementations). Never mutated: changes build a new one.
    """

    dim: int
    version: int
    persons: tuple[Person, ...]
    starts: np.ndarray  # (P,) int64, first row of each person
    counts: np.ndarray  # (P,) int64, number of rows of each person
    embeddings: np.ndarray  # (R, dim) float32, read-only
    row_person: np.ndarray  # (R,) int64, person index of each row
    index_of: Mapping[str, int]
    watchlists: Mapping[str, WatchlistSpec] = field(default_factory=lambda: MappingProxyType({}))
    negatives: Mapping[str, np.ndarray] = field(default_factory=lambda: MappingProxyType({}))  # (n, dim) read-only

    @classmethod
    def build(cls, *, dim: int, version: int, persons: Sequence[Person], counts: Sequence[int],
              embeddings: np.ndarray, watchlists: Mapping[str, WatchlistSpec] | None = None,
              negatives: Mapping[str, np.ndarray] | None = None) -> Snapshot:
        counts_arr = np.asarray(counts, dtype=np.int64).reshape(-1)
        if len(persons) != counts_arr.shape[0]:
            raise InputError(f"snapshot: expected one row count per person ({len(persons)}), got {counts_arr.shape[0]}")
        if counts_arr.size and counts_arr.min() < 1:
            raise InputError(f"snapshot: expected every person to have >= 1 embedding, got {counts_arr.min()}")
        total = int(counts_arr.sum())
        if embeddings.shape != (total, dim):
            raise InputError(f"snapshot: expected embeddings of shape ({total}, {dim}), got {embeddings.shape}")
        starts = np.zeros_like(counts_arr)
        if counts_arr.size:
            starts[1:] = np.cumsum(counts_arr)[:-1]
        row_person = np.repeat(np.arange(len(persons), dtype=np.int64), counts_arr)
        emb = np.ascontiguousarray(embeddings, dtype=np.float32)
        emb.flags.writeable = False
        index_of = {p.person_id: i for i, p in enumerate(persons)}
        if len(index_of) != len(persons):
            raise InputError("snapshot: expected unique person ids, got duplicates")
        negs: dict[str, np.ndarray] = {}
        for pid, rows in (negatives or {}).items():
            if pid not in index_of:
                raise InputError(f"snapshot: expected negative evidence only for enrolled persons, got {pid!r}")
            if rows.shape[0]:
                arr = np.ascontiguousarray(rows, dtype=np.float32)
                arr.flags.writeable = False
                negs[pid] = arr
        return cls(dim=dim, version=version, persons=tuple(persons), starts=starts, counts=counts_arr,
                   embeddings=emb, row_person=row_person, index_of=index_of,
                   watchlists=MappingProxyType(dict(watchlists or {})), negatives=MappingProxyType(negs))

    @classmethod
    def empty(cls, dim: int, version: int = 0) -> Snapshot:
        return cls.build(dim=dim, version=version, persons=(), counts=(),
                         embeddings=np.zeros((0, dim), np.float32))

    @property
    def rows(self) -> int:
        return int(self.embeddings.shape[0])

    @property
    def max_rows_per_person(self) -> int:
        return int(self.counts.max()) if self.counts.size else 0

    def rows_of(self, person_id: str) -> np.ndarray:
        i = self.index_of[person_id]
        s, c = int(self.starts[i]), int(self.counts[i])
        return self.embeddings[s : s + c]

    def _without_indices(self, drop: set[int]) -> tuple[list[Person], list[int], np.ndarray]:
        if not drop:
            return list(self.persons), self.counts.tolist(), self.embeddings
        keep_mask = ~np.isin(self.row_person, np.fromiter(drop, dtype=np.int64))
        persons = [p for i, p in enumerate(self.persons) if i not in drop]
        counts = [int(c) for i, c in enumerate(self.counts) if i not in drop]
        return persons, counts, self.embeddings[keep_mask]

    def with_enrolled(self, items: Sequence[tuple[Person, np.ndarray]], version: int) -> Snapshot:
        """Re-enrolled persons move to the end, so a pure append keeps every existing row where it was."""
        ids = [p.person_id for p, _ in items]
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            raise InputError(f"enroll_many: expected each person_id once per batch, got duplicates {dup}")
        drop = {self.index_of[i] for i in ids if i in self.index_of}
        persons, counts, emb = self._without_indices(drop)
        persons += [p for p, _ in items]
        counts += [int(e.shape[0]) for _, e in items]
        emb = np.concatenate([emb, *(e for _, e in items)], axis=0) if items else emb
        # negative evidence stays with a re-enrolled person: new photos do not make the old look-alike them
        return Snapshot.build(dim=self.dim, version=version, persons=persons, counts=counts, embeddings=emb,
                              watchlists=self.watchlists, negatives=self.negatives)

    def without(self, person_id: str, version: int) -> Snapshot:
        persons, counts, emb = self._without_indices({self.index_of[person_id]})
        return Snapshot.build(dim=self.dim, version=version, persons=persons, counts=counts, embeddings=emb,
                              watchlists=self.watchlists,
                              negatives={k: v for k, v in self.negatives.items() if k != person_id})

    def with_meta(self, version: int, *, person: Person | None = None,
                  watchlists: Mapping[str, WatchlistSpec] | None = None,
                  negatives: Mapping[str, np.ndarray] | None = None) -> Snapshot:
        """The same rows (the very same array, so an index over them stays valid) with metadata changed."""
        persons = list(self.persons)
        if person is not None:
            persons[self.index_of[person.person_id]] = person
        return Snapshot.build(dim=self.dim, version=version, persons=persons, counts=self.counts.tolist(),
                              embeddings=self.embeddings,
                              watchlists=self.watchlists if watchlists is None else watchlists,
                              negatives=self.negatives if negatives is None else negatives)

    def negatives_of(self, person_id: str) -> np.ndarray:
        rows = self.negatives.get(person_id)
        if rows is None:
            rows = np.zeros((0, self.dim), np.float32)
            rows.flags.writeable = False
        return rows

    @property
    def negative_rows(self) -> int:
        return sum(int(v.shape[0]) for v in self.negatives.values())

    def is_append_of(self, old: Snapshot) -> bool:
        """True when this snapshot only adds rows after ``old``'s, so an index over ``old`` can be extended."""
        if self.rows < old.rows or len(self.persons) < len(old.persons):
            return False
        n = len(old.persons)
        return (
            self.persons[:n] == old.persons
            and np.array_equal(self.counts[:n], old.counts)
            and np.array_equal(self.embeddings[: old.rows], old.embeddings)
        )

    def candidates(self, person_idx: np.ndarray, scores: np.ndarray, k: int) -> list[Candidate]:
        """Keep the first (best) hit of each person, best first, at most ``k`` (rows already sorted by score)."""
        valid = person_idx >= 0
        person_idx, scores = person_idx[valid], scores[valid]
        _, first = np.unique(person_idx, return_index=True)
        first.sort()
        out: list[Candidate] = []
        for j in first[:k]:
            p = self.persons[int(person_idx[j])]
            out.append(Candidate(person_id=p.person_id, display_name=p.display_name, watchlist=p.watchlist,
                                 score=float(scores[j])))
        return out


# --------------------------------------------------------------------------------------------------------------
# What both implementations do the same way: validation, change planning, audit entries.


class SnapshotGallery(ABC):
    """Gallery logic over a :class:`Snapshot`; subclasses decide how a change is made durable and how to search.

    ``_mu`` serialises changes and searches within one process: a change is planned on the current snapshot,
    handed to :meth:`_commit` (which may fail and then leaves everything as it was) and only then becomes current.
    """

    def __init__(self, *, dim: int) -> None:
        self._dim = dim
        self._snap = Snapshot.empty(dim)
        self._mu = threading.RLock()

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def version(self) -> int:
        return self._snap.version

    def __len__(self) -> int:
        return len(self._snap.persons)

    def persons(self) -> list[Person]:
        return list(self._snap.persons)

    def get(self, person_id: str) -> Person | None:
        snap = self._snap
        i = snap.index_of.get(person_id)
        return None if i is None else snap.persons[i]

    def enroll(self, person: Person, embeddings: np.ndarray, *, actor: str, reason: str) -> None:
        self.enroll_many([(person, embeddings)], actor=actor, reason=reason)

    def enroll_many(self, items: Sequence[tuple[Person, np.ndarray]], *, actor: str, reason: str) -> None:
        check_actor_reason(actor, reason)
        if not items:
            raise InputError("enroll_many: expected at least one (person, embeddings) pair, got none")
        clean: list[tuple[Person, np.ndarray]] = []
        for person, emb in items:
            if not isinstance(person, Person):
                raise InputError(f"person: expected a Person, got {type(person).__name__}")
            clean.append((person, check_unit_rows(f"embeddings of {person.person_id}", emb, self._dim,
                                                  allow_empty=False)))
        with self._write_guard():
            before = self._snap
            after = before.with_enrolled(clean, before.version + 1)
            now = time.time()
            entries = [
                AuditEntry(
                    ts=now, actor=actor, action="re-enroll" if p.person_id in before.index_of else "enroll",
                    person_id=p.person_id, watchlist=p.watchlist, reason=reason, version=after.version,
                    n_embeddings=int(e.shape[0]), embeddings_sha256=embeddings_sha256(e),
                )
                for p, e in clean
            ]
            self._commit(before, after, entries)

    def remove(self, person_id: str, *, actor: str, reason: str) -> None:
        check_actor_reason(actor, reason)
        with self._write_guard():
            before = self._snap
            if person_id not in before.index_of:
                raise InputError(
                    f"remove: expected an enrolled person_id ({len(before.persons)} enrolled), "
                    f"got unknown {person_id!r}"
                )
            person = before.persons[before.index_of[person_id]]
            rows = before.rows_of(person_id)
            after = before.without(person_id, before.version + 1)
            entry = AuditEntry(
                ts=time.time(), actor=actor, action="remove", person_id=person_id, watchlist=person.watchlist,
                reason=reason, version=after.version, n_embeddings=int(rows.shape[0]),
                embeddings_sha256=embeddings_sha256(rows),
            )
            self._commit(before, after, [entry])

    def _enrolled(self, snap: Snapshot, op: str, person_id: str) -> Person:
        i = snap.index_of.get(person_id) if isinstance(person_id, str) else None
        if i is None:
            raise InputError(f"{op}: expected an enrolled person_id ({len(snap.persons)} enrolled), "
                             f"got unknown {person_id!r}")
        return snap.persons[i]

    def update_person(self, person_id: str, *, display_name: str | None = None, notes: str | None = None,
                      watchlist: str | None = None, expires_at: float | Unset | None = UNSET, actor: str,
                      reason: str) -> Person:
        check_actor_reason(actor, reason)
        if display_name is None and notes is None and watchlist is None and expires_at is UNSET:
            raise InputError(f"update_person {person_id!r}: expected at least one field to change, got none")
        with self._write_guard():
            before = self._snap
            old = self._enrolled(before, "update_person", person_id)
            changes: dict[str, object] = {k: v for k, v in (("display_name", display_name), ("notes", notes),
                                                            ("watchlist", watchlist)) if v is not None}
            if expires_at is not UNSET:
                changes["expires_at"] = expires_at
            new = replace(old, **changes)  # type: ignore[arg-type]  # __post_init__ validates every field
            after = before.with_meta(before.version + 1, person=new)
            rows = before.rows_of(person_id)
            entry = AuditEntry(ts=time.time(), actor=actor, action="update", person_id=person_id,
                               watchlist=new.watchlist, reason=reason, version=after.version,
                               n_embeddings=int(rows.shape[0]), embeddings_sha256=embeddings_sha256(rows))
            self._commit(before, after, [entry])
            return new

    def watchlists(self) -> list[WatchlistSpec]:
        return sorted(self._snap.watchlists.values(), key=lambda w: w.name)

    def watchlist(self, name: str) -> WatchlistSpec | None:
        return self._snap.watchlists.get(name)

    def set_watchlist(self, spec: WatchlistSpec, *, actor: str, reason: str) -> None:
        """The stored spec is stamped with ``actor`` and the time of the change, whatever the caller put there:
        the record says who really changed it."""
        check_actor_reason(actor, reason)
        if not isinstance(spec, WatchlistSpec):
            raise InputError(f"spec: expected a WatchlistSpec, got {type(spec).__name__}")
        with self._write_guard():
            before = self._snap
            now = time.time()
            stamped = replace(spec, updated_at=now, updated_by=actor)
            after = before.with_meta(before.version + 1, watchlists={**before.watchlists, spec.name: stamped})
            entry = AuditEntry(ts=now, actor=actor, action="watchlist", person_id="", watchlist=spec.name,
                               reason=reason, version=after.version, n_embeddings=0,
                               embeddings_sha256=embeddings_sha256(np.zeros((0, self._dim), np.float32)))
            self._commit(before, after, [entry])

    def add_negative(self, person_id: str, embeddings: np.ndarray, *, actor: str, reason: str, ref: str) -> None:
        check_actor_reason(actor, reason)
        if not isinstance(ref, str) or not ref.strip():
            raise InputError(f"ref: expected the alert id the evidence came from, got {ref!r}")
        rows = check_unit_rows(f"negatives of {person_id}", embeddings, self._dim, allow_empty=False)
        with self._write_guard():
            before = self._snap
            person = self._enrolled(before, "add_negative", person_id)
            negs = dict(before.negatives)
            negs[person_id] = np.concatenate([before.negatives_of(person_id), rows], axis=0)
            after = before.with_meta(before.version + 1, negatives=negs)
            entry = AuditEntry(ts=time.time(), actor=actor, action="negative", person_id=person_id,
                               watchlist=person.watchlist, reason=reason, version=after.version,
                               n_embeddings=int(rows.shape[0]), embeddings_sha256=embeddings_sha256(rows), ref=ref)
            self._commit(before, after, [entry])

    def negatives(self, person_id: str) -> np.ndarray:
        return self._snap.negatives_of(person_id)

    def erase(self, person_id: str, *, actor: str, reason: str) -> dict[str, int]:
        check_actor_reason(actor, reason)
        check_person_id(person_id)
        token = erased_token(person_id)
        with self._write_guard():
            before = self._snap
            person = before.persons[before.index_of[person_id]] if person_id in before.index_of else None
            if person is None and not any(e.person_id == person_id for e in self.audit()):
                raise InputError(f"erase: expected a person_id that is enrolled or named in the audit log, "
                                 f"got unknown {person_id!r}")
            if person is not None:
                rows = before.rows_of(person_id)
                n_neg = int(before.negatives_of(person_id).shape[0])
                after = before.without(person_id, before.version + 1)
            else:
                rows = np.zeros((0, self._dim), np.float32)
                n_neg = 0
                after = before.with_meta(before.version + 1)
            entry = AuditEntry(ts=time.time(), actor=actor, action="erase", person_id=token,
                               watchlist=person.watchlist if person is not None else "",
                               reason=scrub_text(reason, person_id),
                               version=after.version, n_embeddings=int(rows.shape[0]),
                               embeddings_sha256=embeddings_sha256(rows))
            self._commit(before, after, [entry])
            redacted = self._redact_audit(person_id)
            return {"embeddings": int(rows.shape[0]), "negatives": n_neg, "audit_entries_redacted": redacted}

    def search(self, queries: np.ndarray, k: int) -> list[list[Candidate]]:
        k = check_k(k)
        q = check_unit_rows("queries", queries, self._dim, allow_empty=True)
        with self._mu:
            snap = self._snap
            if q.shape[0] == 0:
                return []
            if snap.rows == 0:
                return [[] for _ in range(q.shape[0])]
            return self._search(snap, q, k)

    @contextmanager
    def _write_guard(self) -> Iterator[None]:
        """Held around plan + commit: takes ``_mu``. The persisted gallery also takes its cross-process lock and
        syncs here; the replicated one takes its follower lock *before* ``_mu`` (the follower thread's order), so a
        writer and the follower can never each hold the lock the other waits for."""
        with self._mu:
            yield

    @abstractmethod
    def _commit(self, before: Snapshot, after: Snapshot, entries: Sequence[AuditEntry]) -> None:
        """Make ``after`` durable and current and record ``entries``; on failure leave ``before`` current."""

    @abstractmethod
    def _search(self, snap: Snapshot, queries: np.ndarray, k: int) -> list[list[Candidate]]:
        """Search a non-empty snapshot with validated (N >= 1, dim) queries."""

    @abstractmethod
    def _redact_audit(self, person_id: str) -> int:
        """Erasure's rewrite of the audit log (caller holds the write guard); the number of entries changed."""

    @abstractmethod
    def reload_if_changed(self) -> bool: ...

    @abstractmethod
    def audit(self) -> list[AuditEntry]: ...
