"""Tampering with the audit trail in a real MongoDB-wire server is caught by ``argus audit verify``.

The store is written through MongoEventStore, then changed behind its back with pymongo (what an intruder with
database access does), and the CLI runs as its own process against the same database.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def trail(mongo_server: Any) -> Iterator[tuple[str, str, Any]]:
    """(uri, database, the raw audit collection) holding a ten-record chain written by the store."""
    from pymongo import MongoClient

    from argus.store.mongo import MongoEventStore

    uri = mongo_server.address
    db = f"t_{uuid.uuid4().hex[:10]}"
    store = MongoEventStore(uri=uri, database=db)
    for i in range(10):
        store.append_audit(actor=f"op-{i % 2}", role="operator", action="alert.view",
                           subject=f"P-{i}" if i % 2 else None, details={"alert_id": f"a-{i}", "score": 0.71})
    store.close()
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    try:
        yield uri, db, client[db]["audit"]
    finally:
        client.drop_database(db)
        client.close()


def _verify(uri: str, db: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARGUS_")}
    env.update(ARGUS_STORE="mongodb", ARGUS_MONGO_URI=uri, ARGUS_MONGO_DATABASE=db, ARGUS_DATA_DIR=str(tmp_path))
    return subprocess.run([sys.executable, "-m", "argus.cli", "audit", "verify"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def _edit(coll: Any) -> None:
    coll.update_one({"_id": 4}, {"$set": {"details.alert_id": "a-something-else"}})


def _delete(coll: Any) -> None:
    coll.delete_one({"_id": 6})


def _swap(coll: Any) -> None:
    """Records 3 and 8 trade places (``_id`` is the seq, so each is re-inserted under the other's)."""
    a, b = coll.find_one({"_id": 3}), coll.find_one({"_id": 8})
    coll.delete_many({"_id": {"$in": [3, 8]}})
    coll.insert_one({**b, "_id": 3, "seq": 3})
    coll.insert_one({**a, "_id": 8, "seq": 8})


def test_an_untouched_trail_verifies(trail: tuple[str, str, Any], tmp_path: Path):
    uri, db, _ = trail
    r = _verify(uri, db, tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("audit chain OK: 10 records"), r.stdout + r.stderr


def test_an_erased_subject_still_verifies(trail: tuple[str, str, Any], tmp_path: Path):
    uri, db, coll = trail
    assert coll.update_many({"subject": "P-3"}, {"$set": {"subject": None, "subject_salt": None}}).modified_count == 1
    r = _verify(uri, db, tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("audit chain OK: 10 records"), r.stdout + r.stderr


@pytest.mark.parametrize(("tamper", "seq", "what"), [
    (_edit, 4, "hash mismatch"),
    (_delete, 6, "seq gap"),
    (_swap, 3, "prev_hash mismatch"),
])
def test_a_tampered_trail_fails_naming_the_record(trail: tuple[str, str, Any], tmp_path: Path,
                                                 tamper: Callable[[Any], None], seq: int, what: str):
    uri, db, coll = trail
    tamper(coll)
    r = _verify(uri, db, tmp_path)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stdout.startswith(f"audit chain BROKEN at seq {seq}: {what}"), r.stdout
