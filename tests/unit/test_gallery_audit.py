"""The watch-list audit trail: append-only JSON lines that survive a crash mid-append and reject tampered entries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from argus.errors import StoreError
from argus.gallery import FaissGallery, MemoryGallery, Person
from argus.gallery.audit import AUDIT_FILE, AuditEntry, JsonlAuditLog, MemoryAuditLog, read_audit


def entry(version: int, action: str = "enroll", person_id: str = "alice") -> AuditEntry:
    return AuditEntry(ts=1_700_000_000.0 + version, actor="op", action=action,  # type: ignore[arg-type]
                      person_id=person_id, watchlist="banned", reason="court order 17", version=version,
                      n_embeddings=2, embeddings_sha256="ab" * 32)


def test_entries_round_trip_through_the_jsonl_file_in_order(tmp_path: Path) -> None:
    log = JsonlAuditLog(tmp_path / AUDIT_FILE)
    log.append([entry(1), entry(1, person_id="bob")])
    log.append([entry(2, "remove")])
    assert log.entries() == [entry(1), entry(1, person_id="bob"), entry(2, "remove")]
    assert read_audit(tmp_path) == read_audit(tmp_path / AUDIT_FILE) == log.entries()
    lines = (tmp_path / AUDIT_FILE).read_text().splitlines()
    assert len(lines) == 3
    assert json.loads(lines[2]) == {
        "ts": 1_700_000_002.0, "actor": "op", "action": "remove", "person_id": "alice", "watchlist": "banned",
        "reason": "court order 17", "version": 2, "n_embeddings": 2, "embeddings_sha256": "ab" * 32, "ref": "",
    }


def test_a_line_written_before_ref_existed_still_reads(tmp_path: Path) -> None:
    old = {k: v for k, v in entry(1).to_dict().items() if k != "ref"}
    (tmp_path / AUDIT_FILE).write_text(json.dumps(old) + "\n")
    assert read_audit(tmp_path) == [entry(1)]


def test_appending_never_rewrites_earlier_lines(tmp_path: Path) -> None:
    log = JsonlAuditLog(tmp_path / AUDIT_FILE)
    log.append([entry(1)])
    first = (tmp_path / AUDIT_FILE).read_bytes()
    log.append([entry(2)])
    assert (tmp_path / AUDIT_FILE).read_bytes().startswith(first)


def test_missing_log_reads_as_empty(tmp_path: Path) -> None:
    assert read_audit(tmp_path) == []
    assert read_audit(tmp_path / "nowhere" / AUDIT_FILE) == []


def test_line_torn_by_a_crash_is_skipped_and_the_next_entry_starts_on_a_fresh_line(tmp_path: Path) -> None:
    log = JsonlAuditLog(tmp_path / AUDIT_FILE)
    log.append([entry(1)])
    with open(tmp_path / AUDIT_FILE, "a") as f:
        f.write(entry(2).to_json()[:40])  # the process died half way through writing this line
    assert read_audit(tmp_path) == [entry(1)]
    log.append([entry(3)])
    assert read_audit(tmp_path) == [entry(1), entry(3)]


def test_json_line_that_is_not_an_audit_entry_is_a_store_error_naming_the_line(tmp_path: Path) -> None:
    log = JsonlAuditLog(tmp_path / AUDIT_FILE)
    log.append([entry(1)])
    with open(tmp_path / AUDIT_FILE, "a") as f:
        f.write(json.dumps({**entry(2).to_dict(), "action": "promote"}) + "\n")
        f.write(json.dumps({"ts": 1}) + "\n")
    with pytest.raises(StoreError, match=r"line 2: expected an audit entry.*expected action in"):
        read_audit(tmp_path)
    (tmp_path / AUDIT_FILE).write_text(entry(1).to_json() + "\n" + json.dumps({"ts": 1}) + "\n")
    with pytest.raises(StoreError, match=r"line 2: expected an audit entry.*expected key 'action'"):
        read_audit(tmp_path)


def test_unwritable_log_is_a_store_error(tmp_path: Path) -> None:
    log = JsonlAuditLog(tmp_path / "missing-dir" / AUDIT_FILE)
    with pytest.raises(StoreError, match=r"audit log .*audit.jsonl: append failed"):
        log.append([entry(1)])


def test_memory_log_keeps_entries_and_returns_copies() -> None:
    log = MemoryAuditLog()
    log.append([entry(1), entry(2)])
    got = log.entries()
    got.clear()
    assert log.entries() == [entry(1), entry(2)]


def test_memory_and_faiss_galleries_record_the_same_audit_entries(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 128)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    logs = []
    for g in (MemoryGallery(dim=128), FaissGallery(path=tmp_path, dim=128)):
        g.enroll(Person(person_id="a", display_name="A", watchlist="vip"), x[:2], actor="alice", reason="r1")
        g.enroll(Person(person_id="a", display_name="A"), x[2:], actor="bob", reason="r2")
        g.remove("a", actor="carol", reason="r3")
        logs.append([{k: v for k, v in e.to_dict().items() if k != "ts"} for e in g.audit()])
    assert logs[0] == logs[1]
    assert [e["action"] for e in logs[0]] == ["enroll", "re-enroll", "remove"]
    assert [e["watchlist"] for e in logs[0]] == ["vip", "default", "default"]
    assert read_audit(tmp_path)[2].actor == "carol"
