"""Hostile input the operator API meets at its edge: a decompression bomb uploaded as a photo, operator-shaped
filter values, oversized pages and ids. Each gets a clear 4xx naming the problem, and nothing is changed."""

from __future__ import annotations

import resource
import struct
import zlib

import pytest
from conftest import bearer

from argus.api.auth import Role

pytestmark = pytest.mark.usefixtures("ort_backend")


def _png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height grey pixels, with a few bytes of image data: tiny on disk, a
    multi-gigabyte bitmap for a decoder that trusts the header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
            + chunk(b"IEND", b""))


def test_a_decompression_bomb_photo_is_rejected_without_decoding_it(client, role_keys, api_resources):
    bomb = _png_bomb(60_000, 60_000)  # 3.6 gigapixels claimed, ~1 KB sent
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = client.post("/api/v1/persons", data={"person_id": "P-1", "display_name": "x", "reason": "r"},
                    files=[("photos", ("bomb.png", bomb, "image/png"))], headers=bearer(role_keys[Role.admin]))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert r.status_code == 422, r.text
    verdict = r.json()["detail"][0]
    assert verdict["accepted"] is False and verdict["code"] == "unreadable", verdict
    assert grown_mb < 500, f"decoding the bomb grew the process by {grown_mb:.0f} MB"
    assert api_resources.gallery.get("P-1") is None


@pytest.mark.parametrize("value", ['{"$ne": null}', "$where", "this.person_id != ''", '{"$gt": ""}'])
def test_operator_shaped_filter_values_are_literals_that_match_nothing(client, role_keys, value):
    for path, param in (("/api/v1/alerts", "person"), ("/api/v1/events", "person"), ("/api/v1/alerts", "status")):
        r = client.get(path, params={param: value}, headers=bearer(role_keys[Role.admin]))
        assert r.status_code in (200, 400), (path, param, r.text)
        if r.status_code == 200:
            assert r.json()["items"] == []


def test_a_page_larger_than_the_cap_and_an_overlong_id_are_refused(client, role_keys):
    admin = bearer(role_keys[Role.admin])
    r = client.get("/api/v1/alerts", params={"limit": 100_000}, headers=admin)
    assert r.status_code == 422 and "limit" in r.text
    r = client.get("/api/v1/persons/" + "a" * 200, headers=admin)
    assert r.status_code in (400, 422), r.text
    r = client.get("/api/v1/persons/..%2F..%2Fetc%2Fpasswd", headers=admin)
    assert r.status_code in (400, 404, 422), r.text
