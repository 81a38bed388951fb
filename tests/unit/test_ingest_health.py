"""Camera health in the event store: fps over the last interval, the reader's state and counters, written by
ingest on its own thread into a real (SQLite) store — and a store that fails never stops the frames."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from argus.bus.memory import MemoryBus
from argus.config import load_settings
from argus.errors import InputError, StoreError
from argus.ingest import MemorySource, ReaderState, ReaderStats
from argus.ingest.health import HEALTH_KEYS, CameraHealthRecorder, health_doc
from argus.runtime.resources import Resources
from argus.store.sqlite import SqliteEventStore
from argus_services.ingest.stage import IngestService

ASSETS = Path(__file__).resolve().parents[2] / "assets"
T = 1_700_000_000.0


def _stats(cam: str, *, frames: int, state: ReaderState = ReaderState.streaming, dropped: int = 0,
           reconnects: int = 0, last: float | None = T) -> ReaderStats:
    return ReaderStats(camera_id=cam, state=state, frames_read=frames, frames_dropped=dropped, reconnects=reconnects,
                       open_errors=0, read_errors=0, decode_errors=0, watchdog_trips=0, last_frame_ts=last,
                       seconds_since_frame=0.0, queue_depth=0, hung_threads=0, last_backoff_s=0.0, last_error=None)


class Clock:
    """Wall and monotonic time the test moves by hand."""

    def __init__(self) -> None:
        self.t = 0.0

    def wall(self) -> float:
        return T + self.t

    def mono(self) -> float:
        return self.t


def test_health_doc_has_the_documented_keys_and_fps_over_the_interval() -> None:
    doc = health_doc(_stats("gate", frames=150, dropped=3, reconnects=1),
                     _stats("gate", frames=100), 5.0, now=T + 9)
    assert tuple(doc) == HEALTH_KEYS
    assert doc == {"state": "streaming", "fps": 10.0, "last_frame_ts": T, "frames_dropped": 3, "reconnects": 1,
                   "watchdog_trips": 0, "flaps": 0, "updated_at": T + 9}


def test_health_doc_without_a_baseline_claims_no_rate() -> None:
    assert health_doc(_stats("gate", frames=500), None, 5.0, now=T)["fps"] == 0.0
    with pytest.raises(InputError, match="expected elapsed_s >= 0, got -1"):
        health_doc(_stats("gate", frames=1), None, -1, now=T)


def test_recorder_writes_each_camera_with_the_rate_of_the_last_interval_only(tmp_path: Path) -> None:
    store = SqliteEventStore(path=tmp_path / "events.sqlite")
    clock = Clock()
    script = [
        {"a": _stats("a", frames=0), "b": _stats("b", frames=0, state=ReaderState.connecting, last=None)},
        {"a": _stats("a", frames=100), "b": _stats("b", frames=0, state=ReaderState.backoff, last=None,
                                                     reconnects=2)},
        {"a": _stats("a", frames=110, dropped=4), "b": _stats("b", frames=25, last=T + 9)},
    ]
    snapshots = iter(script)
    rec = CameraHealthRecorder(lambda: next(snapshots), lambda: store, interval_s=5.0, clock=clock.wall,
                               monotonic=clock.mono)
    rec.prime()
    clock.t = 5.0
    assert rec.record() == 2
    assert store.camera_health()["a"]["fps"] == 20.0  # 100 frames in 5 s
    clock.t = 10.0
    assert rec.record() == 2
    health = store.camera_health()
    assert health == {
        "a": {"state": "streaming", "fps": 2.0, "last_frame_ts": T, "frames_dropped": 4, "reconnects": 0,
              "watchdog_trips": 0, "flaps": 0, "updated_at": T + 10},  # 10 frames in the last 5 s, not 110 / 10 s
        "b": {"state": "streaming", "fps": 5.0, "last_frame_ts": T + 9, "frames_dropped": 0, "reconnects": 0,
              "watchdog_trips": 0, "flaps": 0, "updated_at": T + 10},
    }
    store.close()


def test_a_failing_store_is_counted_and_writes_resume_when_it_is_back(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    broken = SqliteEventStore(path=tmp_path / "old.sqlite")
    broken.close()  # every write now raises StoreError
    good = SqliteEventStore(path=tmp_path / "events.sqlite")
    stores: list[Any] = [broken, broken, good]
    failures: list[BaseException] = []

    def open_store() -> Any:
        return stores.pop(0) if len(stores) > 1 else stores[0]

    cams = {"a": _stats("a", frames=1), "b": _stats("b", frames=1)}
    rec = CameraHealthRecorder(lambda: cams, open_store, interval_s=1.0, on_failure=failures.append)
    assert rec.record() == 0 and rec.record() == 0
    assert len(failures) == 4 and all(isinstance(e, StoreError) for e in failures)
    assert sum("refused a write" in r.message for r in caplog.records) == 1  # once per outage, not per write
    assert rec.record() == 2
    assert set(good.camera_health()) == {"a", "b"}
    good.close()


def test_a_store_that_cannot_even_be_opened_fails_every_camera_quietly() -> None:
    failures: list[BaseException] = []

    def unreachable() -> Any:
        raise StoreError("cannot reach MongoDB at mongodb://db:27017: expected a reply, got a timeout")

    rec = CameraHealthRecorder(lambda: {"a": _stats("a", frames=1)}, unreachable, interval_s=1.0,
                               on_failure=failures.append)
    assert rec.record() == 0
    assert [str(e) for e in failures] == ["cannot reach MongoDB at mongodb://db:27017: expected a reply, got a "
                                          "timeout"]


def test_interval_must_be_positive() -> None:
    with pytest.raises(InputError, match="expected interval_s > 0, got 0"):
        CameraHealthRecorder(dict, lambda: SqliteEventStore(path=":memory:"), interval_s=0)


def _ingest(tmp_path: Path, store: SqliteEventStore, registry: CollectorRegistry, bus: MemoryBus
            ) -> IngestService:
    s = load_settings(data_dir=tmp_path, cameras_file=ASSETS / "demo" / "cameras.toml", metrics_port=0,
                      camera_health_interval_s=0.05)
    image = np.full((48, 64, 3), 128, np.uint8)
    src = MemorySource(camera_id="north-gate", images=[image], fps=50, loop=True, realtime=True)
    res = Resources(s, registry=registry, bus=bus, store=store, sources=[src])
    return IngestService(res)


def _run_until(svc: IngestService, done: Any, timeout_s: float = 10.0) -> None:
    stop = threading.Event()
    t = threading.Thread(target=svc.run, args=(stop,))
    t.start()
    deadline = time.monotonic() + timeout_s
    try:
        while not done() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        t.join(timeout=10)
        svc.close()
    assert done(), "expected the condition within the time limit"


def _metric(registry: CollectorRegistry, name: str) -> float:
    value = registry.get_sample_value(name)
    return 0.0 if value is None else value


def test_ingest_records_camera_health_and_its_final_state(tmp_path: Path) -> None:
    store = SqliteEventStore(path=tmp_path / "events.sqlite")
    registry = CollectorRegistry()
    svc = _ingest(tmp_path, store, registry, MemoryBus(partitions=1))
    seen: list[Mapping[str, Any]] = []

    def streaming_with_a_rate() -> bool:
        doc = store.camera_health().get("north-gate")
        if doc is not None:
            seen.append(doc)
        return any(d["state"] == "streaming" and d["fps"] > 0 for d in seen)

    _run_until(svc, streaming_with_a_rate)
    final = store.camera_health()["north-gate"]
    assert set(final) == set(HEALTH_KEYS)
    assert final["state"] == "stopped"  # written after the readers stopped
    assert final["last_frame_ts"] is not None and final["updated_at"] >= seen[0]["updated_at"]
    assert _metric(registry, "argus_ingest_health_write_failures_total") == 0
    store.close()


def test_ingest_keeps_publishing_while_the_store_refuses_health(tmp_path: Path) -> None:
    store = SqliteEventStore(path=tmp_path / "events.sqlite")
    store.close()  # every health write raises StoreError
    registry = CollectorRegistry()
    svc = _ingest(tmp_path, store, registry, MemoryBus(partitions=1))

    def published() -> float:
        return registry.get_sample_value("argus_ingest_frames_published_total", {"camera": "north-gate"}) or 0.0

    _run_until(svc, lambda: _metric(registry, "argus_ingest_health_write_failures_total") >= 3 and published() > 10)
    assert svc.health.ready is False  # run() ended because it was stopped, not because a write raised
