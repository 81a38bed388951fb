"""`argus up` as an operator runs it: a real process on a cameras file (one demo clip and one camera nobody answers
for), a watch-list folder, the console's API on a free port; the man's alert arrives over HTTP, the dead camera
shows as not running, SIGINT ends it with exit 0 and the events in SQLite, and a second start prints the same
admin key. A broken cameras file is refused, naming the camera (or the line), before anything starts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from up_helpers import CLIP, PHOTO, ROOT, cameras_file, clean_env, start_up

from argus.store.sqlite import SqliteEventStore
from argus_dev.devservers import free_port

pytestmark = pytest.mark.e2e

@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, Path, Path]]:
    cams = cameras_file(tmp_path,
                        {"id": "market-square", "name": "Market square", "url": str(CLIP), "lat": "52.52",
                         "extra": 'timezone = "Europe/Berlin"'},
                        {"id": "dead-cam", "name": "Dead camera", "url": "rtsp://127.0.0.1:9/none", "lat": "52.53"})
    wl = tmp_path / "watchlist" / "pyfeat-man"
    wl.mkdir(parents=True)
    shutil.copy(PHOTO, wl / "single_face.jpg")
    yield cams, wl.parent, tmp_path / "data"


def test_up_alerts_in_the_api_survives_a_dead_camera_stops_cleanly_and_keeps_its_admin_key(site) -> None:
    cams, watchlist, data = site
    port = free_port()
    up = start_up(cams, watchlist, data, port)
    try:
        url = up.line_matching(r"^Console: (\S+)", timeout_s=120).group(1)
        key = up.line_matching(r"^Admin API key[^:]*: (argus_\S+)", timeout_s=10).group(1)
        assert url == f"http://127.0.0.1:{port}/console/"
        api = f"http://127.0.0.1:{port}/api/v1"
        auth = {"Authorization": f"Bearer {key}"}
        deadline = time.monotonic() + 120
        alerts: list[dict] = []
        while time.monotonic() < deadline and not alerts:
            resp = httpx.get(f"{api}/alerts", params={"person": "pyfeat-man"}, headers=auth, timeout=10)
            assert resp.status_code == 200, resp.text
            alerts = resp.json()["items"]
            time.sleep(0.5)
        assert alerts, "the enrolled man's alert did not reach the API within 120 s"
        assert alerts[0]["camera_id"] == "market-square" and alerts[0]["score"] >= alerts[0]["threshold"]
        cameras = {c["camera_id"]: c for c in httpx.get(f"{api}/cameras", headers=auth, timeout=10).json()}
        assert cameras["market-square"]["timezone"] == "Europe/Berlin"
        dead = cameras["dead-cam"]["health"]
        assert dead is not None and dead["state"] != "running" and dead["last_frame_ts"] is None
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).status_code in (200, 307)
        assert (data / "admin.key").stat().st_mode & 0o777 == 0o600
    finally:
        rc = up.stop()
    assert rc == 0, up.out
    summary = json.loads(up.out[-1])
    store = SqliteEventStore(path=data / "events.sqlite")
    try:
        assert store.count_events() == summary["events"] >= 1
        assert store.count_alerts() == summary["alerts"] >= 1
        assert [a.alert.person_id for a in store.query_alerts(limit=10)][:1] == ["pyfeat-man"]
    finally:
        store.close()

    again = start_up(cams, watchlist, data, free_port())
    try:
        same = again.line_matching(r"^Admin API key[^:]*: (argus_\S+)", timeout_s=120).group(1)
        assert same == key, "a second start on the same data dir minted a new admin key"
        assert not any("(new)" in line for line in again.out)
    finally:
        assert again.stop() == 0, again.out


@pytest.mark.parametrize(("extra", "named"), [
    ('timezone = "Mars/Olympus_Mons"', "camera[1] 'bad-tz': timezone: expected an IANA time zone name"),
    ("fps = = 5", None),  # a TOML syntax error: named by its line
])
def test_up_refuses_a_broken_cameras_file_naming_the_camera_or_line_before_anything_starts(
        tmp_path, extra, named: str | None) -> None:
    cams = cameras_file(tmp_path, {"id": "ok", "name": "Fine", "url": str(CLIP), "lat": "52.52"},
                        {"id": "bad-tz", "name": "Broken", "url": str(CLIP), "lat": "52.53", "extra": extra})
    if named is None:
        lineno = cams.read_text().splitlines().index(extra) + 1
        named = f"invalid TOML: Invalid value (at line {lineno}"
    data = tmp_path / "data"
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "argus.cli", "up", "--cameras", str(cams), "--data-dir", str(data),
                           "--port", str(free_port())], cwd=ROOT, env=clean_env(), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert named in proc.stderr and "configuration error" in proc.stderr
    assert "Console:" not in proc.stdout and not data.exists(), "something started before the file was checked"
    assert time.monotonic() - t0 < 30
