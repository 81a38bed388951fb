"""Append-only audit trail of watch-list changes.

Putting someone on a watch-list has consequences for them, so every enroll, re-enroll and removal records who did
it, why, which gallery version it produced and a digest of the exact embeddings involved. The persisted log is JSON
lines, opened in append mode and fsync'd per change; nothing in Argus rewrites or truncates it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal, cast

from argus.errors import StoreError

logger = logging.getLogger(__name__)

AUDIT_FILE = "audit.jsonl"
Action = Literal["enroll", "re-enroll", "remove"]
ACTIONS: tuple[str, ...] = ("enroll", "re-enroll", "remove")


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    """One person touched by one gallery change.

    For a removal, ``n_embeddings`` and ``embeddings_sha256`` describe the rows that were removed, so the log says
    exactly which vectors left the list as well as which arrived.
    """

    ts: float
    actor: str
    action: Action
    person_id: str
    watchlist: str
    reason: str
    version: int  # gallery version after the change
    n_embeddings: int
    embeddings_sha256: str

    def to_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # asdict() deep-copies: 10x slower

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> AuditEntry:
        try:
            action = str(data["action"])
            if action not in ACTIONS:
                raise ValueError(f"expected action in {ACTIONS}, got {action!r}")
            return cls(
                ts=float(cast(float, data["ts"])),
                actor=str(data["actor"]),
                action=cast(Action, action),
                person_id=str(data["person_id"]),
                watchlist=str(data["watchlist"]),
                reason=str(data["reason"]),
                version=int(cast(int, data["version"])),
                n_embeddings=int(cast(int, data["n_embeddings"])),
                embeddings_sha256=str(data["embeddings_sha256"]),
            )
        except KeyError as e:
            raise ValueError(f"expected key {e.args[0]!r}, got keys {sorted(data)}") from e


class MemoryAuditLog:
    """The in-memory gallery's audit: same entries, gone with the process."""

    def __init__(self) -> None:
        self._entries: list[AuditEntry] = []

    def append(self, entries: Sequence[AuditEntry]) -> None:
        self._entries.extend(entries)

    def entries(self) -> list[AuditEntry]:
        return list(self._entries)


class JsonlAuditLog:
    """``audit.jsonl`` next to the gallery files; one line per entry, fsync'd before :meth:`append` returns."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, entries: Sequence[AuditEntry]) -> None:
        if not entries:
            return
        data = "".join(e.to_json() + "\n" for e in entries).encode("utf-8")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                _repair_torn_tail(fd)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise StoreError(f"audit log {self.path}: append failed: {e}") from e

    def entries(self) -> list[AuditEntry]:
        return read_audit(self.path)


def _repair_torn_tail(fd: int) -> None:
    """A crash mid-append can leave a last line without its newline; start the next entry on a fresh line."""
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        os.write(fd, b"\n")


def read_audit(path: Path | str) -> list[AuditEntry]:
    """Entries of the audit log at ``path`` (the gallery directory or the ``audit.jsonl`` file), oldest first.

    A line that is not JSON at all is the residue of a crash mid-append (the writer starts the next entry on a
    fresh line): it is skipped with a warning. A JSON line that is not an audit entry is a StoreError naming it.
    """
    p = Path(path)
    if p.is_dir():
        p = p / AUDIT_FILE
    if not p.exists():
        return []
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise StoreError(f"audit log {p}: read failed: {e}") from e
    out: list[AuditEntry] = []
    for n, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError:
            logger.warning("audit log %s: skipping line %d, not JSON (torn by a crash mid-append?)", p, n)
            continue
        try:
            if not isinstance(data, dict):
                raise TypeError(f"expected a JSON object, got {type(data).__name__}")
            out.append(AuditEntry.from_dict(data))
        except (ValueError, TypeError) as e:
            raise StoreError(f"audit log {p} line {n}: expected an audit entry, got {line[:80]!r}: {e}") from e
    return out
