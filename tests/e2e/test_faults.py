"""Faults on the real servers: the MongoDB-wire server goes away mid-stream and comes back.

What must hold (issue "Faults"): an outage is not bad input. While the event store is down the alerter holds its
batch — nothing committed, nothing dead-lettered, /readyz failing — and when the store returns it resumes where
it stopped: the same people are alerted on the same cameras as in an undisturbed run, nothing lost, nothing
doubled, no dead letter.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import cameras_toml, wait

from argus.demo import enroll_demo_watchlist
from argus.runtime.resources import Resources
from argus.schemas import TOPIC_DEADLETTER
from argus_dev import devservers
from argus_dev.cluster import LocalCluster, Servers
from argus_dev.devservers import Endpoint

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

OUTAGE_S = 20.0  # several store timeouts long; the 60 s would add a minute of CI for the same behaviour


def test_the_event_store_down_mid_stream_holds_the_alerter_and_loses_nothing(
        kafka_server: Endpoint, triton_server: Endpoint, tmp_path: Path) -> None:
    from pymongo import MongoClient

    state = tmp_path / "mongo-state"
    mongo = devservers.up(["mongo"], ports={"mongo": 0}, state_dir=state)["mongo"]
    port = mongo.ports["mongo"]
    try:
        servers = Servers(kafka=kafka_server.address, triton=triton_server.address, mongo_uri=mongo.address)
        cluster = LocalCluster(servers=servers, data_dir=tmp_path / "data", database="argus_faults",
                               cameras_file=cameras_toml(tmp_path / "cameras.toml"),
                               overrides={"cooldown_s": 60, "ingest_files_realtime": True})
        cluster.reset()
        with Resources(cluster.settings) as res:
            enroll_demo_watchlist(res)
        with cluster.running():
            devservers.down(["mongo"], state_dir=state)  # the store goes away while the clips are playing
            down_at = time.monotonic()
            alerter = cluster.procs["alerter"]
            wait(lambda: alerter.readyz() is None, "the alerter to report not ready", timeout_s=60)
            held = cluster.pending()["alerter"]
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
            assert sum(cluster.end_offsets(TOPIC_DEADLETTER)) == 0, "an outage moved sightings to dead letters"
            assert cluster.pending()["alerter"] >= held > 0, "the alerter committed what it could not store"
            devservers.up(["mongo"], ports={"mongo": port}, state_dir=state)
            wait(lambda: alerter.readyz() is not None, "the alerter to resume", timeout_s=120)
            cluster.wait_drained(timeout_s=300)
            restarts = {s: p.starts for s, p in cluster.procs.items()}
        client: Any = MongoClient(mongo.address, serverSelectionTimeoutMS=5000)
        try:
            db = client["argus_faults"]
            alerted = sorted((a["camera_id"], a["person_id"]) for a in db.alerts.find({}))
        finally:
            client.close()
    finally:
        devservers.down(["mongo"], state_dir=state)
    assert restarts == {s: 1 for s in restarts}, "a stage crashed during the outage instead of holding"
    assert alerted == [("market-square", "pyfeat-man"), ("north-gate", "pyfeat-man")]
    assert sum(cluster.end_offsets(TOPIC_DEADLETTER)) == 0
