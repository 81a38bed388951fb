"""The watch-list gallery: enrolled persons, their embeddings, search, persistence and audit.

``FaissGallery`` is imported lazily so that code using only the in-memory gallery (tests, demos) does not pay for
loading FAISS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from argus.gallery.audit import AuditEntry, read_audit
from argus.gallery.base import UNSET, Candidate, Gallery, Person, WatchlistSpec
from argus.gallery.memory import MemoryGallery

if TYPE_CHECKING:
    from argus.gallery.faiss_gallery import FaissGallery

__all__ = ["UNSET", "AuditEntry", "Candidate", "FaissGallery", "Gallery", "MemoryGallery", "Person", "WatchlistSpec",
           "read_audit"]


def __getattr__(name: str) -> Any:
    if name == "FaissGallery":
        from argus.gallery.faiss_gallery import FaissGallery

        return FaissGallery
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
