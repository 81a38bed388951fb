"""Ingest while the broker cannot acknowledge: publishing holds (not ready, alive), the cameras' drop-oldest queues
shed the oldest frames and count them per camera, and publishing resumes by itself when the broker is back.

The real broker outage is tests/e2e/test_outages.py (30 s, four processes); here the in-memory bus refuses its
flushes for a moment — the one fault injected, since a real broker cannot be made to fail a flush on demand in a
unit test — so every branch of the policy is checked in a second."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from argus.bus.memory import MemoryBus
from argus.config import load_settings
from argus.errors import BusUnavailable
from argus.ingest import MemorySource
from argus.runtime.resources import Resources
from argus.store.sqlite import SqliteEventStore
from argus_services.ingest.stage import IngestService

ASSETS = Path(__file__).resolve().parents[2] / "assets"
CAMERA = "north-gate"


class AwayBus(MemoryBus):
    """A MemoryBus whose flush raises BusUnavailable while ``away`` is set, as KafkaBus does with no broker."""

    def __init__(self) -> None:
        super().__init__(partitions=1)
        self.away = threading.Event()
        self.refused = 0

    def flush(self, timeout_s: float = 30.0) -> None:
        if self.away.is_set():
            self.refused += 1
            time.sleep(min(timeout_s, 0.05))
            raise BusUnavailable("Kafka flush to 127.0.0.1:9092 failed: KafkaTimeoutError: Timeout waiting for future")


def _sample(registry: CollectorRegistry, name: str) -> float:
    return registry.get_sample_value(name, {"camera": CAMERA}) or 0.0


def test_a_broker_outage_holds_publishing_drops_oldest_frames_counted_and_resumes(tmp_path: Path) -> None:
    s = load_settings(data_dir=tmp_path, cameras_file=ASSETS / "demo" / "cameras.toml", metrics_port=0,
                      ingest_queue=4)
    src = MemorySource(camera_id=CAMERA, images=[np.full((48, 64, 3), 128, np.uint8)], fps=50, loop=True,
                       realtime=True)
    registry, bus = CollectorRegistry(), AwayBus()
    svc = IngestService(Resources(s, registry=registry, bus=bus, store=SqliteEventStore(path=":memory:"),
                                  sources=[src]))
    stop = threading.Event()
    runner = threading.Thread(target=svc.run, args=(stop,))
    seen_not_ready = False
    try:
        runner.start()
        deadline = time.monotonic() + 10
        while _sample(registry, "argus_ingest_frames_published_total") < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        bus.away.set()
        away_until = time.monotonic() + 1.5
        while time.monotonic() < away_until:
            seen_not_ready |= not svc.health.ready
            assert svc.health.alive(), "holding is waiting, not hanging: liveness stays on"
            time.sleep(0.01)
        published_during = _sample(registry, "argus_ingest_frames_published_total")
        dropped_during = _sample(registry, "argus_ingest_frames_dropped_total")
        bus.away.clear()
        deadline = time.monotonic() + 10
        while (not svc.health.ready or _sample(registry, "argus_ingest_frames_published_total")
               < published_during + 10) and time.monotonic() < deadline:
            time.sleep(0.01)
        ready_after = svc.health.ready
    finally:
        stop.set()
        runner.join(timeout=10)
        svc.close()
    assert not runner.is_alive()
    assert bus.refused > 0 and seen_not_ready, "the outage was not noticed"
    assert dropped_during > 0, "50 fps into a 4-frame queue for 1.5 s must drop, and count, the oldest frames"
    assert ready_after, "ingest did not come back by itself"
    assert _sample(registry, "argus_ingest_frames_published_total") >= published_during + 10
    assert registry.get_sample_value("argus_ingest_errors_total", {"kind": "BusUnavailable"}) == bus.refused
