"""A gallery directory that refuses writes (full disk) answers 507 with what to fix, not a bare 500: the operator
changing a watch-list is the one who must hear that the volume is full, and the path and errno are not internals.
The full disk is the FileWriter seam of tests/unit/test_gallery_write_faults.py (no tiny tmpfs can be mounted)."""

from __future__ import annotations

from pathlib import Path

from conftest import bearer, make_settings
from disk_faults import FullDisk
from fastapi.testclient import TestClient

from argus.api.app import create_app
from argus.api.auth import Role, create_api_key
from argus.faces.embedder import EMBEDDING_DIM
from argus.gallery.faiss_gallery import FaissGallery
from argus.runtime.resources import Resources
from argus.store.sqlite import SqliteEventStore


def test_a_full_gallery_volume_answers_507_naming_the_path_and_keeps_the_old_watchlist(tmp_path: Path) -> None:
    disk = FullDisk()
    gallery = FaissGallery(path=tmp_path / "gallery", dim=EMBEDDING_DIM, writer=disk)
    store = SqliteEventStore(path=tmp_path / "events.sqlite")
    res = Resources(make_settings(tmp_path, gallery="faiss"), store=store, gallery=gallery)
    admin = create_api_key(store, name="admin", role=Role.admin, actor="test")[1]
    body = {"threshold": 0.8, "description": "v1", "reason": "test"}
    with TestClient(create_app(res), raise_server_exceptions=False) as client:
        assert client.put("/api/v1/watchlists/vip", json=body, headers=bearer(admin)).status_code == 200
        disk.free = 0
        r = client.put("/api/v1/watchlists/vip", json={**body, "description": "v2"}, headers=bearer(admin))
        assert r.status_code == 507, r.text
        assert "ENOSPC" in r.json()["detail"] and str(tmp_path / "gallery") in r.json()["detail"]
        listed = client.get("/api/v1/watchlists", headers=bearer(admin)).json()
    assert [w["description"] for w in listed if w["name"] == "vip"] == ["v1"]
    store.close()
