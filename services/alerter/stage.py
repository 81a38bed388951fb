"""Alerter stage: matches in; event history, alerts with the camera's location, and notifications out.

One sighting is one alert: per (person, camera) a new alert opens only when the previous one is older than
``ARGUS_COOLDOWN_S`` in *capture* time, so replays after a crash decide exactly as the first pass did. The
cooldown state is restored from the event store after a restart. Alert ids are derived from the sighting that
opened them, so every write is an idempotent upsert and a redelivered match never doubles an event or an alert.
Notifications go out before the store records the alert (at-least-once to sinks; receivers dedupe on alert_id).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence

from argus.errors import InputError
from argus.metrics import StageMetrics
from argus.runtime.http import Health
from argus.runtime.resources import Resources
from argus.runtime.runner import Item, Output, Reject, StageRunner
from argus.schemas import TOPIC_ALERTS, TOPIC_MATCHES, AlertV1, LocationV1, MatchesV1
from argus.sinks.base import AlertSink, FanOut
from argus.store.base import CameraRecord, SightingEvent

log = logging.getLogger(__name__)


def alert_id(person_id: str, camera_id: str, opening_event_id: str) -> str:
    return hashlib.sha256(f"{person_id}|{camera_id}|{opening_event_id}".encode()).hexdigest()[:24]


class AlerterProcessor:
    stage = "alerter"
    input_topic = TOPIC_MATCHES
    input_type = MatchesV1
    output_topics: tuple[str, ...] = (TOPIC_ALERTS,)

    def __init__(self, resources: Resources, metrics: StageMetrics, sinks: list[AlertSink]) -> None:
        s = resources.settings
        self.store = resources.store
        self.cameras = resources.cameras
        self.cooldown_s = s.cooldown_s
        self.publish_alerts = "kafka" in s.sinks
        self.store_crops = s.store_crops
        self.sinks = FanOut(sinks)
        self._last: dict[tuple[str, str], tuple[float, str]] = {}  # (person, camera) -> (ts_capture, event_id)
        self.alerts = metrics.counter("alerts_total", "Alerts raised, by camera.", ("camera",))
        self.suppressed = metrics.counter("alerts_suppressed_total", "Sightings inside an open cooldown window.")
        self.events = metrics.counter("events_total", "Sightings written to the event history.")
        self.sink_failures = metrics.counter("sink_failures_total", "Alert deliveries that failed, by sink.",
                                             ("sink",))
        # Analysts join events to cameras in the store; the registry is the source of truth, mirrored at start-up.
        for cam in self.cameras:
            self.store.upsert_camera(CameraRecord.from_camera(cam))

    def _last_alert(self, person_id: str, camera_id: str) -> tuple[float, str] | None:
        key = (person_id, camera_id)
        if key not in self._last:
            prev = self.store.last_alert(person_id, camera_id)
            if prev is not None:
                self._last[key] = (prev.ts_capture, prev.event_id)
        return self._last.get(key)

    def process(self, items: Sequence[Item[MatchesV1]]) -> list[Output | Reject]:
        out: list[Output | Reject] = []
        events: list[SightingEvent] = []
        ordered = sorted(items, key=lambda it: (it.message.ts_capture, it.message.camera_id, it.message.seq))
        for it in ordered:
            m = it.message
            try:
                camera = self.cameras.get(m.camera_id)
            except Exception as e:  # unknown camera id: keep the evidence in the dead-letter topic
                out.append(Reject(it, "unknown_camera", InputError(f"matches for unknown camera {m.camera_id!r}: {e}")))
                continue
            for fm in m.matches:
                event = SightingEvent.from_match(m, fm, store_crop=self.store_crops)
                last = self._last_alert(fm.person_id, m.camera_id)
                opens = last is None or (
                    last[1] != fm.event_id and m.ts_capture - last[0] >= self.cooldown_s
                )
                if not opens:
                    self.suppressed.inc()
                    events.append(event)
                    continue
                alert = AlertV1(
                    alert_id=alert_id(fm.person_id, m.camera_id, fm.event_id), event_id=fm.event_id,
                    camera_id=m.camera_id, camera_name=camera.name,
                    location=LocationV1(lat=camera.location.lat, lon=camera.location.lon,
                                        address=camera.location.address, zone=camera.location.zone),
                    person_id=fm.person_id, display_name=fm.display_name, watchlist=fm.watchlist,
                    score=fm.score, threshold=fm.threshold, margin=fm.margin, candidates=fm.candidates,
                    emotion=fm.emotion_label, emotion_probs=fm.emotion, det_score=fm.det_score,
                    quality=fm.quality, box=fm.box, crop_jpeg=fm.crop_jpeg, seq=m.seq,
                    ts_capture=m.ts_capture, ts_alert=time.time(), gallery_version=m.gallery_version,
                )
                for outcome in self.sinks.send(alert):  # one failing sink never blocks the others or the history
                    if not outcome.ok:
                        self.sink_failures.labels(outcome.sink).inc()
                self.store.put_alert(alert)
                self._last[(fm.person_id, m.camera_id)] = (m.ts_capture, fm.event_id)
                self.alerts.labels(m.camera_id).inc()
                events.append(event.with_alert(alert.alert_id))
                if self.publish_alerts:
                    out.append(Output(TOPIC_ALERTS, alert))
        if events:
            self.store.put_events(events)
            self.events.inc(len(events))
        return out

    def close(self) -> None:
        self.sinks.close()


def make_sinks(resources: Resources) -> list[AlertSink]:
    s = resources.settings
    sinks: list[AlertSink] = []
    if "log" in s.sinks:
        from argus.sinks.log import LogSink

        sinks.append(LogSink())
    if "webhook" in s.sinks and s.webhook_url is not None:
        from argus.sinks.webhook import WebhookSink

        sinks.append(WebhookSink(url=s.webhook_url.get_secret_value()))
    return sinks


def build(resources: Resources) -> StageRunner[MatchesV1]:
    s = resources.settings
    metrics = StageMetrics("alerter", registry=resources.registry)
    return StageRunner(
        processor=AlerterProcessor(resources, metrics, make_sinks(resources)), bus=resources.bus,
        metrics=metrics, health=Health(), batch_max=64, batch_wait_s=s.batch_wait_ms / 1000,
    )
