"""Ingest stage: cameras in, sampled JPEG frames out on ``argus.frames.v2``, keyed by camera.

One reader thread per camera (with a read watchdog and reconnect backoff) fills a small drop-oldest queue, so a
slow bus or inference stage costs old frames — counted per camera — never memory or latency. This loop drains the
queues round-robin, encodes JPEG once (the only time pixels are compressed), publishes and flushes in small groups.
Each camera's health (reader state, fps, last frame, drops, reconnects) goes to the event store every
``ARGUS_CAMERA_HEALTH_INTERVAL_S`` from a side thread, so the operator API can show it; a store outage is counted,
never allowed to stop the frames.

With ``ARGUS_MOTION_GATING`` each frame meets its camera's motion gate (argus.ingest.gating) before anything else:
a frame in which nothing moved is skipped and counted (``frames_skipped_total{reason="no_motion"}``) — ingest
holds the decoded frame, so a still frame costs ~1 ms here instead of an encode, ~100 KB on the bus, a decode and
a detector pass downstream. A published frame says where it moved, or that it is a keyframe (full-frame detection
at least every ``ARGUS_MOTION_KEYFRAME_S``, so a face standing still is found).
"""

from __future__ import annotations

import logging
import threading
import time

from argus.errors import TransientError
from argus.imaging import encode_jpeg
from argus.ingest.gating import SKIP_REASONS, UNGATED, CameraGates
from argus.ingest.health import CameraHealthRecorder
from argus.ingest.reader import ReaderGroup, ReaderStats
from argus.ingest.sources import CapturedFrame
from argus.metrics import StageMetrics
from argus.retry import Backoff
from argus.runtime.drain import StatusRecorder
from argus.runtime.http import Health
from argus.runtime.resources import Resources
from argus.schemas import TOPIC_DEADLETTER, TOPIC_FRAMES, FrameV2, encode

log = logging.getLogger(__name__)

FLUSH_EVERY = 16
FLUSH_INTERVAL_S = 0.05
STATS_INTERVAL_S = 1.0
#: A flush that takes longer means the broker is away (a healthy one acknowledges in milliseconds).
FLUSH_TIMEOUT_S = 5.0
#: Retries of a held flush: 0.2, 0.4 … then every 5 s, while the camera queues shed their oldest frames.
HOLD_BACKOFF = Backoff(initial_s=0.2, factor=2.0, max_s=5.0, jitter=0.3)


