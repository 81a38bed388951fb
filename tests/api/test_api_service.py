"""services/api as it runs: uvicorn on the API port, argus_api_* metrics on the ops server with bounded labels."""

from __future__ import annotations

import socket
import threading
import time

import httpx
from conftest import bearer, make_settings
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest

from argus.api.app import create_app
from argus.api.auth import Role
from argus.api.limits import ApiMetrics
from argus.runtime.resources import Resources
from argus_services.api.stage import serve


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metrics_are_labelled_by_route_template_method_and_status_class(api_resources, role_keys) -> None:
    reg = CollectorRegistry()
    c = TestClient(create_app(api_resources, metrics=ApiMetrics(reg)), raise_server_exceptions=False)
    for pid in ("P-1", "P-2", "P-3"):
        c.get(f"/api/v1/persons/{pid}", headers=bearer(role_keys[Role.admin]))
    c.get("/api/v1/cameras")
    c.get("/no/such/path/at/all")
    text = generate_latest(reg).decode()
    assert ('argus_api_requests_total{method="GET",route="/api/v1/persons/{person_id:path}",status="4xx"} 3.0'
            in text)
    assert 'argus_api_requests_total{method="GET",route="<unmatched>",status="4xx"} 1.0' in text
    assert "argus_api_auth_failures_total 1.0" in text
    assert "P-1" not in text and "/no/such" not in text


def test_run_api_serves_the_app_and_metrics_until_stopped(tmp_path, api_resources, role_keys) -> None:
    api_port, ops_port = free_port(), free_port()
    res = Resources(make_settings(tmp_path, api_port=api_port, api_host="127.0.0.1"), store=api_resources.store,
                    gallery=api_resources.gallery)
    stop = threading.Event()
    t = threading.Thread(target=serve, args=(res,), kwargs={"stop": stop, "metrics_port": ops_port}, daemon=True)
    t.start()
    base = f"http://127.0.0.1:{api_port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            assert httpx.get(f"{base}/healthz", timeout=1).json() == {"status": "ok"}
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "API did not come up"
            time.sleep(0.05)
    resp = httpx.get(f"{base}/api/v1/cameras", headers=bearer(role_keys[Role.operator]), timeout=5)
    assert resp.status_code == 200 and "server" not in resp.headers
    metrics = httpx.get(f"http://127.0.0.1:{ops_port}/metrics", timeout=5).text
    assert 'argus_api_requests_total{method="GET",route="/api/v1/cameras",status="2xx"} 1.0' in metrics
    stop.set()
    t.join(timeout=15)
    assert not t.is_alive()
