"""The operator audit trail: append-only, hash-chained records, and the check that finds the first broken one.

Each :class:`AuditRecord` carries the hash of the record before it (``prev_hash``) and of itself (``hash``), so an
edited record fails its own hash, a deleted one leaves a gap in ``seq``, and records put in another order no longer
link. The chain proves *integrity*, not authorship: whoever can write the store can rewrite the whole tail, which
is why the check is run from outside (``argus audit verify``) and the hashes can be exported.

Erasure without breaking the chain: the person a record is about goes in ``subject`` and the hash covers only
``subject_digest = sha256(salt + subject)`` with a random per-record salt. Erasing blanks ``subject`` and
``subject_salt``; the digest stays, the chain still verifies, and with the salt gone nobody can test a guessed id
against the digest. Person ids therefore go in ``subject``, never in ``details``.

Canonical form: the hashed fields as JSON with sorted keys, no whitespace, floats as ``repr`` (what ``json.dumps``
writes), so a record read back from SQLite or BSON hashes the same as when it was written.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from argus.errors import InputError

__all__ = [
    "AUDIT_ACTIONS",
    "GENESIS_HASH",
    "AuditRecord",
    "ChainReport",
    "new_record",
    "record_hash",
    "subject_digest",
    "verify_chain",
]

AUDIT_ACTIONS: tuple[str, ...] = (
    "enroll", "update", "remove", "erase", "watchlist", "alert.view", "alert.crop", "alert.triage",
    "events.query", "alerts.query", "events.export", "audit.query", "key.create", "key.revoke", "login.failed",
)
#: ``prev_hash`` of the first record ever written.
GENESIS_HASH = "0" * 64
_DAY_S = 86_400.0


@dataclass(frozen=True, kw_only=True)
class AuditRecord:
    seq: int  # 1, 2, 3 ... with no gaps: a gap is a deleted record
    ts: float  # epoch seconds, when it was appended
    actor: str
    role: str
    action: str
    subject: str | None  # a person id (or other subject); None when there is none or it was erased
    subject_salt: str | None  # hex; None with subject
    subject_digest: str | None  # sha256(salt + subject) hex; kept after erasure
    details: dict[str, Any] = field(default_factory=dict)  # JSON-safe, never a person id
    prev_ts: float | None  # ts of record seq-1 (None for seq 1)
    prev_hash: str
    hash: str

    def to_doc(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "ts": self.ts, "actor": self.actor, "role": self.role, "action": self.action,
            "subject": self.subject, "subject_salt": self.subject_salt, "subject_digest": self.subject_digest,
            "details": self.details, "prev_ts": self.prev_ts, "prev_hash": self.prev_hash, "hash": self.hash,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> AuditRecord:
        """Read back as stored, without judging it: a tampered record must reach :func:`verify_chain` intact."""
        prev_ts = doc.get("prev_ts")
        return cls(
            seq=int(doc["seq"]), ts=float(doc["ts"]), actor=str(doc["actor"]), role=str(doc["role"]),
            action=str(doc["action"]), subject=doc.get("subject"), subject_salt=doc.get("subject_salt"),
            subject_digest=doc.get("subject_digest"), details=dict(doc.get("details") or {}),
            prev_ts=float(prev_ts) if prev_ts is not None else None, prev_hash=str(doc["prev_hash"]),
            hash=str(doc["hash"]),
        )


@dataclass(frozen=True, kw_only=True)
class ChainReport:
    ok: bool
    checked: int  # records examined (up to and including the first bad one)
    first_bad_seq: int | None = None
    problem: str = ""


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def record_hash(rec: AuditRecord) -> str:
    """sha256 of every field but subject, subject_salt and hash (those may be blanked by erasure or are the hash)."""
    body = {"seq": rec.seq, "ts": rec.ts, "actor": rec.actor, "role": rec.role, "action": rec.action,
            "subject_digest": rec.subject_digest, "details": rec.details, "prev_ts": rec.prev_ts,
            "prev_hash": rec.prev_hash}
    return hashlib.sha256(_canonical(body).encode()).hexdigest()


def subject_digest(salt: str, subject: str) -> str:
    return hashlib.sha256((salt + subject).encode()).hexdigest()


def _json_safe(details: Mapping[str, Any]) -> dict[str, Any]:
    """Details as they will read back from any store (tuples become lists); refuse what JSON cannot carry."""
    try:
        out = json.loads(_canonical(dict(details)))
    except (TypeError, ValueError) as e:
        raise InputError(f"audit details: expected JSON-safe values (str, finite numbers, lists, dicts), got {e}") \
            from e
    if not isinstance(out, dict):
        raise InputError(f"audit details: expected a mapping, got {type(details).__name__}")
    return out


def new_record(
    prev: AuditRecord | None,
    *,
    actor: str,
    role: str,
    action: str,
    subject: str | None = None,
    details: Mapping[str, Any] | None = None,
    ts: float | None = None,
    salt: str | None = None,
) -> AuditRecord:
    """The record that follows ``prev`` (None: the first record of the trail)."""
    if action not in AUDIT_ACTIONS:
        raise InputError(f"audit action: expected one of {', '.join(AUDIT_ACTIONS)}, got {action!r}")
    for name, v in (("actor", actor), ("role", role)):
        if not isinstance(v, str) or not v:
            raise InputError(f"audit {name}: expected a non-empty string, got {v!r}")
    if subject is not None and not isinstance(subject, str):
        raise InputError(f"audit subject: expected a string or None, got {type(subject).__name__}")
    at = time.time() if ts is None else float(ts)
    if not math.isfinite(at):
        raise InputError(f"audit ts: expected a finite time, got {ts!r}")
    s_salt = s_digest = None
    if subject is not None:
        s_salt = salt if salt is not None else secrets.token_hex(16)
        s_digest = subject_digest(s_salt, subject)
    base = AuditRecord(
        seq=prev.seq + 1 if prev is not None else 1, ts=at, actor=actor, role=role, action=action,
        subject=subject, subject_salt=s_salt, subject_digest=s_digest, details=_json_safe(details or {}),
        prev_ts=prev.ts if prev is not None else None, prev_hash=prev.hash if prev is not None else GENESIS_HASH,
        hash="",
    )
    return AuditRecord(**{**base.to_doc(), "hash": record_hash(base)})


def _own_problem(r: AuditRecord) -> str | None:
    try:
        h = record_hash(r)
    except (TypeError, ValueError) as e:
        return f"record cannot be hashed ({e})"
    if h != r.hash:
        return f"hash mismatch: the record was edited (stored {r.hash[:12]}…, computed {h[:12]}…)"
    if r.subject is not None:
        if r.subject_salt is None or r.subject_digest is None:
            return "subject present without its salt or digest"
        if subject_digest(r.subject_salt, r.subject) != r.subject_digest:
            return "subject does not match its digest: the subject was changed"
    elif r.subject_salt is not None:
        return "subject removed but its salt kept: not an erasure redaction"
    return None


def verify_chain(records: Iterable[AuditRecord], *, now: float, retention_days: int | None) -> ChainReport:
    """Walk ``records`` in ascending seq and name the first one that is wrong.

    A missing *prefix* (the oldest records) is legal only when retention expired it: the first kept record's
    ``prev_ts`` must be older than ``now - retention_days``. A chain whose first record is gone without that is a
    deletion, reported at seq 1 … of the first missing record.
    """
    prev: AuditRecord | None = None
    checked = 0

    def bad(seq: int, problem: str) -> ChainReport:
        return ChainReport(ok=False, checked=checked, first_bad_seq=seq, problem=problem)

    for r in records:
        checked += 1
        if prev is None:
            if r.seq != 1:
                expired = (retention_days is not None and r.prev_ts is not None
                           and r.prev_ts < now - retention_days * _DAY_S)
                if not expired:
                    why = ("no audit retention is set" if retention_days is None
                           else f"the record before it is not older than the audit retention of {retention_days} "
                                "day(s)")
                    return bad(1 if r.seq > 1 else r.seq,
                               f"records before seq {r.seq} are missing and {why}: deleted, not expired")
            elif r.prev_hash != GENESIS_HASH or r.prev_ts is not None:
                return bad(r.seq, "prev_hash mismatch: seq 1 does not start the chain")
        else:
            if r.seq <= prev.seq:
                return bad(r.seq, f"out of order: seq {r.seq} after seq {prev.seq}")
            if r.seq != prev.seq + 1:
                missing = (f"seq {prev.seq + 1}" if r.seq == prev.seq + 2
                           else f"seq {prev.seq + 1}..{r.seq - 1}")
                return bad(prev.seq + 1, f"seq gap: {missing} missing between seq {prev.seq} and seq {r.seq} "
                                         "(deleted)")
        # the link first: a record moved to another place still carries its old prev_hash (reordered), while an
        # edited one links fine and fails its own hash
        if prev is not None and (r.prev_hash != prev.hash or r.prev_ts != prev.ts):
            return bad(r.seq, f"prev_hash mismatch: seq {r.seq} does not follow seq {prev.seq} (reordered or "
                              "replaced)")
        own = _own_problem(r)
        if own is not None:
            return bad(r.seq, own)
        prev = r
    return ChainReport(ok=True, checked=checked)


#: The store's action recording each kind of gallery change (operations writes one record per change).
GALLERY_TO_TRAIL = {"enroll": "enroll", "re-enroll": "enroll", "remove": "remove", "update": "update",
                    "watchlist": "watchlist", "negative": "alert.triage", "erase": "erase"}


def cross_check_gallery(gallery_entries: Iterable[Any], records: Iterable[AuditRecord]) -> list[str]:
    """Where the gallery's own log and the store's chain disagree: every gallery version produced by a change must
    have a store record of the matching action naming that version (and, where the gallery logged a digest of the
    embeddings, the same digest). A gallery change without one was made outside Argus's operator actions (an old
    CLI, a hand-edited directory) — exactly what an auditor needs to see. ``gallery_entries`` are
    :class:`argus.gallery.audit.AuditEntry` (duck-typed: ``version``, ``action``, ``embeddings_sha256``). The
    expired part of the chain explains nothing, so versions older than the chain's first kept record are not
    reported."""
    by_version: dict[int, list[AuditRecord]] = {}
    first_ts: float | None = None
    for r in records:
        first_ts = r.ts if first_ts is None else min(first_ts, r.ts)
        v = r.details.get("gallery_version")
        if isinstance(v, int):
            by_version.setdefault(v, []).append(r)
    problems = []
    for e in gallery_entries:
        if first_ts is not None and e.ts < first_ts:
            continue
        want = GALLERY_TO_TRAIL.get(e.action)
        recs = [r for r in by_version.get(e.version, []) if r.action == want]
        if not recs:
            problems.append(f"gallery version {e.version} ({e.action} by {e.actor}): no {want!r} record in the "
                            "audit trail")
            continue
        digests = {str(d) for r in recs if (d := r.details.get("embeddings_sha256")) is not None}
        if e.action in ("enroll", "re-enroll", "negative") and digests and e.embeddings_sha256 not in digests:
            problems.append(f"gallery version {e.version} ({e.action}): embeddings digest "
                            f"{e.embeddings_sha256[:12]}… differs from the audit trail's {sorted(digests)[0][:12]}…")
    return problems
