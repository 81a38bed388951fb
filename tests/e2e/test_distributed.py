"""The four services as separate OS processes over real Apache Kafka, Triton and a MongoDB-wire server, watched
by a real Prometheus: two cameras (video files) showing an enrolled man must give one alert per camera with the
camera's location, the sightings in ``events``, and every stage's series in Prometheus. Then the same run with
stages killed (SIGKILL) mid-stream and restarted must end with exactly the same events and alerts: none lost,
none doubled."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import CAMERA_IDS, DEMO_CAMERAS, cameras_toml, topic_values, wait

from argus.demo import enroll_demo_watchlist
from argus.faces.embedder import DEFAULT_MATCH_THRESHOLD
from argus.runtime.resources import Resources
from argus.schemas import TOPIC_ALERTS, TOPIC_FACES, AlertV3, decode
from argus_dev.cluster import INPUT_TOPICS, LocalCluster, Servers
from argus_dev.devservers import Endpoint
from argus_dev.devservers.prometheus import query

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "argus-dashboard.json"


@pytest.fixture(scope="module")
def servers(kafka_server: Endpoint, triton_server: Endpoint, mongo_server: Endpoint,
            prometheus_server: Endpoint) -> Servers:
    return Servers(kafka=kafka_server.address, triton=triton_server.address, mongo_uri=mongo_server.address,
                   triton_metrics=f"127.0.0.1:{triton_server.ports['triton_metrics']}",
                   prometheus=prometheus_server.address, prometheus_state_dir=Path(prometheus_server.state_dir))


def _mongo(servers: Servers, database: str) -> Any:
    from pymongo import MongoClient

    client: Any = MongoClient(servers.mongo_uri, serverSelectionTimeoutMS=5000)
    return client, client[database]


def _fresh_cluster(servers: Servers, tmp: Path, database: str) -> LocalCluster:
    cluster = LocalCluster(servers=servers, data_dir=tmp / "data", cameras_file=cameras_toml(tmp / "cameras.toml"),
                           database=database, overrides={"cooldown_s": 60})
    cluster.reset()
    res = Resources(cluster.settings)
    try:
        enroll_demo_watchlist(res)
    finally:
        res.close()
    return cluster


def _prom(expr: str, base_url: str, *, timeout_s: float = 20.0) -> list[dict[str, Any]]:
    """Instant query, retried until it returns data (Prometheus scrapes every second)."""
    deadline = time.monotonic() + timeout_s
    result: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        result = query(expr, base_url=base_url)
        if result:
            return result
        time.sleep(1.0)
    return result


def _history(db: Any) -> tuple[list[str], list[str]]:
    return ([d["_id"] for d in db.events.find({}, {"_id": 1})], [d["_id"] for d in db.alerts.find({}, {"_id": 1})])


def _who_where(db: Any, collection: str) -> list[tuple[str, str]]:
    return sorted((d["camera_id"], d["person_id"]) for d in db[collection].find({}, {"camera_id": 1, "person_id": 1}))


def _alerts_on_topic(cluster: LocalCluster) -> list[str]:
    return [decode(v, AlertV3).alert_id for v in topic_values(cluster.servers.kafka, TOPIC_ALERTS)]


@pytest.fixture(scope="module")
def clean_run(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One uninterrupted run; Prometheus is queried while the stages still run."""
    cluster = _fresh_cluster(servers, tmp_path_factory.mktemp("clean"), "argus_e2e_clean")
    client, db = _mongo(servers, "argus_e2e_clean")
    prom: dict[str, list[dict[str, Any]]] = {}
    dashboard: dict[str, list[dict[str, Any]]] = {}
    assert servers.prometheus is not None
    try:
        with cluster.running():
            cluster.wait_drained(timeout_s=600)
            for stage in ("ingest", "inference", "matcher", "alerter"):
                prom[f"{stage}_up"] = _prom(f'argus_{stage}_up{{job="argus-{stage}"}} == 1', servers.prometheus)
                prom[f"{stage}_out"] = _prom(f"argus_{stage}_messages_out_total", servers.prometheus)
            prom["triton"] = _prom('nv_inference_count{model="face_embedder"} > 0', servers.prometheus)
            prom["frames_by_camera"] = _prom("sum by (camera) (argus_ingest_frames_published_total)",
                                             servers.prometheus)
            if DASHBOARD.is_file():
                time.sleep(5)  # rate()/increase() over a window need a few scrapes after the last change
                for expr in _dashboard_exprs():
                    dashboard[expr] = _prom(expr, servers.prometheus, timeout_s=10)
            frames_total = sum(cluster.end_offsets("argus.frames.v2"))
        events, alerts = _history(db)
        yield {"cluster": cluster, "db": db, "prom": prom, "dashboard": dashboard, "events": events,
               "alerts": alerts, "frames": frames_total, "alerts_topic": _alerts_on_topic(cluster),
               "alerted": _who_where(db, "alerts"), "decided": sorted(set(_who_where(db, "events")))}
    finally:
        client.close()


