"""Hostile-input limits at the edge: body caps (declared and streamed), per-principal rate limits, CORS off unless
configured, security headers, and an access log that never carries credentials or query values."""

from __future__ import annotations

import logging

import pytest
from conftest import bearer, make_settings
from fastapi.testclient import TestClient

from argus.api.app import create_app
from argus.api.auth import Role
from argus.api.limits import RateLimiter
from argus.runtime.resources import Resources


def app_with(api_resources: Resources, tmp_path, **over) -> TestClient:
    res = Resources(make_settings(tmp_path, **over), store=api_resources.store, gallery=api_resources.gallery)
    return TestClient(create_app(res), raise_server_exceptions=False)


# -- body cap ---------------------------------------------------------------------------------------------------


def test_body_over_the_cap_by_content_length_is_413_json(api_resources, tmp_path, role_keys) -> None:
    c = app_with(api_resources, tmp_path, api_max_body_mb=0.001)  # 1048 bytes
    resp = c.put("/api/v1/watchlists/vip", headers={**bearer(role_keys[Role.admin]), "Content-Type":
                                                    "application/json"}, content=b" " * 5000)
    assert resp.status_code == 413 and resp.json()["error"] == "body_too_large"


def test_chunked_body_without_content_length_is_counted_and_refused(api_resources, tmp_path, role_keys) -> None:
    c = app_with(api_resources, tmp_path, api_max_body_mb=0.001)

    def chunks():
        for _ in range(10):
            yield b'{"reason": "' + b"x" * 500

    resp = c.put("/api/v1/watchlists/vip", headers={**bearer(role_keys[Role.admin]),
                                                    "Content-Type": "application/json"}, content=chunks())
    assert resp.request.headers.get("content-length") is None  # really streamed
    assert resp.status_code == 413 and resp.json()["error"] == "body_too_large"


def test_chunked_multipart_upload_over_the_cap_is_refused(api_resources, tmp_path, role_keys) -> None:
    c = app_with(api_resources, tmp_path, api_max_body_mb=0.01)
    boundary = b"XyZ"

    def body():
        yield b"--XyZ\r\nContent-Disposition: form-data; name=\"photos\"; filename=\"a.jpg\"\r\n" \
              b"Content-Type: image/jpeg\r\n\r\n"
        for _ in range(50):
            yield b"\xff" * 1024
        yield b"\r\n--XyZ--\r\n"

    resp = c.post("/api/v1/persons", content=body(), headers={
        **bearer(role_keys[Role.admin]), "Content-Type": f"multipart/form-data; boundary={boundary.decode()}"})
    assert resp.status_code == 413


def test_body_under_the_cap_goes_through(api_resources, tmp_path, role_keys) -> None:
    c = app_with(api_resources, tmp_path, api_max_body_mb=0.01)
    resp = c.put("/api/v1/watchlists/vip", headers=bearer(role_keys[Role.admin]), json={"threshold": 2.0,
                                                                                         "reason": "r"})
    assert resp.status_code == 422  # past the cap, refused by validation (threshold out of range)


# -- rate limit -------------------------------------------------------------------------------------------------


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    rl = RateLimiter(rate_per_s=2.0, burst=3, clock=lambda: now[0])
    assert [rl.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert rl.take("k") == pytest.approx(0.5)
    assert rl.take("other") == 0.0  # per key
    now[0] += 0.5
    assert rl.take("k") == 0.0
    assert rl.take("k") > 0


def test_bucket_table_is_bounded() -> None:
    rl = RateLimiter(rate_per_s=1.0, burst=1, max_keys=10)
    for i in range(100):
        rl.take(f"k{i}")
    assert len(rl._buckets) == 10


def test_principal_over_its_rate_gets_429_with_retry_after(api_resources, tmp_path, role_keys) -> None:
    c = app_with(api_resources, tmp_path, api_rate_per_s=0.01, api_rate_burst=3)
    codes = [c.get("/api/v1/cameras", headers=bearer(role_keys[Role.operator])).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    resp = c.get("/api/v1/cameras", headers=bearer(role_keys[Role.operator]))
    assert resp.json()["error"] == "rate_limited" and int(resp.headers["retry-after"]) >= 1
    # another principal has its own bucket
    assert c.get("/api/v1/cameras", headers=bearer(role_keys[Role.analyst])).status_code == 200


def test_failed_logins_from_one_address_are_rate_limited(api_resources, tmp_path) -> None:
    c = app_with(api_resources, tmp_path, api_rate_per_s=0.01, api_rate_burst=2)
    bad = {"Authorization": "Bearer argus_0123456789ab_guess"}
    codes = [c.get("/api/v1/cameras", headers=bad).status_code for _ in range(3)]
    assert codes == [401, 401, 429]


def test_health_probe_is_never_rate_limited(api_resources, tmp_path) -> None:
    c = app_with(api_resources, tmp_path, api_rate_per_s=0.01, api_rate_burst=1)
    assert {c.get("/healthz").status_code for _ in range(5)} == {200}


# -- CORS and headers -------------------------------------------------------------------------------------------


def test_cors_is_off_by_default(client) -> None:
    resp = client.options("/api/v1/alerts", headers={"Origin": "https://evil.example",
                                                     "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in resp.headers
    assert "access-control-allow-origin" not in client.get("/healthz", headers={"Origin": "https://x"}).headers


def test_cors_allows_only_the_configured_origins(api_resources, tmp_path) -> None:
    c = app_with(api_resources, tmp_path, api_cors_origins=["https://console.example"])
    ok = c.options("/api/v1/alerts", headers={"Origin": "https://console.example",
                                              "Access-Control-Request-Method": "GET"})
    assert ok.headers["access-control-allow-origin"] == "https://console.example"
    other = c.options("/api/v1/alerts", headers={"Origin": "https://evil.example",
                                                 "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in other.headers


def test_security_headers_on_api_responses(client, role_keys) -> None:
    for resp in (client.get("/api/v1/cameras", headers=bearer(role_keys[Role.admin])), client.get("/api/v1/cameras")):
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]


def test_access_log_names_the_route_template_not_the_path_query_or_credentials(client, role_keys, caplog) -> None:
    key = role_keys[Role.admin]
    with caplog.at_level(logging.INFO, logger="argus.api.access"):
        client.get("/api/v1/persons/Secret-Person-7", headers=bearer(key))
        client.get("/api/v1/alerts", params={"person": "Query-Person-9"}, headers=bearer(key))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "/api/v1/persons/{person_id:path}" in text and "/api/v1/alerts" in text
    assert "Secret-Person-7" not in text and "Query-Person-9" not in text and key not in text
    assert key.split("_")[2] not in text
