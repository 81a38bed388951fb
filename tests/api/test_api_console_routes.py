"""The server side of the console: who am I, the live alert stream, the map, cameras' time zones, the console's
static files with their own Content-Security-Policy, and the registry refusing a bad time zone by camera."""

from __future__ import annotations

import json
import queue
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import bearer, make_settings
from fastapi.testclient import TestClient
from ops_world import put_alert

from argus.api.app import CONSOLE_CSP, CONSOLE_DIR, create_app
from argus.api.auth import ROLE_PERMISSIONS, Role
from argus.cameras import CameraRegistry
from argus.errors import ConfigError
from argus.schemas import LocationV1
from argus.store.base import CameraRecord

CROP = b"\xff\xd8not-really-a-jpeg"


# -- /me ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("role", list(Role))
def test_me_names_the_caller_and_every_permission_of_their_role(client, role_keys, role) -> None:
    resp = client.get("/api/v1/me", headers=bearer(role_keys[role]))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["role"] == role.value and body["actor"].startswith("key:")
    assert body["permissions"] == sorted(p.value for p in ROLE_PERMISSIONS[role])


def test_me_without_credentials_is_401(client) -> None:
    resp = client.get("/api/v1/me")
    assert resp.status_code == 401 and resp.headers["www-authenticate"].startswith("Bearer")


# -- the alert stream ---------------------------------------------------------------------------------------------

class SseReader:
    """Reads a server-sent-event response in a thread, so the test waits on a queue with a timeout and cannot
    hang on a stream that never ends."""

    def __init__(self, client: TestClient, url: str, headers: dict[str, str]) -> None:
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.status: int | None = None
        self.content_type = ""
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._read, args=(client, url, headers), daemon=True)
        self.thread.start()

    def _read(self, client: TestClient, url: str, headers: dict[str, str]) -> None:
        with client.stream("GET", url, headers=headers) as resp:
            self.status, self.content_type = resp.status_code, resp.headers.get("content-type", "")
            self.ready.set()
            msg: dict[str, Any] = {}
            for line in resp.iter_lines():
                if not line:
                    if msg:
                        self.messages.put(msg)
                    msg = {}
                elif line.startswith(":"):
                    msg.setdefault("comment", line[1:].strip())
                else:
                    k, _, v = line.partition(": ")
                    msg[k] = v
        self.ready.set()

    def next(self, timeout_s: float = 10.0) -> dict[str, Any]:
        return self.messages.get(timeout=timeout_s)

    def nothing_within(self, timeout_s: float) -> bool:
        try:
            self.messages.get(timeout=timeout_s)
        except queue.Empty:
            return True
        return False


def test_stream_sends_stored_alerts_oldest_first_then_new_ones_and_triage_changes(client, role_keys,
                                                                                    api_resources) -> None:
    store, t0 = api_resources.store, time.time() - 120
    put_alert(store, camera_id="cam-north-1", person_id="P-1", seq=2, crop=CROP, ts=t0)  # ts_alert t0+2.5
    revised = put_alert(store, camera_id="cam-north-1", person_id="P-1", seq=1, crop=CROP, ts=t0)  # t0+1.5
    put_alert(store, camera_id="cam-north-1", person_id="P-1", seq=0, crop=CROP, ts=t0 - 60)  # before since
    key = role_keys[Role.operator]
    sse = SseReader(client, f"/api/v1/alerts/stream?since={t0}", bearer(key))
    try:
        assert sse.ready.wait(10) and sse.status == 200 and sse.content_type.startswith("text/event-stream")
        first, second = sse.next(), sse.next()
        assert [first["event"], second["event"]] == ["alert", "alert"]
        assert [first["id"], second["id"]] == ["a-cam-north-1-1:1:new", "a-cam-north-1-2:1:new"]
        got = json.loads(first["data"])
        assert got == client.get("/api/v1/alerts/a-cam-north-1-1", headers=bearer(key)).json()
        assert sse.nothing_within(1.2), "an unchanged alert was sent twice"

        put_alert(store, camera_id="cam-south-1", person_id="P-2", seq=5, crop=CROP, ts=t0)
        new = sse.next()
        assert new["id"] == "a-cam-south-1-5:1:new" and json.loads(new["data"])["person_id"] == "P-2"

        resp = client.post("/api/v1/alerts/a-cam-north-1-2/triage", json={"action": "acknowledge", "reason": "ok"},
                           headers=bearer(key))
        assert resp.status_code == 200, resp.text
        changed = sse.next()
        assert changed["id"] == "a-cam-north-1-2:1:acknowledged"
        assert json.loads(changed["data"])["status"] == "acknowledged"

        store.put_alert(revised.model_copy(update={"revision": 2, "score": 0.99}))  # the alerter's revision
        again = sse.next()
        assert again["id"] == "a-cam-north-1-1:2:new" and json.loads(again["data"])["score"] == 0.99
    finally:
        client.app.state.shutdown.set()  # what the server does on Ctrl-C: the stream must end by itself
        sse.thread.join(timeout=10)
    assert not sse.thread.is_alive(), "the stream did not end when the server shut down"
    opened = [r for r in store.audit_records() if r.action == "alerts.query" and r.details.get("stream")]
    assert len(opened) == 1, "the stream is audited once when it opens, not per message"