def _dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs: list[str] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for p in panels:
            exprs.extend(t["expr"] for t in p.get("targets", []) if t.get("expr"))
            walk(p.get("panels", []))

    walk(dash.get("panels", []))
    return exprs


def test_each_enrolled_sighting_camera_gets_one_alert_with_its_location_in_mongodb(clean_run):
    db = clean_run["db"]
    alerts = list(db.alerts.find({}))
    assert sorted(a["camera_id"] for a in alerts) == sorted(CAMERA_IDS)
    where = {c["id"]: c["location"] for c in DEMO_CAMERAS}
    for a in alerts:
        assert a["person_id"] == "pyfeat-man"
        assert a["location"] == {k: where[a["camera_id"]][k] for k in ("lat", "lon", "address", "zone")}
        assert a["score"] >= a["threshold"] == pytest.approx(DEFAULT_MATCH_THRESHOLD)
        assert [c["person_id"] for c in a["candidates"]][:1] == ["pyfeat-man"]
        assert len(a["candidates"]) >= 2 and a["margin"] > 0  # runner-up evidence for the reviewer
        crop = db.crops.find_one({"_id": f"a:{a['_id']}"})  # crops live in their own (shorter-lived) collection
        assert crop is not None and crop["crop"][:2] == b"\xff\xd8"  # the face crop travels with the alert
        assert a["status"] == "new"


def test_every_track_decision_is_an_event_and_each_alert_links_to_its_own(clean_run):
    db = clean_run["db"]
    events = list(db.events.find({}))
    assert len(events) >= len(CAMERA_IDS)  # one decision per visit (track), plus any revision
    assert all(e["track_id"] and e["faces_embedded"] >= 2 for e in events)  # a track's decision, not one frame's
    assert {e["camera_id"] for e in events} == set(CAMERA_IDS)
    assert {e["person_id"] for e in events} == {"pyfeat-man"}
    alert_events = {a["event_id"]: a["_id"] for a in db.alerts.find({})}
    linked = {e["_id"]: e.get("alert_id") for e in events if e["_id"] in alert_events}
    assert linked == alert_events


def test_persons_and_cameras_collections_describe_the_watch_list_and_the_cameras(clean_run):
    db = clean_run["db"]
    persons = {p["_id"]: p for p in db.persons.find({})}
    assert set(persons) == {"pyfeat-man", "obama", "biden"}
    assert persons["pyfeat-man"]["attributes"]["status"] == "enrolled"
    cameras = {c["_id"]: c for c in db.cameras.find({})}
    assert set(cameras) == set(CAMERA_IDS)
    assert cameras["north-gate"]["location"]["zone"] == "north"


