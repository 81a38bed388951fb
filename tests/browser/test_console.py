"""The operator console in Chromium against the served API: live feed latency, triage recorded in the store, what a
role may not do is not offered (and refused if tried), bad input shown to the user, a revoked key sent to login,
no console errors and no request off the loopback address (checked after every test by the ``page`` fixture)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from console_helpers import CAMERA_TZ, MAX_PHOTO_MB, PERSON, World, login, screenshot, serve

from argus.api.auth import revoke_api_key
from argus.demo import ASSETS

pytestmark = pytest.mark.browser


def _fresh_alert(world: World) -> str:
    """Store a new alert now: a copy of one the pipeline raised (its real crop), with a new id and the current time."""
    rec = world.res.store.get_alert(world.alerts[-1])
    assert rec is not None
    now = time.time()
    alert_id = f"live-{uuid.uuid4().hex[:12]}"
    world.res.store.put_alert(rec.alert.model_copy(update={"alert_id": alert_id, "ts_alert": now,
                                                           "ts_capture": now - 0.4}))
    return alert_id


def test_a_stored_alert_appears_in_the_feed_within_two_seconds(page: Any, world: World) -> None:
    login(page, world, "operator")
    page.wait_for_selector("#live.up", timeout=5000)
    page.wait_for_selector(f'[data-alert="{world.alerts[0]}"]')  # the history is listed before anything new
    alert_id = _fresh_alert(world)
    t0 = time.monotonic()
    page.wait_for_selector(f'[data-alert="{alert_id}"] img.thumb[src^="blob:"]', timeout=5000)
    elapsed = time.monotonic() - t0
    assert elapsed < 2.0, f"the alert took {elapsed:.2f} s to appear"
    first = page.locator("#feed > li").first.get_attribute("data-alert")
    assert first == alert_id, "the feed is newest first"
    screenshot(page, "feed.png")


def test_acknowledging_in_the_page_changes_the_status_in_the_store(page: Any, world: World) -> None:
    alert_id = world.alerts[0]
    login(page, world, "operator")
    page.goto(f"{world.base}/console/#/alert/{alert_id}")
    page.wait_for_selector(".faces img.face[src^='blob:']")
    page.wait_for_selector("#triage")
    assert "embedded agree" in page.inner_text("#alert-faces")  # the track's evidence, not one frame's
    screenshot(page, "alert.png")
    page.fill("#triage-reason", "officer dispatched")
    page.click("#btn-ack")
    page.wait_for_selector("#triage-out:has-text('Recorded')")
    rec = world.res.store.get_alert(alert_id)
    assert rec is not None and rec.status == "acknowledged" and rec.acked_by == world.actors["operator"]
    assert rec.note == "officer dispatched"


def test_not_this_person_is_recorded_with_negative_evidence(page: Any, world: World) -> None:
    alert_id = world.alerts[1]
    before = world.res.gallery.negatives(PERSON).shape[0]
    login(page, world, "operator")
    page.goto(f"{world.base}/console/#/alert/{alert_id}")
    page.wait_for_selector("#triage")
    page.click("#btn-ntp")  # no reason yet: refused in the page, nothing sent
    assert page.locator("#triage-out").inner_text().startswith("A reason is required")
    page.fill("#triage-reason", "different person: no scar")
    page.keyboard.press("Tab")
    page.focus("#btn-ntp")
    page.keyboard.press("Enter")  # by keyboard
    page.wait_for_selector("#alert-status .st-not_this_person")
    rec = world.res.store.get_alert(alert_id)
    assert rec is not None and rec.status == "not_this_person"
    assert world.res.gallery.negatives(PERSON).shape[0] == before + 1


def test_an_analyst_is_not_offered_enrolment_and_is_refused_when_posting_it(page: Any, world: World,
                                                                            watch: Any) -> None:
    watch.expect_status(403)
    login(page, world, "analyst")
    nav = page.locator("#nav a").all_inner_texts()
    assert "Audit" not in nav and "Watch-list" in nav
    page.goto(f"{world.base}/console/#/watchlist")
    page.wait_for_selector(".v-watchlist .card")
    assert page.locator("#enroll-form").count() == 0
    assert page.locator("#persons").count() == 0  # persons.read is not an analyst's
    page.goto(f"{world.base}/console/#/feed")
    page.wait_for_selector("#feed > li")
    assert page.locator("#feed img").count() == 0, "an analyst may not see face crops"
    page.goto(f"{world.base}/console/#/alert/{world.alerts[0]}")
    page.wait_for_selector("dl.facts")
    assert page.locator("#triage").count() == 0 and page.locator(".faces img").count() == 0
    status = page.evaluate("""async () => {
        const fd = new FormData();
        fd.append("person_id", "P-9/x"); fd.append("display_name", "X"); fd.append("reason", "try");
        fd.append("photos", new Blob([new Uint8Array([255, 216, 255])], {type: "image/jpeg"}), "x.jpg");
        const r = await fetch("/api/v1/persons", {method: "POST", body: fd,
            headers: {Authorization: "Bearer " + sessionStorage.getItem("argus.token")}});
        return r.status;
    }""")
    assert status == 403


def test_an_auditor_sees_the_audit_trail_and_not_the_feed(page: Any, world: World) -> None:
    login(page, world, "auditor")
    nav = page.locator("#nav a").all_inner_texts()
    assert "Audit" in nav and "Live feed" not in nav
    page.goto(f"{world.base}/console/#/audit")
    page.wait_for_selector("#audit tbody tr td.mono")
    page.fill("#af-action", "enroll")
    page.press("#af-action", "Enter")
    page.wait_for_function("() => { const rows = [...document.querySelectorAll('#audit tbody tr')];"
                           " return rows.length > 0 && rows.every(r => r.textContent.includes('enroll')); }")
    assert page.locator("#audit tbody tr").count() >= 1


def test_a_non_image_upload_shows_the_per_photo_rejection(page: Any, world: World, watch: Any) -> None:
    watch.expect_status(422)
    login(page, world, "admin")
    page.goto(f"{world.base}/console/#/watchlist")
    page.wait_for_selector("#enroll-form")
    page.fill("#en-id", "P-200/not-a-photo")
    page.fill("#en-name", "Nobody")
    page.fill("#en-reason", "test")
    page.set_input_files("#en-photos", [{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image"}])
    page.click("#en-submit")
    item = page.wait_for_selector("#verdicts li.bad")
    assert "notes.txt" in item.inner_text()
    assert "Not enrolled" in page.locator("#enroll-out").inner_text()


def test_an_over_size_upload_shows_the_413_message(page: Any, world: World, watch: Any) -> None:
    watch.expect_status(413)
    login(page, world, "admin")
    page.goto(f"{world.base}/console/#/watchlist")
    page.wait_for_selector("#enroll-form")
    page.fill("#en-id", "P-201/huge")
    page.fill("#en-name", "Huge")
    page.fill("#en-reason", "test")
    big = b"\xff\xd8\xff" + b"\0" * int(MAX_PHOTO_MB * 1024 * 1024 * 1.5)
    page.set_input_files("#en-photos", [{"name": "huge.jpg", "mimeType": "image/jpeg", "buffer": big}])
    page.click("#en-submit")
    msg = page.wait_for_selector("#enroll-413")
    assert "too large" in msg.inner_text() and "huge.jpg" in msg.inner_text()
    assert "413" in page.locator("#errors").inner_text()


def test_enrolling_by_upload_lists_the_person_and_the_verdicts(page: Any, world: World) -> None:
    login(page, world, "admin")
    page.goto(f"{world.base}/console/#/watchlist")
    page.wait_for_selector("#enroll-form")
    page.fill("#en-id", "P-300/obama")
    page.fill("#en-name", "Barack Obama")
    page.select_option("#en-wl", "demo")
    page.fill("#en-reason", "case 2026/301")
    page.set_input_files("#en-photos", [str(ASSETS / "faces" / "obama.jpg"), str(ASSETS / "faces" / "obama2.jpg")])
    page.click("#en-submit")
    page.wait_for_selector("#enroll-out .ok-text")
    assert page.locator("#verdicts li.ok").count() == 2
    page.goto(f"{world.base}/console/#/cameras")  # leave and come back: the list shows the new person
    page.goto(f"{world.base}/console/#/watchlist")
    page.wait_for_selector('[data-person="P-300/obama"]')
    page.fill("#en-id", "P-301/biden")
    page.fill("#en-name", "Joe Biden")
    page.fill("#en-reason", "case 2026/302")
    page.set_input_files("#en-photos", [{"name": "biden.jpg", "mimeType": "image/jpeg",
                                         "buffer": (ASSETS / "faces" / "biden.jpg").read_bytes()},
                                        {"name": "scan.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4"}])
    page.click("#en-submit")
    page.wait_for_selector("#verdicts li.bad")
    page.wait_for_selector('[data-person="P-301/biden"]')  # the list is refreshed in place
    assert page.locator("#verdicts li.ok").count() == 1  # one accepted, one refused with its reason
    screenshot(page, "watchlist.png")


def test_the_trail_draws_every_sighting_in_time_order_on_the_map(page: Any, world: World) -> None:
    login(page, world, "admin")
    world.res.store.put_camera_health("station-hall", {  # what ingest records for a camera it cannot reach
        "state": "backoff", "fps": 0.0, "last_frame_ts": None, "frames_dropped": 0, "reconnects": 4,
        "updated_at": time.time()})
    page.goto(f"{world.base}/console/#/trail/{PERSON}")
    page.wait_for_selector("svg.map polyline.trail-line")
    steps = page.locator("#trail-list li").count()
    sightings = [e for e in world.res.store.page_events(_person_filter(), limit=500).items]
    assert steps == len(sightings) > 0
    cams = page.locator("#trail-list li strong").all_inner_texts()
    assert {"North gate", "Market square, east side"} <= set(cams)
    screenshot(page, "map.png")
    page.goto(f"{world.base}/console/#/map")
    page.wait_for_selector('svg.map g.cam.h-warn[data-camera="station-hall"]')
    page.focus('g.cam[data-camera="north-gate"]')
    page.keyboard.press("Enter")
    page.wait_for_selector("#map-side h2:has-text('North gate')")


def _person_filter() -> Any:
    from argus.store.base import EventFilter

    return EventFilter(person_id=PERSON)


def test_cameras_and_history_views_show_the_store(page: Any, world: World) -> None:
    login(page, world, "admin")
    page.goto(f"{world.base}/console/#/cameras")
    page.wait_for_selector("#cameras tbody tr")
    assert page.locator("#cameras tbody tr").count() == 3
    page.goto(f"{world.base}/console/#/history")
    page.wait_for_selector("#history tbody tr td time")
    page.fill("#hf-person", PERSON)
    page.click("#history-form button[type=submit]")
    page.wait_for_function("() => document.querySelectorAll('#history tbody tr').length > 0 && "
                           "[...document.querySelectorAll('#history tbody tr')].every(r => r.textContent.includes('"
                           + PERSON + "'))")
    with page.expect_download() as dl:
        page.click("#export-csv")
    text = Path(dl.value.path()).read_text()
    assert "event_id" in text.splitlines()[0].split(",")
    assert PERSON in text


def test_a_revoked_key_sends_you_to_login(page: Any, world: World, watch: Any) -> None:
    from argus.api.auth import create_api_key

    watch.expect_status(401)
    rec, key = create_api_key(world.res.store, name="short-lived", role="operator", actor="test")
    login(page, world, "operator", key=key)
    page.wait_for_selector("#feed")
    revoke_api_key(world.res.store, rec.key_id, actor="test")
    page.goto(f"{world.base}/console/#/cameras")
    page.wait_for_selector("#login-msg:has-text('Session expired or key revoked')")
    assert page.locator("#view").is_hidden()
    assert page.evaluate("sessionStorage.getItem('argus.token')") is None


def test_the_skip_link_and_navigation_work_by_keyboard(page: Any, world: World) -> None:
    login(page, world, "operator")
    page.reload()  # the session survives a reload (sessionStorage); keyboard from the top of the page
    page.wait_for_selector("body[data-ready]", state="attached")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")  # brand has no stop: first nav link, then the second (Map)
    page.keyboard.press("Enter")
    page.wait_for_selector("svg.map g.cam")
    assert page.evaluate("location.hash") == "#/map"


def test_times_are_the_operators_with_the_cameras_local_time_on_hover(page: Any, world: World) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    rec = world.res.store.get_alert(world.alerts[0])
    assert rec is not None
    login(page, world, "operator")
    page.goto(f"{world.base}/console/#/alert/{world.alerts[0]}")
    alerted = page.locator("dt:has-text('Alerted') + dd time")
    alerted.wait_for()
    local = datetime.fromtimestamp(rec.alert.ts_alert, ZoneInfo("Europe/London"))  # the browser's zone
    camera = datetime.fromtimestamp(rec.alert.ts_alert, ZoneInfo(CAMERA_TZ))
    assert local.strftime("%H:%M:%S") in alerted.inner_text()
    title = alerted.get_attribute("title") or ""
    assert CAMERA_TZ in title and camera.strftime("%H:%M:%S") in title, title


def test_the_map_places_cameras_on_the_background_image_by_its_two_reference_points(
        page: Any, world: World, tmp_path: Path) -> None:
    import cv2
    import numpy as np

    from argus.api.app import create_app

    img = np.full((600, 800, 3), 235, np.uint8)
    cv2.line(img, (0, 300), (800, 300), (200, 200, 200), 12)
    image = tmp_path / "plan.png"
    image.write_bytes(cv2.imencode(".png", img)[1].tobytes())
    cams = {c.camera_id: c.location for c in world.res.store.list_cameras()}
    ng, ms = cams["north-gate"], cams["market-square"]
    refs = [(100.0, 100.0, ng.lat, ng.lon), (700.0, 500.0, ms.lat, ms.lon)]
    settings = world.res.settings.model_copy(update={"console_map_image": image, "console_map_refs": refs})
    with serve(create_app(world.res, settings=settings)) as base:
        page.goto(f"{base}/console/#/map")
        page.fill("#login-token", world.keys["operator"])
        page.press("#login-token", "Enter")
        page.wait_for_selector("svg.map image[href^='blob:']", state="attached")
        assert page.get_attribute("svg.map", "viewBox") == "0 0 800 600"
        at = {cid: (float(page.get_attribute(f'g.cam[data-camera="{cid}"] circle', "cx") or "nan"),
                    float(page.get_attribute(f'g.cam[data-camera="{cid}"] circle', "cy") or "nan"))
              for cid in ("north-gate", "market-square")}
        assert at == {"north-gate": (100.0, 100.0), "market-square": (700.0, 500.0)}
