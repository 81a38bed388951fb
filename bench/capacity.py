"""Capacity (issue 17): the sizing formulas of docs/capacity.md, and a load run that checks their CPU-side terms.

Two halves:

- **Formulas** (:func:`stage_cpu_ms`, :func:`predict_window`, :func:`plan`): pure functions of measured constants
  (CPU ms per frame / per message / per face on one core, bytes per message) and a load (cameras, fps, the share
  of frames motion gating publishes, faces per frame). ``tests/bench/test_capacity.py`` runs them so they cannot rot;
  docs/capacity.md applies them to 1,000 cameras.
- **Load run** (:func:`run`): many simulated low-resolution cameras (generated clips: the demo's real footage
  downscaled, one file per camera through FFmpeg playlists, ingest's production OpenCV source, not paced) through
  the **real pipeline**: the four stages as processes (:class:`argus_dev.cluster.LocalCluster`, the container entry
  point) over a real Kafka broker and the MongoDB-wire server (bench/servers.py), inference with in-process ONNX
  Runtime on one thread (so a frame's whole CPU cost is in the stage's own process tree; Triton would move the
  model into another process). Every 2 s each stage's CPU seconds (utime + stime of its process tree, from
  ``/proc``) and its message counter (``/metrics``) are sampled; after the pipeline drained, each stage's idle CPU
  per second (polling, health, metrics) is sampled for a few seconds.

  The prediction for the same load is built from constants measured **in this run, in this process**, on the same
  frames: camera decode, JPEG encode and FrameV2 encode (ingest), the stage processors of services/ in-process
  (inference, matcher, alerter: decode, detect, track, embed, match, store), and the Kafka client's CPU per message
  produced and consumed against the same broker. For each stage: predicted CPU over its steady window (its counter
  between 10 % and 90 % of its final value) = messages in the window x per-message cost + window seconds x idle
  cores; the result line's ratio is predicted / measured (1.0 = the formula holds; the error is ``ratio - 1``).

CPU seconds, not wall time: the machine is shared (load average recorded at start and end of the run), and a
frame's CPU cost survives contention where its latency does not (cache and memory-bandwidth contention still
inflate it a little, on both sides alike).
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from prometheus_client import CollectorRegistry

from bench.common import REPO_ROOT, BenchError, Context, Result, children_map, load_avg

AREA = "capacity"
DEMO_CAMERAS = REPO_ROOT / "assets" / "demo" / "cameras.toml"
STAGE_NAMES = ("ingest", "inference", "matcher", "alerter")
#: The counter each stage's per-message cost is counted against (all summed over labels).
STAGE_COUNTERS = {"ingest": "argus_ingest_frames_published_total",
                  "inference": "argus_inference_messages_in_total",
                  "matcher": "argus_matcher_messages_in_total",
                  "alerter": "argus_alerter_messages_in_total"}
#: The demo clips are sampled at this rate for the simulated cameras (their people move as at 5 fps).
SAMPLE_FPS = 5.0
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# ============================================================================================== formulas (pure)

@dataclass(frozen=True, kw_only=True)
class FrameCosts:
    """CPU ms on one core per item, one stage at a time. ``*_msg_ms`` are the Kafka client's cost per message."""

    read_ms: float  # camera decode (H.264/MJPEG -> BGR) per frame read
    gate_ms: float = 0.0  # motion gate per frame read (0 without gating)
    encode_ms: float  # JPEG encode + FrameV2 encode per published frame
    produce_msg_ms: float  # Kafka produce (client side) per message
    consume_msg_ms: float  # Kafka consume + commit (client side) per message
    inference_ms: float  # inference processor per published frame (decode, detect, track, embed, emotion, encode)
    matcher_ms: float  # matcher processor per faces message
    alerter_ms: float  # alerter processor per matches message (decide, store writes)


