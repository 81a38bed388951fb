"""Replicas that rebalance, over real Apache Kafka, Triton and a MongoDB-wire server: 1 ingest, 3 inference,
2 matcher and 2 alerter processes on the demo's two clips, with the busiest inference member SIGKILLed mid-stream
and a third matcher added mid-stream, must end with the same alerts (and the same decided person per camera) as an
uninterrupted single-replica run of the same input — none lost, none doubled — and every process must exit by
itself (``--exit-when-drained``) once the work is done.

Figures (events, alerts, duplicates on the topics, time to rebalance) are printed as one JSON line
(``pytest -s``) and recorded as the test's ``figures`` property."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import CAMERA_IDS, cameras_toml, topic_values, wait

from argus.demo import enroll_demo_watchlist
from argus.runtime.drain import DrainCheck
from argus.runtime.resources import Resources
from argus.schemas import TOPIC_ALERTS, TOPIC_FACES, TOPIC_FRAMES, TOPIC_MATCHES, AlertV3, decode
from argus_dev.cluster import INPUT_TOPICS, LocalCluster, Servers
from argus_dev.devservers import Endpoint

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REPLICAS = {"ingest": 1, "inference": 3, "matcher": 2, "alerter": 2}
PARTITIONS = 6


@pytest.fixture(scope="module")
def servers(kafka_server: Endpoint, triton_server: Endpoint, mongo_server: Endpoint) -> Servers:
    return Servers(kafka=kafka_server.address, triton=triton_server.address, mongo_uri=mongo_server.address)


def _cluster(servers: Servers, tmp: Path, database: str, replicas: dict[str, int] | None = None) -> LocalCluster:
    cluster = LocalCluster(servers=servers, data_dir=tmp / "data", cameras_file=cameras_toml(tmp / "cameras.toml"),
                           database=database, replicas=replicas, exit_when_drained=True,
                           overrides={"cooldown_s": 60, "kafka_partitions": PARTITIONS})
    cluster.reset()
    res = Resources(cluster.settings)
    try:
        enroll_demo_watchlist(res)
    finally:
        res.close()
    return cluster


def _ids_on(cluster: LocalCluster, topic: str) -> list[bytes]:
    return topic_values(cluster.servers.kafka, topic)


def _outcome(cluster: LocalCluster, database: str) -> dict[str, Any]:
    from pymongo import MongoClient

    client: Any = MongoClient(cluster.servers.mongo_uri, serverSelectionTimeoutMS=5000)
    try:
        db = client[database]
        events = list(db.events.find({}, {"camera_id": 1, "person_id": 1, "track_id": 1}))
        alerts = list(db.alerts.find({}, {"camera_id": 1, "person_id": 1}))
    finally:
        client.close()
    alert_msgs = [decode(v, AlertV3).alert_id for v in _ids_on(cluster, TOPIC_ALERTS)]
    return {
        "event_ids": sorted(e["_id"] for e in events),
        "alert_ids": sorted(a["_id"] for a in alerts),
        "alerted": sorted((a["camera_id"], a["person_id"]) for a in alerts),
        "decided": sorted({(e["camera_id"], e["person_id"]) for e in events}),
        "messages": {t: sum(cluster.end_offsets(t)) for t in (TOPIC_FRAMES, TOPIC_FACES, TOPIC_MATCHES)},
        "alert_messages": len(alert_msgs),
        "alert_repeats": sum(n - 1 for n in Counter(alert_msgs).values()),
        "pending": cluster.pending(),
        "control": {k: v.state for k, v in _control(cluster).items()},
    }


def _control(cluster: LocalCluster) -> dict[str, Any]:
    from argus.bus.kafka import KafkaBus

    bus = KafkaBus(bootstrap=cluster.servers.kafka)
    try:
        return dict(DrainCheck(bus, []).states())
    finally:
        bus.close()


def _ingest_finished(cluster: LocalCluster) -> bool:
    st = _control(cluster).get("ingest/shard-0")
    return st is not None and st.state == "finished"


def _wait_group(cluster: LocalCluster, stage: str, members: int, timeout_s: float = 60.0,
                unless: Any = None) -> float | None:
    """Seconds until the stage's group is ``members`` strong with every input partition owned again; None if
    ``unless()`` came true first (the work ended before the group got there)."""
    t0 = time.monotonic()
    last: dict[str, list[int]] = {}
    gave_up = False

    def settled() -> bool:
        nonlocal last, gave_up
        last = cluster.group_members(stage)
        owned = sorted(p for ps in last.values() for p in ps)
        gave_up = unless is not None and unless()
        return gave_up or (len(last) == members and owned == list(range(PARTITIONS)))

    wait(settled, f"{stage}'s group to be {members} members owning all {PARTITIONS} partitions (last: {last})",
         timeout_s=timeout_s)
    return None if gave_up else round(time.monotonic() - t0, 1)


@pytest.fixture(scope="module")
def baseline(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One uninterrupted single-replica run; every stage exits by itself once drained."""
    database = "argus_e2e_replicas_baseline"
    cluster = _cluster(servers, tmp_path_factory.mktemp("baseline"), database)
    t0 = time.monotonic()
    try:
        cluster.start()
        exited_s = cluster.wait_exited(timeout_s=240)
    finally:
        codes = cluster.stop()
    return {**_outcome(cluster, database), "seconds": round(time.monotonic() - t0, 1),
            "exited_after_s": round(exited_s, 1), "exit_codes": codes}


