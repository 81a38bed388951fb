"""Alerter stage: matches in; event history, alerts with the camera's location, and notifications out.

One sighting is one alert: per (person, camera) a new alert opens only when the previous one is at least
``ARGUS_COOLDOWN_S`` older in *capture* time (the rule is :func:`argus.decisions.decide_alert`), judged against the
alerts captured before the sighting, so replays after a crash decide exactly as the first pass did. Before an alert
opens, the event store is asked for the last one (it outlives restarts and partition moves). Alert ids are derived
from the sighting that opened them, so every write is an idempotent upsert: a redelivered opening sighting sends
the *same* alert again (at-least-once to sinks and to ``argus.alerts.v1``; receivers dedupe on alert_id), never a
second one. Notifications go out before the store records the alert.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from argus.cameras import Camera, UnknownCameraError
from argus.decisions import AlertAction, PriorAlert, decide_alert, prior_for
from argus.errors import InputError
from argus.ids import alert_id
from argus.metrics import StageMetrics
from argus.runtime.resources import Resources
from argus.runtime.runner import Item, Output, Reject, StageRunner
from argus.schemas import TOPIC_ALERTS, AlertV1, FaceMatchV1, LocationV1, MatchesV1
from argus.sinks.base import AlertSink, FanOut
from argus.store.base import CameraRecord, SightingEvent
from argus.topology import INPUT_TOPICS, OUTPUT_TOPICS

log = logging.getLogger(__name__)


#: Alerts per (person, camera) remembered in memory; older ones are asked of the store when needed.
MAX_PRIORS_KEPT = 8


class AlerterProcessor:
    stage = "alerter"
    input_topic = INPUT_TOPICS["alerter"]
    input_type = MatchesV1
    output_topics: tuple[str, ...] = OUTPUT_TOPICS["alerter"]

    def __init__(self, resources: Resources, metrics: StageMetrics, sinks: list[AlertSink]) -> None:
        s = resources.settings
        self.store = resources.store
        self.cameras = resources.cameras
        self.cooldown_s = s.cooldown_s
        self.publish_alerts = "kafka" in s.sinks
        self.store_crops = s.store_crops
        self.sinks = FanOut(sinks)
        # (person, camera) -> alerts known to this process, newest last; the store is consulted before opening
        self._priors: dict[tuple[str, str], list[PriorAlert]] = {}
        self.alerts = metrics.counter("alerts_total", "Alerts raised, by camera.", ("camera",))
        self.suppressed = metrics.counter("alerts_suppressed_total", "Sightings inside an open cooldown window.")
        self.events = metrics.counter("events_total", "Sightings written to the event history.")
        self.sink_failures = metrics.counter("sink_failures_total", "Alert deliveries that failed, by sink.",
                                             ("sink",))
        # Analysts join events to cameras in the store; the registry is the source of truth, mirrored at start-up.
        for cam in self.cameras:
            self.store.upsert_camera(CameraRecord.from_camera(cam))

    def _prior(self, person_id: str, camera_id: str, ts_capture: float, event_id: str) -> PriorAlert | None:
        """The alert this sighting is judged against. Suppressions are decided from memory; before anything
        would open, the store is asked (it outlives restarts and knows what another replica raised for this
        camera before its partition moved here), so a restart or a rebalance never opens a second alert."""
        known = self._priors.setdefault((person_id, camera_id), [])
        prior = prior_for(known, ts_capture)
        if decide_alert(prior=prior, event_id=event_id, ts_capture=ts_capture, cooldown_s=self.cooldown_s) \
                is AlertAction.suppress:
            return prior
        stored = self.store.last_alert(person_id, camera_id, at_or_before=ts_capture)
        if stored is not None:
            self._remember(person_id, camera_id, PriorAlert(ts_capture=stored.ts_capture, event_id=stored.event_id))
        return prior_for(known, ts_capture)

    def _remember(self, person_id: str, camera_id: str, prior: PriorAlert) -> None:
        known = self._priors.setdefault((person_id, camera_id), [])
        if prior not in known:
            known.append(prior)
            known.sort(key=lambda p: p.ts_capture)
            del known[:-MAX_PRIORS_KEPT]

    def _alert(self, m: MatchesV1, fm: FaceMatchV1, camera: Camera) -> AlertV1:
        return AlertV1(
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

    def process(self, items: Sequence[Item[MatchesV1]]) -> list[Output | Reject]:
        out: list[Output | Reject] = []
        events: list[SightingEvent] = []
        ordered = sorted(items, key=lambda it: (it.message.ts_capture, it.message.camera_id, it.message.seq))
        for it in ordered:
            m = it.message
            try:
                camera = self.cameras.get(m.camera_id)
            except UnknownCameraError as e:  # keep the evidence in the dead-letter topic
                out.append(Reject(it, "unknown_camera", InputError(f"matches for unknown camera {m.camera_id!r}: {e}")))
                continue
            for fm in m.matches:
                event = SightingEvent.from_match(m, fm, store_crop=self.store_crops)
                prior = self._prior(fm.person_id, m.camera_id, m.ts_capture, fm.event_id)
                action = decide_alert(prior=prior, event_id=fm.event_id, ts_capture=m.ts_capture,
                                      cooldown_s=self.cooldown_s)
                if action is AlertAction.suppress:
                    self.suppressed.inc()
                    events.append(event)
                    continue
                if action is AlertAction.repeat:  # at-least-once: the alert as first raised, triage state kept
                    stored = self.store.get_alert(alert_id(fm.person_id, m.camera_id, fm.event_id))
                    alert = stored.alert if stored is not None else self._alert(m, fm, camera)
                    log.info("alert %s redelivered (sighting %s seen again): sent again with the same id",
                             alert.alert_id, fm.event_id)
                else:
                    alert = self._alert(m, fm, camera)
                    self.alerts.labels(m.camera_id).inc()
                for outcome in self.sinks.send(alert):  # one failing sink never blocks the others or the history
                    if not outcome.ok:
                        self.sink_failures.labels(outcome.sink).inc()
                self.store.put_alert(alert)
                self._remember(fm.person_id, m.camera_id, PriorAlert(ts_capture=m.ts_capture, event_id=fm.event_id))
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
    metrics = StageMetrics("alerter", registry=resources.registry)
    return StageRunner.for_stage(AlerterProcessor(resources, metrics, make_sinks(resources)), resources, metrics)