@dataclass(frozen=True, kw_only=True)
class Load:
    """What the cameras offer. ``published_share`` = frames ingest publishes / frames read (1.0 without motion
    gating); ``matches_per_frame`` = matches messages per published frame (track verdicts, not faces)."""

    cameras: int
    fps: float
    published_share: float = 1.0
    matches_per_frame: float = 0.0

    def __post_init__(self) -> None:
        if self.cameras < 0 or not (self.fps > 0) or not (0 <= self.published_share <= 1) \
                or self.matches_per_frame < 0:
            raise BenchError(f"load: expected cameras >= 0, fps > 0, 0 <= published_share <= 1, matches >= 0, got "
                             f"{self.cameras}, {self.fps}, {self.published_share}, {self.matches_per_frame}")

    @property
    def frames_read_per_s(self) -> float:
        return self.cameras * self.fps

    @property
    def frames_published_per_s(self) -> float:
        return self.frames_read_per_s * self.published_share


def stage_cpu_ms(costs: FrameCosts, *, published_share: float = 1.0,
                 matches_per_frame: float = 0.0) -> dict[str, float]:
    """CPU ms per message each stage counts (ingest: per frame published; inference, matcher: per frame
    published; alerter: per matches message), Kafka client costs included. Ingest's read and gate costs are paid
    for every frame read, so per published frame they are divided by the published share."""
    if not (0 < published_share <= 1):
        raise BenchError(f"published_share: expected 0 < share <= 1, got {published_share}")
    return {
        "ingest": (costs.read_ms + costs.gate_ms) / published_share + costs.encode_ms + costs.produce_msg_ms,
        "inference": costs.consume_msg_ms + costs.inference_ms + costs.produce_msg_ms,
        "matcher": costs.consume_msg_ms + costs.matcher_ms
        + (costs.produce_msg_ms * matches_per_frame),
        "alerter": costs.consume_msg_ms + costs.alerter_ms,
    }


def cores_per_stage(costs: FrameCosts, load: Load) -> dict[str, float]:
    """Cores each stage needs for ``load`` (busy cores, before headroom)."""
    per = stage_cpu_ms(costs, published_share=max(load.published_share, 1e-9),
                       matches_per_frame=load.matches_per_frame)
    rates = {"ingest": load.frames_published_per_s, "inference": load.frames_published_per_s,
             "matcher": load.frames_published_per_s,
             "alerter": load.frames_published_per_s * load.matches_per_frame}
    return {s: per[s] * rates[s] / 1000.0 for s in STAGE_NAMES}


def predict_window(*, per_msg_ms: float, messages: float, seconds: float, idle_cores: float) -> float:
    """Predicted CPU seconds of a stage over a window: its messages at the per-message cost plus what it burns
    per second doing nothing (polling, health, metrics)."""
    if messages < 0 or seconds < 0 or per_msg_ms < 0 or idle_cores < 0:
        raise BenchError(f"window: expected non-negative terms, got {per_msg_ms} ms, {messages} msgs, "
                         f"{seconds} s, {idle_cores} cores")
    return messages * per_msg_ms / 1000.0 + seconds * idle_cores


def replicas(cores: float, *, cores_per_replica: float, headroom: float = 0.7) -> int:
    """Replicas for ``cores`` of work when each replica may use ``cores_per_replica`` up to ``headroom`` busy
    (queueing stays short below ~70 % utilisation); at least 1."""
    if not (cores_per_replica > 0 and 0 < headroom <= 1) or cores < 0:
        raise BenchError(f"replicas: expected cores >= 0, cores_per_replica > 0, 0 < headroom <= 1, got "
                         f"{cores}, {cores_per_replica}, {headroom}")
    return max(1, math.ceil(cores / (cores_per_replica * headroom)))


def partitions(replica_count: int, *, growth: int = 2) -> int:
    """Partitions of a stage's input topic: every replica needs at least one, and the count cannot shrink, so
    leave room for ``growth`` x the replicas; at least the default 6."""
    return max(6, replica_count * growth)


@dataclass(frozen=True, kw_only=True)
class Sizes:
    """Bytes per message on the bus and per document in MongoDB."""

    frame_msg: float  # FrameV2 at the resolution and JPEG quality
    faces_msg_base: float  # FacesV3 with no face
    face_bytes: float  # per face not embedded (box, landmarks, quality, emotion, track)
    embedded_face_bytes: float  # per embedded face (adds the 128-d embedding and the aligned crop JPEG)
    match_msg: float  # MatchesV3 with one track verdict
    event_doc: float  # one sighting event (BSON, without its crop)
    crop_doc: float  # one face crop document (BSON, JPEG inside)
    alert_doc: float  # one alert (BSON)


