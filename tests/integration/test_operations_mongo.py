"""The operator actions over the real MongoDB-wire server (secantusdb) and a persisted FAISS gallery: enrolment is
audited with the gallery's own version and digest, not-this-person adds negative evidence, and an erasure's
receipt counts exactly what existed and leaves no collection and no gallery file naming the person."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bson import json_util
from ops_world import BIDEN, OBAMA, OBAMA_PHOTOS, aligned_crop_jpeg, photos, put_alert, put_cameras

from argus import operations as ops
from argus.audit_trail import verify_chain
from argus.faces.pipeline import FacePipeline
from argus.gallery.faiss_gallery import FaissGallery
from argus.store.base import AlertFilter, EventFilter

pytestmark = pytest.mark.integration

ADMIN: dict[str, Any] = {"actor": "alice", "role": "admin"}
OPERATOR: dict[str, Any] = {"actor": "olga", "role": "operator"}


@pytest.fixture(scope="module")
def pipeline(ort_backend) -> FacePipeline:
    return FacePipeline(backend=ort_backend)


@pytest.fixture()
def world(mongo_server, tmp_path: Path, pipeline: FacePipeline) -> Iterator[tuple[ops.Services, Any]]:
    from pymongo import MongoClient

    from argus.store.mongo import MongoEventStore

    db_name = f"t_ops_{uuid.uuid4().hex[:10]}"
    store = MongoEventStore(uri=mongo_server.address, database=db_name, retention_days=30)
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_server.address)
    svc = ops.Services(gallery=FaissGallery(path=tmp_path / "gallery", dim=128, use_gpu=False), store=store,
                       pipeline=pipeline)
    yield svc, client[db_name]
    store.close()
    client.drop_database(db_name)
    client.close()


def test_enrolment_is_in_the_audit_chain_with_the_gallery_version_and_digest(world):
    svc, _ = world
    out = ops.enroll_person(svc, person_id=OBAMA, display_name="Barack Obama", photos=photos(*OBAMA_PHOTOS),
                            reason="court order 17", **ADMIN)
    assert out.person is not None and len(out.accepted) == 3
    entry = svc.gallery.audit()[-1]
    rec = list(svc.store.audit_records())[-1]
    assert (rec.action, rec.subject, rec.actor, rec.role) == ("enroll", OBAMA, "alice", "admin")
    assert rec.details["gallery_version"] == entry.version == svc.gallery.version
    assert rec.details["embeddings_sha256"] == entry.embeddings_sha256
    assert len(svc.store.get_person_photos(OBAMA)) == 3


def test_not_this_person_adds_negative_evidence_and_marks_the_alert(world, pipeline):
    svc, _ = world
    ops.enroll_person(svc, person_id=OBAMA, display_name="Barack Obama", photos=photos(*OBAMA_PHOTOS),
                      reason="r", **ADMIN)
    put_alert(svc.store, camera_id="cam-north-1", person_id=OBAMA, seq=1,
              crop=aligned_crop_jpeg(pipeline, "faces/biden.jpg"))
    rec = ops.triage_alert(svc, "a-cam-north-1-1", action="not_this_person", reason="that is Biden", **OPERATOR)
    assert rec.status == "not_this_person"
    assert svc.store.get_alert("a-cam-north-1-1").status == "not_this_person"
    assert svc.gallery.negatives(OBAMA).shape == (1, 128)
    a = list(svc.store.audit_records())[-1]
    assert (a.action, a.subject, a.details["negatives"]) == ("alert.triage", OBAMA, 1)
    assert a.details["embeddings_sha256"] == svc.gallery.audit()[-1].embeddings_sha256


def test_erasure_counts_what_existed_and_nothing_names_the_person_afterwards(world, pipeline, tmp_path):
    svc, db = world
    put_cameras(svc.store)
    ops.enroll_person(svc, person_id=OBAMA, display_name="Barack Obama", photos=photos(*OBAMA_PHOTOS),
                      reason="r", **ADMIN)
    ops.enroll_person(svc, person_id=BIDEN, display_name="Joe Biden", photos=photos("faces/biden.jpg"),
                      reason="r", **ADMIN)
    crop = aligned_crop_jpeg(pipeline, "faces/obama.jpg")
    for seq, cam in enumerate(["cam-north-1", "cam-north-2", "cam-south-1"], start=1):
        put_alert(svc.store, camera_id=cam, person_id=OBAMA, seq=seq, crop=crop)
    put_alert(svc.store, camera_id="cam-south-1", person_id=BIDEN, seq=9, crop=crop, runner_up=OBAMA)
    ops.triage_alert(svc, "a-cam-north-1-1", action="not_this_person", reason="other man", **OPERATOR)
    ops.query_events(svc, EventFilter(person_id=OBAMA), limit=10, **OPERATOR)
    ops.query_alerts(svc, AlertFilter(person_id=OBAMA), limit=10, **OPERATOR)
    existed = {"events": svc.store.page_events(EventFilter(person_id=OBAMA), limit=100).items,
               "alerts": svc.store.page_alerts(AlertFilter(person_id=OBAMA), limit=100).items}

    receipt = ops.erase_person(svc, OBAMA, reason="erasure request 5", **ADMIN)

    assert receipt.store["events"] == len(existed["events"]) == 3
    assert receipt.store["alerts"] == len(existed["alerts"]) == 3
    assert receipt.store["persons"] == 1 and receipt.store["photos"] == 3
    assert receipt.gallery["embeddings"] == 3 and receipt.gallery["negatives"] == 1
    for name in db.list_collection_names():
        for doc in db[name].find():
            assert OBAMA not in json_util.dumps(doc), f"collection {name} still names the person: {doc.get('_id')}"
    for f in (tmp_path / "gallery").rglob("*"):
        if f.is_file():
            assert OBAMA.encode() not in f.read_bytes(), f
    assert svc.gallery.get(BIDEN) is not None and svc.store.get_alert("a-cam-south-1-9") is not None
    last = list(svc.store.audit_records())[-1]
    assert (last.action, last.subject) == ("erase", None) and OBAMA not in json.dumps(last.details)
    assert verify_chain(svc.store.audit_records(), now=time.time(), retention_days=None).ok
