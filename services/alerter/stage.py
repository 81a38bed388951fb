"""Alerter stage: track decisions in; event history, alerts with the camera's location, and notifications out.

One visit is one alert: each track's alert id is derived from the camera and the track, so a later revision (better
faces named another person, or nobody) rewrites the *same* alert with a higher ``revision`` — never a second one —
and a redelivered decision sends the stored alert again (at-least-once to sinks and to ``argus.alerts.v3``;
receivers dedupe on alert_id). A new track opens an alert only when the person's previous alert on that camera is
at least ``ARGUS_COOLDOWN_S`` older in *capture* time (:func:`argus.decisions.decide_alert`), judged against the
alerts captured before it, so a visit split into two tracks (a partition move, an occlusion) and replays after a
crash decide as the first pass did. Before an alert opens the event store is asked for the last one (it outlives
restarts and partition moves). Notifications go out before the store records the alert.

Retention on the embedded store: SQLite has no TTL, so the alerter (the one writer of history) runs
``store.purge_expired`` at most once an hour, the first an hour after start (a restart loop must not purge on
every start, and an hour late is within what hourly purging promises). MongoDB expires by TTL on its own.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Sequence

from argus.cameras import Camera, UnknownCameraError
from argus.decisions import AlertAction, PriorAlert, decide_alert, prior_for
from argus.errors import ArgusError, InputError
from argus.ids import alert_id
from argus.metrics import StageMetrics
from argus.runtime.resources import Resources
from argus.runtime.runner import Item, Output, Reject, StageRunner
from argus.schemas import TOPIC_ALERTS, AlertV3, LocationV1, MatchesV3, TrackMatchV3
from argus.sinks.base import AlertSink, FanOut
from argus.store.base import CameraRecord, SightingEvent
from argus.topology import INPUT_TOPICS, OUTPUT_TOPICS

log = logging.getLogger(__name__)


#: Alerts per (person, camera) remembered in memory; older ones are asked of the store when needed.
MAX_PRIORS_KEPT = 8
#: Recent alerts kept by id so a track's next revision need not ask the store.
MAX_TRACK_ALERTS_KEPT = 4096
#: Seconds between two retention purges of a store that has no TTL of its own (SQLite).
PURGE_INTERVAL_S = 3600.0


class AlerterProcessor:
    stage = "alerter"
    input_topic = INPUT_TOPICS["alerter"]
    input_type = MatchesV3
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
        self._by_track: OrderedDict[str, AlertV3] = OrderedDict()  # recent alerts by id (one per track)
        self.alerts = metrics.counter("alerts_total", "Alerts raised, by camera.", ("camera",))
        self.suppressed = metrics.counter("alerts_suppressed_total", "Tracks inside an open cooldown window.")
        self.revised = metrics.counter("alert_revisions_total", "Alerts revised by later, better faces of the track.")
        self.events = metrics.counter("events_total", "Sightings written to the event history.")
        self.sink_failures = metrics.counter("sink_failures_total", "Alert deliveries that failed, by sink.",
                                             ("sink",))
        self._purge = getattr(self.store, "purge_expired", None)  # only stores without a TTL have one
        self._next_purge = time.monotonic() + PURGE_INTERVAL_S
        # Analysts join events to cameras in the store; the registry is the source of truth, mirrored at start-up.
        for cam in self.cameras:
            self.store.upsert_camera(CameraRecord.from_camera(cam))

    def _prior(self, person_id: str, camera_id: str, ts_capture: float, track_id: str) -> PriorAlert | None:
        """The alert this track is judged against. Suppressions are decided from memory; before anything would
        open, the store is asked (it outlives restarts and knows what another replica raised for this camera
        before its partition moved here), so a restart or a rebalance never opens a second alert."""
        known = self._priors.setdefault((person_id, camera_id), [])
        prior = prior_for(known, ts_capture)
        if decide_alert(prior=prior, event_id=track_id, ts_capture=ts_capture, cooldown_s=self.cooldown_s) \
                is AlertAction.suppress:
            return prior
        stored = self.store.last_alert(person_id, camera_id, at_or_before=ts_capture)
        if stored is not None:
            self._remember(person_id, camera_id, PriorAlert(ts_capture=stored.ts_capture,
                                                            event_id=stored.track_id or stored.event_id))
        return prior_for(known, ts_capture)

    def _remember(self, person_id: str, camera_id: str, prior: PriorAlert) -> None:
        known = self._priors.setdefault((person_id, camera_id), [])
        if prior not in known:
            known.append(prior)
            known.sort(key=lambda p: p.ts_capture)
            del known[:-MAX_PRIORS_KEPT]

    def _alert(self, m: MatchesV3, tm: TrackMatchV3, camera: Camera) -> AlertV3:
        return AlertV3(
            alert_id=alert_id(m.camera_id, tm.track_id), event_id=tm.event_id, track_id=tm.track_id,
            revision=tm.revision, withdrawn=not tm.matched, faces_seen=tm.faces_seen,
            faces_embedded=tm.faces_embedded, faces_supporting=tm.faces_supporting, score_history=tm.score_history,
            emotion_timeline=tm.emotion_timeline,
            camera_id=m.camera_id, camera_name=camera.name,
            location=LocationV1(lat=camera.location.lat, lon=camera.location.lon,
                                address=camera.location.address, zone=camera.location.zone),
            person_id=tm.person_id, display_name=tm.display_name, watchlist=tm.watchlist,
            score=tm.score, threshold=tm.threshold, margin=tm.margin, candidates=tm.candidates,
            emotion=tm.emotion_label, emotion_path=tm.emotion_path, emotion_probs=tm.emotion, det_score=tm.det_score,
            quality=tm.quality, box=tm.box, crop_jpeg=tm.crop_jpeg, seq=m.seq,
            ts_capture=m.ts_capture, ts_alert=time.time(), gallery_version=m.gallery_version,
        )

    def _decide(self, m: MatchesV3, tm: TrackMatchV3, camera: Camera) -> AlertV3 | None:
        """The alert to send for this track decision (new, revised or repeated), or None (cooldown, stale)."""
        aid = alert_id(m.camera_id, tm.track_id)
        known = self._by_track.get(aid)
        if known is None:
            rec = self.store.get_alert(aid)
            known = rec.alert if rec is not None else None
        if known is not None:
            if tm.revision == known.revision:  # at-least-once: the alert as first raised, triage state kept
                log.info("alert %s revision %d redelivered: sent again with the same id", aid, tm.revision)
                return known
            if tm.revision < known.revision:  # an older revision replayed after a newer one: history only
                return None
            self.revised.inc()
            return self._alert(m, tm, camera)
        if not tm.matched:  # withdrawing a match that never alerted (it was inside a cooldown)
            return None
        prior = self._prior(tm.person_id, m.camera_id, m.ts_capture, tm.track_id)
        action = decide_alert(prior=prior, event_id=tm.track_id, ts_capture=m.ts_capture, cooldown_s=self.cooldown_s)
        if action is AlertAction.suppress:
            self.suppressed.inc()
            return None
        self.alerts.labels(m.camera_id).inc()
        return self._alert(m, tm, camera)

    def process(self, items: Sequence[Item[MatchesV3]]) -> list[Output | Reject]:
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
            for tm in m.matches:
                event = SightingEvent.from_match(m, tm, store_crop=self.store_crops)
                alert = self._decide(m, tm, camera)
                if alert is None:
                    events.append(event)
                    continue
                for outcome in self.sinks.send(alert):  # one failing sink never blocks the others or the history
                    if not outcome.ok:
                        self.sink_failures.labels(outcome.sink).inc()
                self.store.put_alert(alert)
                self._by_track[alert.alert_id] = alert
                while len(self._by_track) > MAX_TRACK_ALERTS_KEPT:
                    self._by_track.popitem(last=False)
                self._remember(alert.person_id, m.camera_id, PriorAlert(ts_capture=alert.ts_capture,
                                                                        event_id=tm.track_id))
                events.append(event.with_alert(alert.alert_id))
                if self.publish_alerts:
                    out.append(Output(TOPIC_ALERTS, alert))
        if events:
            self.store.put_events(events)
            self.events.inc(len(events))
        self._maybe_purge()
        return out

    def _maybe_purge(self) -> None:
        if self._purge is None or time.monotonic() < self._next_purge:
            return
        self._next_purge = time.monotonic() + PURGE_INTERVAL_S
        try:
            counts = self._purge(time.time())
        except ArgusError as e:  # retention can wait an hour; the batch just written must not be retried for it
            log.warning("retention purge failed, next try in %.0f s: %s", PURGE_INTERVAL_S, e)
            return
        log.info("retention purge: %s", counts)

    def close(self) -> None:
        self.sinks.close()


def make_sinks(resources: Resources) -> list[AlertSink]:
    s = resources.settings
    sinks: list[AlertSink] = []
    if "log" in s.sinks:
        from argus.sinks.log import LogSink

        sinks.append(LogSink())
    if "webhook" in s.sinks:
        from argus.errors import ConfigError
        from argus.sinks.outbox import durable_webhook

        # Settings refuse an enabled webhook without a URL or a key; refuse here too rather than post unsigned.
        if s.webhook_url is None or s.webhook_signing_secret is None:
            raise ConfigError("sink 'webhook': expected ARGUS_WEBHOOK_URL and a signing key (ARGUS_WEBHOOK_SECRET "
                              "or ARGUS_WEBHOOK_SECRET_FILE), got "
                              f"{'no URL' if s.webhook_url is None else 'no key'}")
        # Queued in a durable outbox and delivered by its own thread: a slow or failing receiver never stalls the
        # stream, and an alert it refuses for a minute is delivered when it returns (argus/sinks/outbox.py).
        sinks.append(durable_webhook(url=s.webhook_url.get_secret_value(), data_dir=s.data_dir,
                                     secret=s.webhook_signing_secret.get_secret_value(), registry=resources.registry))
    return sinks


def build(resources: Resources) -> StageRunner[MatchesV3]:
    metrics = StageMetrics("alerter", registry=resources.registry)
    return StageRunner.for_stage(AlerterProcessor(resources, metrics, make_sinks(resources)), resources, metrics)