@dataclass(frozen=True, kw_only=True)
class Retention:
    events_days: int = 90
    alerts_days: int = 365
    crops_days: int = 30
    kafka_hours: float = 6.0  # the frames/faces/matches topics' retention.ms (argus.bus.kafka)


def plan(*, load: Load, costs: FrameCosts, sizes: Sizes, faces_per_frame: float, embedded_per_frame: float,
         alerts_per_match: float, retention: Retention = Retention(), node_cores: int = 2, replication: int = 3,
         events_per_match: float = 1.0) -> dict[str, Any]:
    """The sizing for ``load``: cores and replicas per stage, Kafka bytes/s per topic and disk, partitions,
    MongoDB writes/s and steady-state storage under ``retention``. Every figure is a formula of the arguments
    (docs/capacity.md writes them out)."""
    cores = cores_per_stage(costs, load)
    reps = {s: replicas(c, cores_per_replica=node_cores) for s, c in cores.items()}
    pub = load.frames_published_per_s
    faces_msg = sizes.faces_msg_base + sizes.face_bytes * (faces_per_frame - embedded_per_frame) \
        + sizes.embedded_face_bytes * embedded_per_frame
    matches_s = pub * load.matches_per_frame
    topic_bps = {"frames": pub * sizes.frame_msg, "faces": pub * faces_msg, "matches": matches_s * sizes.match_msg}
    ingress = sum(topic_bps.values())
    kafka_disk = ingress * replication * retention.kafka_hours * 3600
    events_s = matches_s * events_per_match
    alerts_s = matches_s * alerts_per_match
    writes_s = events_s * 2 + alerts_s  # an event and its crop document; an alert
    day = 86400.0
    storage = (events_s * sizes.event_doc * day * retention.events_days
               + events_s * sizes.crop_doc * day * min(retention.crops_days, retention.events_days)
               + alerts_s * sizes.alert_doc * day * retention.alerts_days)
    return {
        "cores": cores, "replicas": reps, "cpu_nodes": sum(reps.values()),
        "total_cores": sum(cores.values()),
        "partitions": {"frames": partitions(reps["inference"]), "faces": partitions(reps["matcher"]),
                       "matches": partitions(reps["alerter"])},
        "kafka_bytes_per_s": topic_bps, "kafka_bytes_per_camera_s": ingress / max(1, load.cameras),
        "kafka_ingress_mb_s": ingress / 1e6, "kafka_disk_gb": kafka_disk / 1e9,
        "mongo_writes_per_s": writes_s, "mongo_gb_per_day": (events_s * (sizes.event_doc + sizes.crop_doc)
                                                             + alerts_s * sizes.alert_doc) * day / 1e9,
        "mongo_storage_gb": storage / 1e9,
    }


def steady_window(samples: Sequence[tuple[float, float, float]], lo: float = 0.1,
                  hi: float = 0.9) -> tuple[int, int] | None:
    """Indices (a, b) of the samples (t, cpu_s, count) bounding the stage's steady stretch: the first sample at or
    above ``lo`` of the final count and the last at or below ``hi``; the first sample with any count and the
    last one when that stretch has fewer than two samples; None when the count never moved."""
    if len(samples) < 2:
        return None
    final = samples[-1][2]
    if final <= samples[0][2]:
        return None
    a = next((i for i, s in enumerate(samples) if s[2] >= lo * final), None)
    b = next((i for i in range(len(samples) - 1, -1, -1) if samples[i][2] <= hi * final), None)
    if a is None or b is None or b - a < 1 or samples[b][2] <= samples[a][2]:
        a = next(i for i, s in enumerate(samples) if s[2] > samples[0][2]) - 1
        b = len(samples) - 1
    return max(0, a), b


# ============================================================================================== /proc

