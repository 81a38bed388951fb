"""The routes end to end over real seams: SQLite store, in-memory gallery, ONNX Runtime pipeline, real photos.

Each test walks one resource the way an operator would and checks what the audit trail kept of it."""

from __future__ import annotations

import csv
import io
import json
from urllib.parse import quote

import pytest
from conftest import bearer
from ops_world import BIDEN, OBAMA, OBAMA_PHOTOS, T0, ZONES, aligned_crop_jpeg, put_alert, put_cameras

from argus.api.auth import Role
from argus.audit_trail import verify_chain

pytestmark = pytest.mark.usefixtures("ort_backend")  # api_resources then carries the real backend


def enc(pid: str) -> str:
    return quote(pid, safe="")


def upload(*rels: str) -> list[tuple[str, tuple[str, bytes, str]]]:
    from ops_world import ASSETS

    return [("photos", (r.split("/")[-1], (ASSETS / r).read_bytes(), "image/jpeg")) for r in rels]


def enroll(client, key, pid=OBAMA, rels=OBAMA_PHOTOS, **form):
    data = {"person_id": pid, "display_name": "Barack", "reason": "case 17", "watchlist": "vip", **form}
    return client.post("/api/v1/persons", data=data, files=upload(*rels), headers=bearer(key))


def actions(api_resources) -> list[str]:
    return [r.action for r in api_resources.store.audit_records()]


def test_enroll_with_several_photos_reports_each_and_the_person_reads_back(client, role_keys, api_resources):
    admin = role_keys[Role.admin]
    resp = enroll(client, admin, rels=(*OBAMA_PHOTOS, "faces/biden.jpg"))
    assert resp.status_code == 201, resp.text
    body = resp.json()
    verdicts = [(p["filename"], p["accepted"]) for p in body["photos"]]
    assert verdicts[:3] == [("obama.jpg", True), ("obama2.jpg", True), ("obama3.jpg", True)]
    assert verdicts[3] == ("biden.jpg", False) and body["photos"][3]["reason"]
    assert body["person"]["person_id"] == OBAMA and body["person"]["photos"] == 3

    got = client.get(f"/api/v1/persons/{enc(OBAMA)}", headers=bearer(role_keys[Role.operator]))
    assert got.status_code == 200 and got.json()["photos"] == 3 and got.json()["watchlist"] == "vip"
    photo = client.get(f"/api/v1/persons/{enc(OBAMA)}/photos/0", headers=bearer(admin))
    assert photo.headers["content-type"] == "image/jpeg" and photo.content[:2] == b"\xff\xd8"
    assert client.get(f"/api/v1/persons/{enc(OBAMA)}/photos/3", headers=bearer(admin)).status_code == 404
    listed = client.get("/api/v1/persons", headers=bearer(admin)).json()["items"]
    assert [p["person_id"] for p in listed] == [OBAMA]
    assert "enroll" in actions(api_resources)


def test_enroll_where_no_photo_passes_is_422_with_every_reason_and_changes_nothing(client, role_keys,
                                                                                    api_resources):
    resp = client.post("/api/v1/persons", data={"person_id": "P-1", "display_name": "x", "reason": "r"},
                       files=[("photos", ("a.jpg", b"not an image", "image/jpeg"))],
                       headers=bearer(role_keys[Role.admin]))
    assert resp.status_code == 422 and resp.json()["error"] == "invalid_request"
    assert resp.json()["detail"][0]["accepted"] is False and resp.json()["detail"][0]["reason"]
    assert api_resources.gallery.get("P-1") is None


def test_enroll_refuses_a_bad_person_id_and_too_many_photos(client, role_keys):
    admin = role_keys[Role.admin]
    assert enroll(client, admin, pid="bad id with spaces").status_code == 422
    assert client.get("/api/v1/persons/bad%20id", headers=bearer(admin)).status_code == 422
    too_many = [OBAMA_PHOTOS[0]] * 11
    assert enroll(client, admin, rels=too_many).status_code == 400