class IngestService:
    stage = "ingest"

    def __init__(self, resources: Resources) -> None:
        s = resources.settings
        self.bus = resources.bus
        self.quality = s.jpeg_quality
        shards = s.ingest_shards
        shard = s.ingest_shard_index()
        cameras = resources.cameras.shard(shard, shards)
        if not cameras:
            log.warning("ingest shard %d/%d has no camera to read (more replicas than enabled cameras)", shard, shards)
        sources = resources.frame_sources(cameras)
        self.group = ReaderGroup.for_sources(sources, queue_size=s.ingest_queue)
        self.health = Health()
        self.health.detail["cameras"] = [src.camera_id for src in sources]
        self.health.detail["sources_finished"] = False
        self.health.detail["shard"] = f"{shard}/{shards}"
        m = self.metrics = StageMetrics("ingest", registry=resources.registry)
        self.published = m.counter("frames_published_total", "Frames published to the bus.", ("camera",))
        self.frames_read = m.counter("frames_read_total", "Frames sampled from the camera.", ("camera",))
        self.dropped = m.counter("frames_dropped_total", "Frames dropped under backpressure (oldest first).",
                                 ("camera",))
        self.reconnects = m.counter("reconnects_total", "Stream reconnect attempts.", ("camera",))
        self.read_errors = m.counter("read_errors_total", "Open/read/decode failures.", ("camera", "kind"))
        self.watchdog = m.counter("watchdog_trips_total", "Reads abandoned because they hung.", ("camera",))
        self.queue_depth = m.gauge("queue_depth", "Frames waiting in the camera's queue.", ("camera",))
        self.last_frame = m.gauge("last_frame_timestamp_seconds", "Capture time of the newest frame.", ("camera",))
        self.camera_up = m.gauge("camera_up", "1 while the camera is streaming.", ("camera",))
        self.encode_seconds = m.histogram("encode_seconds", "JPEG encode time per frame.")
        # Motion gating (argus.ingest.gating: why here): a frame in which nothing moved is skipped and counted
        self.gates = CameraGates(cameras, enabled=s.motion_gating, keyframe_s=s.motion_keyframe_s)
        self.skipped = m.counter("frames_skipped_total", "Frames not published, by reason (no_motion: the motion "
                                 "gate saw nothing move; never encoded, published or decoded).", ("camera", "reason"))
        self.keyframes = m.counter("keyframes_total", "Frames published for a full-frame detection (gating on: the "
                                   "periodic pass, first frame, light change).", ("camera",))
        self.motion_seconds = m.histogram("motion_seconds", "Motion gate time per frame (gating on).")
        for src in sources:  # every camera's series from the start: a panel reads 0 ("nothing skipped"), not no data
            for reason in SKIP_REASONS:
                self.skipped.labels(src.camera_id, reason)
            self.keyframes.labels(src.camera_id)
        m.gauge("cameras", "Cameras this ingest replica reads (its shard of the registry).").set(len(sources))
        self.health_write_failures = m.counter(
            "health_write_failures_total", "Camera health documents the event store did not take (ingest goes on).")
        self._prev: dict[str, ReaderStats] = {}
        # The store is opened on the recorder's thread at its first write, not here: ingest starts without it.
        self.camera_health = CameraHealthRecorder(
            self.group.stats, lambda: resources.store, interval_s=s.camera_health_interval_s,
            on_failure=lambda _e: self.health_write_failures.inc())
        self.bus.ensure_topics([TOPIC_FRAMES, TOPIC_DEADLETTER])
        # "finished" on argus.control.v1 once every source ended and its frames were flushed: what consumers run
        # with --exit-when-drained wait for (argus.runtime.drain)
        self.status = StatusRecorder.for_source(self.bus, shard=shard, shards=shards)

    def _publish(self, frame: CapturedFrame) -> bool:
        """Gate, encode and publish one frame; False when the gate skipped it (counted by reason)."""
        cam = frame.camera_id
        if self.gates.enabled:
            t0 = time.perf_counter()
            gate = self.gates.gate(cam, frame.image, frame.ts)
            self.motion_seconds.observe(time.perf_counter() - t0)
            if gate.skip is not None:
                self.skipped.labels(cam, gate.skip).inc()
                return False
            if gate.keyframe:
                self.keyframes.labels(cam).inc()
        else:
            gate = UNGATED
        t0 = time.perf_counter()
        jpeg = encode_jpeg(frame.image, quality=self.quality, where=f"camera {cam!r}")
        self.encode_seconds.observe(time.perf_counter() - t0)
        msg = FrameV2(camera_id=cam, seq=frame.seq, ts_capture=frame.ts, ts_ingest=time.time(), width=frame.width,
                      height=frame.height, jpeg=jpeg, keyframe=gate.keyframe, gate=gate.gate,
                      motion=tuple((float(b[0]), float(b[1]), float(b[2]), float(b[3])) for b in gate.motion))
        self.bus.publish(TOPIC_FRAMES, key=msg.key(), value=encode(msg))
        self.published.labels(cam).inc()
        self.metrics.messages_out.labels(TOPIC_FRAMES).inc()
        return True

    def _export_stats(self) -> None:
        """Turn the readers' monotonic counters into Prometheus counters (by delta) and gauges."""
        for cam, st in self.group.stats().items():
            prev = self._prev.get(cam)

            def delta(attr: str, _st: ReaderStats = st, _prev: ReaderStats | None = prev) -> int:
                return int(getattr(_st, attr)) - (int(getattr(_prev, attr)) if _prev else 0)

            self.frames_read.labels(cam).inc(delta("frames_read"))
            self.dropped.labels(cam).inc(delta("frames_dropped"))
            self.reconnects.labels(cam).inc(delta("reconnects"))
            self.watchdog.labels(cam).inc(delta("watchdog_trips"))
            for kind in ("open", "read", "decode"):
                self.read_errors.labels(cam, kind).inc(delta(f"{kind}_errors"))
            self.queue_depth.labels(cam).set(st.queue_depth)
            if st.last_frame_ts is not None:
                self.last_frame.labels(cam).set(st.last_frame_ts)
            self.camera_up.labels(cam).set(1 if st.state.value == "streaming" else 0)
            self._prev[cam] = st

    def _flush(self, stop: threading.Event) -> None:
        """Flush the frames just published; while the broker is unavailable, hold here instead of publishing more.

        The policy for a broker outage: the frames already handed to the producer (at most ``FLUSH_EVERY``) stay
        in it and are delivered when the broker returns (within the producer's delivery timeout, 120 s); nothing
        else is published meanwhile, so memory stays bounded (kafka-python's buffer would otherwise grow without
        limit). The readers keep reading into their drop-oldest queues (``ARGUS_INGEST_QUEUE`` frames per camera),
        so the oldest frames are dropped, counted per camera in ``argus_ingest_frames_dropped_total``, and the
        freshest are published first when the broker is back. Readiness is off meanwhile; liveness stays on.
        """
        attempt = 0
        while True:
            try:
                self.bus.flush(timeout_s=FLUSH_TIMEOUT_S)
            except TransientError as e:
                self.health.ready = False
                self.health.detail["unavailable"] = f"{type(e).__name__}: {str(e)[:200]}"
                self.metrics.errors.labels(type(e).__name__).inc()
                self.health.beat()
                self._export_stats()  # the drops are visible while they happen
                delay = HOLD_BACKOFF.delay(attempt)
                attempt += 1
                log.warning("ingest: broker unavailable (%s), attempt %d, publishing held; next try in %.1fs",
                            e, attempt, delay)
                if stop.wait(delay):
                    return  # stopping: run()'s last flush tries once more
                continue
            if attempt:
                log.info("ingest: broker back after %d attempt(s); publishing again", attempt)
                self.health.ready = True
                self.health.detail.pop("unavailable", None)
            return

    def run(self, stop: threading.Event, *, idle_exit_s: float | None = None,
            exit_when_drained: bool = False) -> None:
        """Publish until stopped.

        When every source is a finite file that has ended, a replay (``idle_exit_s`` given: the one-process demo,
        batch jobs) returns after that idle time; a service keeps running and serving its metrics and health
        (``/readyz`` says ``sources_finished``) until it is stopped, so an orchestrator or Kubernetes never
        restarts it into replaying the same files and Prometheus keeps its last values. With ``exit_when_drained``
        it returns as soon as it recorded ``finished`` (after flushing every frame).
        """
        self.group.start()
        self.camera_health.start()
        self.status.started()
        self.health.ready = True
        self.metrics.up.set(1)
        unflushed, last_flush, last_stats = 0, time.monotonic(), 0.0
        finished_at: float | None = None
        try:
            while not stop.is_set():
                self.health.beat()
                self.status.beat()
                frame = self.group.get(timeout=0.2)
                now = time.monotonic()
                if frame is not None and self._publish(frame):
                    unflushed += 1
                if unflushed and (unflushed >= FLUSH_EVERY or now - last_flush > FLUSH_INTERVAL_S):
                    self._flush(stop)
                    unflushed, last_flush = 0, now
                if now - last_stats > STATS_INTERVAL_S:
                    self._export_stats()
                    last_stats = now
                if frame is None and self.group.finished:
                    if finished_at is None:
                        self._flush(stop)
                        unflushed = 0
                        self._export_stats()
                        finished_at = now
                        self.health.detail["sources_finished"] = True
                        log.info("ingest: every source has ended")
                        self.status.finished(stop)
                    if exit_when_drained or (idle_exit_s is not None and now - finished_at >= idle_exit_s):
                        break
                    stop.wait(0.5)  # nothing will come any more: serve metrics and health without spinning
        finally:
            self.bus.flush()
            self.status.stopped()  # nothing once finished
            self._export_stats()
            self.metrics.up.set(0)
            self.health.ready = False

    def close(self) -> None:
        self.group.stop()
        self.camera_health.stop()  # after the readers: the last record says they stopped


def build(resources: Resources) -> IngestService:
    return IngestService(resources)
