"""The hash-chained audit record: what each kind of tampering looks like to verify_chain, and what is legal."""

from __future__ import annotations

import dataclasses

import pytest

from argus.audit_trail import (
    GENESIS_HASH,
    AuditRecord,
    new_record,
    record_hash,
    subject_digest,
    verify_chain,
)
from argus.errors import InputError

T0 = 1_763_900_000.0
DAY = 86_400.0


def _chain(n: int, *, t0: float = T0, step: float = 60.0) -> list[AuditRecord]:
    out: list[AuditRecord] = []
    for i in range(n):
        prev = out[-1] if out else None
        out.append(new_record(prev, actor=f"analyst-{i % 3}", role="analyst", action="alert.view",
                              subject=f"P-{i}" if i % 2 else None, details={"alert_id": f"a-{i}", "n": i, "x": 0.1},
                              ts=t0 + i * step))
    return out


def _rehash(r: AuditRecord, **changes: object) -> AuditRecord:
    """What a careful forger does: change fields and recompute the record's own hash."""
    changed = dataclasses.replace(r, **changes)
    return dataclasses.replace(changed, hash=record_hash(changed))


def test_an_untouched_chain_verifies():
    rep = verify_chain(_chain(10), now=T0 + DAY, retention_days=None)
    assert (rep.ok, rep.checked, rep.first_bad_seq, rep.problem) == (True, 10, None, "")


def test_records_link_to_the_one_before_and_the_first_to_the_genesis_hash():
    recs = _chain(3)
    assert [r.seq for r in recs] == [1, 2, 3]
    assert recs[0].prev_hash == GENESIS_HASH and recs[0].prev_ts is None
    assert recs[1].prev_hash == recs[0].hash and recs[2].prev_ts == recs[1].ts
    assert all(r.hash == record_hash(r) for r in recs)


def test_the_subject_is_hashed_only_as_a_salted_digest():
    a = new_record(None, actor="ops", role="admin", action="enroll", subject="P-100", details={})
    b = new_record(None, actor="ops", role="admin", action="enroll", subject="P-100", details={})
    assert a.subject_salt != b.subject_salt and a.subject_digest != b.subject_digest  # no guessing by digest
    assert a.subject_salt is not None and a.subject_digest == subject_digest(a.subject_salt, "P-100")


def test_an_edited_record_fails_its_hash():
    recs = _chain(10)
    recs[4] = dataclasses.replace(recs[4], details={**recs[4].details, "n": 999})
    rep = verify_chain(recs, now=T0 + DAY, retention_days=None)
    assert (rep.ok, rep.first_bad_seq) == (False, 5)
    assert "hash mismatch" in rep.problem


def test_an_edited_and_rehashed_record_breaks_the_link_of_the_next():
    recs = _chain(10)
    recs[4] = _rehash(recs[4], actor="someone-else")
    rep = verify_chain(recs, now=T0 + DAY, retention_days=None)
    assert (rep.ok, rep.first_bad_seq) == (False, 6)
    assert "prev_hash mismatch" in rep.problem


def test_a_deleted_record_leaves_a_seq_gap_named_by_the_missing_seq():
    recs = _chain(10)
    del recs[6]
    rep = verify_chain(recs, now=T0 + DAY, retention_days=None)
    assert (rep.ok, rep.first_bad_seq) == (False, 7)
    assert "seq gap" in rep.problem and "seq 7 missing" in rep.problem


def test_a_deleted_last_record_cannot_be_seen_but_a_deleted_run_names_its_first():
    recs = _chain(10)
    rep = verify_chain(recs[:2] + recs[5:], now=T0 + DAY, retention_days=None)
    assert (rep.ok, rep.first_bad_seq) == (False, 3) and "seq 3..5 missing" in rep.problem
    assert verify_chain(recs[:-1], now=T0 + DAY, retention_days=None).ok  # why the head is exported elsewhere


def test_two_records_with_swapped_seq_fail_at_the_first_of_them():
    recs = _chain(10)
    a, b = recs[2], recs[6]
    recs[2], recs[6] = _rehash(b, seq=3), _rehash(a, seq=7)
    rep = verify_chain(recs, now=T0 + DAY, retention_days=None)
    assert (rep.ok, rep.first_bad_seq) == (False, 3)
    assert "prev_hash mismatch" in rep.problem


def test_swapped_seq_without_rehashing_also_fails_at_the_first_of_them():
    recs = _chain(10)
    a, b = recs[2], recs[6]
    recs[2], recs[6] = dataclasses.replace(b, seq=3), dataclasses.replace(a, seq=7)
    rep = verify_chain(recs, now=T0 + DAY, retention_days=None)
    assert (rep.ok, rep.first_bad_seq) == (False, 3)


def test_records_handed_over_out_of_order_are_reported():
    recs = _chain(5)
    rep = verify_chain([recs[0], recs[1], recs[3], recs[2], recs[4]], now=T0 + DAY, retention_days=None)
    assert not rep.ok and rep.first_bad_seq == 3


def test_a_redacted_subject_still_verifies():
    recs = _chain(6)
    recs[3] = dataclasses.replace(recs[3], subject=None, subject_salt=None)
    assert recs[3].subject_digest is not None
    assert verify_chain(recs, now=T0 + DAY, retention_days=None).ok