def cpu_s(pid: int) -> float | None:
    """utime + stime of one process in seconds (its own threads; reaped children are not counted)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    f = stat[stat.rindex(")") + 2:].split()
    return (int(f[11]) + int(f[12])) / CLK_TCK


def tree_cpu_s(pid: int, kids: Mapping[int, list[int]] | None = None) -> float | None:
    kids = children_map() if kids is None else kids
    root = cpu_s(pid)
    if root is None:
        return None
    total, todo = root, list(kids.get(pid, ()))
    while todo:
        p = todo.pop()
        total += cpu_s(p) or 0.0
        todo.extend(kids.get(p, ()))
    return total


# ============================================================================================== clips and cameras

def make_clips(work: Path, *, width: int, height: int, frames: int, fps: float) -> list[Path]:
    """One short clip per demo camera: its real footage sampled at ``fps`` and downscaled to ``width`` x
    ``height``, ``frames`` frames, written at ``fps`` (so ingest samples every frame of it)."""
    import tomllib

    work.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    for k, cam in enumerate(tomllib.loads(DEMO_CAMERAS.read_text())["camera"]):
        src = (DEMO_CAMERAS.parent / cam["url"]).resolve()
        cap = cv2.VideoCapture(str(src))
        native = cap.get(cv2.CAP_PROP_FPS) or 25.0
        step = max(1, round(native / SAMPLE_FPS))  # the footage's motion at 5 fps, replayed at ``fps``
        imgs: list[np.ndarray] = []
        i = 0
        while len(imgs) < frames:
            ok, img = cap.read()
            if not ok:
                break
            if i % step == 0:
                imgs.append(cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA))
            i += 1
        cap.release()
        if not imgs:
            raise BenchError(f"no frames read from {src}")
        real = len(imgs)
        while len(imgs) < frames:  # a clip shorter than asked: loop it
            imgs.append(imgs[len(imgs) % real])
        path = work / f"clip{k}.mp4"
        wr = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
        if not wr.isOpened():
            raise BenchError(f"OpenCV cannot write {path} (mp4v)")
        for img in imgs:
            wr.write(img)
        wr.release()
        out.append(path)
    return out


def read_clip(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    frames: list[np.ndarray] = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return frames


def write_registry(work: Path, clips: Sequence[Path], *, cameras: int, fps: float) -> Path:
    lines: list[str] = []
    for k in range(cameras):
        clip = clips[k % len(clips)]
        lines += ["[[camera]]", f'id = "sim-{k:04d}"', f'name = "Simulated camera {k}"', f'url = "{clip}"',
                  f"fps = {fps}", "", "[camera.location]", f"lat = {52.5 + k * 1e-4:.5f}", "lon = 13.4",
                  f'address = "Load street {k}"', f'zone = "z{k % 10}"', ""]
    path = work / "cameras.toml"
    path.write_text("\n".join(lines))
    return path


# ============================================================================================== in-process constants

@dataclass
class Measured:
    """Constants measured in this process on the load run's frames."""

    costs: FrameCosts
    frames: int
    faces: int
    embedded: int
    matches_msgs: int
    frame_msg_bytes: float
    faces_msg_bytes: float
    match_msg_bytes: float = 0.0
    event_doc_bytes: float = 0.0  # BSON of one sighting event without its crop
    crop_doc_bytes: float = 0.0  # BSON of one crop document (the JPEG inside)
    alert_doc_bytes: float = 0.0  # BSON of one alert without its crop
    alerts: int = 0