def test_patch_changes_metadata_and_expiry_and_is_audited(client, role_keys, api_resources):
    admin = role_keys[Role.admin]
    assert enroll(client, admin).status_code == 201
    resp = client.patch(f"/api/v1/persons/{enc(OBAMA)}", headers=bearer(admin),
                        json={"notes": "moved", "expires_at": T0 + 10, "reason": "court order 5"})
    assert resp.status_code == 200 and resp.json()["notes"] == "moved" and resp.json()["expires_at"] == T0 + 10
    assert resp.json()["active"] is False  # T0 + 10 is in the past of the wall clock
    cleared = client.patch(f"/api/v1/persons/{enc(OBAMA)}", headers=bearer(admin),
                           json={"expires_at": None, "reason": "extended"})
    assert cleared.json()["expires_at"] is None and cleared.json()["active"] is True
    assert actions(api_resources).count("update") == 2
    assert client.patch(f"/api/v1/persons/{enc(OBAMA)}", headers=bearer(admin),
                        json={"notes": "x"}).status_code == 422  # no reason


def test_unknown_person_is_404_and_an_operator_value_in_a_filter_is_a_literal(client, role_keys):
    admin = role_keys[Role.admin]
    assert client.get("/api/v1/persons/P-404", headers=bearer(admin)).status_code == 404
    resp = client.get("/api/v1/alerts", params={"person": '{"$ne": null}', "status": "$where"},
                      headers=bearer(admin))
    assert resp.status_code == 200 and resp.json()["items"] == []


def test_watchlist_put_and_list_with_threshold_and_legal_basis(client, role_keys, api_resources):
    admin = role_keys[Role.admin]
    resp = client.put("/api/v1/watchlists/vip", headers=bearer(admin), json={
        "threshold": 0.45, "description": "visitors", "legal_basis": "policy 12", "reason": "setup"})
    assert resp.status_code == 200 and resp.json()["updated_by"].startswith("key:")
    wl = client.get("/api/v1/watchlists", headers=bearer(role_keys[Role.auditor])).json()
    assert [(w["name"], w["threshold"], w["legal_basis"]) for w in wl] == [("vip", 0.45, "policy 12")]
    assert "watchlist" in actions(api_resources)
    assert client.put("/api/v1/watchlists/Not%20A%20Slug", headers=bearer(admin),
                      json={"reason": "x"}).status_code == 422


def test_cameras_list_location_and_health_with_last_frame_age(client, role_keys, api_resources):
    put_cameras(api_resources.store)
    api_resources.store.put_camera_health("cam-north-1", {"state": "reading", "fps": 9.5, "last_frame_ts": 1.0,
                                                          "frames_dropped": 2, "reconnects": 0, "updated_at": 1.0})
    cams = client.get("/api/v1/cameras", headers=bearer(role_keys[Role.analyst])).json()
    assert [c["camera_id"] for c in cams] == sorted(ZONES)
    north = cams[0]
    assert north["location"]["zone"] == "north" and north["health"]["fps"] == 9.5
    assert north["health"]["last_frame_age_s"] > 0
    assert cams[1]["health"] is None


@pytest.fixture
def alerts_world(client, role_keys, api_resources):
    assert enroll(client, role_keys[Role.admin]).status_code == 201
    put_cameras(api_resources.store)
    crop = aligned_crop_jpeg(api_resources.pipeline, "faces/obama.jpg")
    made = [put_alert(api_resources.store, camera_id=cam, person_id=OBAMA, seq=i, crop=crop)
            for i, cam in enumerate(["cam-north-1", "cam-north-2", "cam-south-1", "cam-north-1"], start=1)]
    put_alert(api_resources.store, camera_id="cam-south-1", person_id=BIDEN, seq=9, crop=crop)
    return made


