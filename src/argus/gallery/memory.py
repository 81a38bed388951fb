"""The in-memory gallery: exact numpy brute force, nothing persisted.

It is the laptop/test twin of :class:`~argus.gallery.faiss_gallery.FaissGallery` and the reference FAISS is checked
against, so its search takes a deliberately different route: a full (N, R) score matrix reduced per person with
``np.maximum.reduceat``, rather than a top-k row search followed by de-duplication.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from argus.errors import ConfigError
from argus.gallery.audit import AuditEntry, MemoryAuditLog
from argus.gallery.base import Candidate, Snapshot, SnapshotGallery


class MemoryGallery(SnapshotGallery):
    """O(N·R) per search; fine for tests, demos and galleries of a few thousand embeddings."""

    def __init__(self, *, dim: int) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ConfigError(f"gallery dim: expected an integer >= 1, got {dim!r}")
        super().__init__(dim=dim)
        self._audit = MemoryAuditLog()

    def _commit(self, before: Snapshot, after: Snapshot, entries: Sequence[AuditEntry]) -> None:
        self._snap = after
        self._audit.append(entries)

    def _search(self, snap: Snapshot, queries: np.ndarray, k: int) -> list[list[Candidate]]:
        scores = queries @ snap.embeddings.T  # (N, R)
        per_person = np.maximum.reduceat(scores, snap.starts, axis=1)  # (N, P): best embedding of each person
        p = per_person.shape[1]
        kk = min(k, p)
        if kk < p:
            top = np.argpartition(-per_person, kk - 1, axis=1)[:, :kk]
        else:
            top = np.tile(np.arange(p), (queries.shape[0], 1))
        out: list[list[Candidate]] = []
        for qi in range(queries.shape[0]):
            idx = top[qi][np.argsort(-per_person[qi, top[qi]], kind="stable")]
            out.append([
                Candidate(person_id=snap.persons[j].person_id, display_name=snap.persons[j].display_name,
                          watchlist=snap.persons[j].watchlist, score=float(per_person[qi, j]))
                for j in idx
            ])
        return out

    def _redact_audit(self, person_id: str) -> int:
        return self._audit.redact(person_id)

    def reload_if_changed(self) -> bool:
        """Nothing else can change an in-memory gallery."""
        return False

    def audit(self) -> list[AuditEntry]:
        return self._audit.entries()
