"""The operator actions over the embedded SQLite store and a persisted FAISS gallery, with the real pipeline:
each action's effect on the gallery and the store, and the audit record it leaves (who, role, subject, details that
agree with the gallery's own log and never name the person)."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TypedDict

import numpy as np
import pytest
from ops_world import (
    BIDEN,
    OBAMA,
    OBAMA_PHOTOS,
    aligned_crop_jpeg,
    photos,
    put_alert,
    put_cameras,
)

from argus import operations as ops
from argus.audit_trail import verify_chain
from argus.enroll import PhotoChecks
from argus.errors import ConfigError, InputError, NoFaceError
from argus.faces.pipeline import FacePipeline
from argus.gallery.faiss_gallery import FaissGallery
from argus.imaging import decode_image, encode_jpeg, read_image
from argus.store.base import AlertFilter, AlertNotFoundError, AuditFilter, EventFilter
from argus.store.sqlite import SqliteEventStore
from argus.topology import ALL_TOPICS


class Who(TypedDict):
    actor: str
    role: str


ADMIN: Who = {"actor": "alice", "role": "admin"}
OPERATOR: Who = {"actor": "olga", "role": "operator"}


@pytest.fixture(scope="module")
def pipeline(ort_backend) -> FacePipeline:
    return FacePipeline(backend=ort_backend)


@pytest.fixture()
def svc(tmp_path: Path, pipeline: FacePipeline) -> Iterator[ops.Services]:
    store = SqliteEventStore(path=tmp_path / "events.sqlite")
    gallery = FaissGallery(path=tmp_path / "gallery", dim=128, use_gpu=False)
    yield ops.Services(gallery=gallery, store=store, pipeline=pipeline, checks=PhotoChecks())
    store.close()


@pytest.fixture()
def enrolled(svc: ops.Services) -> ops.Services:
    ops.enroll_person(svc, person_id=OBAMA, display_name="Barack Obama", photos=photos(*OBAMA_PHOTOS),
                      reason="case 17", **ADMIN)
    ops.enroll_person(svc, person_id=BIDEN, display_name="Joe Biden", photos=photos("faces/biden.jpg"),
                      reason="case 18", **ADMIN)
    return svc


def last_audit(svc: ops.Services):
    return list(svc.store.audit_records())[-1]


def assert_no_person_in_details(rec, *ids: str) -> None:
    text = json.dumps(rec.details)
    for pid in ids:
        assert pid not in text


# ---- enroll --------------------------------------------------------------------------------------------------------
def test_enroll_keeps_good_photos_stores_thumbnails_and_audits_what_the_gallery_logged(svc):
    out = ops.enroll_person(svc, person_id=OBAMA, display_name="Barack Obama", watchlist="vip",
                            photos=[*photos(*OBAMA_PHOTOS, "faces/biden.jpg", "pyfeat/multi_face.jpg"),
                                    ("notes.txt", b"hello")], reason="court order 17", **ADMIN)
    assert out.person is not None and out.person.person_id == OBAMA
    assert [p.accepted for p in out.photos] == [True, True, True, False, False, False]
    assert [p.code for p in out.rejected] == ["not_same_person", "several_faces", "unreadable"]
    thumbs = svc.store.get_person_photos(OBAMA)
    assert len(thumbs) == 3 and all(max(decode_image(t).shape[:2]) <= 160 for t in thumbs)
    rec = svc.store.get_person(OBAMA)
    assert rec is not None and rec.display_name == "Barack Obama" and rec.attributes["images"] == 3
    g = svc.gallery.audit()[-1]
    a = last_audit(svc)
    assert (a.action, a.actor, a.role, a.subject) == ("enroll", "alice", "admin", OBAMA)
    assert a.details["gallery_version"] == g.version == svc.gallery.version == out.gallery_version
    assert a.details["embeddings_sha256"] == g.embeddings_sha256 == out.embeddings_sha256
    assert (a.details["accepted"], a.details["rejected"]) == (3, 3)
    assert_no_person_in_details(a, OBAMA, "Barack Obama")


def test_enroll_with_no_acceptable_photo_changes_nothing_and_says_why_per_photo(svc):
    before = svc.gallery.version
    out = ops.enroll_person(svc, person_id=OBAMA, display_name="B", photos=photos("pyfeat/free-mountain-vector-01.jpg"),
                            reason="r", **ADMIN)
    assert out.person is None and out.photos[0].code == "no_face"
    assert svc.gallery.version == before and len(svc.gallery) == 0
    assert svc.store.get_person(OBAMA) is None and list(svc.store.audit_records()) == []


def test_enroll_reports_a_listed_look_alike_by_id(enrolled):
    out = ops.enroll_person(enrolled, person_id="P-9/obama-again", display_name="Obama again",
                            photos=photos("faces/obama2.jpg"), reason="dup", **ADMIN)
    assert set(out.look_alikes) == {OBAMA} and out.look_alikes[OBAMA] >= 0.94
    assert last_audit(enrolled).details["look_alikes"] == 1


@pytest.mark.parametrize("kw", [{"reason": " "}, {"role": "janitor"}, {"actor": ""}])
def test_an_action_without_who_or_why_is_refused_before_anything_changes(svc, kw):
    args = {**ADMIN, "reason": "r", **kw}
    with pytest.raises(InputError, match="expected"):
        ops.enroll_person(svc, person_id=OBAMA, display_name="B", photos=photos("faces/obama.jpg"), **args)
    assert len(svc.gallery) == 0


def test_an_action_that_needs_the_models_says_so_when_built_without_them(svc):
    bare = ops.Services(gallery=svc.gallery, store=svc.store)
    with pytest.raises(ConfigError, match="enrolment needs the face models"):
        ops.enroll_person(bare, person_id=OBAMA, display_name="B", photos=photos("faces/obama.jpg"), reason="r",
                          **ADMIN)


# ---- update / remove / watch-list --------------------------------------------------------------------------------
def test_update_changes_gallery_and_store_and_audits_field_names_not_values(enrolled):
    p = ops.update_person(enrolled, OBAMA, display_name="B. Obama", expires_at=2_000_000_000.0, reason="renamed",
                          **OPERATOR)
    assert p.display_name == "B. Obama" and enrolled.gallery.get(OBAMA).expires_at == 2_000_000_000.0
    assert enrolled.store.get_person(OBAMA).display_name == "B. Obama"
    a = last_audit(enrolled)
    assert (a.action, a.subject, a.role) == ("update", OBAMA, "operator")
    assert a.details["fields"] == ["display_name", "expires_at"]
    assert a.details["gallery_version"] == enrolled.gallery.audit()[-1].version
    assert_no_person_in_details(a, OBAMA, "B. Obama")


def test_remove_takes_the_person_off_the_list_and_drops_their_photos(enrolled):
    version = ops.remove_person(enrolled, OBAMA, reason="order ended", **ADMIN)
    assert enrolled.gallery.get(OBAMA) is None and version == enrolled.gallery.version
    assert enrolled.store.get_person(OBAMA).attributes["status"] == "removed"
    assert enrolled.store.get_person_photos(OBAMA) == []
    a = last_audit(enrolled)
    g = enrolled.gallery.audit()[-1]
    assert (a.action, a.subject) == ("remove", OBAMA)
    assert a.details["embeddings_sha256"] == g.embeddings_sha256 and a.details["n_embeddings"] == 3


def test_set_watchlist_stores_the_spec_and_audits_it(enrolled):
    spec = ops.set_watchlist(enrolled, name="vip", threshold=0.95, legal_basis="order 2026/17", reason="new list",
                             **ADMIN)
    assert enrolled.gallery.watchlist("vip").threshold == 0.95 and spec.updated_by == "alice"
    a = last_audit(enrolled)
    assert (a.action, a.subject, a.details["name"], a.details["threshold"]) == ("watchlist", None, "vip", 0.95)


# ---- triage ----------------------------------------------------------------------------------------------------------
def test_acknowledge_sets_the_status_and_audits_it_about_the_person(enrolled, pipeline):
    put_alert(enrolled.store, camera_id="cam-north-1", person_id=OBAMA, seq=1,
              crop=aligned_crop_jpeg(pipeline, "faces/obama.jpg"))
    rec = ops.triage_alert(enrolled, "a-cam-north-1-1", action="acknowledge", reason="seen", **OPERATOR)
    assert (rec.status, rec.acked_by, rec.note) == ("acknowledged", "olga", "seen")
    a = last_audit(enrolled)
    assert (a.action, a.subject, a.details["previous_status"], a.details["status"]) == (
        "alert.triage", OBAMA, "new", "acknowledged")
    assert enrolled.gallery.negatives(OBAMA).shape[0] == 0


def test_not_this_person_keeps_the_alert_face_as_negative_evidence(enrolled, pipeline):
    # the alert named Obama on Biden's face: the operator says "not this person"
    crop = aligned_crop_jpeg(pipeline, "faces/biden.jpg")
    put_alert(enrolled.store, camera_id="cam-north-1", person_id=OBAMA, seq=2, crop=crop)
    rec = ops.triage_alert(enrolled, "a-cam-north-1-2", action="not_this_person", reason="that is Biden",
                           **OPERATOR)
    assert rec.status == "not_this_person"
    neg = enrolled.gallery.negatives(OBAMA)
    biden = pipeline.process([read_image("assets/faces/biden.jpg")])[0][0].embedding
    assert neg.shape == (1, 128) and float(neg[0] @ biden) > 0.99
    g = enrolled.gallery.audit()[-1]
    assert (g.action, g.ref) == ("negative", "a-cam-north-1-2")
    a = last_audit(enrolled)
    assert a.details["negatives"] == 1 and a.details["embeddings_sha256"] == g.embeddings_sha256
    assert a.details["gallery_version"] == g.version


def test_not_this_person_needs_a_reason_and_a_crop(enrolled, pipeline):
    put_alert(enrolled.store, camera_id="cam-north-1", person_id=OBAMA, seq=3,
              crop=aligned_crop_jpeg(pipeline, "faces/biden.jpg"))
    with pytest.raises(InputError, match="reason: expected a non-empty string"):
        ops.triage_alert(enrolled, "a-cam-north-1-3", action="not_this_person", **OPERATOR)
    put_alert(enrolled.store, camera_id="cam-north-1", person_id=OBAMA, seq=4, crop=b"")
    with pytest.raises(InputError, match="has no stored crop"):
        ops.triage_alert(enrolled, "a-cam-north-1-4", action="not_this_person", reason="r", **OPERATOR)
    assert enrolled.gallery.negatives(OBAMA).shape[0] == 0
    assert enrolled.store.get_alert("a-cam-north-1-3").status == "new"


def test_triage_of_an_unknown_alert_or_with_an_unknown_action_is_refused(enrolled):
    with pytest.raises(AlertNotFoundError, match="'nope'"):
        ops.triage_alert(enrolled, "nope", action="acknowledge", **OPERATOR)
    with pytest.raises(InputError, match="triage action: expected one of"):
        ops.triage_alert(enrolled, "nope", action="delete", **OPERATOR)


def test_a_crop_that_is_not_an_aligned_crop_is_detected_again(pipeline, assets):
    full = (assets / "faces/obama.jpg").read_bytes()
    aligned = aligned_crop_jpeg(pipeline, "faces/obama.jpg")
    a = ops.embed_alert_crop(pipeline, aligned, where="x")
    b = ops.embed_alert_crop(pipeline, full, where="x")
    assert a.shape == b.shape == (1, 128) and float(a[0] @ b[0]) > 0.98
    scenery = encode_jpeg(read_image(str(assets / "pyfeat/free-mountain-vector-01.jpg")))
    with pytest.raises(NoFaceError, match="x crop: expected exactly one face, got 0"):
        ops.embed_alert_crop(pipeline, scenery, where="x")


def test_viewing_an_alert_and_its_crop_is_audited(enrolled, pipeline):
    crop = aligned_crop_jpeg(pipeline, "faces/obama.jpg")
    put_alert(enrolled.store, camera_id="cam-north-1", person_id=OBAMA, seq=5, crop=crop)
    assert ops.view_alert(enrolled, "a-cam-north-1-5", **OPERATOR).alert.person_id == OBAMA
    assert ops.alert_crop(enrolled, "a-cam-north-1-5", **OPERATOR) == crop
    actions = [(r.action, r.subject, r.details["alert_id"]) for r in list(enrolled.store.audit_records())[-2:]]
    assert actions == [("alert.view", OBAMA, "a-cam-north-1-5"), ("alert.crop", OBAMA, "a-cam-north-1-5")]


# ---- history -----------------------------------------------------------------------------------------------------
@pytest.fixture()
def history(enrolled, pipeline):
    put_cameras(enrolled.store)
    crop = aligned_crop_jpeg(pipeline, "faces/obama.jpg")
    for seq, cam in enumerate(["cam-north-1", "cam-north-2", "cam-south-1", "cam-north-1"], start=10):
        put_alert(enrolled.store, camera_id=cam, person_id=OBAMA, seq=seq, crop=crop)
    put_alert(enrolled.store, camera_id="cam-south-1", person_id=BIDEN, seq=20, crop=crop, runner_up=OBAMA)
    return enrolled


def test_a_zone_resolves_to_its_cameras_and_an_unknown_zone_to_none(history):
    assert ops.resolve_cameras(history, zone="north") == ("cam-north-1", "cam-north-2")
    assert ops.resolve_cameras(history, zone="north", camera_ids=["cam-north-2", "cam-south-1"]) == ("cam-north-2",)
    assert ops.resolve_cameras(history, zone="atlantis") == ()
    assert ops.resolve_cameras(history, camera_ids=None) is None


def test_query_alerts_filters_and_audits_the_filter_with_the_person_as_subject(history):
    flt = AlertFilter(camera_ids=ops.resolve_cameras(history, zone="north"), person_id=OBAMA)
    page = ops.query_alerts(history, flt, limit=2, **OPERATOR)
    assert len(page.items) == 2 and page.next_cursor is not None
    assert all(r.alert.camera_id.startswith("cam-north") for r in page.items)
    a = last_audit(history)
    assert (a.action, a.subject) == ("alerts.query", OBAMA)
    assert a.details == {"filter": {"camera_ids": ["cam-north-1", "cam-north-2"]}, "count": 2, "cursor": False}
    rest = ops.query_alerts(history, flt, limit=10, cursor=page.next_cursor, **OPERATOR)
    assert len(rest.items) == 1 and last_audit(history).details["cursor"] is True


def test_query_events_and_audit_are_audited_too(history):
    page = ops.query_events(history, EventFilter(emotion="happy"), limit=100, **OPERATOR)
    assert len(page.items) == 5
    a = last_audit(history)
    assert (a.action, a.subject, a.details["filter"], a.details["count"]) == ("events.query", None,
                                                                              {"emotion": "happy"}, 5)
    audit_page = ops.query_audit(history, AuditFilter(action="enroll"), limit=10, actor="ann", role="auditor")
    assert [r.action for r in audit_page.items] == ["enroll", "enroll"]
    assert last_audit(history).action == "audit.query"


@pytest.mark.parametrize("limit", [0, 1001, True])
def test_a_query_limit_out_of_range_is_refused(history, limit):
    with pytest.raises(InputError, match="page limit: expected an integer 1..1000"):
        ops.query_alerts(history, AlertFilter(), limit=limit, **OPERATOR)


def test_csv_export_streams_every_row_and_audits_the_count_at_the_end(history, monkeypatch):
    monkeypatch.setattr(ops, "EXPORT_PAGE", 2)  # several store pages
    chunks = ops.export_events(history, EventFilter(person_id=OBAMA), fmt="csv", **OPERATOR)
    n_before = len(list(history.store.audit_records()))
    text = "".join(chunks)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 4 and {r["person_id"] for r in rows} == {OBAMA}
    assert list(rows[0]) == list(ops.EXPORT_COLUMNS)
    assert json.loads(rows[0]["candidates"])[0]["person_id"] == OBAMA
    recs = list(history.store.audit_records())
    assert len(recs) == n_before + 1
    a = recs[-1]
    assert (a.action, a.subject, a.details["count"], a.details["complete"], a.details["format"]) == (
        "events.export", OBAMA, 4, True, "csv")


def test_json_export_is_one_object_per_line_and_an_abandoned_export_is_audited_as_incomplete(history):
    lines = "".join(ops.export_events(history, EventFilter(), fmt="json", **OPERATOR)).splitlines()
    assert len(lines) == 5 and all("crop_jpeg" not in json.loads(ln) for ln in lines)
    stream = ops.export_events(history, EventFilter(), fmt="json", **OPERATOR)
    next(stream)
    stream.close()  # the client went away after one row
    a = last_audit(history)
    assert (a.details["count"], a.details["complete"]) == (1, False)


def test_an_unknown_export_format_is_refused(history):
    with pytest.raises(InputError, match="export format: expected 'csv' or 'json', got 'xml'"):
        ops.export_events(history, EventFilter(), fmt="xml", **OPERATOR)


# ---- erasure -------------------------------------------------------------------------------------------------------
def test_erase_removes_every_trace_counts_it_and_leaves_a_chain_that_verifies(history, pipeline, tmp_path):
    ops.triage_alert(history, "a-cam-north-1-10", action="not_this_person", reason="other man", **OPERATOR)
    ops.query_alerts(history, AlertFilter(person_id=OBAMA), limit=10, **OPERATOR)
    receipt = ops.erase_person(history, OBAMA, reason="erasure request 5", **ADMIN)
    assert receipt.gallery == {"embeddings": 3, "negatives": 1, "audit_entries_redacted": receipt.gallery[
        "audit_entries_redacted"]} and receipt.gallery["audit_entries_redacted"] >= 2
    assert receipt.store["events"] == 4 and receipt.store["alerts"] == 4 and receipt.store["persons"] == 1
    assert receipt.store["photos"] == 3
    assert all(any(t in line for line in receipt.not_erased_at_once) for t in ALL_TOPICS)
    # nothing names the person any more
    assert history.gallery.get(OBAMA) is None and history.store.get_person(OBAMA) is None
    assert history.store.get_person_photos(OBAMA) == []
    assert history.store.page_alerts(AlertFilter(person_id=OBAMA), limit=10).items == []
    biden_alert = history.store.get_alert("a-cam-south-1-20")
    assert biden_alert is not None
    assert OBAMA not in json.dumps(biden_alert.alert.model_dump(mode="json", exclude={"crop_jpeg"}))
    for rec in history.store.audit_records():
        assert rec.subject != OBAMA and OBAMA not in json.dumps(rec.details)
    for f in (tmp_path / "gallery").rglob("*"):
        if f.is_file():
            assert OBAMA.encode() not in f.read_bytes(), f
    a = last_audit(history)
    assert (a.action, a.subject) == ("erase", None) and a.details["store"] == receipt.store
    assert verify_chain(history.store.audit_records(), now=time.time(), retention_days=None).ok


def test_the_not_erasable_list_names_each_topic_with_its_retention():
    lines = ops.not_erasable_now()
    assert [ln.split(":")[0] for ln in lines[: len(ALL_TOPICS)]] == [f"Kafka topic {t}" for t in ALL_TOPICS]
    assert "(168 h)" in next(ln for ln in lines if "argus.alerts.v3" in ln)
    assert "(6 h)" in next(ln for ln in lines if "argus.frames.v2" in ln)


def test_services_from_resources_takes_the_settings_floors(tmp_path, ort_backend):
    from prometheus_client import CollectorRegistry

    from argus.config import load_settings
    from argus.gallery.memory import MemoryGallery
    from argus.runtime.resources import Resources

    s = load_settings(data_dir=tmp_path, min_face_size=60, min_quality_blur=20.0)
    with Resources(s, registry=CollectorRegistry(), gallery=MemoryGallery(dim=128),
                   store=SqliteEventStore(path=":memory:"), backend=ort_backend) as res:
        out = ops.enroll_person(res, person_id=OBAMA, display_name="B", photos=photos("faces/obama.jpg"),
                                reason="r", **ADMIN)
        assert out.person is not None and res.store.get_person_photos(OBAMA)
        svc = ops._svc(res)
        assert (svc.checks.min_face_px, svc.checks.min_blur) == (60.0, 20.0)
        assert ops._svc(res) is svc
    assert np.isfinite(out.photos[0].blur or 0.0)


# ---- the CLI goes through the same functions --------------------------------------------------------------------
@pytest.fixture()
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import os

    for k in [k for k in os.environ if k.startswith("ARGUS_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("ARGUS_DATA_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ARGUS_ORT_THREADS", "1")
    return tmp_path


def _cli_store(state: Path) -> SqliteEventStore:
    """The store the CLI wrote (argus.runtime.resources keeps SQLite at data_dir/events.sqlite)."""
    path = state / "events.sqlite"
    assert path.is_file()
    return SqliteEventStore(path=path)


def test_cli_bulk_enrol_goes_on_past_bad_rows_and_people_and_summarises(cli_env, assets, capsys):
    from argus.cli import main

    m = cli_env / "manifest.csv"
    m.write_text("person_id,display_name,watchlist,photo_path\n"
                 f"P-1/obama,Barack Obama,vip,{assets}/faces/obama.jpg\n"
                 f"P-1/obama,Barack Obama,vip,{assets}/faces/obama2.jpg\n"
                 "P-2,Scenery,vip,{assets}/pyfeat/free-mountain-vector-01.jpg\n".replace("{assets}", str(assets))
                 + "broken row\n"
                 f"P-3,Joe Biden,vip,{assets}/faces/biden.jpg\n")
    rc = main(["gallery", "enroll-bulk", str(m), "--reason", "import 7", "--actor", "alice"])
    out, err = capsys.readouterr()
    assert rc == 1  # one person and one row failed
    rows = [json.loads(ln) for ln in out.splitlines()]
    assert [(r["person_id"], r["enrolled"], r["accepted"], r["rejected"]) for r in rows] == [
        ("P-1/obama", True, 2, 0), ("P-2", False, 0, 1), ("P-3", True, 1, 0)]
    assert "no face found" in rows[1]["reasons"][0]
    assert "skipped manifest.csv row 5: expected person_id" in err
    assert "enrolling [" in err and "3/3" in err
    assert "enrolled 2 of 3 person(s), 3 photo(s) accepted, 1 rejected, 1 manifest row(s) skipped; not enrolled: P-2" \
        in err
    store = _cli_store(cli_env / "state")
    enrolls = [r for r in store.audit_records() if r.action == "enroll"]
    assert [(r.subject, r.actor, r.role) for r in enrolls] == [("P-1/obama", "alice", "admin"),
                                                                 ("P-3", "alice", "admin")]
    assert len(store.get_person_photos("P-1/obama")) == 2
    store.close()


def test_cli_enrol_remove_with_erase_and_history_are_audited_as_the_os_user(cli_env, assets, capsys):
    import getpass

    from argus.cli import main

    assert main(["gallery", "enroll", "P-9", str(assets / "faces/obama.jpg"), str(assets / "pyfeat/multi_face.jpg"),
                 "--reason", "case 9"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["accepted"] == 1 and "multi_face.jpg: 5 faces found" in err
    assert main(["events", "--person", "P-9", "--export", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == [",".join(ops.EXPORT_COLUMNS)]
    assert main(["alerts", "--zone", "north"]) == 0
    assert main(["gallery", "remove", "P-9", "--erase", "--reason", "request 3"]) == 0
    receipt = json.loads(capsys.readouterr().out)
    assert receipt["gallery"]["embeddings"] == 1 and receipt["store"]["photos"] == 1
    store = _cli_store(cli_env / "state")
    recs = list(store.audit_records())
    assert [r.action for r in recs] == ["enroll", "events.export", "alerts.query", "erase"]
    assert {r.actor for r in recs} == {getpass.getuser()} and all(r.subject is None for r in recs)
    store.close()


def test_cli_enrol_with_no_usable_photo_exits_1_and_names_the_file(cli_env, assets, capsys):
    from argus.cli import main

    assert main(["gallery", "enroll", "P-9", str(assets / "pyfeat/free-mountain-vector-01.jpg"),
                 "--reason", "r"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["enrolled"] is None and "free-mountain-vector-01.jpg: no face found" in err


def test_a_person_id_typed_into_a_reason_is_not_written_into_the_chain(enrolled):
    ops.update_person(enrolled, OBAMA, notes="n", reason=f"per order about {OBAMA}; not {OBAMA}x", **ADMIN)
    a = last_audit(enrolled)
    assert a.details["reason"] == f"per order about {ops.SUBJECT_MARK}; not {OBAMA}x"  # whole tokens only
    ops.erase_person(enrolled, OBAMA, reason=f"erasure request of {OBAMA}", **ADMIN)
    assert last_audit(enrolled).details["reason"] == f"erasure request of {ops.SUBJECT_MARK}"


def test_erasing_someone_known_nowhere_is_refused_and_a_retry_after_a_half_done_erasure_completes(enrolled, pipeline):
    with pytest.raises(InputError, match="expected a person_id that is enrolled or named"):
        ops.erase_person(enrolled, "P-unknown", reason="typo", **ADMIN)
    # the gallery part done, the store part not (a crash in between): the retry finishes the store
    put_alert(enrolled.store, camera_id="cam-north-1", person_id=OBAMA, seq=30,
              crop=aligned_crop_jpeg(pipeline, "faces/obama.jpg"))
    enrolled.gallery.erase(OBAMA, actor="alice", reason="half done")
    receipt = ops.erase_person(enrolled, OBAMA, reason="retry", **ADMIN)
    assert receipt.gallery == {"embeddings": 0, "negatives": 0, "audit_entries_redacted": 0}
    assert receipt.store["alerts"] == 1 and enrolled.store.get_alert("a-cam-north-1-30") is None