def test_alerts_filter_by_zone_person_and_page_with_cursors(client, role_keys, alerts_world, api_resources):
    op = bearer(role_keys[Role.operator])
    north = client.get("/api/v1/alerts", params={"zone": "north", "person": OBAMA}, headers=op).json()
    assert {a["camera_id"] for a in north["items"]} == {"cam-north-1", "cam-north-2"} and len(north["items"]) == 3
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/alerts", params=params, headers=op).json()
        seen += [a["alert_id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5
    ts = [a["ts_alert"] for a in client.get("/api/v1/alerts", headers=op).json()["items"]]
    assert ts == sorted(ts, reverse=True)
    assert client.get("/api/v1/alerts", params={"cursor": "garbage!"}, headers=op).status_code == 422
    assert client.get("/api/v1/alerts", params={"cursor": "abcd"}, headers=op).status_code == 400  # not ours
    assert client.get("/api/v1/alerts", params={"limit": 100000}, headers=op).status_code == 422
    assert actions(api_resources).count("alerts.query") >= 4


def test_alert_get_crop_photo_and_triage_are_audited(client, role_keys, alerts_world, api_resources):
    op = bearer(role_keys[Role.operator])
    aid = alerts_world[0].alert_id
    got = client.get(f"/api/v1/alerts/{aid}", headers=op)
    assert got.status_code == 200 and got.json()["status"] == "new" and got.json()["has_crop"] is True
    crop = client.get(f"/api/v1/alerts/{aid}/crop", headers=op)
    assert crop.headers["content-type"] == "image/jpeg" and crop.content[:2] == b"\xff\xd8"
    photo = client.get(f"/api/v1/alerts/{aid}/photo", headers=op)
    assert photo.status_code == 200 and photo.content[:2] == b"\xff\xd8"
    ack = client.post(f"/api/v1/alerts/{aid}/triage", headers=op, json={"action": "acknowledge", "reason": "seen"})
    assert ack.status_code == 200 and ack.json()["status"] == "acknowledged"
    assert ack.json()["acked_by"] == f"key:{role_keys[Role.operator].split('_')[1]}"
    acts = actions(api_resources)
    assert {"alert.view", "alert.crop", "alert.triage"} <= set(acts) and acts.count("alert.crop") == 2
    assert client.post(f"/api/v1/alerts/{aid}/triage", headers=op,
                       json={"action": "delete", "reason": "x"}).status_code == 422
    assert client.get("/api/v1/alerts/nope", headers=op).status_code == 404


def test_not_this_person_records_negative_evidence(client, role_keys, alerts_world, api_resources):
    aid = alerts_world[1].alert_id
    resp = client.post(f"/api/v1/alerts/{aid}/triage", headers=bearer(role_keys[Role.operator]),
                       json={"action": "not_this_person", "reason": "a visitor who resembles him"})
    assert resp.status_code == 200 and resp.json()["status"] == "not_this_person"
    assert api_resources.gallery.negatives(OBAMA).shape[0] == 1


def test_events_page_and_export_csv_and_json_lines_are_audited(client, role_keys, alerts_world, api_resources):
    an = bearer(role_keys[Role.analyst])
    page = client.get("/api/v1/events", params={"camera": ["cam-north-1", "cam-south-1"]}, headers=an).json()
    assert {e["camera_id"] for e in page["items"]} == {"cam-north-1", "cam-south-1"} and len(page["items"]) == 4
    exp = client.get("/api/v1/events/export", params={"format": "csv", "person": OBAMA}, headers=an)
    assert exp.status_code == 200 and exp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exp.text)))
    assert len(rows) == 4 and {r["person_id"] for r in rows} == {OBAMA}
    jl = client.get("/api/v1/events/export", params={"format": "json"}, headers=an)
    assert [json.loads(line)["event_id"] for line in jl.text.splitlines() if line.strip()].__len__() == 5
    exports = [r for r in api_resources.store.audit_records() if r.action == "events.export"]
    assert [r.details["count"] for r in exports] == [4, 5]
    assert client.get("/api/v1/events/export", params={"format": "xml"}, headers=an).status_code == 422