def measure_constants(work: Path, clips: Sequence[Path], kafka: str | None, *, mongo: str | None = None,
                      quality: int = 85, rounds: int = 2) -> Measured:
    """Per-frame CPU of each stage's own work on the clips' frames, in this process (one ORT thread), and the Kafka
    client's CPU per message against ``kafka`` (None: not measured, 0). With ``mongo`` the alerter writes to that
    MongoDB as the stage does (its client's CPU counted); without, to SQLite."""
    import bson

    from argus.bus.base import Record
    from argus.bus.memory import MemoryBus
    from argus.config import load_settings
    from argus.demo import enroll_demo_watchlist
    from argus.imaging import encode_jpeg
    from argus.metrics import StageMetrics
    from argus.runtime.resources import Resources
    from argus.runtime.runner import Item, Output
    from argus.schemas import TOPIC_FACES, TOPIC_FRAMES, TOPIC_MATCHES, AlertV3, FacesV3, FrameV2, MatchesV3, encode
    from argus.store.base import SightingEvent, alert_doc
    from argus_services.alerter.stage import AlerterProcessor
    from argus_services.inference.stage import InferenceProcessor
    from argus_services.matcher.stage import MatcherProcessor

    cv2.setNumThreads(1)
    work.mkdir(parents=True, exist_ok=True)
    # camera decode: every frame of every clip, the file opened once per round (per-camera open is a start cost)
    read_s, n_read = 0.0, 0
    for _ in range(rounds):
        for c in clips:
            t0 = time.process_time()
            n_read += len(read_clip(c))
            read_s += time.process_time() - t0
    per_clip = [read_clip(c) for c in clips]
    regs = write_registry(work, clips, cameras=len(clips), fps=1.0)
    store: dict[str, Any] = ({"store": "mongodb", "mongo_uri": mongo, "mongo_database": "argus_capacity_inproc"}
                             if mongo else {"store": "sqlite"})
    settings = load_settings(data_dir=work, cameras_file=regs, metrics_port=0, ort_threads=1, sinks=["kafka"],
                             gallery="memory", jpeg_quality=quality, **store)
    reg = CollectorRegistry()
    res = Resources(settings, registry=reg, bus=MemoryBus(partitions=1))
    enroll_demo_watchlist(res)
    inf = InferenceProcessor(res, StageMetrics("inference", registry=reg))
    mat = MatcherProcessor(res, StageMetrics("matcher", registry=reg))
    alr = AlerterProcessor(res, StageMetrics("alerter", registry=reg), sinks=[])
    enc_s = inf_s = mat_s = alr_s = 0.0
    frames = faces = embedded = n_match = 0
    frame_bytes: list[int] = []
    faces_bytes: list[int] = []
    offset = 0
    encoded: list[bytes] = []
    match_bytes: list[int] = []
    event_docs: list[int] = []
    crop_docs: list[int] = []
    alert_docs: list[int] = []
    cams = [f"sim-{k:04d}" for k in range(len(clips))]
    t_base = time.time() - 3600
    try:
        # two passes over the clips: the first warms the models and trackers up (first ORT calls of a shape, a
        # track's first frames) and is not counted, the second is the steady state the stage processes run in
        passes = [(r, k, r * 10_000 + i, img) for r in range(2) for k, imgs in enumerate(per_clip)
                  for i, img in enumerate(imgs)]
        warm = True
        for r, k, seq, img in passes:
            ts = t_base + seq
            if warm and r == 1:  # the counted pass starts: forget the warm-up's figures
                warm = False
                enc_s = inf_s = mat_s = alr_s = 0.0
                frames = faces = embedded = n_match = 0
                frame_bytes.clear()
                faces_bytes.clear()
                encoded.clear()
                for xs in (match_bytes, event_docs, crop_docs, alert_docs):
                    xs.clear()
            t0 = time.process_time()
            msg = FrameV2(camera_id=cams[k], seq=seq, ts_capture=ts, ts_ingest=ts, width=img.shape[1],
                          height=img.shape[0], jpeg=encode_jpeg(img, quality=quality))
            raw = encode(msg)
            t1 = time.process_time()
            enc_s += t1 - t0
            frames += 1
            frame_bytes.append(len(raw))
            encoded.append(raw)
            offset += 1
            item = Item(Record(topic=TOPIC_FRAMES, partition=0, offset=offset, key=msg.key(), value=raw,
                               timestamp_ms=0), msg)
            outs = [o.message for o in inf.process([item]) if isinstance(o, Output)]
            t2 = time.process_time()
            inf_s += t2 - t1
            fm = [m for m in outs if isinstance(m, FacesV3)]
            for f in fm:
                faces += len(f.faces)
                embedded += sum(1 for x in f.faces if x.embedded)
                faces_bytes.append(len(encode(f)))
            items = []
            for f in fm:
                offset += 1
                items.append(Item(Record(topic=TOPIC_FACES, partition=0, offset=offset, key=f.key(),
                                         value=encode(f), timestamp_ms=0), f))
            t3 = time.process_time()
            mouts = [o.message for o in mat.process(items) if isinstance(o, Output)] if items else []
            mat_s += time.process_time() - t3
            mm = [m for m in mouts if isinstance(m, MatchesV3)]
            if mm:
                n_match += len(mm)
                aitems = []
                for m in mm:
                    offset += 1
                    aitems.append(Item(Record(topic=TOPIC_MATCHES, partition=0, offset=offset, key=m.key(),
                                              value=encode(m), timestamp_ms=0), m))
                t4 = time.process_time()
                aouts = alr.process(aitems)
                alr_s += time.process_time() - t4
                for m in mm:
                    match_bytes.append(len(encode(m)))
                    for tm in m.matches:
                        ev = SightingEvent.from_match(m, tm)
                        event_docs.append(len(bson.encode(ev.to_doc())))
                        crop_docs.append(len(bson.encode({"_id": f"e:{ev.event_id}", "jpeg": bson.Binary(
                            tm.crop_jpeg), "expires_at": time.time()})))
                for o in aouts:
                    if isinstance(o, Output) and isinstance(o.message, AlertV3):
                        alert_docs.append(len(bson.encode(alert_doc(o.message))))
    finally:
        res.close()
    produce_ms = consume_ms = 0.0
    if kafka is not None:
        produce_ms, consume_ms = kafka_client_costs(kafka, encoded)
    costs = FrameCosts(read_ms=1000 * read_s / max(1, n_read), encode_ms=1000 * enc_s / max(1, frames),
                       produce_msg_ms=produce_ms, consume_msg_ms=consume_ms,
                       inference_ms=1000 * inf_s / max(1, frames), matcher_ms=1000 * mat_s / max(1, frames),
                       alerter_ms=1000 * alr_s / max(1, n_match))
    return Measured(costs=costs, frames=frames, faces=faces, embedded=embedded, matches_msgs=n_match,
                    frame_msg_bytes=statistics.fmean(frame_bytes) if frame_bytes else 0.0,
                    faces_msg_bytes=_mean(faces_bytes), match_msg_bytes=_mean(match_bytes),
                    event_doc_bytes=_mean(event_docs), crop_doc_bytes=_mean(crop_docs),
                    alert_doc_bytes=_mean(alert_docs), alerts=len(alert_docs))


