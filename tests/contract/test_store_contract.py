"""One event-store contract, run on the embedded SQLite store and on a real MongoDB-wire server (secantusdb).

Crops are real JPEG face images from assets/pyfeat (one per emotion), so the binary round trip is checked on real
evidence bytes rather than on a placeholder.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from wire import matches, track_match

from argus.errors import StoreError
from argus.schemas import AlertV2, LocationV1, MatchesV2
from argus.store.base import (
    AlertNotFoundError,
    CameraRecord,
    EventStore,
    PersonRecord,
    SightingEvent,
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
             faces: int = 1) -> MatchesV2:
    fms = [track_match(camera_id, seq, person_id=person_id, face_index=i, emotion=_probs(emotion),
                       emotion_label=emotion, crop_jpeg=CROPS.get(emotion, CROPS["happy"]),
                       display_name=person_id.title(), watchlist="vip", score=0.81) for i in range(faces)]
    return matches(camera_id, seq, ts, *fms, gallery_version=3)


def _events(camera_id: str, seq: int, ts: float, person_id: str, emotion: str = "happy",
            faces: int = 1) -> list[SightingEvent]:
    m = _matches(camera_id, seq, ts, person_id, emotion, faces)
    return [SightingEvent.from_match(m, fm) for fm in m.matches]


def _alert(camera_id: str, person_id: str, ts_capture: float, *, ts_alert: float | None = None,
           seq: int = 1, alert_id: str | None = None) -> AlertV2:
    m = _matches(camera_id, seq, ts_capture, person_id)
    fm = m.matches[0]
    return AlertV2(
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