def test_audit_route_shows_each_step_and_the_chain_verifies(client, role_keys, alerts_world, api_resources):
    aid = alerts_world[0].alert_id
    client.post(f"/api/v1/alerts/{aid}/triage", headers=bearer(role_keys[Role.operator]),
                json={"action": "dismiss", "reason": "false alarm"})
    aud = bearer(role_keys[Role.auditor])
    page = client.get("/api/v1/audit", params={"action": "alert.triage"}, headers=aud).json()
    assert len(page["items"]) == 1 and page["items"][0]["subject"] == OBAMA
    everything = client.get("/api/v1/audit", params={"limit": 500}, headers=aud).json()["items"]
    assert {"key.create", "enroll", "alert.triage", "audit.query"} <= {r["action"] for r in everything}
    report = verify_chain(list(api_resources.store.audit_records()), now=T0 * 2, retention_days=None)
    assert report.ok, report


def test_remove_then_erase_returns_a_receipt_and_no_trace_is_left(client, role_keys, alerts_world, api_resources):
    admin = bearer(role_keys[Role.admin])
    assert client.delete(f"/api/v1/persons/{enc(OBAMA)}", headers=admin).status_code == 422  # reason required
    rm = client.delete(f"/api/v1/persons/{enc(OBAMA)}", params={"reason": "list review"}, headers=admin)
    assert rm.status_code == 200 and rm.json()["removed"] is True
    assert client.get(f"/api/v1/persons/{enc(OBAMA)}", headers=admin).status_code == 404
    er = client.delete(f"/api/v1/persons/{enc(OBAMA)}", params={"reason": "erasure request 3", "erase": "true"},
                       headers=admin)
    assert er.status_code == 200, er.text
    receipt = er.json()
    assert receipt["store"]["alerts"] == 4 and receipt["store"]["events"] == 4
    assert any("Kafka" in line for line in receipt["not_erased_at_once"]) and OBAMA not in er.text
    assert all(r.subject != OBAMA for r in api_resources.store.audit_records())  # before the next query names him
    assert client.delete("/api/v1/persons/P-404", params={"reason": "r", "erase": "true"},
                         headers=admin).status_code == 404
    left = client.get("/api/v1/alerts", params={"person": OBAMA}, headers=admin).json()["items"]
    assert left == []


def test_api_keys_over_http_create_use_and_revoke(client, role_keys, api_resources):
    admin = bearer(role_keys[Role.admin])
    made = client.post("/api/v1/keys", json={"name": "vms", "role": "analyst"}, headers=admin)
    assert made.status_code == 201
    key = made.json()["key"]
    assert client.get("/api/v1/events", headers=bearer(key)).status_code == 200
    listed = client.get("/api/v1/keys", headers=admin).json()
    assert "key" not in listed[0] and "secret_sha256" not in listed[0]
    assert client.delete(f"/api/v1/keys/{made.json()['key_id']}", headers=admin).json()["revoked_at"] is not None
    assert client.get("/api/v1/events", headers=bearer(key)).status_code == 401
    assert client.delete("/api/v1/keys/0123456789ab", headers=admin).status_code == 404


def test_probes_and_openapi_document(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    doc = client.get("/openapi.json").json()
    assert "bearer" in doc["components"]["securitySchemes"]
    get_alerts = doc["paths"]["/api/v1/alerts"]["get"]
    assert get_alerts["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("AlertPage")
    assert get_alerts["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorOut")
    assert get_alerts["security"] == [{"bearer": []}]


def test_an_unknown_query_parameter_is_refused_naming_it_instead_of_ignored(client, role_keys):
    """``?camera_id=`` where the API says ``?camera=``: ignoring it would return every camera's alerts."""
    r = client.get("/api/v1/alerts", params={"camera_id": "north-gate"}, headers=bearer(role_keys[Role.admin]))
    assert r.status_code == 400, r.text
    assert "camera_id" in r.text and "camera" in r.json()["detail"]
    ok = client.get("/api/v1/alerts", params={"camera": "north-gate"}, headers=bearer(role_keys[Role.admin]))
    assert ok.status_code == 200
    assert client.get("/api/v1/alerts", params={"camera_id": "x"}).status_code == 401  # credentials come first