def test_a_changed_subject_fails_against_its_digest():
    recs = _chain(6)
    assert recs[3].subject == "P-3"
    recs[3] = dataclasses.replace(recs[3], subject="P-999")
    rep = verify_chain(recs, now=T0 + DAY, retention_days=None)
    assert (rep.ok, rep.first_bad_seq) == (False, 4) and "digest" in rep.problem


def test_a_subject_blanked_without_its_salt_is_not_a_redaction():
    recs = _chain(6)
    recs[3] = dataclasses.replace(recs[3], subject=None)
    rep = verify_chain(recs, now=T0 + DAY, retention_days=None)
    assert (rep.ok, rep.first_bad_seq) == (False, 4) and "salt" in rep.problem


def test_a_prefix_expired_by_retention_is_legal():
    recs = _chain(10, step=DAY)  # one record a day
    now = T0 + 40 * DAY
    kept = [r for r in recs if r.ts >= now - 35 * DAY]  # what a 35-day TTL left
    assert kept[0].seq > 1
    rep = verify_chain(kept, now=now, retention_days=35)
    assert rep.ok and rep.checked == len(kept)


def test_a_deleted_first_record_is_illegal_when_retention_did_not_expire_it():
    recs = _chain(10, step=DAY)
    rep = verify_chain(recs[1:], now=T0 + 12 * DAY, retention_days=35)
    assert (rep.ok, rep.first_bad_seq) == (False, 1)
    assert "missing" in rep.problem and "not expired" in rep.problem


def test_a_missing_prefix_is_illegal_without_any_audit_retention():
    recs = _chain(10, step=DAY)
    rep = verify_chain(recs[3:], now=T0 + 400 * DAY, retention_days=None)
    assert (rep.ok, rep.first_bad_seq) == (False, 1) and "no audit retention" in rep.problem


def test_a_forged_first_record_must_start_from_the_genesis_hash():
    recs = _chain(3)
    recs[0] = _rehash(recs[0], prev_hash="f" * 64)
    rep = verify_chain(recs, now=T0 + DAY, retention_days=None)
    assert (rep.ok, rep.first_bad_seq) == (False, 1)


def test_an_empty_trail_verifies_with_nothing_checked():
    rep = verify_chain([], now=T0, retention_days=None)
    assert rep.ok and rep.checked == 0


def test_hashing_is_canonical_across_key_order_and_a_store_round_trip():
    r = new_record(None, actor="ops", role="admin", action="events.query",
                   details={"filter": {"b": 1, "a": [1.5, 2]}, "count": 3, "ratio": 1.0, "t": (1, 2)})
    assert r.details["t"] == [1, 2]  # as any store gives it back
    again = AuditRecord.from_doc(dict(reversed(list(r.to_doc().items()))))
    assert again == r and record_hash(again) == r.hash
    one_point_oh = dataclasses.replace(r, details={**r.details, "ratio": 1})
    assert record_hash(one_point_oh) != r.hash  # a float is not its integer: repr, not a number value


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"action": "delete-everything"}, "audit action"),
    ({"actor": ""}, "audit actor"),
    ({"details": {"blob": b"\x00"}}, "JSON-safe"),
    ({"details": {"x": float("nan")}}, "JSON-safe"),
    ({"subject": 42}, "audit subject"),
])
def test_bad_records_are_refused_naming_the_field(kwargs: dict[str, object], match: str):
    base: dict[str, object] = {"actor": "ops", "role": "admin", "action": "enroll", "details": {}}
    with pytest.raises(InputError, match=match):
        new_record(None, **{**base, **kwargs})


def _gallery_entry(version: int, action: str = "enroll", digest: str = "d" * 64, ts: float = T0 + 1):
    from argus.gallery.audit import AuditEntry

    return AuditEntry(ts=ts, actor="alice", action=action, person_id="P-1", watchlist="vip", reason="r",
                      version=version, n_embeddings=1, embeddings_sha256=digest)


def _trail(*details: dict[str, object], action: str = "enroll") -> list[AuditRecord]:
    out: list[AuditRecord] = []
    for i, d in enumerate(details):
        out.append(new_record(out[-1] if out else None, actor="alice", role="admin", action=action, subject="P-1",
                              details=d, ts=T0 + i))
    return out


@pytest.mark.parametrize(("entries", "trail", "expect"), [
    # every gallery change has its record, same digest: they agree
    ([1], [{"gallery_version": 1, "embeddings_sha256": "d" * 64}], []),
    # a gallery change nobody recorded in the trail (made outside the operator actions)
    ([1, 2], [{"gallery_version": 1, "embeddings_sha256": "d" * 64}], ["gallery version 2"]),
    # the trail recorded other embeddings than the gallery holds
    ([1], [{"gallery_version": 1, "embeddings_sha256": "e" * 64}], ["digest"]),
])
def test_gallery_log_and_audit_trail_cross_check(entries, trail, expect):
    from argus.audit_trail import cross_check_gallery

    problems = cross_check_gallery([_gallery_entry(v) for v in entries], _trail(*trail))
    assert len(problems) == len(expect)
    for p, want in zip(problems, expect, strict=True):
        assert want in p


def test_gallery_changes_older_than_the_kept_trail_are_not_reported():
    from argus.audit_trail import cross_check_gallery

    old = _gallery_entry(1, ts=T0 - 10 * DAY)  # its record expired by the audit retention
    assert cross_check_gallery([old], _trail({"gallery_version": 2})) == []
