"""The operator's whole day over HTTP, on real parts: the API over the MongoDB-wire server and a persisted FAISS
gallery, the four stages on the demo's real clips in between.

enroll (multipart upload) → the pipeline raises alerts → the operator lists them → acknowledges one → the auditor
sees every step in the hash-chained trail, in order, by the right people → the admin erases the person → no
collection and no gallery file names them, and the receipt counts exactly what was deleted.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bson import json_util
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from argus.api.app import create_app
from argus.api.auth import create_api_key
from argus.config import load_settings
from argus.demo import ASSETS, DEMO_CAMERAS
from argus.runtime.inprocess import InProcessPipeline
from argus.runtime.resources import Resources

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

PERSON = "P-100/pyfeat:man"  # an id as a records system issues it: case, digits, '-', '/', ':'
API = "/api/v1"


def _quoted(pid: str) -> str:
    from urllib.parse import quote

    return quote(pid, safe="")


@pytest.fixture()
def world(mongo_server: Any, ort_backend: Any, tmp_path: Path) -> Iterator[tuple[Resources, Any, dict[str, str]]]:
    from pymongo import MongoClient

    db = f"t_apiflow_{uuid.uuid4().hex[:10]}"
    settings = load_settings(data_dir=tmp_path, cameras_file=DEMO_CAMERAS, store="mongodb",
                             mongo_uri=mongo_server.address, mongo_database=db, ingest_queue=10_000,
                             ingest_files_realtime=False, metrics_port=0, sinks=["log"],
                             api_rate_per_s=100_000, api_rate_burst=100_000)
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_server.address)
    with Resources(settings, registry=CollectorRegistry(), backend=ort_backend) as res:
        made = {role: create_api_key(res.store, name=f"{role}-key", role=role, actor="bootstrap")
                for role in ("admin", "operator", "auditor")}
        keys = {role: token for role, (_, token) in made.items()}
        keys.update({f"{role}-actor": f"key:{rec.key_id}" for role, (rec, _) in made.items()})
        yield res, client[db], keys
    client.drop_database(db)
    client.close()


def _h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _mentions(db: Any, needle: str) -> dict[str, int]:
    """Documents per collection whose BSON (as extended JSON) contains ``needle`` anywhere."""
    out = {}
    for name in db.list_collection_names():
        n = sum(1 for doc in db[name].find({}) if needle in json_util.dumps(doc))
        if n:
            out[name] = n
    return out


def _files_mentioning(root: Path, needle: str) -> list[str]:
    raw = needle.encode()
    return [str(p) for p in root.rglob("*") if p.is_file() and raw in p.read_bytes()]


def test_enroll_alert_acknowledge_audit_then_erase_leaves_no_trace(world: Any) -> None:
    res, db, keys = world
    api = TestClient(create_app(res), raise_server_exceptions=False)

    photo = (ASSETS / "pyfeat" / "single_face.jpg").read_bytes()
    r = api.post(f"{API}/persons", headers=_h(keys["admin"]),
                 data={"person_id": PERSON, "display_name": "Man from the clips", "watchlist": "demo",
                       "reason": "warrant 2026/17"},
                 files=[("photos", ("single_face.jpg", photo, "image/jpeg")),
                        ("photos", ("notes.txt", b"not an image", "text/plain"))])
    assert r.status_code == 201, r.text
    verdicts = {p["filename"]: p["accepted"] for p in r.json()["photos"]}
    assert verdicts == {"single_face.jpg": True, "notes.txt": False}

    with InProcessPipeline(res) as pipeline:  # the demo's three clips: two show him, one a stranger
        pipeline.wait_ingest()
        pipeline.wait_drained()

    r = api.get(f"{API}/alerts", headers=_h(keys["operator"]), params={"person": PERSON, "limit": 10})
    assert r.status_code == 200, r.text
    alerts = r.json()["items"]
    assert {a["camera_id"] for a in alerts} == {"north-gate", "market-square"}, alerts
    first = alerts[0]["alert_id"]
    r = api.post(f"{API}/alerts/{first}/triage", headers=_h(keys["operator"]),
                 json={"action": "acknowledge", "reason": "officer dispatched"})
    assert r.status_code == 200 and r.json()["status"] == "acknowledged", r.text
    assert res.store.get_alert(first).status == "acknowledged"  # type: ignore[union-attr]

    r = api.get(f"{API}/audit", headers=_h(keys["auditor"]), params={"limit": 100})
    assert r.status_code == 200, r.text
    trail = list(reversed(r.json()["items"]))  # newest first on the wire
    steps = [(a["action"], a["actor"], a.get("subject")) for a in trail if a["action"] != "key.create"]
    enroll = steps.index(("enroll", keys["admin-actor"], PERSON))
    listed = steps.index(("alerts.query", keys["operator-actor"], PERSON))
    acked = steps.index(("alert.triage", keys["operator-actor"], PERSON))
    assert enroll < listed < acked, steps
    assert api.get(f"{API}/audit", headers=_h(keys["operator"])).status_code == 403

    events_before = db["events"].count_documents({"person_id": PERSON})
    alerts_before = db["alerts"].count_documents({"person_id": PERSON})
    assert events_before >= 2 and alerts_before == 2
    assert _mentions(db, PERSON) and _files_mentioning(res.settings.gallery_dir, PERSON)  # the scans can fail

    r = api.delete(f"{API}/persons/{_quoted(PERSON)}", headers=_h(keys["admin"]),
                   params={"erase": "true", "reason": "erasure request 2026-11"})
    assert r.status_code == 200, r.text
    receipt = r.json()
    assert receipt["store"]["events"] == events_before and receipt["store"]["alerts"] == alerts_before, receipt
    assert receipt["gallery"]["embeddings"] == 1, receipt
    assert receipt.get("not_erased_at_once"), "the receipt must say what cannot be erased at once (Kafka, backups)"

    assert _mentions(db, PERSON) == {}, "a document still names the erased person"
    assert _files_mentioning(res.settings.gallery_dir, PERSON) == [], "a gallery file still names the person"
    r = api.get(f"{API}/persons/{_quoted(PERSON)}", headers=_h(keys["admin"]))
    assert r.status_code == 404