def test_stream_defaults_to_the_last_five_minutes(client, role_keys, api_resources) -> None:
    now = time.time()
    put_alert(api_resources.store, camera_id="cam-north-1", person_id="P-1", seq=1, crop=CROP, ts=now - 60)
    put_alert(api_resources.store, camera_id="cam-north-1", person_id="P-1", seq=2, crop=CROP, ts=now - 900)
    sse = SseReader(client, "/api/v1/alerts/stream", bearer(role_keys[Role.analyst]))
    try:
        assert sse.next()["id"].startswith("a-cam-north-1-1:")
        assert sse.nothing_within(1.0)
    finally:
        client.app.state.shutdown.set()
        sse.thread.join(timeout=10)


def test_stream_needs_alerts_read(client, role_keys) -> None:
    assert client.get("/api/v1/alerts/stream", headers=bearer(role_keys[Role.auditor])).status_code == 403
    assert client.get("/api/v1/alerts/stream").status_code == 401


# -- argus up's admin key ----------------------------------------------------------------------------------------

def test_admin_key_is_kept_private_reused_while_valid_and_replaced_once_revoked(tmp_path, api_resources) -> None:
    from argus.api.auth import parse_api_key, revoke_api_key
    from argus.up import admin_key

    data = tmp_path / "up-data"
    key, new = admin_key(api_resources.store, data)
    assert new and (data / "admin.key").stat().st_mode & 0o777 == 0o600
    assert admin_key(api_resources.store, data) == (key, False)
    revoke_api_key(api_resources.store, parse_api_key(key)[0], actor="test")
    fresh, new = admin_key(api_resources.store, data)
    assert new and fresh != key and (data / "admin.key").read_text().strip() == fresh
    rec = api_resources.store.get_api_key(parse_api_key(fresh)[0])
    assert rec is not None and rec.role == "admin" and rec.name == "argus-up admin" and rec.created_by == "argus-up"


# -- map ----------------------------------------------------------------------------------------------------------

def test_map_without_an_image_has_no_refs_and_the_image_is_404(client, role_keys) -> None:
    key = role_keys[Role.auditor]  # cameras.read is everybody's
    assert client.get("/api/v1/map", headers=bearer(key)).json() == {"image": False, "refs": []}
    resp = client.get("/api/v1/map/image", headers=bearer(key))
    assert resp.status_code == 404 and resp.json()["error"] == "not_found"


