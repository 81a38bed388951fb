"""The console in a real Chromium against a real server: the API app from Resources (SQLite store, memory gallery,
the session's ONNX Runtime backend) under uvicorn in a thread on 127.0.0.1, the man from the demo clips enrolled
from his photo, and the four stages run once over the demo cameras so the alerts are the pipeline's own.

The console is the one argus.api.app serves at /console/ (with its CSP), the feed fed by /api/v1/alerts/stream."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import pytest
from console_helpers import CAMERA_TZ, CHROMIUM_ARGS, MAX_PHOTO_MB, PERSON, ROOT, VIEWPORT, World, serve
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from argus.api.app import create_app
from argus.api.auth import create_api_key
from argus.config import load_settings
from argus.demo import ASSETS, DEMO_CAMERAS
from argus.runtime.inprocess import InProcessPipeline
from argus.runtime.resources import Resources

# -- the served world ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def world(ort_backend: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("console")
    cameras = tmp / "cameras.toml"  # the demo cameras with their time zone, so the console can show local time
    text = DEMO_CAMERAS.read_text().replace('url = "../', f'url = "{DEMO_CAMERAS.parent.parent.as_posix()}/')
    cameras.write_text(text.replace("fps = 5\n", f'fps = 5\ntimezone = "{CAMERA_TZ}"\n'))
    settings = load_settings(data_dir=tmp, cameras_file=cameras, gallery="memory", ingest_queue=10_000,
                             ingest_files_realtime=False, metrics_port=0, sinks=["log"],
                             api_rate_per_s=100_000, api_rate_burst=100_000, api_max_photo_mb=MAX_PHOTO_MB)
    with Resources(settings, registry=CollectorRegistry(), backend=ort_backend) as res:
        made = {role: create_api_key(res.store, name=f"{role}-key", role=role, actor="bootstrap")
                for role in ("admin", "operator", "analyst", "auditor")}
        keys = {role: key for role, (_, key) in made.items()}
        actors = {role: f"key:{rec.key_id}" for role, (rec, _) in made.items()}
        api = create_app(res)
        photo = (ASSETS / "pyfeat" / "single_face.jpg").read_bytes()
        with TestClient(api) as c:
            r = c.post("/api/v1/persons", headers={"Authorization": f"Bearer {keys['admin']}"},
                       data={"person_id": PERSON, "display_name": "Man from the clips", "watchlist": "demo",
                             "reason": "warrant 2026/17"},
                       files=[("photos", ("single_face.jpg", photo, "image/jpeg"))])
            assert r.status_code == 201, r.text
            c.put("/api/v1/watchlists/demo", headers={"Authorization": f"Bearer {keys['admin']}"},
                  json={"threshold": None, "legal_basis": "court order 17/2026", "reason": "demo list"})
        with InProcessPipeline(res) as pipeline:  # the demo's clips: two show him, one a stranger
            pipeline.wait_ingest()
            pipeline.wait_drained()
        from argus.store.base import AlertFilter

        alerts = [a.alert_id for a in res.store.page_alerts(AlertFilter(person_id=PERSON), limit=50).items]
        assert len(alerts) >= 2, alerts
        with serve(api) as base:
            yield World(base=base, res=res, keys=keys, actors=actors, alerts=alerts)


# -- the browser -------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    subprocess.run(["bash", str(ROOT / "scripts" / "install-chromium.sh")], check=True)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()


@dataclass
class Watch:
    """What the page did: console errors, page errors and every request URL, for the after-test checks."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    expected_statuses: set[int] = field(default_factory=set)  # HTTP errors a test provokes on purpose

    def expect_status(self, *codes: int) -> None:
        self.expected_statuses.update(codes)


@pytest.fixture
def watch() -> Watch:
    return Watch()


@pytest.fixture
def page(browser: Any, world: World, watch: Watch) -> Iterator[Any]:
    ctx = browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="Europe/London")
    pg = ctx.new_page()
    pg.on("console", lambda m: watch.errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: watch.errors.append(f"pageerror: {e}"))
    pg.on("request", lambda r: watch.requests.append(r.url))
    pg.on("requestfailed", lambda r: watch.errors.append(f"failed {r.url} {r.failure}")
          if r.failure != "net::ERR_ABORTED" else None)  # a reload or a closed stream aborts
    pg.on("response", lambda r: watch.errors.append(f"{r.status} {r.url}") if r.status == 404 else None)
    yield pg
    ctx.close()
    import re

    unexpected = [e for e in watch.errors
                  if not (m := re.search(r"status of (\d{3})", e)) or int(m.group(1)) not in watch.expected_statuses]
    assert unexpected == [], f"the page logged errors: {unexpected}"
    for url in watch.requests:
        u = urlparse(url)
        assert u.scheme in ("blob", "data") or (u.scheme == "http" and u.hostname == "127.0.0.1"), url
