"""The alerter purges the embedded store's expired history at most once an hour (SQLite has no TTL)."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import CollectorRegistry
from wire import matches, track_match

from argus.bus.base import Record
from argus.bus.memory import MemoryBus
from argus.config import load_settings
from argus.metrics import StageMetrics
from argus.runtime.resources import Resources
from argus.runtime.runner import Item
from argus.schemas import TOPIC_MATCHES, MatchesV3, encode
from argus.store.base import Retention
from argus.store.sqlite import SqliteEventStore
from argus_services.alerter import stage
from argus_services.alerter.stage import AlerterProcessor

ASSETS = Path(__file__).resolve().parents[2] / "assets"
DAY = 86_400.0


def _item(seq: int, ts: float, cam: str = "north-gate") -> Item[MatchesV3]:
    m = matches(cam, seq, ts, track_match(cam, seq))
    return Item(Record(topic=TOPIC_MATCHES, partition=0, offset=seq, key=cam.encode(), value=encode(m),
                       timestamp_ms=0), m)


def test_the_alerter_purges_expired_history_at_most_once_an_hour(tmp_path: Path, monkeypatch):
    s = load_settings(data_dir=tmp_path, cameras_file=ASSETS / "demo" / "cameras.toml", metrics_port=0, sinks=[])
    store = SqliteEventStore(path=tmp_path / "events.sqlite",
                             retention=Retention(events_days=3, alerts_days=3, crops_days=1))
    res = Resources(s, registry=CollectorRegistry(), bus=MemoryBus(partitions=1), store=store)
    clock = [1000.0]
    monkeypatch.setattr(stage.time, "monotonic", lambda: clock[0])
    proc = AlerterProcessor(res, StageMetrics("alerter", registry=CollectorRegistry()), sinks=[])
    now = time.time()
    proc.process([_item(1, now - 10 * DAY)])  # ten days old: expired, but the first purge is an hour away
    assert store.count_events() == 1
    clock[0] += stage.PURGE_INTERVAL_S
    proc.process([_item(2, now - 5 * DAY)])
    assert store.count_events() == 0  # both sightings were past 3 days
    assert store.count_alerts() == 2  # their alerts were raised just now (retention runs from ts_alert)
    clock[0] += stage.PURGE_INTERVAL_S / 2
    proc.process([_item(3, now - 9 * DAY, cam="market-square")])
    assert store.count_events() == 1  # half an hour later: no second purge yet
    clock[0] += stage.PURGE_INTERVAL_S / 2
    proc.process([_item(4, now - DAY / 2, cam="market-square")])
    assert [e.seq for e in store.query_events()] == [4]
    res.close()
