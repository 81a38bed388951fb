"""The console in a real Chromium against a real server: the API app from Resources (SQLite store, memory gallery,
the session's ONNX Runtime backend) under uvicorn in a thread on 127.0.0.1, the man from the demo clips enrolled
from his photo, and the four stages run once over the demo cameras so the alerts are the pipeline's own.

Until the console's server pieces land in argus.api.app (/api/v1/me, /api/v1/alerts/stream, the /console/ mount),
``_with_console_routes`` adds stand-ins for exactly those, following the interface the console is written against;
each is added only when the app does not serve that path itself, so the tests run on the real ones once they exist.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import pytest
from console_helpers import CHROMIUM_ARGS, MAX_PHOTO_MB, PERSON, ROOT, STATIC, VIEWPORT, World
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from argus.api.app import create_app
from argus.api.auth import ROLE_PERMISSIONS, Authenticator, create_api_key
from argus.config import load_settings
from argus.demo import ASSETS, DEMO_CAMERAS
from argus.errors import ArgusError
from argus.runtime.inprocess import InProcessPipeline
from argus.runtime.resources import Resources

# -- stand-ins for the console routes (only where the app lacks them) ----------------------------------------------

def _served(app: Any, path: str) -> bool:
    return any(getattr(r, "path", None) == path for r in app.routes)


def _alert_json(rec: Any) -> dict[str, Any]:
    """GET /api/v1/alerts/{id}'s body for one AlertRecord (the fields of argus.api.models.AlertOut)."""
    a = rec.alert
    return {"alert_id": a.alert_id, "event_id": a.event_id, "track_id": a.track_id, "revision": a.revision,
            "withdrawn": a.withdrawn, "camera_id": a.camera_id, "camera_name": a.camera_name,
            "location": a.location.model_dump(), "person_id": a.person_id, "display_name": a.display_name,
            "watchlist": a.watchlist, "score": a.score, "threshold": a.threshold, "margin": a.margin,
            "candidates": [c.model_dump() for c in a.candidates], "emotion": a.emotion,
            "ts_capture": a.ts_capture, "ts_alert": a.ts_alert, "status": rec.status, "acked_by": rec.acked_by,
            "acked_at": rec.acked_at, "note": rec.note, "has_crop": bool(a.crop_jpeg)}


def _with_console_routes(api: Any, res: Resources) -> Any:
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from argus.store.base import AlertFilter

    auth = Authenticator.from_settings(res.store, res.settings)

    def principal(request: Request) -> Any:
        return auth.authenticate(request.headers.get("authorization"), client="127.0.0.1")

    def refused(e: ArgusError) -> Response:
        return JSONResponse({"error": "unauthorized", "detail": str(e)}, status_code=401)

    async def me(request: Request) -> Response:
        try:
            p = principal(request)
        except ArgusError as e:
            return refused(e)
        return JSONResponse({"actor": p.actor, "role": p.role.value,
                             "permissions": sorted(x.value for x in ROLE_PERMISSIONS[p.role])})

    async def stream(request: Request) -> Response:
        try:
            principal(request)
        except ArgusError as e:
            return refused(e)
        since = float(request.query_params.get("since", "0"))

        async def events() -> AsyncIterator[bytes]:
            seen: dict[str, tuple[Any, ...]] = {}
            last_ping = time.monotonic()
            while not await request.is_disconnected():
                page = await run_in_threadpool(res.store.page_alerts, AlertFilter(since=since), limit=200)
                for rec in reversed(page.items):
                    key = (rec.status, rec.alert.revision, rec.acked_at, rec.alert.withdrawn)
                    if seen.get(rec.alert_id) != key:
                        seen[rec.alert_id] = key
                        yield (f"event: alert\nid: {rec.alert_id}\ndata: "
                               f"{json.dumps(_alert_json(rec))}\n\n").encode()
                if time.monotonic() - last_ping > 15:
                    last_ping = time.monotonic()
                    yield b": ping\n\n"
                await asyncio.sleep(0.2)

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    async def map_info(request: Request) -> Response:
        try:
            principal(request)
        except ArgusError as e:
            return refused(e)
        return JSONResponse({"image": False, "refs": []})

    routes: list[Any] = []
    if not _served(api, "/api/v1/map"):
        routes.append(Route("/api/v1/map", map_info))
    if not _served(api, "/api/v1/me"):
        routes.append(Route("/api/v1/me", me))
    if not _served(api, "/api/v1/alerts/stream"):
        routes.append(Route("/api/v1/alerts/stream", stream))
    if not any(getattr(r, "path", "").startswith("/console") for r in api.routes):
        routes.append(Mount("/console", StaticFiles(directory=STATIC, html=True)))
    if not routes:
        return api
    routes.append(Mount("/", api))
    outer = Starlette(routes=routes)

    csp = (b"default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; style-src 'self'; "
           b"script-src 'self'; frame-ancestors 'none'")

    async def with_csp(scope: Any, receive: Any, send: Any) -> None:
        async def send2(message: Any) -> None:
            if message["type"] == "http.response.start" and scope.get("path", "").startswith("/console"):
                message = {**message, "headers": [*message.get("headers", ()), (b"content-security-policy", csp),
                                                  (b"cache-control", b"no-store")]}
            await send(message)

        await outer(scope, receive, send2)

    return with_csp


# -- the served world ------------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def world(ort_backend: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    import uvicorn

    tmp = tmp_path_factory.mktemp("console")
    settings = load_settings(data_dir=tmp, cameras_file=DEMO_CAMERAS, gallery="memory", ingest_queue=10_000,
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
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(_with_console_routes(api, res), host="127.0.0.1", port=port,
                                               log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        yield World(base=f"http://127.0.0.1:{port}", res=res, keys=keys, actors=actors, alerts=alerts)
        server.should_exit = True
        thread.join(timeout=10)


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
