"""Append-only audit trail of watch-list changes.

Putting someone on a watch-list has consequences for them, so every change records who made it, why, which gallery
version it produced and a digest of the exact embeddings involved: enroll, re-enroll, remove, update (metadata or
expiry, embeddings untouched), watchlist (a watch-list's spec changed), negative (negative evidence recorded, with
the alert it came from in ``ref``) and erase. The persisted log is JSON lines, opened in append mode and fsync'd per
change.

Erasure is the one sanctioned rewrite (:func:`redact_entries`, :meth:`JsonlAuditLog.redact`): the law's right to
erasure beats an append-only file, so erasing a person replaces their id in every entry with
``erased:<sha256(person_id)[:16]>`` (:func:`erased_token`) and the file is replaced atomically (temp file, fsync,
rename). What the entries said about *what* happened stays; *whom* it happened to does not. Tamper evidence does not
live here but in the event store's hash-chained audit record (``argus.audit_trail``), whose hashes do not cover the
subject, so the chain still verifies after an erasure. Nothing else in Argus rewrites or truncates this file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Literal, cast

from argus.errors import StoreError

logger = logging.getLogger(__name__)

AUDIT_FILE = "audit.jsonl"
Action = Literal["enroll", "re-enroll", "remove", "update", "watchlist", "negative", "erase"]
ACTIONS: tuple[str, ...] = ("enroll", "re-enroll", "remove", "update", "watchlist", "negative", "erase")
#: What an erased person's id becomes in the audit log: a digest, so entries about one erased person still group
#: together (and an auditor holding the id can check it) while the log no longer names them.
ERASED_PREFIX = "erased:"


def erased_token(person_id: str) -> str:
    return ERASED_PREFIX + hashlib.sha256(person_id.encode("utf-8")).hexdigest()[:16]


def _id_in_text(person_id: str) -> re.Pattern[str]:
    """The id as a whole token (not inside a longer id), so erasing ``P-1`` leaves ``P-10`` in a reason alone."""
    return re.compile(r"(?<![A-Za-z0-9_./:-])" + re.escape(person_id) + r"(?![A-Za-z0-9_./:-])")


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
    ref: str = ""  # action "negative": the alert the evidence came from; else empty

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
                ref=str(data.get("ref", "")),
            )
        except KeyError as e:
            raise ValueError(f"expected key {e.args[0]!r}, got keys {sorted(data)}") from e


def scrub_text(text: str, person_id: str) -> str:
    """``text`` with every whole-token occurrence of ``person_id`` replaced by its :func:`erased_token`."""
    return _id_in_text(person_id).sub(erased_token(person_id), text)


def redact_entries(entries: Sequence[AuditEntry], person_id: str) -> tuple[list[AuditEntry], int]:
    """``entries`` with ``person_id`` replaced by its :func:`erased_token` wherever it appears — the ``person_id``
    field, and as a whole token in free text (``reason``, ``ref``), since an operator may have typed the id into a
    reason. Returns the new entries and how many changed."""
    token = erased_token(person_id)
    pattern = _id_in_text(person_id)
    out: list[AuditEntry] = []
    changed = 0
    for e in entries:
        new = replace(e, person_id=token if e.person_id == person_id else e.person_id,
                      reason=pattern.sub(token, e.reason), ref=pattern.sub(token, e.ref))
        changed += new != e
        out.append(new)
    return out, changed


class MemoryAuditLog:
    """The in-memory gallery's audit: same entries, gone with the process."""

    def __init__(self) -> None:
        self._entries: list[AuditEntry] = []

    def append(self, entries: Sequence[AuditEntry]) -> None:
        self._entries.extend(entries)

    def entries(self) -> list[AuditEntry]:
        return list(self._entries)

    def redact(self, person_id: str) -> int:
        """Erasure (see the module docstring): the one rewrite; returns the number of entries changed."""
        self._entries, changed = redact_entries(self._entries, person_id)
        return changed


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

    def redact(self, person_id: str) -> int:
        """Erasure, the one sanctioned rewrite (module docstring): every entry naming ``person_id`` is rewritten to
        name its digest instead, via a temp file + fsync + rename + directory fsync, so a crash leaves the old or
        the new file, never a torn one. The caller holds the gallery's exclusive lock, so no append races it.
        Returns the number of entries changed (nothing is written when none)."""
        redacted, changed = redact_entries(read_audit(self.path), person_id)
        if not changed:
            return 0
        data = "".join(e.to_json() + "\n" for e in redacted).encode("utf-8")
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StoreError(f"audit log {self.path}: redaction rewrite failed: {e}") from e
        return changed


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