def test_analyst_indexes_and_retention_exist_in_mongodb(clean_run):
    db = clean_run["db"]
    events_idx = {i["name"]: i for i in db.events.list_indexes()}
    alerts_idx = {i["name"]: i for i in db.alerts.list_indexes()}
    assert {"camera_ts", "person_ts", "retention_ttl"} <= set(events_idx)
    assert {"status_ts", "camera_ts", "person_ts", "retention_ttl"} <= set(alerts_idx)
    assert events_idx["retention_ttl"]["expireAfterSeconds"] == 0
    plan = db.events.find({"camera_id": "north-gate"}).sort("ts_capture", -1).explain()
    assert "IXSCAN" in json.dumps(plan, default=str)


def test_prometheus_scraped_every_stage_process_and_triton(clean_run):
    prom = clean_run["prom"]
    for stage in ("ingest", "inference", "matcher", "alerter"):
        assert prom[f"{stage}_up"], f"no argus_{stage}_up == 1 series in Prometheus"
        assert prom[f"{stage}_out"], f"no argus_{stage}_messages_out_total series in Prometheus"
    assert prom["triton"], "Triton's nv_inference_count was not scraped"
    per_camera = {r["metric"]["camera"]: float(r["value"][1]) for r in prom["frames_by_camera"]}
    assert set(per_camera) == set(CAMERA_IDS)
    assert sum(per_camera.values()) == clean_run["frames"]


def test_every_dashboard_query_returns_data_from_the_running_services(clean_run):
    if not DASHBOARD.is_file():
        pytest.fail(f"{DASHBOARD} is missing: the Grafana dashboard is part of the product")
    empty = [expr for expr, result in clean_run["dashboard"].items() if not result]
    assert clean_run["dashboard"], "the dashboard has no queries"
    assert not empty, f"dashboard queries with no data from a real Prometheus: {empty}"


def test_alerts_topic_carries_each_stored_alert(clean_run):
    assert sorted(set(clean_run["alerts_topic"])) == sorted(clean_run["alerts"])


def test_stages_killed_mid_stream_and_restarted_lose_and_double_nothing(servers, clean_run, tmp_path):
    database = "argus_e2e_redelivery"
    cluster = _fresh_cluster(servers, tmp_path, database)
    client, db = _mongo(servers, database)
    killed: dict[str, int] = {}
    try:
        with cluster.running():
            # inference: killed once some frames are done and many are still waiting
            wait(lambda: sum(cluster.end_offsets(TOPIC_FACES)) > 0 and cluster.pending()["inference"] > 10,
                  "inference to be mid-stream")
            killed["inference"] = cluster.pending()["inference"]
            cluster.kill("inference")
            cluster.restart("inference")
            # alerter: killed once it has written some history and matches are still arriving
            wait(lambda: db.events.count_documents({}) > 0, "the alerter's first events")
            killed["alerter_events_before"] = db.events.count_documents({})
            cluster.kill("alerter")
            time.sleep(2)  # matches pile up uncommitted while it is down
            killed["alerter"] = cluster.pending()["alerter"]
            cluster.restart("alerter")
            cluster.wait_drained(timeout_s=600)
        events, alerts = _history(db)
        on_topic = _alerts_on_topic(cluster)
        alerted, decided = _who_where(db, "alerts"), sorted(set(_who_where(db, "events")))
    finally:
        client.close()
    assert killed["inference"] > 0  # the kill really left uncommitted frames behind
    assert cluster.procs["inference"].starts == 2 and cluster.procs["alerter"].starts == 2
    # A restarted inference starts its tracks afresh (its tracker state is in memory), so a visit in progress can
    # continue as a new track: its decision is a new event, and the cooldown keeps it from a second alert. So the
    # same people are alerted on the same cameras, once each — with the same ids unless the crash came before the
    # first decision of a track (then the new track's id names the alert).
    assert alerted == clean_run["alerted"], "alerts lost or doubled by the restarts"
    assert decided == clean_run["decided"], "a camera's decisions lost or invented by the restarts"
    assert len(events) == len(set(events)) and len(alerts) == len(set(alerts))
    assert sorted(set(on_topic)) == sorted(alerts)  # at-least-once on the topic: same ids, maybe repeated
    for s in INPUT_TOPICS:
        assert cluster.pending()[s] == 0
