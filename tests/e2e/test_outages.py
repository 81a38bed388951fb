"""Server outages on the real servers (issue 16, "Fault matrix"): the Kafka broker stopped for 30 s mid-stream, the
MongoDB-wire server down for 60 s, Triton restarted mid-batch — each while the four stages run as processes on the
demo clips, each followed by the same check: the alerts delivered are the alerts expected, a duplicate only ever
repeats an alert id (on the alerts topic, at-least-once), no stage crashed, no sighting was dead-lettered, and the
stages said "not ready" during the outage and "ready" after it.

Each test starts its own instance of the server it stops (own state dir, fixed ports so it comes back where the
clients look for it): the session's shared servers, which every other test uses, never see an outage. The figures
(expected vs delivered, duplicates, frames dropped by policy, time to recover) are printed as one ``OUTAGE {json}``
line per case and kept as the test's user properties; README "Failure behaviour" quotes them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import CAMERA_IDS, cameras_toml, topic_values, wait

from argus.demo import enroll_demo_watchlist
from argus.runtime.resources import Resources
from argus.schemas import TOPIC_ALERTS, TOPIC_DEADLETTER, AlertV3, DeadLetterV1, decode
from argus_dev import devservers
from argus_dev.cluster import LocalCluster, Servers
from argus_dev.devservers import Endpoint, free_port
from argus_dev.devservers.manager import SPECS

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

#: Both demo clips show the enrolled man: one alert per camera, whatever happened to the servers on the way.
EXPECTED = sorted((camera, "pyfeat-man") for camera in CAMERA_IDS)
KAFKA_OUTAGE_S = 30.0  # the numbers
MONGO_OUTAGE_S = 60.0
#: Frames each camera may queue in ingest while the broker is away (drop-oldest beyond that). The demo clips are
#: 6.4 s (32 frames at 5 fps): 64 holds what a camera reads during the outage, so nothing *needs* dropping and every
#: alert is expected; the default (16, 3.2 s) would drop a camera's oldest frames — the man's, on north-gate — by
#: policy, and the alert with them. Either way read = published + dropped, per camera, is asserted.
INGEST_QUEUE = 64


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Callable[[str], Endpoint]]:
    """Start a private instance of a server on fixed free ports; stopped whatever the test does."""
    started: list[tuple[str, Path]] = []

    def start(name: str) -> Endpoint:
        state = tmp_path / f"{name}-state"
        ports = {key: free_port() for key in SPECS[name].port_keys}
        started.append((name, state))
        return devservers.up([name], ports=ports, state_dir=state)[name]

    yield start
    for name, state in started:
        devservers.down([name], state_dir=state)


def _restart(ep: Endpoint) -> Endpoint:
    """The same server again, on the same ports and data (a broker's clients only know its old address)."""
    # generous: a JVM broker on a loaded 2-core CI machine took 84 s to come back (the default probe waits 90 s)
    return devservers.up([ep.name], ports=ep.ports, state_dir=Path(ep.state_dir), timeout_s=300)[ep.name]


def _cluster(servers: Servers, tmp: Path, database: str, **overrides: Any) -> LocalCluster:
    cluster = LocalCluster(servers=servers, data_dir=tmp / "data", database=database,
                           cameras_file=cameras_toml(tmp / "cameras.toml"),
                           overrides={"cooldown_s": 60, "ingest_files_realtime": True, **overrides})
    cluster.reset()
    with Resources(cluster.settings) as res:
        enroll_demo_watchlist(res)
    return cluster


def _per_camera(proc_metrics: str, name: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(proc_metrics):
        for s in fam.samples:
            if s.name == name:
                out[s.labels["camera"]] = out.get(s.labels["camera"], 0.0) + s.value
    return out


class Watch:
    """Samples every stage's /readyz while an outage lasts: which stages said "not ready", and when they all
    said "ready" again."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.not_ready: set[str] = set()

    def sample(self) -> dict[str, bool]:
        ready = {s: p.readyz() is not None for s, p in self.cluster.procs.items()}
        self.not_ready |= {s for s, ok in ready.items() if not ok}
        return ready

    def hold(self, seconds: float, since: float) -> None:
        while time.monotonic() - since < seconds:
            self.sample()
            time.sleep(0.5)

    def until_all_ready(self, timeout_s: float = 180.0) -> None:
        wait(lambda: all(self.sample().values()), "every stage to report ready again", timeout_s=timeout_s)


def _outcome(cluster: LocalCluster, database: str) -> dict[str, Any]:
    """What the alert sinks got: the stored alerts (MongoDB) and every alert record on the alerts topic."""
    from pymongo import MongoClient

    client: Any = MongoClient(cluster.servers.mongo_uri, serverSelectionTimeoutMS=5000)
    try:
        stored = list(client[database].alerts.find({}, {"camera_id": 1, "person_id": 1}))
    finally:
        client.close()
    on_topic = [decode(v, AlertV3).alert_id for v in topic_values(cluster.servers.kafka, TOPIC_ALERTS)]
    # why, when there are any: the stage and the error, which is what one needs to fix it
    why = sorted({f"{d.stage}: {d.error_kind}: {d.error[:160]}" for d in
                  (decode(v, DeadLetterV1) for v in topic_values(cluster.servers.kafka, TOPIC_DEADLETTER))})
    return {"delivered": sorted((a["camera_id"], a["person_id"]) for a in stored),
            "stored_ids": sorted(a["_id"] for a in stored), "topic_ids": on_topic,
            "dead_letters": sum(cluster.end_offsets(TOPIC_DEADLETTER)), "dead_letter_reasons": why,
            "starts": {s: p.starts for s, p in cluster.procs.items()}}


def _check_and_record(case: str, out: Mapping[str, Any], figures: dict[str, Any],
                      record: Callable[[str, object], None]) -> None:
    duplicates = len(out["topic_ids"]) - len(set(out["topic_ids"]))
    figures = {"case": case, "alerts_expected": len(EXPECTED), "alerts_delivered": len(out["delivered"]),
               "duplicates_on_topic": duplicates, "dead_letters": out["dead_letters"], **figures}
    print("OUTAGE " + json.dumps(figures, sort_keys=True))
    for k, v in figures.items():
        record(k, v)
    assert out["starts"] == {s: 1 for s in out["starts"]}, f"a stage crashed instead of holding: {out['starts']}"
    assert out["delivered"] == EXPECTED, "alerts lost or doubled by the outage"
    assert len(out["stored_ids"]) == len(set(out["stored_ids"]))
    assert sorted(set(out["topic_ids"])) == out["stored_ids"], "a duplicate on the topic with a new alert id"
    assert out["dead_letters"] == 0, f"an outage moved sightings to the dead-letter topic: {out['dead_letter_reasons']}"
    assert all(v == 0 for v in out["pending"].values()), f"input left uncommitted: {out['pending']}"


def test_the_kafka_broker_stopped_30s_mid_stream_loses_no_alert_and_ingest_drops_oldest_by_policy(
        own_server: Callable[[str], Endpoint], triton_server: Endpoint, mongo_server: Endpoint, tmp_path: Path,
        record_property: Callable[[str, object], None]) -> None:
    kafka = own_server("kafka")
    servers = Servers(kafka=kafka.address, triton=triton_server.address, mongo_uri=mongo_server.address)
    cluster = _cluster(servers, tmp_path, "argus_outage_kafka", ingest_queue=INGEST_QUEUE)
    with cluster.running():
        ingest, watch = cluster.procs["ingest"], Watch(cluster)
        wait(lambda: ingest.metric("argus_ingest_frames_published_total") >= 4, "ingest to be mid-stream", 60)
        down_at = time.monotonic()
        devservers.down(["kafka"], state_dir=Path(kafka.state_dir))
        wait(lambda: not watch.sample()["ingest"], "ingest to report not ready", timeout_s=60)
        watch.hold(KAFKA_OUTAGE_S, since=down_at)
        held = ingest.metrics_text()
        _restart(kafka)
        up_at = time.monotonic()
        unavailable_s = up_at - down_at
        watch.until_all_ready()
        ready_s = time.monotonic() - up_at
        cluster.wait_drained(timeout_s=300)
        drained_s = time.monotonic() - up_at
        text = ingest.metrics_text()
        out = {**_outcome(cluster, "argus_outage_kafka"), "pending": cluster.pending()}
    read, published, dropped = (_per_camera(text, f"argus_ingest_frames_{k}_total")
                                for k in ("read", "published", "dropped"))
    assert set(read) == set(CAMERA_IDS)
    for cam in CAMERA_IDS:  # every frame read is either published or dropped by the policy and counted
        assert read[cam] == published[cam] + dropped[cam], (cam, read, published, dropped)
    assert set(_per_camera(held, "argus_ingest_frames_read_total")) == set(CAMERA_IDS)  # metrics served meanwhile
    assert "ingest" in watch.not_ready
    _check_and_record("kafka broker stopped 30 s", out, {
        "stopped_s": KAFKA_OUTAGE_S, "unavailable_s": round(unavailable_s, 1), "not_ready": sorted(watch.not_ready),
        "all_ready_after_restart_s": round(ready_s, 1),
        "drained_after_restart_s": round(drained_s, 1), "frames_read": read, "frames_published": published,
        "frames_dropped": dropped, "ingest_queue": INGEST_QUEUE}, record_property)


def test_the_mongodb_server_down_60s_holds_the_alerter_and_loses_no_alert(
        own_server: Callable[[str], Endpoint], kafka_server: Endpoint, triton_server: Endpoint, tmp_path: Path,
        record_property: Callable[[str, object], None]) -> None:
    mongo = own_server("mongo")
    servers = Servers(kafka=kafka_server.address, triton=triton_server.address, mongo_uri=mongo.address)
    cluster = _cluster(servers, tmp_path, "argus_outage_mongo")
    with cluster.running():
        watch = Watch(cluster)
        down_at = time.monotonic()
        devservers.down(["mongo"], state_dir=Path(mongo.state_dir))  # while the clips are playing
        wait(lambda: not watch.sample()["alerter"], "the alerter to report not ready", timeout_s=MONGO_OUTAGE_S)
        held = cluster.pending()["alerter"]
        watch.hold(MONGO_OUTAGE_S, since=down_at)
        assert cluster.pending()["alerter"] >= held > 0, "the alerter committed what it could not store"
        assert sum(cluster.end_offsets(TOPIC_DEADLETTER)) == 0
        _restart(mongo)
        up_at = time.monotonic()
        unavailable_s = up_at - down_at
        watch.until_all_ready()
        ready_s = time.monotonic() - up_at
        cluster.wait_drained(timeout_s=300)
        drained_s = time.monotonic() - up_at
        out = {**_outcome(cluster, "argus_outage_mongo"), "pending": cluster.pending()}
    assert "alerter" in watch.not_ready
    _check_and_record("mongodb down 60 s", out, {
        "stopped_s": MONGO_OUTAGE_S, "unavailable_s": round(unavailable_s, 1), "not_ready": sorted(watch.not_ready),
        "held_matches": held,
        "all_ready_after_restart_s": round(ready_s, 1), "drained_after_restart_s": round(drained_s, 1)},
        record_property)


def test_triton_restarted_mid_batch_holds_inference_and_loses_no_alert(
        own_server: Callable[[str], Endpoint], kafka_server: Endpoint, mongo_server: Endpoint, tmp_path: Path,
        record_property: Callable[[str, object], None]) -> None:
    triton = own_server("triton")
    servers = Servers(kafka=kafka_server.address, triton=triton.address, mongo_uri=mongo_server.address)
    cluster = _cluster(servers, tmp_path, "argus_outage_triton")
    with cluster.running():
        inference, watch = cluster.procs["inference"], Watch(cluster)
        wait(lambda: inference.metric("argus_inference_messages_out_total") > 0
             and cluster.pending()["inference"] > 0, "inference to be mid-stream", 120)
        down_at = time.monotonic()
        devservers.down(["triton"], state_dir=Path(triton.state_dir))
        wait(lambda: not watch.sample()["inference"], "inference to report not ready", timeout_s=60)
        held = cluster.pending()["inference"]
        _restart(triton)
        up_at = time.monotonic()
        down_s = up_at - down_at  # stopped, then restarted at once: the gap is Triton's own stop + start
        watch.until_all_ready()
        ready_s = time.monotonic() - up_at
        cluster.wait_drained(timeout_s=300)
        drained_s = time.monotonic() - up_at
        out = {**_outcome(cluster, "argus_outage_triton"), "pending": cluster.pending()}
    assert held > 0, "the restart did not catch inference mid-stream"
    assert "inference" in watch.not_ready
    _check_and_record("triton restarted mid-batch", out, {
        "unavailable_s": round(down_s, 1), "not_ready": sorted(watch.not_ready), "held_frames": held,
        "all_ready_after_restart_s": round(ready_s, 1), "drained_after_restart_s": round(drained_s, 1)},
        record_property)