def _mean(xs: Sequence[int]) -> float:
    return statistics.fmean(xs) if xs else 0.0


def kafka_client_costs(kafka: str, values: Sequence[bytes], *, at_least: int = 600) -> tuple[float, float]:
    """CPU ms per message of the Kafka client in this process: produce (flush every 16, as ingest does) and
    consume + commit (polls of up to 64), on a scratch topic of the same broker."""
    from argus.bus.kafka import KafkaBus

    topic = f"bench.capacity.{os.getpid()}.{int(time.time())}"
    bus = KafkaBus(bootstrap=kafka, partitions=6)
    try:
        bus.ensure_topics([topic])
        msgs = list(values) * max(1, math.ceil(at_least / max(1, len(values))))
        t0 = time.process_time()
        for i, v in enumerate(msgs):
            bus.publish(topic, key=f"sim-{i % 97:04d}".encode(), value=v)
            if i % 16 == 15:
                bus.flush()
        bus.flush()
        produce = time.process_time() - t0
        consumer = bus.consumer([topic], group=f"{topic}.g")
        try:
            got, deadline = 0, time.monotonic() + 60
            c0 = time.process_time()
            while got < len(msgs) and time.monotonic() < deadline:
                recs = consumer.poll(max_records=64, timeout_s=1.0)
                if recs:
                    consumer.commit(recs)
                    got += len(recs)
            consume = time.process_time() - c0
        finally:
            consumer.close()
        if got < len(msgs):
            raise BenchError(f"kafka client cost: expected {len(msgs)} messages back, got {got}")
        with contextlib.suppress(Exception):
            bus.delete(topics=[topic], groups=[f"{topic}.g"])
        return 1000 * produce / len(msgs), 1000 * consume / len(msgs)
    finally:
        bus.close()


# ============================================================================================== the load run

@dataclass
class StageSeries:
    samples: list[tuple[float, float, float]] = field(default_factory=list)  # (t, cpu_s, count)
    idle_cores: float = 0.0