@pytest.fixture(scope="module")
def replicated(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    database = "argus_e2e_replicas"
    cluster = _cluster(servers, tmp_path_factory.mktemp("replicas"), database, replicas=REPLICAS)
    figures: dict[str, Any] = {}
    t0 = time.monotonic()
    try:
        cluster.start()
        # a member joins while the frames flow (the matcher group grows from 2 to 3): started now, because a
        # process takes seconds to start on a loaded machine and the stream is short
        t_add = time.monotonic()
        cluster.add_member("matcher", wait=False)
        # mid-stream: faces flowing, and more frames to come (ingest still reading) or many still uncommitted
        wait(lambda: sum(cluster.end_offsets(TOPIC_FACES)) > 0
             and (not _ingest_finished(cluster) or cluster.pending()["inference"] > 10), "inference to be mid-stream")
        # the inference member doing the most work is SIGKILLed: its partitions stall for the broker's session
        # timeout, then move to the survivors
        figures["at_kill"] = {"frames_uncommitted": cluster.pending()["inference"],
                              "faces_so_far": sum(cluster.end_offsets(TOPIC_FACES))}
        busy = max(range(REPLICAS["inference"]),
                   key=lambda i: cluster.members["inference"][i].metric("argus_inference_messages_in_total"))
        t_kill = time.monotonic()
        cluster.kill("inference", busy)
        figures["killed"] = {"stage": "inference", "member": busy}
        _wait_group(cluster, "inference", REPLICAS["inference"] - 1)
        figures["rebalance_after_kill_s"] = round(time.monotonic() - t_kill, 1)
        joined = _wait_group(cluster, "matcher", REPLICAS["matcher"] + 1, timeout_s=120,
                             unless=lambda: not cluster.members["matcher"][-1].alive)
        figures["join_s"] = round(time.monotonic() - t_add, 1) if joined is not None else None  # start + join
        figures["at_join"] = {"frames_uncommitted": cluster.pending()["inference"],
                              "faces_so_far": sum(cluster.end_offsets(TOPIC_FACES)),
                              "ingest_finished": _ingest_finished(cluster)}
        figures["exited_after_s"] = round(cluster.wait_exited(timeout_s=240), 1)
    finally:
        codes = cluster.stop()
    out = _outcome(cluster, database)
    yield {**out, "figures": figures, "seconds": round(time.monotonic() - t0, 1), "exit_codes": codes,
           "cluster": cluster}


def test_every_replica_exits_by_itself_once_drained_with_nothing_left_uncommitted(baseline, replicated):
    for run in (baseline, replicated):
        assert all(n == 0 for n in run["pending"].values()), run["pending"]
        m = replicated["figures"]["killed"]["member"]
        killed = {f"inference-{m}" if m else "inference"} if run is replicated else set()
        assert {k: c for k, c in run["exit_codes"].items() if k not in killed} == \
            {k: 0 for k in run["exit_codes"] if k not in killed}
    states = replicated["control"]
    assert states["ingest/shard-0"] == "finished"
    assert Counter(k.split("/")[0] for k, v in states.items() if v == "finished") == Counter(
        {"ingest": 1, "inference": REPLICAS["inference"] - 1, "matcher": REPLICAS["matcher"] + 1,
         "alerter": REPLICAS["alerter"]})  # the killed member never said finished; nobody waited for it


def test_replicas_with_a_kill_and_a_join_alert_exactly_as_one_uninterrupted_replica(baseline, replicated,
                                                                                     record_property):
    figures = {
        **replicated["figures"],
        "events": {"baseline": len(baseline["event_ids"]), "replicas": len(replicated["event_ids"]),
                   "same_ids": baseline["event_ids"] == replicated["event_ids"]},
        "alerts": {"baseline": len(baseline["alert_ids"]), "replicas": len(replicated["alert_ids"]),
                   "same_ids": baseline["alert_ids"] == replicated["alert_ids"]},
        "duplicates": {  # extra messages on the topics: redelivered batches, harmless for idempotent writes
            t: replicated["messages"][t] - baseline["messages"][t] for t in baseline["messages"]
        } | {"alerts_topic_repeats": replicated["alert_repeats"]},
        "seconds": {"baseline": baseline["seconds"], "replicas": replicated["seconds"]},
    }
    print("\nreplica figures:", json.dumps(figures, sort_keys=True))
    record_property("figures", json.dumps(figures, sort_keys=True))
    assert sorted(c for c, _ in baseline["alerted"]) == sorted(CAMERA_IDS)  # the baseline itself is right
    assert replicated["alerted"] == baseline["alerted"], "alerts lost or doubled by the kill and the rebalance"
    assert replicated["decided"] == baseline["decided"], "a camera's decision lost or invented"
    assert replicated["messages"][TOPIC_FRAMES] == baseline["messages"][TOPIC_FRAMES]  # one ingest, same frames
    for s in INPUT_TOPICS:
        assert replicated["pending"][s] == 0
    assert figures["join_s"] is not None, "the added matcher never joined a 3-member group: no rebalance tested"