def test_map_with_an_image_serves_it_with_its_type_and_the_two_reference_points(tmp_path, api_resources,
                                                                               role_keys) -> None:
    ok, png = cv2.imencode(".png", np.full((20, 30, 3), 200, np.uint8))
    assert ok
    image = tmp_path / "site-plan.png"
    image.write_bytes(png.tobytes())
    refs = [(0.0, 0.0, 52.53, 13.38), (30.0, 20.0, 52.50, 13.42)]
    settings = make_settings(tmp_path, console_map_image=image, console_map_refs=refs)
    with TestClient(create_app(api_resources, settings=settings)) as c:
        key = role_keys[Role.operator]
        assert c.get("/api/v1/map", headers=bearer(key)).json() == {"image": True, "refs": [list(r) for r in refs]}
        resp = c.get("/api/v1/map/image", headers=bearer(key))
        assert resp.status_code == 200 and resp.headers["content-type"] == "image/png"
        assert resp.content == png.tobytes()
        assert c.get("/api/v1/map/image").status_code == 401


# -- cameras ------------------------------------------------------------------------------------------------------

def test_cameras_list_carries_each_cameras_time_zone_or_null(client, role_keys, api_resources) -> None:
    loc = LocationV1(lat=52.5, lon=13.4, address="x", zone="z")
    api_resources.store.upsert_camera(CameraRecord(camera_id="berlin", name="B", location=loc,
                                                   timezone="Europe/Berlin"))
    api_resources.store.upsert_camera(CameraRecord(camera_id="plain", name="P", location=loc))
    got = {c["camera_id"]: c["timezone"]
           for c in client.get("/api/v1/cameras", headers=bearer(role_keys[Role.analyst])).json()}
    assert got == {"berlin": "Europe/Berlin", "plain": None}


def write_cameras(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "cameras.toml"
    path.write_text(f"""
[[camera]]
id = "gate"
name = "Gate"
url = "clip.mp4"
{extra}
[camera.location]
lat = 52.5
lon = 13.4
address = "Gate 1"
zone = "north"
""")
    return path


def test_registry_time_zone_reaches_the_camera_record(tmp_path) -> None:
    cam = CameraRegistry.load(write_cameras(tmp_path, 'timezone = "America/New_York"')).get("gate")
    rec = CameraRecord.from_camera(cam)
    assert rec.timezone == "America/New_York"
    assert CameraRecord.from_doc(rec.to_doc()) == rec


@pytest.mark.parametrize("tz", ["Mars/Olympus_Mons", "../../etc/passwd", ""])
def test_registry_refuses_an_unknown_time_zone_naming_the_camera_and_field(tmp_path, tz) -> None:
    with pytest.raises(ConfigError) as e:
        CameraRegistry.load(write_cameras(tmp_path, f'timezone = "{tz}"'))
    msg = str(e.value)
    assert "cameras.toml: camera[0] 'gate': timezone: expected an IANA time zone name" in msg
    assert repr(tz) in msg


# -- the console's files ------------------------------------------------------------------------------------------

def test_console_is_served_with_its_own_policy_and_the_root_redirects_to_it(tmp_path, api_resources,
                                                                            role_keys) -> None:
    static = tmp_path / "static"
    static.mkdir()
    (static / "index.html").write_text("<!doctype html><title>Argus</title><script src=app.js></script>")
    (static / "app.js").write_text("console.log('hi')")
    with TestClient(create_app(api_resources, console_dir=static)) as c:
        root = c.get("/", follow_redirects=False)
        assert root.status_code in (302, 307) and root.headers["location"] == "/console/"
        page = c.get("/console/")
        assert page.status_code == 200 and "<title>Argus</title>" in page.text
        assert page.headers["content-security-policy"] == CONSOLE_CSP
        script = c.get("/console/app.js")
        assert script.status_code == 200 and script.headers["content-security-policy"] == CONSOLE_CSP
        assert c.get("/console/nope.js").status_code == 404
        api = c.get("/api/v1/me", headers=bearer(role_keys[Role.admin]))
        assert api.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
        assert c.get("/console/../conftest.py").status_code == 404


def test_the_default_console_is_the_packages_own_static_folder(client) -> None:
    import argus

    assert Path(argus.__file__).resolve().parent / "console" / "static" == CONSOLE_DIR
    index = CONSOLE_DIR / "index.html"
    if not index.is_file():
        pytest.skip("the console's index.html is not built in this checkout")
    page = client.get("/console/")
    assert page.status_code == 200 and page.text == index.read_text(encoding="utf-8")
