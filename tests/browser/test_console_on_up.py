"""The console as a newcomer meets it: `argus up` as a real process on a demo clip and a watch-list folder, the
URL and admin key it prints, Chromium on that URL. The man's alert arrives in the live feed while the page is
open (pushed, not reloaded); acknowledging it in the page is stored; the page logs no error and asks nothing of a
non-loopback address; Ctrl-C then ends `argus up` cleanly with the triage kept."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest
from console_helpers import VIEWPORT
from up_helpers import CLIP, PHOTO, cameras_file, start_up

from argus.store.sqlite import SqliteEventStore
from argus_dev.devservers import free_port

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_console_on_argus_up_shows_the_alert_live_and_records_the_acknowledgement(browser, tmp_path: Path) -> None:
    cams = cameras_file(tmp_path, {"id": "market-square", "name": "Market square", "url": str(CLIP), "lat": "52.52"})
    person = tmp_path / "watchlist" / "pyfeat-man"
    person.mkdir(parents=True)
    shutil.copy(PHOTO, person / "single_face.jpg")
    data = tmp_path / "data"
    up = start_up(cams, person.parent, data, free_port())
    errors: list[str] = []
    requests: list[str] = []
    try:
        url = up.line_matching(r"^Console: (\S+)", timeout_s=120).group(1)
        key = up.line_matching(r"^Admin API key[^:]*: (argus_\S+)", timeout_s=10).group(1)
        ctx = browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="Europe/Berlin")
        page = ctx.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(url + "#/feed")
        page.fill("#login-token", key)
        page.press("#login-token", "Enter")
        page.wait_for_selector("body[data-ready]", state="attached")
        page.wait_for_selector("#live.up", timeout=10_000)
        # the clip plays in real time: the man walks in after the page is open, and the feed is pushed
        page.wait_for_selector("#feed > li[data-alert]", timeout=120_000)
        alert_id = page.locator("#feed > li").first.get_attribute("data-alert")
        assert alert_id
        page.click(f'[data-alert="{alert_id}"] a.feed-link')
        page.wait_for_selector("#triage")
        page.fill("#triage-reason", "officer dispatched")
        page.click("#btn-ack")
        page.wait_for_selector("#triage-out:has-text('Recorded')", timeout=10_000)
        ctx.close()
    finally:
        rc = up.stop()
    assert rc == 0, up.out
    assert errors == [], f"the page logged errors: {errors}"
    for u in map(urlparse, requests):
        assert u.scheme in ("blob", "data") or (u.scheme == "http" and u.hostname == "127.0.0.1"), u.geturl()
    store = SqliteEventStore(path=data / "events.sqlite")
    try:
        rec = store.get_alert(alert_id)
        assert rec is not None and rec.status == "acknowledged" and rec.note == "officer dispatched"
        assert rec.alert.person_id == "pyfeat-man"
        assert store.count_events() >= 1
    finally:
        store.close()
