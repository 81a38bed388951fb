"""Bus: real frame messages through the real Kafka broker, against the in-memory bus.

Messages are ``argus.frames.v2`` (``FrameV2``, MessagePack) carrying real 1080p JPEGs (clip frames upscaled, ingest
quality 85, ~100 KB), keyed by six camera ids like ingest keys them. The broker is Apache Kafka from
``argus_dev.devservers`` (KRaft, one node, free ports, its own state dir, stopped afterwards); the client is the
project's ``KafkaBus`` (acks=all, idempotent producer, linger 5 ms) and ``KafkaBusConsumer``.

- produce: ``publish`` every message, ``flush`` every 16 like the ingest stage; messages/s until the last flush
  returned (every message acknowledged by the broker).
- consume: a fresh consumer group polls batches of 64 and commits each batch, like a stage; the clock starts at
  the first record (the group join is reported separately, not counted).

Baseline: the same procedure on ``MemoryBus`` (an in-process list append and slice): the ratio says what a real
broker, the network stack and the wire cost relative to not having them. Wire encoding is done beforehand and
not timed in either case.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from argus.bus.base import Bus
from argus.bus.memory import MemoryBus
from argus.schemas import FrameV2, encode
from bench.common import BenchError, Context, Result, clip_frames, encode_all, upscale
from bench.servers import serve

AREA = "bus"
TOPIC = "bench.frames.v1"
CAMERAS = 6
FLUSH_EVERY = 16
POLL_MAX = 64


def frame_messages(n: int) -> list[tuple[bytes, bytes]]:
    frames = upscale(clip_frames(8), "1080p")
    jpegs = encode_all(frames, 85)
    now = time.time()
    out = []
    for i in range(n):
        cam = f"cam-{i % CAMERAS}"
        msg = FrameV2(camera_id=cam, seq=i // CAMERAS, ts_capture=now, ts_ingest=now, width=1920, height=1080,
                      jpeg=jpegs[i % len(jpegs)])
        out.append((msg.key(), encode(msg)))
    return out


def produce(bus: Bus, msgs: list[tuple[bytes, bytes]], topic: str = TOPIC) -> float:
    t0 = time.perf_counter()
    for i, (key, value) in enumerate(msgs, 1):
        bus.publish(topic, key=key, value=value)
        if i % FLUSH_EVERY == 0:
            bus.flush()
    bus.flush()
    return len(msgs) / (time.perf_counter() - t0)


def consume(bus: Bus, n: int, *, group: str, topic: str = TOPIC, join_timeout_s: float = 60.0) -> tuple[float, float]:
    """(messages/s after the first record, seconds until the first record: the group join, not counted)."""
    c = bus.consumer([topic], group=group)
    try:
        t_join = time.perf_counter()
        first: list[Any] = []
        while not first:
            first = c.poll(max_records=1, timeout_s=1.0)
            if time.perf_counter() - t_join > join_timeout_s:
                raise BenchError(f"consumer group {group!r} got no record within {join_timeout_s:.0f}s")
        join_s = time.perf_counter() - t_join
        c.commit(first)
        got = len(first)
        t0 = time.perf_counter()
        while got < n:
            batch = c.poll(max_records=POLL_MAX, timeout_s=5.0)
            if not batch:
                raise BenchError(f"consumer group {group!r} stalled at {got}/{n} records")
            c.commit(batch)
            got += len(batch)
        dt = time.perf_counter() - t0
        return (got - len(first)) / dt if dt > 0 else float("nan"), join_s
    finally:
        c.close()


def run(ctx: Context) -> None:
    n = 120 if ctx.quick else 1500
    msgs = frame_messages(n)
    kb = float(np.mean([len(v) for _, v in msgs]) / 1024)
    mem = MemoryBus(partitions=CAMERAS)
    mem.ensure_topics([TOPIC])
    mem_p = produce(mem, msgs)
    mem_c, _ = consume(mem, n, group="bench-mem")
    mem.close()
    with serve(ctx, "kafka") as ep:
        k_p, k_c, join_s = _kafka(ep.address, msgs, "c")
        n_py = min(n, 30 if ctx.quick else 150)
        py_p, py_c, _ = _kafka(ep.address, msgs[:n_py], "python")
    params = {"messages": n, "mean_message_kb": round(kb, 1), "frame": "1080p JPEG q85 in FrameV2",
              "partitions": CAMERAS, "flush_every": FLUSH_EVERY, "producer": "acks=all, idempotent, linger 5 ms",
              "broker": "Apache Kafka, KRaft, 1 node, same host", "crc32c": "C (crc32c package)"}
    ctx.emit(Result(AREA, "kafka_produce_frames", k_p, "messages/s", "MemoryBus, same messages (messages/s)", mem_p,
                    params={**params, "mb_per_s": round(k_p * kb / 1024, 1)},
                    note=f"{k_p * kb / 1024:.0f} MB/s; = {k_p / 5:.0f} cameras at 5 fps for one producer"))
    ctx.emit(Result(AREA, "kafka_consume_frames", k_c, "messages/s", "MemoryBus, same messages (messages/s)", mem_c,
                    params={**params, "mb_per_s": round(k_c * kb / 1024, 1), "poll_max": POLL_MAX,
                            "group_join_s": round(join_s, 2)},
                    note=f"{k_c * kb / 1024:.0f} MB/s, commit per poll; group join {join_s:.1f}s not counted"))
    py = {**params, "messages": n_py, "crc32c": "pure Python (kafka-python fallback)"}
    ctx.emit(Result(AREA, "kafka_produce_frames_pure_python_crc", py_p, "messages/s",
                    "the same on Kafka with the C crc32c (messages/s)", k_p, params=py,
                    note="what a Kafka stage gets if the crc32c package is missing: kafka-python checksums every "
                         "record batch in pure Python (crc32c is now in the kafka extra)"))
    ctx.emit(Result(AREA, "kafka_consume_frames_pure_python_crc", py_c, "messages/s",
                    "the same on Kafka with the C crc32c (messages/s)", k_c, params=py,
                    note="consumers verify CRCs too (check_crcs=True)"))


def _kafka(address: str, msgs: list[tuple[bytes, bytes]], crc: str) -> tuple[float, float, float]:
    """Produce then consume ``msgs`` on a fresh topic; ``crc``: "c" (the crc32c package) or "python" (forced)."""
    from kafka.record import util

    from argus.bus.kafka import KafkaBus

    saved = util.calc_crc32c.__defaults__
    if crc == "python":
        util.calc_crc32c.__defaults__ = (util.crc32c_py,)
    elif util.crc32c_c is None:
        raise BenchError("the crc32c package is not installed: kafka-python would checksum in pure Python "
                         "(pip install 'argus-watch[kafka]')")
    topic = f"{TOPIC}.{crc}"
    warm = min(20, len(msgs))
    kafka = KafkaBus(bootstrap=address, partitions=CAMERAS, client_id="argus-bench")
    try:
        kafka.ensure_topics([topic])
        produce(kafka, msgs[:warm], topic)  # warm-up: metadata, connections, the first segment
        p = produce(kafka, msgs, topic)
        c, join_s = consume(kafka, len(msgs) + warm, group=f"bench-{crc}", topic=topic)
    finally:
        kafka.close()
        util.calc_crc32c.__defaults__ = saved
    return p, c, join_s
