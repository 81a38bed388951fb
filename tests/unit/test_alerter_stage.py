"""The alerter stage around the alert rule: restarts, redeliveries and clock jumps against a real (SQLite) store."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from wire import matches, track_match

from argus.bus.base import Record
from argus.bus.memory import MemoryBus
from argus.config import load_settings
from argus.errors import ConfigError, StoreError
from argus.metrics import StageMetrics
from argus.runtime.resources import Resources
from argus.runtime.runner import Item, Output
from argus.schemas import TOPIC_MATCHES, AlertV3, MatchesV3, encode
from argus.store.sqlite import SqliteEventStore
from argus_services.alerter.stage import AlerterProcessor

ASSETS = Path(__file__).resolve().parents[2] / "assets"
T = 1_700_000_000.0


@pytest.fixture()
def resources(tmp_path: Path) -> Resources:
    s = load_settings(data_dir=tmp_path, cameras_file=ASSETS / "demo" / "cameras.toml", metrics_port=0,
                      sinks=["kafka"], cooldown_s=60)
    return Resources(s, registry=CollectorRegistry(), bus=MemoryBus(partitions=1),
                     store=SqliteEventStore(path=tmp_path / "events.sqlite"))


def _processor(res: Resources) -> AlerterProcessor:
    """A fresh processor = a restarted alerter: nothing in memory, only the store remembers."""
    return AlerterProcessor(res, StageMetrics("alerter", registry=CollectorRegistry()), sinks=[])


def _item(seq: int, ts: float, cam: str = "north-gate", **kw: object) -> Item[MatchesV3]:
    """A track decision; by default every seq is its own track (a new visit), revision 1."""
    m = matches(cam, seq, ts, track_match(cam, seq, **kw))  # type: ignore[arg-type]
    return Item(Record(topic=TOPIC_MATCHES, partition=0, offset=seq, key=cam.encode(), value=encode(m),
                       timestamp_ms=0), m)


def _alerts(outputs: list) -> list[AlertV3]:
    return [o.message for o in outputs if isinstance(o, Output) and isinstance(o.message, AlertV3)]


def test_a_redelivered_decision_sends_the_same_alert_again_and_keeps_one_in_the_store(resources):
    first = _alerts(_processor(resources).process([_item(1, T), _item(2, T + 5)]))
    assert len(first) == 1
    # the alerter crashed after writing the store but before its outputs were committed: the batch comes again
    again = _alerts(_processor(resources).process([_item(1, T), _item(2, T + 5)]))
    assert [a.alert_id for a in again] == [first[0].alert_id]
    assert again[0] == first[0]  # the stored alert as first raised, ts_alert included
    assert resources.store.count_alerts() == 1
    (opening,) = [e for e in resources.store.query_events() if e.seq == 1]
    assert opening.alert_id == first[0].alert_id


def test_a_later_revision_of_the_same_track_rewrites_the_same_alert_never_a_second_one(resources):
    p = _processor(resources)
    (first,) = _alerts(p.process([_item(1, T, track_id="north-gate:1:0", person_id="p1")]))
    # better faces of the same track name another person: the alert is revised, not doubled
    (second,) = _alerts(p.process([_item(5, T + 2, track_id="north-gate:1:0", person_id="p2", revision=2)]))
    assert second.alert_id == first.alert_id and second.revision == 2 and second.person_id == "p2"
    (third,) = _alerts(p.process([_item(9, T + 4, track_id="north-gate:1:0", person_id="p2", revision=3,
                                        matched=False)]))
    assert third.alert_id == first.alert_id and third.withdrawn
    assert resources.store.count_alerts() == 1
    stored = resources.store.get_alert(first.alert_id)
    assert stored is not None and stored.alert.revision == 3 and stored.alert.withdrawn
    # the older revision replayed after the newer one changes nothing
    assert _alerts(_processor(resources).process([_item(5, T + 2, track_id="north-gate:1:0", person_id="p2",
                                                        revision=2)])) == []
    assert resources.store.get_alert(first.alert_id).alert.revision == 3  # type: ignore[union-attr]


def test_a_second_track_of_the_same_visit_inside_the_cooldown_raises_no_second_alert(resources):
    p = _processor(resources)
    assert len(_alerts(p.process([_item(1, T, track_id="north-gate:1:0")]))) == 1
    # the partition moved (or an occlusion split the track): the same person on a new track 20 s later
    assert _alerts(_processor(resources).process([_item(100, T + 20, track_id="north-gate:100:0")])) == []
    assert resources.store.count_alerts() == 1


def test_a_restarted_alerter_keeps_the_cooldown_from_the_store(resources):
    assert len(_alerts(_processor(resources).process([_item(1, T)]))) == 1
    restarted = _processor(resources)
    assert _alerts(restarted.process([_item(2, T + 30)])) == []  # inside the cooldown of the stored alert
    assert len(_alerts(restarted.process([_item(3, T + 61)]))) == 1  # past it
    assert resources.store.count_alerts() == 2


def test_a_replayed_older_batch_is_judged_by_the_alerts_before_it_not_the_newest(resources):
    p = _processor(resources)
    for seq, ts in [(1, T), (2, T + 40), (3, T + 70), (4, T + 140)]:
        p.process([_item(seq, ts)])
    assert resources.store.count_alerts() == 3  # T, T+70, T+140
    # a new process replays from seq 2: the newest stored alert (T+140) must not suppress the one at T+70
    replay = _alerts(_processor(resources).process([_item(2, T + 40), _item(3, T + 70)]))
    assert [a.ts_capture for a in replay] == [T + 70]
    assert resources.store.count_alerts() == 3


def test_a_camera_clock_stepped_back_an_hour_still_alerts(resources):
    p = _processor(resources)
    assert len(_alerts(p.process([_item(1, T + 3600)]))) == 1
    assert len(_alerts(p.process([_item(2, T + 5)]))) == 1
    assert _alerts(p.process([_item(3, T + 20)])) == []


def test_resources_refuse_an_injection_that_is_not_a_seam(tmp_path: Path):
    s = load_settings(data_dir=tmp_path, metrics_port=0)
    with pytest.raises(ConfigError, match="galery"):
        Resources(s, galery=object())  # a typo must not silently build the real FAISS gallery


def test_resources_close_what_they_built_when_used_as_a_context_manager(tmp_path: Path):
    s = load_settings(data_dir=tmp_path, metrics_port=0)
    with Resources(s) as res:
        store = res.store
        store.count_events()
    with pytest.raises(StoreError, match="after close"):
        store.count_events()