def _counter(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (len(line) == len(name) or line[len(name)] in " {"):
            with contextlib.suppress(ValueError):
                total += float(line.rsplit(" ", 1)[1])
    return total


@contextlib.contextmanager
def _servers(ctx: Context) -> Iterator[tuple[str, str]]:
    from bench import servers

    with servers.serve(ctx, "kafka") as kafka, servers.serve(ctx, "mongo") as mongo:
        yield kafka.address, mongo.address


def load_run(ctx: Context, *, kafka: str, mongo: str, registry: Path, expected_frames: int, timeout_s: float,
             idle_s: float = 6.0, interval_s: float = 2.0) -> tuple[dict[str, StageSeries], dict[str, Any]]:
    """The cameras of ``registry`` through the four stage processes; CPU and counters per stage over time."""
    from argus.demo import enroll_demo_watchlist
    from argus.runtime.resources import Resources
    from argus_dev.cluster import LocalCluster, Servers

    cluster = LocalCluster(servers=Servers(kafka=kafka, triton="127.0.0.1:1", mongo_uri=mongo),
                           data_dir=ctx.work_dir / "cluster", cameras_file=registry, database="argus_capacity",
                           overrides={"backend": "onnxruntime", "ort_threads": 1, "log_level": "WARNING",
                                      "ingest_files_realtime": True})
    cluster.reset()
    with Resources(cluster.settings, registry=CollectorRegistry()) as res:
        enroll_demo_watchlist(res)
    series = {s: StageSeries() for s in STAGE_NAMES}
    info: dict[str, Any] = {}
    t0 = time.monotonic()

    def sample() -> None:
        kids = children_map()
        t = time.monotonic() - t0
        for s, p in cluster.procs.items():
            if p.pid is None:
                continue
            c = tree_cpu_s(p.pid, kids)
            try:
                n = _counter(p.metrics_text(), STAGE_COUNTERS[s])
            except Exception:  # a stage too busy to answer in time: skip this point
                continue
            if c is not None:
                series[s].samples.append((t, c, n))

    with cluster.running():
        deadline = time.monotonic() + timeout_s
        drained = False
        while time.monotonic() < deadline:
            sample()
            ing, inf = series["ingest"].samples, series["inference"].samples
            # drained: ingest published (nearly) every frame and stopped, inference consumed all of them, and no
            # consumer group has anything left
            if len(ing) >= 2 and inf and ing[-1][2] == ing[-2][2] >= 0.9 * expected_frames \
                    and inf[-1][2] >= ing[-1][2]:
                try:
                    if not any(cluster.pending().values()):
                        drained = True
                        break
                except Exception as e:
                    ctx.log(f"capacity: pending unavailable: {e}")
            if len(ing) % 10 == 0 and ing and inf:
                ctx.log(f"capacity: {time.monotonic() - t0:.0f}s: ingest {ing[-1][2]:.0f}, inference "
                        f"{inf[-1][2]:.0f} of {expected_frames}, load {load_avg()}")
            time.sleep(interval_s)
        info["drained"] = drained
        info["run_s"] = round(time.monotonic() - t0, 1)
        sample()
        # idle burn: CPU over a few seconds with no traffic; a stage whose counter still moved (the run timed out
        # before it drained) is not idle, and gets the smallest idle burn measured among the others
        kids = children_map()
        c0 = {s: tree_cpu_s(p.pid, kids) if p.pid else None for s, p in cluster.procs.items()}
        n0 = {s: series[s].samples[-1][2] if series[s].samples else 0.0 for s in STAGE_NAMES}
        time.sleep(idle_s)
        kids = children_map()
        busy: list[str] = []
        for s, p in cluster.procs.items():
            c1 = tree_cpu_s(p.pid, kids) if p.pid else None
            b = c0.get(s)
            try:
                moved = _counter(p.metrics_text(), STAGE_COUNTERS[s]) != n0[s]
            except Exception:
                moved = True
            if moved:
                busy.append(s)
            elif c1 is not None and b is not None:
                series[s].idle_cores = (c1 - b) / idle_s
        quiet = [series[s].idle_cores for s in STAGE_NAMES if s not in busy]
        for s in busy:
            series[s].idle_cores = min(quiet) if quiet else 0.0
        info["not_idle_at_end"] = busy
        info["errors"] = {s: _counter(p.metrics_text(), f"argus_{s}_errors_total") for s, p in cluster.procs.items()}
    return series, info


def run(ctx: Context) -> None:
    quick = ctx.quick
    width, height = (160, 120) if quick else (320, 240)
    cameras = 24 if quick else 240
    per_cam = 4 if quick else 5
    fps = 1.0
    load_start = load_avg()
    clips = make_clips(ctx.work_dir / "clips", width=width, height=height, frames=per_cam, fps=fps)
    registry = write_registry(ctx.work_dir, clips, cameras=cameras, fps=fps)
    with _servers(ctx) as (kafka, mongo):
        ctx.log(f"capacity: constants on {len(clips)} clips of {per_cam} frames at {width}x{height}")
        m = measure_constants(ctx.work_dir / "inproc", clips, kafka, mongo=mongo)
        ctx.log(f"capacity: constants {m.costs}")
        ctx.log(f"capacity: {cameras} cameras x {per_cam} frames through the four stage processes")
        series, info = load_run(ctx, kafka=kafka, mongo=mongo, registry=registry, expected_frames=cameras * per_cam,
                                timeout_s=150 if quick else 420, interval_s=1.0)
    load_end = load_avg()
    match_share = m.matches_msgs / max(1, m.frames)
    per_msg = stage_cpu_ms(m.costs, matches_per_frame=match_share)
    common = {"cameras": cameras, "resolution": f"{width}x{height}", "fps": fps, "frames_per_camera": per_cam,
              "pipeline": "real: LocalCluster stage processes, Kafka, MongoDB-wire server; ORT in-process, 1 thread",
              "load_avg_start": load_start, "load_avg_end": load_end, "drained": info["drained"],
              "run_s": info["run_s"], "not_idle_at_end": info.get("not_idle_at_end"),
              "faces_per_frame": round(m.faces / max(1, m.frames), 3),
              "embedded_per_frame": round(m.embedded / max(1, m.frames), 3),
              "frame_msg_bytes": round(m.frame_msg_bytes), "faces_msg_bytes": round(m.faces_msg_bytes),
              "match_msg_bytes": round(m.match_msg_bytes), "event_doc_bytes": round(m.event_doc_bytes),
              "crop_doc_bytes": round(m.crop_doc_bytes), "alert_doc_bytes": round(m.alert_doc_bytes),
              "matches_per_frame": round(match_share, 4), "alerts_in_process": m.alerts,
              "constants_ms": {k: round(v, 4) for k, v in
                                                                               vars(m.costs).items()}}
    total_pred = total_meas = 0.0
    for s in STAGE_NAMES:
        ss = series[s]
        w = steady_window(ss.samples)
        if w is None:
            ctx.emit(Result(AREA, f"cpu_per_message_{s}", None, "CPU ms/message", "formula prediction", None,
                            skipped=f"{s} counted no messages in the run ({len(ss.samples)} samples)",
                            params=common))
            continue
        a, b = ss.samples[w[0]], ss.samples[w[1]]
        msgs, secs, cpu = b[2] - a[2], b[0] - a[0], b[1] - a[1]
        pred = predict_window(per_msg_ms=per_msg[s], messages=msgs, seconds=secs, idle_cores=ss.idle_cores)
        total_pred += pred
        total_meas += cpu
        measured_ms = 1000 * cpu / msgs
        ctx.emit(Result(AREA, f"cpu_per_message_{s}", measured_ms, "CPU ms/message (measured, /proc)",
                        "formula prediction for the same window (CPU ms/message)", 1000 * pred / msgs,
                        params={**common, "window_messages": msgs, "window_s": round(secs, 1),
                                "window_cpu_s": round(cpu, 2), "predicted_cpu_s": round(pred, 2),
                                "per_message_ms_formula": round(per_msg[s], 3),
                                "idle_cores": round(ss.idle_cores, 4)},
                        note=f"error of the formula: {pred / cpu - 1:+.0%} (predicted / measured - 1)"
                        if cpu > 0 else "no CPU measured"))
    if total_meas > 0:
        ctx.emit(Result(AREA, "cpu_all_stages", total_meas, "CPU s (measured, /proc, steady windows)",
                        "formula prediction (CPU s)", total_pred, params=common,
                        note=f"error of the formula over the four stages: {total_pred / total_meas - 1:+.0%}"))
