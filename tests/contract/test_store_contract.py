"""One event-store contract, run on the embedded SQLite store and on a real MongoDB-wire server (secantusdb).

Crops are real JPEG face images from assets/pyfeat (one per emotion), so the binary round trip is checked on real
evidence bytes rather than on a placeholder.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from wire import matches, track_match

from argus.audit_trail import verify_chain
from argus.errors import InputError, StoreError
from argus.schemas import AlertV3, EmotionChangeV3, LocationV1, MatchesV3
from argus.store.base import (
    MAX_PAGE,
    AlertFilter,
    AlertNotFoundError,
    ApiKeyRecord,
    AuditFilter,
    CameraRecord,
    EventFilter,
    EventStore,
    KeyNotFoundError,
    Page,
    PersonRecord,
    Retention,
    SightingEvent,
    alert_doc,
    alert_from_doc,
)

ROOT = Path(__file__).resolve().parents[2]
CROPS = {
    "happy": (ROOT / "assets/pyfeat/0-f15-hao-ph.jpg").read_bytes(),
    "surprise": (ROOT / "assets/pyfeat/0-f1-su-ph.jpg").read_bytes(),
    "angry": (ROOT / "assets/pyfeat/15-f13-anc-ph.jpg").read_bytes(),
    "disgust": (ROOT / "assets/pyfeat/45-m7-di-ph.jpg").read_bytes(),
}
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
T0 = 1_763_900_000.0  # a fixed capture time (Nov 2025) so ranges are exact


def _probs(label: str) -> tuple[float, ...]:
    return tuple(0.7 if e == label else 0.05 for e in EMOTIONS)


def _matches(camera_id: str, seq: int, ts: float, person_id: str, emotion: str = "happy",
             faces: int = 1) -> MatchesV3:
    fms = [track_match(camera_id, seq, person_id=person_id, face_index=i, emotion=_probs(emotion),
                       emotion_label=emotion, crop_jpeg=CROPS.get(emotion, CROPS["happy"]),
                       display_name=person_id.title(), watchlist="vip", score=0.81) for i in range(faces)]
    return matches(camera_id, seq, ts, *fms, gallery_version=3)


def _events(camera_id: str, seq: int, ts: float, person_id: str, emotion: str = "happy",
            faces: int = 1) -> list[SightingEvent]:
    m = _matches(camera_id, seq, ts, person_id, emotion, faces)
    return [SightingEvent.from_match(m, fm) for fm in m.matches]


def _alert(camera_id: str, person_id: str, ts_capture: float, *, ts_alert: float | None = None,
           seq: int = 1, alert_id: str | None = None) -> AlertV3:
    m = _matches(camera_id, seq, ts_capture, person_id)
    fm = m.matches[0]
    return AlertV3(
        alert_id=alert_id or f"a-{camera_id}-{person_id}-{seq}", event_id=fm.event_id, camera_id=camera_id,
        camera_name=f"Camera {camera_id}",
        location=LocationV1(lat=52.5163, lon=13.3777, address="Pariser Platz 1, Berlin", zone="north"),
        person_id=person_id, display_name=fm.display_name, watchlist=fm.watchlist, score=fm.score,
        threshold=fm.threshold, margin=fm.margin, candidates=fm.candidates, emotion=fm.emotion_label,
        emotion_probs=fm.emotion, det_score=fm.det_score, quality=fm.quality, box=fm.box, crop_jpeg=fm.crop_jpeg,
        seq=seq, ts_capture=ts_capture, ts_alert=ts_alert if ts_alert is not None else ts_capture + 0.5,
        gallery_version=m.gallery_version,
    )


@pytest.fixture(params=["sqlite", pytest.param("mongo", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    if request.param == "sqlite":
        from argus.store.sqlite import SqliteEventStore

        s: EventStore = SqliteEventStore(path=tmp_path / "events.sqlite")
        yield s
        s.close()
    else:
        from pymongo import MongoClient

        from argus.store.mongo import MongoEventStore

        uri = request.getfixturevalue("mongo_server").address
        db = f"t_{uuid.uuid4().hex[:10]}"
        s = MongoEventStore(uri=uri, database=db, retention_days=30)
        yield s
        s.close()
        client: MongoClient[dict[str, object]] = MongoClient(uri)
        client.drop_database(db)
        client.close()


# -- idempotency ------------------------------------------------------------------------------------------------


def test_putting_the_same_events_twice_keeps_one_copy_of_each(store: EventStore):
    batch = _events("gate-1", 7, T0, "p-alice", faces=3)
    store.put_events(batch)
    store.put_events(batch)
    store.put_events(batch[:1])
    assert store.count_events() == 3
    assert sorted(e.event_id for e in store.query_events()) == ["gate-1:7:0", "gate-1:7:1", "gate-1:7:2"]


def test_putting_the_same_alert_twice_keeps_one_copy(store: EventStore):
    a = _alert("gate-1", "p-alice", T0)
    store.put_alert(a)
    store.put_alert(a)
    assert store.count_alerts() == 1
    assert [r.alert for r in store.query_alerts()] == [a]


def test_an_event_round_trips_with_every_field_and_its_crop_bytes(store: EventStore):
    m = _matches("gate-2", 11, T0, "p-bob", emotion="surprise")
    ev = SightingEvent.from_match(m, m.matches[0], alert_id="alert-xyz")
    store.put_events([ev])
    (got,) = store.query_events()
    assert got == ev
    assert got.crop_jpeg == CROPS["surprise"] and got.crop_jpeg[:2] == b"\xff\xd8"
    assert got.candidates[1] == {"person_id": "p-other", "display_name": "Other", "watchlist": "vip", "score": 0.52}


def test_an_event_built_without_its_crop_is_stored_without_one(store: EventStore):
    m = _matches("gate-2", 12, T0, "p-bob")
    store.put_events([SightingEvent.from_match(m, m.matches[0], store_crop=False)])
    (got,) = store.query_events()
    assert got.crop_jpeg is None


def test_a_replayed_event_without_an_alert_keeps_the_alert_it_raised(store: EventStore):
    (ev,) = _events("gate-1", 3, T0, "p-alice")
    store.put_events([ev.with_alert("alert-1")])
    store.put_events([ev])  # the replay sees its own alert in cooldown and writes the event without the link
    (got,) = store.query_events()
    assert got.alert_id == "alert-1"


# -- event queries ----------------------------------------------------------------------------------------------


@pytest.fixture()
def history(store: EventStore) -> EventStore:
    """Ten sightings: two cameras, two people, emotions alternating happy/angry, one second apart."""
    events = []
    for i in range(10):
        cam = "gate-1" if i % 2 == 0 else "gate-2"
        person = "p-alice" if i < 6 else "p-bob"
        events += _events(cam, i, T0 + i, person, emotion="happy" if i % 3 else "angry")
    store.put_events(events)
    return store


def test_query_events_filters_by_camera(history: EventStore):
    got = history.query_events(camera_id="gate-2")
    assert [e.seq for e in got] == [9, 7, 5, 3, 1]


def test_query_events_filters_by_person(history: EventStore):
    assert [e.seq for e in history.query_events(person_id="p-bob")] == [9, 8, 7, 6]


def test_query_events_filters_by_emotion(history: EventStore):
    got = history.query_events(emotion="angry")
    assert [e.seq for e in got] == [9, 6, 3, 0]
    assert all(e.emotion == "angry" for e in got)


def test_query_events_filters_by_half_open_time_range(history: EventStore):
    got = history.query_events(since=T0 + 2, until=T0 + 5)
    assert [e.ts_capture for e in got] == [T0 + 4, T0 + 3, T0 + 2]


def test_query_events_combines_filters(history: EventStore):
    got = history.query_events(camera_id="gate-1", person_id="p-alice", since=T0 + 1)
    assert [e.seq for e in got] == [4, 2]


def test_query_events_is_newest_first_and_honours_the_limit(history: EventStore):
    got = history.query_events(limit=3)
    assert [e.seq for e in got] == [9, 8, 7]
    assert len(history.query_events()) == 10


def test_a_non_positive_limit_is_refused(history: EventStore):
    with pytest.raises(StoreError, match="limit"):
        history.query_events(limit=0)


# -- alerts -----------------------------------------------------------------------------------------------------


@pytest.fixture()
def alerts(store: EventStore) -> EventStore:
    store.put_alert(_alert("gate-1", "p-alice", T0, ts_alert=T0 + 1, seq=1))
    store.put_alert(_alert("gate-2", "p-alice", T0 + 10, ts_alert=T0 + 11, seq=2))
    store.put_alert(_alert("gate-1", "p-bob", T0 + 20, ts_alert=T0 + 21, seq=3))
    store.put_alert(_alert("gate-1", "p-alice", T0 + 30, ts_alert=T0 + 31, seq=4))
    return store


def test_query_alerts_is_newest_first_and_filters_by_camera_and_person(alerts: EventStore):
    assert [r.alert.seq for r in alerts.query_alerts()] == [4, 3, 2, 1]
    assert [r.alert.seq for r in alerts.query_alerts(camera_id="gate-1")] == [4, 3, 1]
    assert [r.alert.seq for r in alerts.query_alerts(person_id="p-alice", camera_id="gate-1")] == [4, 1]
    assert [r.alert.seq for r in alerts.query_alerts(limit=2)] == [4, 3]


def test_query_alerts_filters_by_alert_time_range(alerts: EventStore):
    assert [r.alert.seq for r in alerts.query_alerts(since=T0 + 11, until=T0 + 31)] == [3, 2]


def test_new_alerts_start_as_new_and_filter_by_status(alerts: EventStore):
    assert {r.status for r in alerts.query_alerts()} == {"new"}
    alerts.set_alert_status("a-gate-1-p-bob-3", "dismissed", actor="analyst-7", note="look-alike")
    assert [r.alert.seq for r in alerts.query_alerts(status="new")] == [4, 2, 1]
    (dismissed,) = alerts.query_alerts(status="dismissed")
    assert (dismissed.alert.seq, dismissed.acked_by, dismissed.note) == (3, "analyst-7", "look-alike")
    assert dismissed.acked_at is not None and abs(dismissed.acked_at - time.time()) < 60


def test_last_alert_is_the_latest_capture_for_that_person_on_that_camera(alerts: EventStore):
    last = alerts.last_alert("p-alice", "gate-1")
    assert last is not None and last.seq == 4 and last.ts_capture == T0 + 30
    assert last.crop_jpeg == CROPS["happy"]
    other = alerts.last_alert("p-alice", "gate-2")
    assert other is not None and other.seq == 2
    assert alerts.last_alert("p-bob", "gate-2") is None


@pytest.mark.parametrize(("at_or_before", "expected_seq"), [
    (T0 + 30, 4),  # inclusive bound: the alert captured exactly then
    (T0 + 29.9, 1),  # the earlier one
    (T0, 1),
    (T0 - 0.1, None),  # nothing captured before
])
def test_last_alert_at_or_before_judges_by_what_came_before(alerts: EventStore, at_or_before: float,
                                                            expected_seq: int | None):
    last = alerts.last_alert("p-alice", "gate-1", at_or_before=at_or_before)
    assert (last.seq if last is not None else None) == expected_seq


def test_a_status_change_survives_a_replay_of_the_same_alert(store: EventStore):
    a = _alert("gate-1", "p-alice", T0)
    store.put_alert(a)
    rec = store.set_alert_status(a.alert_id, "acknowledged", actor="analyst-1", note="officer dispatched")
    assert rec.status == "acknowledged"
    store.put_alert(a)  # the alerter replays the match after a crash
    got = store.get_alert(a.alert_id)
    assert got is not None
    assert (got.status, got.acked_by, got.note) == ("acknowledged", "analyst-1", "officer dispatched")
    assert got.alert == a
    assert store.count_alerts() == 1


def test_changing_the_status_of_an_unknown_alert_is_a_clear_error(store: EventStore):
    with pytest.raises(AlertNotFoundError, match="no-such-alert"):
        store.set_alert_status("no-such-alert", "dismissed", actor="analyst-1")


def test_an_unknown_status_is_refused(store: EventStore):
    a = _alert("gate-1", "p-alice", T0)
    store.put_alert(a)
    with pytest.raises(StoreError, match="expected one of new, acknowledged, dismissed"):
        store.set_alert_status(a.alert_id, "closed", actor="analyst-1")
    got = store.get_alert(a.alert_id)
    assert got is not None and got.status == "new"


# -- metadata ---------------------------------------------------------------------------------------------------


def test_persons_and_cameras_are_upserted_by_id(store: EventStore):
    store.upsert_person(PersonRecord(person_id="p-alice", display_name="Alice", watchlist="vip"))
    store.upsert_person(PersonRecord(person_id="p-alice", display_name="Alice A.", watchlist="vip",
                                     note="escort", attributes={"team": "blue"}))
    p = store.get_person("p-alice")
    assert p is not None and (p.display_name, p.note, p.attributes) == ("Alice A.", "escort", {"team": "blue"})
    assert store.get_person("p-nobody") is None
    from argus.cameras import Camera, Location

    cam = Camera(id="gate-3", name="North gate", url="rtsp://admin:hunter2@10.0.0.7/stream1", fps=5.0,
                 location=Location(lat=52.5, lon=13.4, address="Pariser Platz 1, Berlin", zone="north"))
    store.upsert_camera(CameraRecord.from_camera(cam))
    c = store.get_camera("gate-3")
    assert c is not None and c.location.address == "Pariser Platz 1, Berlin"
    assert "hunter2" not in c.url and c.url.startswith("rtsp://***@10.0.0.7")


# -- SQLite only ------------------------------------------------------------------------------------------------


def test_sqlite_store_keeps_everything_across_a_reopen(tmp_path: Path):
    from argus.store.sqlite import SqliteEventStore

    path = tmp_path / "events.sqlite"
    s1 = SqliteEventStore(path=path)
    s1.put_events(_events("gate-1", 1, T0, "p-alice", faces=2))
    s1.put_alert(_alert("gate-1", "p-alice", T0))
    s1.set_alert_status("a-gate-1-p-alice-1", "dismissed", actor="analyst-2")
    s1.close()
    s2 = SqliteEventStore(path=path)
    assert (s2.count_events(), s2.count_alerts()) == (2, 1)
    (rec,) = s2.query_alerts(status="dismissed")
    assert rec.acked_by == "analyst-2"
    s2.close()
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_sqlite_store_works_in_memory():
    from argus.store.sqlite import SqliteEventStore

    s = SqliteEventStore(path=":memory:")
    s.put_events(_events("gate-1", 1, T0, "p-alice"))
    assert s.count_events() == 1
    s.close()
    with pytest.raises(StoreError, match="after close"):
        s.count_events()


def test_sqlite_store_takes_concurrent_writers_without_losing_rows(tmp_path: Path):
    from argus.store.sqlite import SqliteEventStore

    s = SqliteEventStore(path=tmp_path / "events.sqlite")
    errors: list[BaseException] = []

    def writer(cam: str) -> None:
        try:
            for seq in range(50):
                s.put_events(_events(cam, seq, T0 + seq, "p-alice", faces=2))
        except BaseException as e:  # surfaced by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(f"cam-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert s.count_events() == 4 * 50 * 2
    s.close()


def test_sqlite_store_refuses_a_file_that_is_not_a_database(tmp_path: Path):
    from argus.store.sqlite import SqliteEventStore

    bad = tmp_path / "events.sqlite"
    bad.write_bytes(CROPS["happy"])  # a JPEG, not a database
    with pytest.raises(StoreError, match=r"events\.sqlite"):
        SqliteEventStore(path=bad)


# -- MongoDB only -----------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_mongo_store_creates_the_query_indexes_and_the_retention_ttl(mongo_server):
    from pymongo import MongoClient

    from argus.store.mongo import MongoEventStore

    db = f"t_{uuid.uuid4().hex[:10]}"
    s = MongoEventStore(uri=mongo_server.address, database=db, retention_days=7)
    client: MongoClient[dict[str, object]] = MongoClient(mongo_server.address, tz_aware=True)
    try:
        ev = {ix["name"]: ix for ix in client[db]["events"].list_indexes()}
        al = {ix["name"]: ix for ix in client[db]["alerts"].list_indexes()}
        assert list(ev["camera_ts"]["key"].items()) == [("camera_id", 1), ("ts_capture", -1)]
        assert list(ev["person_ts"]["key"].items()) == [("person_id", 1), ("ts_capture", -1)]
        assert list(ev["emotion_ts"]["key"].items()) == [("emotion", 1), ("ts_capture", -1)]
        assert list(al["status_ts"]["key"].items()) == [("status", 1), ("ts_alert", -1)]
        assert list(al["camera_ts"]["key"].items()) == [("camera_id", 1), ("ts_alert", -1)]
        assert list(al["person_ts"]["key"].items()) == [("person_id", 1), ("ts_alert", -1)]
        for idx in (ev, al):
            assert idx["retention_ttl"]["expireAfterSeconds"] == 0
            assert list(idx["retention_ttl"]["key"].items()) == [("expires_at", 1)]
        # a restart with another retention reuses the same indexes instead of failing on an options conflict
        MongoEventStore(uri=mongo_server.address, database=db, retention_days=30).close()
    finally:
        s.close()
        client.drop_database(db)
        client.close()


@pytest.mark.integration
def test_mongo_documents_carry_bson_dates_and_binary_crops(mongo_server):
    from pymongo import MongoClient

    from argus.store.mongo import MongoEventStore

    db = f"t_{uuid.uuid4().hex[:10]}"
    s = MongoEventStore(uri=mongo_server.address, database=db, retention_days=7)
    client: MongoClient[dict[str, object]] = MongoClient(mongo_server.address, tz_aware=True)
    try:
        s.put_events(_events("gate-1", 5, T0, "p-alice"))
        s.put_alert(_alert("gate-1", "p-alice", T0))
        doc = client[db]["events"].find_one({"_id": "gate-1:5:0"})
        assert doc is not None
        captured = doc["captured_at"]
        assert isinstance(captured, datetime) and abs(captured.timestamp() - T0) < 0.001
        expires = doc["expires_at"]
        assert isinstance(expires, datetime) and round((expires - captured).total_seconds()) == 7 * 86400
        # crops live in their own collection so a TTL index can expire them before their events
        crop = client[db]["crops"].find_one({"_id": "e:gate-1:5:0"})
        assert crop is not None and crop["crop"] == CROPS["happy"] and "crop_jpeg" not in doc
        # analysts query with dates, not epoch floats
        since = datetime.fromtimestamp(T0 - 1).astimezone()
        assert client[db]["events"].count_documents({"captured_at": {"$gte": since}}) == 1
        alert = client[db]["alerts"].find_one({"_id": "a-gate-1-p-alice-1"})
        assert alert is not None and isinstance(alert["alerted_at"], datetime) and alert["status"] == "new"
    finally:
        s.close()
        client.drop_database(db)
        client.close()


def test_mongo_store_unreachable_is_a_store_error_that_hides_the_password():
    pytest.importorskip("pymongo")
    from argus.store.mongo import MongoEventStore

    with pytest.raises(StoreError) as ei:
        MongoEventStore(uri="mongodb://argus:s3cr3t-pw@127.0.0.1:1/?directConnection=true", timeout_s=0.3)
    msg = str(ei.value)
    assert "s3cr3t-pw" not in msg
    assert "127.0.0.1:1" in msg and "ping" in msg


# -- operator API: keyset pages ---------------------------------------------------------------------------------


def _walk(fetch: Callable[[str | None], Page[Any]]) -> tuple[list[Any], int]:
    items: list[Any] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = fetch(cursor)
        pages += 1
        items += page.items
        if page.next_cursor is None:
            return items, pages
        cursor = page.next_cursor
        assert pages < 100, "pagination does not end"


def test_alert_pages_with_equal_times_neither_lose_nor_repeat_rows(store: EventStore):
    for i in range(23):  # all raised in the same second: only the id orders them
        store.put_alert(_alert(f"gate-{i % 3}", "p-alice", T0, ts_alert=T0 + 5, seq=i, alert_id=f"a-{i:02d}"))
    store.put_alert(_alert("gate-1", "p-alice", T0, ts_alert=T0 + 9, seq=99, alert_id="a-newest"))
    got, pages = _walk(lambda c: store.page_alerts(AlertFilter(), limit=5, cursor=c))
    ids = [r.alert_id for r in got]
    assert ids == ["a-newest", *[f"a-{i:02d}" for i in reversed(range(23))]]
    assert pages == 5
    assert got[0].alert.crop_jpeg == CROPS["happy"]


def test_event_pages_with_equal_times_neither_lose_nor_repeat_rows(store: EventStore):
    store.put_events([e for seq in range(6) for e in _events("gate-1", seq, T0, "p-alice", faces=4)])
    got, pages = _walk(lambda c: store.page_events(EventFilter(person_id="p-alice"), limit=7, cursor=c))
    ids = [e.event_id for e in got]
    assert len(ids) == 24 and len(set(ids)) == 24 and ids == sorted(ids, reverse=True)
    assert pages == 4
    assert all(e.crop_jpeg == CROPS["happy"] for e in got)


def test_a_page_that_ends_exactly_at_the_last_row_has_no_next_cursor(store: EventStore):
    store.put_events([e for seq in range(4) for e in _events("gate-1", seq, T0 + seq, "p-alice")])
    first = store.page_events(EventFilter(), limit=4)
    assert len(first.items) == 4 and first.next_cursor is None


@pytest.mark.parametrize("cursor", ["not a cursor!", "e30", "WzEsMl0", "WyJ4IiwgImEiXQ", "W251bGwsImEiXQ", "x" * 2000])
def test_a_malformed_cursor_is_an_input_error_naming_it(store: EventStore, cursor: str):
    # "e30" = {}, "WzEsMl0" = [1,2] (an int where an alert id goes), ["x","a"], [null,"a"]
    store.put_alert(_alert("gate-1", "p-alice", T0))
    with pytest.raises(InputError, match="cursor"):
        store.page_alerts(AlertFilter(), limit=5, cursor=cursor)


@pytest.mark.parametrize("limit", [0, -1, MAX_PAGE + 1])
def test_a_page_limit_outside_the_cap_is_refused(store: EventStore, limit: int):
    with pytest.raises(InputError, match="page limit"):
        store.page_events(EventFilter(), limit=limit)


@pytest.fixture()
def triaged(store: EventStore) -> EventStore:
    """Six alerts: two watch-lists, three cameras, one of each triage outcome."""
    for i in range(6):
        a = _alert(f"gate-{i % 3}", "p-alice" if i < 3 else "p-bob", T0 + i, ts_alert=T0 + i, seq=i,
                   alert_id=f"a-{i}")
        store.put_alert(a.model_copy(update={"watchlist": "vip" if i % 2 else "banned"}))
    store.set_alert_status("a-1", "acknowledged", actor="op-1")
    store.set_alert_status("a-2", "dismissed", actor="op-1", note="look-alike")
    store.set_alert_status("a-4", "not_this_person", actor="op-2", note="stranger")
    return store


@pytest.mark.parametrize(("flt", "expected"), [
    (AlertFilter(), [5, 4, 3, 2, 1, 0]),
    (AlertFilter(camera_ids=("gate-0", "gate-2")), [5, 3, 2, 0]),
    (AlertFilter(camera_ids=()), []),
    (AlertFilter(person_id="p-bob"), [5, 4, 3]),
    (AlertFilter(watchlist="vip"), [5, 3, 1]),
    (AlertFilter(status="new"), [5, 3, 0]),
    (AlertFilter(status="not_this_person"), [4]),
    (AlertFilter(since=T0 + 1, until=T0 + 4), [3, 2, 1]),
    (AlertFilter(person_id="p-alice", watchlist="banned", camera_ids=("gate-0", "gate-2")), [2, 0]),
])
def test_alert_pages_filter_by_every_field(triaged: EventStore, flt: AlertFilter, expected: list[int]):
    assert [r.alert.seq for r in triaged.page_alerts(flt, limit=50).items] == expected


def test_not_this_person_is_a_triage_status_that_keeps_its_note(triaged: EventStore):
    rec = triaged.get_alert("a-4")
    assert rec is not None and (rec.status, rec.acked_by, rec.note) == ("not_this_person", "op-2", "stranger")


@pytest.mark.parametrize(("flt", "expected"), [
    (EventFilter(camera_ids=("gate-2",)), [9, 7, 5, 3, 1]),
    (EventFilter(person_id="p-bob", emotion="angry"), [9, 6]),
    (EventFilter(watchlist="vip", since=T0 + 8), [9, 8]),
    (EventFilter(watchlist="default"), []),
])
def test_event_pages_filter_by_every_field(history: EventStore, flt: EventFilter, expected: list[int]):
    assert [e.seq for e in history.page_events(flt, limit=50).items] == expected


OPERATOR_LOOKALIKES = ['{"$ne": null}', "$where", "$gt", '{"$gt": ""}', "this.person_id != ''", "'; DROP TABLE x;--",
                       "%", "*"]


@pytest.mark.parametrize("value", OPERATOR_LOOKALIKES)
def test_filter_values_that_look_like_operators_are_literals_matching_nothing(triaged: EventStore, value: str):
    store = triaged
    store.put_events(_events("gate-1", 1, T0, "p-alice"))
    store.append_audit(actor="op-1", role="operator", action="alerts.query", details={})
    for flt in (AlertFilter(person_id=value), AlertFilter(watchlist=value), AlertFilter(status=value),
                AlertFilter(camera_ids=(value,))):
        assert store.page_alerts(flt, limit=10).items == []
    for eflt in (EventFilter(person_id=value), EventFilter(emotion=value), EventFilter(watchlist=value)):
        assert store.page_events(eflt, limit=10).items == []
    for aflt in (AuditFilter(actor=value), AuditFilter(action=value), AuditFilter(subject=value)):
        assert store.page_audit(aflt, limit=10).items == []
    assert store.count_alerts() == 6 and store.count_events() == 1  # nothing was changed either


@pytest.mark.parametrize("build", [
    lambda: AlertFilter(person_id={"$ne": None}),
    lambda: AlertFilter(status=["new"]),
    lambda: AlertFilter(camera_ids="gate-1"),
    lambda: AlertFilter(camera_ids=({"$gt": ""},)),
    lambda: EventFilter(emotion=1),
    lambda: EventFilter(since="yesterday"),
    lambda: AuditFilter(actor={"$where": "1"}),
    lambda: AuditFilter(until=float("nan")),
])
def test_a_non_string_filter_value_is_refused(build: Callable[[], object]):
    with pytest.raises(InputError, match="filter"):
        build()


# -- operator API: persons, photos, cameras, health, keys -------------------------------------------------------


def test_persons_are_listed_by_id_and_their_photos_replaced_whole(store: EventStore):
    for pid in ("P-200", "P-100", "p-a.b/c:1"):
        store.upsert_person(PersonRecord(person_id=pid, display_name=pid, watchlist="vip"))
    assert [p.person_id for p in store.list_persons()] == sorted(["P-200", "P-100", "p-a.b/c:1"])
    assert store.get_person_photos("P-100") == []
    store.put_person_photos("P-100", [CROPS["happy"], CROPS["angry"]])
    assert store.get_person_photos("P-100") == [CROPS["happy"], CROPS["angry"]]
    store.put_person_photos("P-100", [CROPS["disgust"]])
    assert store.get_person_photos("P-100") == [CROPS["disgust"]]
    assert store.get_person_photos("P-200") == []
    with pytest.raises(InputError, match="photo 0"):
        store.put_person_photos("P-100", ["not bytes"])


def test_cameras_are_listed_and_their_health_kept_per_camera(store: EventStore):
    loc = LocationV1(lat=52.5, lon=13.4, address="Pariser Platz 1", zone="north")
    for cid, tz in (("gate-2", None), ("gate-1", "Asia/Tokyo")):
        store.upsert_camera(CameraRecord(camera_id=cid, name=cid, location=loc, timezone=tz))
    assert [c.camera_id for c in store.list_cameras()] == ["gate-1", "gate-2"]
    assert [c.timezone for c in store.list_cameras()] == ["Asia/Tokyo", None]
    assert store.get_camera("gate-1").timezone == "Asia/Tokyo"  # type: ignore[union-attr]
    h1 = {"state": "streaming", "fps": 4.9, "last_frame_ts": T0, "frames_dropped": 3, "reconnects": 0,
          "updated_at": T0 + 1}
    store.put_camera_health("gate-1", h1)
    store.put_camera_health("gate-2", {**h1, "state": "reconnecting"})
    store.put_camera_health("gate-2", {**h1, "state": "stopped", "reconnects": 5})
    assert store.camera_health() == {"gate-1": h1, "gate-2": {**h1, "state": "stopped", "reconnects": 5}}


def test_api_keys_are_stored_listed_and_revoked_once(store: EventStore):
    k1 = ApiKeyRecord(key_id="k-1", name="vms", role="operator", secret_sha256="ab" * 32, created_at=T0,
                      created_by="admin-1")
    k2 = ApiKeyRecord(key_id="k-2", name="auditor", role="auditor", secret_sha256="cd" * 32, created_at=T0 + 1,
                      created_by="admin-1")
    store.put_api_key(k2)
    store.put_api_key(k1)
    assert store.get_api_key("k-1") == k1 and store.get_api_key("k-nope") is None
    assert store.list_api_keys() == [k1, k2]
    revoked = store.revoke_api_key("k-1", at=T0 + 50)
    assert revoked.revoked_at == T0 + 50
    assert store.revoke_api_key("k-1", at=T0 + 99).revoked_at == T0 + 50  # revoked once, when it was
    assert store.get_api_key("k-1") == revoked and store.get_api_key("k-2") == k2
    with pytest.raises(KeyNotFoundError, match="k-nope"):
        store.revoke_api_key("k-nope", at=T0)


# -- operator API: the audit chain ------------------------------------------------------------------------------


def test_appended_audit_records_form_a_chain_that_verifies(store: EventStore):
    recs = [store.append_audit(actor=f"op-{i % 2}", role="operator", action="alert.view",
                               subject="P-7" if i % 3 == 0 else None, details={"alert_id": f"a-{i}", "ratio": 0.5})
            for i in range(7)]
    stored = list(store.audit_records())
    assert stored == recs and [r.seq for r in stored] == list(range(1, 8))
    assert verify_chain(stored, now=time.time(), retention_days=None).ok
    page = store.page_audit(AuditFilter(actor="op-0"), limit=2)
    assert [r.seq for r in page.items] == [7, 5] and page.next_cursor is not None
    rest = store.page_audit(AuditFilter(actor="op-0"), limit=2, cursor=page.next_cursor)
    assert [r.seq for r in rest.items] == [3, 1]
    assert [r.seq for r in store.page_audit(AuditFilter(subject="P-7"), limit=10).items] == [7, 4, 1]


def test_redacting_an_audit_subject_keeps_the_chain_valid(store: EventStore):
    for i in range(4):
        store.append_audit(actor="op", role="admin", action="update", subject="P-7" if i % 2 else "P-8", details={})
    assert store.redact_audit_subject("P-7") == 2
    recs = list(store.audit_records())
    assert [r.subject for r in recs] == ["P-8", None, "P-8", None]
    assert all(r.subject_digest for r in recs) and recs[1].subject_salt is None
    assert verify_chain(recs, now=time.time(), retention_days=None).ok
    assert store.page_audit(AuditFilter(subject="P-7"), limit=10).items == []


def test_two_writers_appending_at_once_never_fork_the_chain(store: EventStore):
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            for i in range(50):
                store.append_audit(actor=name, role="operator", action="alerts.query", details={"i": i})
        except BaseException as e:  # surfaced by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(f"replica-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    recs = list(store.audit_records())
    assert [r.seq for r in recs] == list(range(1, 101))
    assert {r.actor for r in recs} == {"replica-0", "replica-1"}
    rep = verify_chain(recs, now=time.time(), retention_days=None)
    assert rep.ok, rep.problem


# -- operator API: erasure --------------------------------------------------------------------------------------

GONE = "P-Erase/1:x"  # mixed case, '/' and ':': the id rule of argus.ids


def _all_stored_text(store: EventStore) -> list[bytes]:
    """Every row of every table / every document of every collection, as bytes to search."""
    out: list[bytes] = []
    if store.name == "sqlite":
        conn = store._conn
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert {"events", "alerts", "persons", "person_photos", "audit", "api_keys"} <= set(tables)
        for t in tables:
            for row in conn.execute(f"SELECT * FROM {t}"):
                out.append(b"|".join(v if isinstance(v, bytes) else str(v).encode() for v in row))
    else:
        import bson

        db = store._db
        names = db.list_collection_names()
        assert {"events", "alerts", "crops", "persons", "person_photos", "audit"} <= set(names)
        for name in names:
            for doc in db[name].find({}):
                out.append(bson.encode(doc))
    return out


def test_erasing_a_person_leaves_no_trace_in_any_collection_and_counts_what_went(store: EventStore):
    from argus.schemas import CandidateV1

    store.put_events([e for seq in range(3) for e in _events("gate-1", seq, T0 + seq, GONE)])
    store.put_alert(_alert("gate-1", GONE, T0, seq=0))
    store.put_alert(_alert("gate-2", GONE, T0 + 5, seq=5))
    store.upsert_person(PersonRecord(person_id=GONE, display_name="Erin Erased", watchlist="vip"))
    store.put_person_photos(GONE, [CROPS["happy"], CROPS["angry"]])
    # p-bob's sightings where the erased person was the runner-up: they stay, without naming her
    runner_up = CandidateV1(person_id=GONE, display_name="Erin Erased", watchlist="vip", score=0.6)
    bob = [replace(e, candidates=(*e.candidates, runner_up.model_dump()))
           for seq in (10, 11) for e in _events("gate-2", seq, T0 + seq, "p-bob")]
    store.put_events(bob)
    bob_alert = _alert("gate-2", "p-bob", T0 + 10, seq=10)
    store.put_alert(bob_alert.model_copy(update={"candidates": (*bob_alert.candidates, runner_up)}))
    store.upsert_person(PersonRecord(person_id="p-bob", display_name="Bob", watchlist="vip"))
    for action in ("enroll", "alert.view", "update"):
        store.append_audit(actor="op-1", role="operator", action=action, subject=GONE, details={"n": 1})
    store.append_audit(actor="op-1", role="operator", action="enroll", subject="p-bob", details={})
    assert any(GONE.encode() in blob for blob in _all_stored_text(store))

    receipt = store.erase_person(GONE)

    assert receipt == {"events": 3, "alerts": 2, "crops": 5, "persons": 1, "photos": 2, "candidates_scrubbed": 3,
                       "audit_redacted": 3}
    leftovers = [blob[:200] for blob in _all_stored_text(store) if GONE.encode() in blob or b"Erin Erased" in blob]
    assert leftovers == []
    assert store.count_events() == 2 and store.count_alerts() == 1 and store.get_person("p-bob") is not None
    assert all(c["person_id"] != GONE for e in store.query_events() for c in e.candidates)
    assert [e.crop_jpeg for e in store.query_events()] == [CROPS["happy"]] * 2  # bob's evidence is untouched
    assert verify_chain(list(store.audit_records()), now=time.time(), retention_days=None).ok
    assert store.erase_person(GONE) == dict.fromkeys(receipt, 0)  # a second run finds nothing left


# -- retention --------------------------------------------------------------------------------------------------


def test_sqlite_purge_expires_crops_before_events_and_keeps_the_audit_head(tmp_path: Path):
    from argus.store.sqlite import SqliteEventStore

    day = 86_400.0
    s = SqliteEventStore(path=tmp_path / "events.sqlite",
                         retention=Retention(events_days=3, alerts_days=5, crops_days=1, audit_days=2))
    s.put_events(_events("gate-1", 1, T0, "p-alice") + _events("gate-1", 2, T0 + 2 * day, "p-alice"))
    s.put_alert(_alert("gate-1", "p-alice", T0, ts_alert=T0, seq=1))
    for _ in range(3):
        s.append_audit(actor="op", role="admin", action="enroll", details={})
    assert s.purge_expired(T0 + 0.5 * day) == {"events": 0, "alerts": 0, "crops": 0, "audit": 0}
    # day 1.5: the first event's and the alert's crops are past 1 day; the rows stay
    assert s.purge_expired(T0 + 1.5 * day) == {"events": 0, "alerts": 0, "crops": 2, "audit": 0}
    assert [e.crop_jpeg is None for e in s.query_events()] == [False, True]
    got = s.get_alert("a-gate-1-p-alice-1")
    assert got is not None and got.alert.crop_jpeg == b""
    # day 3.5: the first event is past 3 days; the alert (5 days) stays
    assert s.purge_expired(T0 + 3.5 * day)["events"] == 1
    assert [e.seq for e in s.query_events()] == [2] and s.count_alerts() == 1
    assert s.purge_expired(T0 + 5.5 * day)["alerts"] == 1
    # the audit records were written now; three days on, all but the newest are past 2 days
    later = time.time() + 3 * day
    assert s.purge_expired(later)["audit"] == 2
    kept = list(s.audit_records())
    assert [r.seq for r in kept] == [3]
    assert verify_chain(kept, now=later, retention_days=2).ok
    nxt = s.append_audit(actor="op", role="admin", action="update", details={})
    assert nxt.seq == 4 and verify_chain(list(s.audit_records()), now=later, retention_days=2).ok
    s.close()


def test_sqlite_purge_without_retention_keeps_everything(tmp_path: Path):
    from argus.store.sqlite import SqliteEventStore

    s = SqliteEventStore(path=tmp_path / "events.sqlite",
                         retention=Retention(events_days=None, alerts_days=None, crops_days=None, audit_days=None))
    s.put_events(_events("gate-1", 1, T0, "p-alice"))
    s.append_audit(actor="op", role="admin", action="enroll", details={})
    assert s.purge_expired(T0 + 10_000 * 86_400) == {"events": 0, "alerts": 0, "crops": 0, "audit": 0}
    s.close()


@pytest.mark.parametrize("days", [0, -1, 1.5, True])
def test_a_retention_that_is_not_a_positive_whole_number_of_days_is_refused(days: object):
    with pytest.raises(StoreError, match="retention events_days"):
        Retention(events_days=days)


@pytest.mark.integration
def test_mongo_expires_each_collection_by_its_own_ttl(mongo_server):
    from pymongo import MongoClient

    from argus.store.mongo import MongoEventStore

    db = f"t_{uuid.uuid4().hex[:10]}"
    s = MongoEventStore(uri=mongo_server.address, database=db,
                        retention=Retention(events_days=10, alerts_days=20, crops_days=3, audit_days=40))
    client: MongoClient[dict[str, object]] = MongoClient(mongo_server.address, tz_aware=True)
    try:
        s.put_events(_events("gate-1", 5, T0, "p-alice"))
        s.put_alert(_alert("gate-1", "p-alice", T0, ts_alert=T0 + 1))
        rec = s.append_audit(actor="op", role="admin", action="enroll", details={})
        for coll in ("events", "alerts", "crops", "audit"):
            ttl = {ix["name"]: ix for ix in client[db][coll].list_indexes()}["retention_ttl"]
            assert ttl["expireAfterSeconds"] == 0 and list(ttl["key"].items()) == [("expires_at", 1)]

        def days_after(coll: str, key: object, ts: float) -> float:
            doc = client[db][coll].find_one({"_id": key})
            assert doc is not None
            return round((doc["expires_at"].timestamp() - ts) / 86_400, 6)  # type: ignore[attr-defined]

        assert days_after("events", "gate-1:5:0", T0) == 10
        assert days_after("alerts", "a-gate-1-p-alice-1", T0 + 1) == 20
        assert days_after("crops", "e:gate-1:5:0", T0) == 3  # the crop goes a week before its event
        assert days_after("crops", "a:a-gate-1-p-alice-1", T0) == 3
        assert days_after("audit", 1, rec.ts) == 40
    finally:
        s.close()
        client.drop_database(db)
        client.close()


def test_the_emotion_path_and_the_timelines_paths_survive_both_stores(store: EventStore):
    fm = track_match("north-gate", 5, person_id="p-ecrl", emotion=_probs("disgust"), emotion_label="sad",
                     emotion_path="rules")
    fm = fm.model_copy(update={"emotion_timeline": (
        EmotionChangeV3(seq=1, ts=T0, label="neutral", confidence=0.6, path="cnn"),
        EmotionChangeV3(seq=5, ts=T0 + 1, label="sad", confidence=0.3, path="rules"))})
    m = matches("north-gate", 5, T0 + 1, fm, gallery_version=3)
    store.put_events([SightingEvent.from_match(m, fm)])
    alert = _alert("north-gate", "p-ecrl", T0 + 1, alert_id="a-ecrl").model_copy(
        update={"emotion": "sad", "emotion_path": "rules", "emotion_timeline": fm.emotion_timeline})
    store.put_alert(alert)
    (ev,) = store.page_events(EventFilter(person_id="p-ecrl"), limit=10).items
    assert ev.emotion_path == "rules" and [c["path"] for c in ev.emotion_timeline] == ["cnn", "rules"]
    rec = store.get_alert("a-ecrl")
    assert rec is not None and rec.alert == alert and rec.alert.emotion_timeline[1].path == "rules"


def test_alerts_and_events_stored_by_the_v2_pipeline_still_read_with_path_cnn():
    """What a v2 alerter wrote (schema_id argus.alerts.v2, no emotion_path, timeline entries without a path)."""
    v2 = alert_doc(_alert("north-gate", "p-old", T0, alert_id="a-old"))
    v2["schema_id"] = "argus.alerts.v2"
    del v2["emotion_path"]
    v2["emotion_timeline"] = [{"seq": 1, "ts": T0, "label": "happy", "confidence": 0.7}]
    old = alert_from_doc(v2, crop=None)
    assert old.schema_id == "argus.alerts.v3" and old.emotion_path == "cnn"
    assert [(c.label, c.path) for c in old.emotion_timeline] == [("happy", "cnn")]
    ev = _events("north-gate", 1, T0, "p-old")[0].to_doc()
    del ev["emotion_path"]
    ev["emotion_timeline"] = [{"seq": 1, "ts": T0, "label": "happy", "confidence": 0.7}]
    back = SightingEvent.from_doc(ev, crop=None)
    assert back.emotion_path == "cnn" and back.emotion_timeline == ({"path": "cnn", "seq": 1, "ts": T0,
                                                                      "label": "happy", "confidence": 0.7},)
