"""Faults on the real servers: the MongoDB-wire server goes away mid-stream and comes back; stages are killed
(SIGKILL) or restarted one after the other (SIGTERM) while the cameras play.

What must hold (issue "Faults"): an outage is not bad input. While the event store is down the alerter holds its
batch — nothing committed, nothing dead-lettered, /readyz failing — and when the store returns it resumes where
it stopped: the same people are alerted on the same cameras as in an undisturbed run, nothing lost, nothing
doubled, no dead letter. A stage that dies or is rolled redelivers from its last commit: the same alerts
(expected = delivered), duplicates only on the at-least-once alert topic and only with the same alert id.

Each test prints one ``FAULT-FIGURES {json}`` line (run with ``-s``): the README's "Failure behaviour" rows quote it.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import CAMERA_IDS, DEMO_CAMERAS, ROOT, cameras_toml, topic_values, wait

from argus.demo import enroll_demo_watchlist
from argus.runtime.resources import Resources
from argus.schemas import TOPIC_ALERTS, TOPIC_DEADLETTER, TOPIC_FACES, TOPIC_FRAMES, AlertV3, decode
from argus_dev import devservers
from argus_dev.cluster import LocalCluster, Servers
from argus_dev.devservers import Endpoint

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

OUTAGE_S = 20.0  # several store timeouts long; the 60 s would add a minute of CI for the same behaviour
#: What an undisturbed run of the two demo cameras alerts (tests/e2e/test_distributed.py's clean run).
EXPECTED_ALERTS = [("market-square", "pyfeat-man"), ("north-gate", "pyfeat-man")]
#: Passes of each 6.4 s demo clip in the long clips the stage-fault tests play in real time: ~19 s of stream, long
#: enough to kill or roll stages while frames still arrive, and well inside the 60 s cooldown (one alert a camera).
CLIP_PASSES = 3


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


def _long_clips(tmp: Path, passes: int = CLIP_PASSES) -> Path:
    """The two demo cameras, each playing its clip ``passes`` times in a row (one MJPEG file, native fps)."""
    import cv2

    lines = []
    for cam in (c for c in DEMO_CAMERAS if c["id"] in CAMERA_IDS):
        src = str((ROOT / "assets/demo" / cam["url"]).resolve())
        cap = cv2.VideoCapture(src)
        fps = cap.get(cv2.CAP_PROP_FPS)
        frames = []
        while (got := cap.read())[0]:
            frames.append(got[1])
        cap.release()
        dst = tmp / f"{cam['id']}-x{passes}.avi"
        h, w = frames[0].shape[:2]
        out = cv2.VideoWriter(str(dst), cv2.VideoWriter.fourcc(*"MJPG"), fps, (w, h))
        for _ in range(passes):
            for f in frames:
                out.write(f)
        out.release()
        loc = cam["location"]
        lines += ["[[camera]]", f'id = "{cam["id"]}"', f'name = "{cam["name"]}"', f'url = "{dst}"',
                  f'fps = {cam["fps"]}', "", "[camera.location]", f'lat = {loc["lat"]}', f'lon = {loc["lon"]}',
                  f'address = "{loc["address"]}"', f'zone = "{loc["zone"]}"', ""]
    path = tmp / "cameras-long.toml"
    path.write_text("\n".join(lines))
    return path


def _stage_fault_cluster(kafka: Endpoint, triton: Endpoint, mongo: Endpoint, tmp: Path, database: str) -> LocalCluster:
    servers = Servers(kafka=kafka.address, triton=triton.address, mongo_uri=mongo.address)
    cluster = LocalCluster(servers=servers, data_dir=tmp / "data", database=database,
                           cameras_file=_long_clips(tmp), overrides={"cooldown_s": 60, "ingest_files_realtime": True})
    cluster.reset()
    with Resources(cluster.settings) as res:
        enroll_demo_watchlist(res)
    return cluster


def _alert_ids_on_topic(cluster: LocalCluster) -> list[str]:
    return [decode(v, AlertV3).alert_id for v in topic_values(cluster.servers.kafka, TOPIC_ALERTS)]


def _outcome(cluster: LocalCluster, mongo: Endpoint, database: str) -> dict[str, Any]:
    """What the run delivered: stored alerts (who, where), alert ids on the topic (with repeats), dead letters."""
    from pymongo import MongoClient

    client: Any = MongoClient(mongo.address, serverSelectionTimeoutMS=5000)
    try:
        stored = list(client[database].alerts.find({}, {"camera_id": 1, "person_id": 1}))
    finally:
        client.close()
    on_topic = _alert_ids_on_topic(cluster)
    repeats = Counter(on_topic)
    return {"alerted": sorted((a["camera_id"], a["person_id"]) for a in stored),
            "stored_ids": sorted(a["_id"] for a in stored), "topic_ids": sorted(set(on_topic)),
            "topic_duplicates": sum(n - 1 for n in repeats.values()),
            "dead_letters": sum(cluster.end_offsets(TOPIC_DEADLETTER)),
            "frames_on_topic": sum(cluster.end_offsets(TOPIC_FRAMES))}


def _assert_nothing_lost(got: dict[str, Any], cluster: LocalCluster) -> None:
    assert got["alerted"] == EXPECTED_ALERTS, "alerts lost or doubled (expected vs delivered)"
    assert len(got["stored_ids"]) == len(set(got["stored_ids"]))
    assert got["topic_ids"] == got["stored_ids"], "the alert topic and the store disagree"  # repeats: same ids
    assert got["dead_letters"] == 0, "a stage fault moved sightings to dead letters"
    assert not any(cluster.pending().values())


def _kill_and_restart(cluster: LocalCluster, stage: str) -> float:
    """SIGKILL ``stage``, start it again; seconds from the kill until it answers /readyz."""
    t0 = time.monotonic()
    cluster.kill(stage)
    cluster.restart(stage)
    return round(time.monotonic() - t0, 2)


def test_ingest_and_matcher_sigkilled_mid_stream_deliver_every_expected_alert(
        kafka_server: Endpoint, triton_server: Endpoint, mongo_server: Endpoint, tmp_path: Path) -> None:
    database = "argus_faults_kill"
    cluster = _stage_fault_cluster(kafka_server, triton_server, mongo_server, tmp_path, database)
    figures: dict[str, Any] = {"case": "ingest and matcher SIGKILL mid-stream"}
    t_start = time.monotonic()
    with cluster.running():
        # ingest: killed while its cameras are still playing; a restarted ingest replays the files from their
        # first frame (file seq = frame index), so the frames it re-publishes carry the keys they had before.
        wait(lambda: sum(cluster.end_offsets(TOPIC_FRAMES)) >= 10, "ingest to be mid-stream", timeout_s=120)
        figures["frames_before_ingest_kill"] = sum(cluster.end_offsets(TOPIC_FRAMES))
        figures["ingest_recover_s"] = _kill_and_restart(cluster, "ingest")
        # matcher: frozen (SIGSTOP) once faces flow, so faces pile up uncommitted behind it, then SIGKILLed
        wait(lambda: sum(cluster.end_offsets(TOPIC_FACES)) > 0, "the first faces", timeout_s=180)
        matcher_pid = cluster.procs["matcher"].pid
        assert matcher_pid is not None
        os.killpg(matcher_pid, signal.SIGSTOP)
        wait(lambda: cluster.pending()["matcher"] > 0, "faces waiting for the frozen matcher", timeout_s=180)
        figures["matcher_pending_at_kill"] = cluster.pending()["matcher"]
        figures["matcher_recover_s"] = _kill_and_restart(cluster, "matcher")
        figures["drain_s"] = round(cluster.wait_drained(timeout_s=400), 1)
        starts = {s: p.starts for s, p in cluster.procs.items()}
    figures["total_s"] = round(time.monotonic() - t_start, 1)
    got = _outcome(cluster, mongo_server, database)
    figures.update(expected=len(EXPECTED_ALERTS), delivered=len(got["topic_ids"]), **{
        k: got[k] for k in ("topic_duplicates", "dead_letters", "frames_on_topic")})
    print("FAULT-FIGURES", json.dumps(figures))
    assert starts == {"ingest": 2, "inference": 1, "matcher": 2, "alerter": 1}
    _assert_nothing_lost(got, cluster)


def test_a_rolling_sigterm_restart_of_all_four_stages_delivers_every_expected_alert(
        kafka_server: Endpoint, triton_server: Endpoint, mongo_server: Endpoint, tmp_path: Path) -> None:
    database = "argus_faults_rolling"
    cluster = _stage_fault_cluster(kafka_server, triton_server, mongo_server, tmp_path, database)
    figures: dict[str, Any] = {"case": "rolling SIGTERM restart, one stage after the other"}
    exit_codes: dict[str, int | None] = {}
    t_start = time.monotonic()
    with cluster.running():
        wait(lambda: sum(cluster.end_offsets(TOPIC_FRAMES)) >= 10, "ingest to be mid-stream", timeout_s=120)
        for stage in ("ingest", "inference", "matcher", "alerter"):  # the order a rollout of a release would take
            t0 = time.monotonic()
            exit_codes[stage] = cluster.procs[stage].stop()  # SIGTERM: finish the batch, flush, commit, exit
            cluster.procs[stage].start()
            cluster.wait_ready(stage)
            figures[f"{stage}_restart_s"] = round(time.monotonic() - t0, 2)
        figures["frames_when_rolled"] = sum(cluster.end_offsets(TOPIC_FRAMES))
        figures["drain_s"] = round(cluster.wait_drained(timeout_s=400), 1)
        starts = {s: p.starts for s, p in cluster.procs.items()}
    figures["total_s"] = round(time.monotonic() - t_start, 1)
    got = _outcome(cluster, mongo_server, database)
    figures.update(expected=len(EXPECTED_ALERTS), delivered=len(got["topic_ids"]), exit_codes=exit_codes, **{
        k: got[k] for k in ("topic_duplicates", "dead_letters", "frames_on_topic")})
    print("FAULT-FIGURES", json.dumps(figures))
    assert starts == {s: 2 for s in starts}
    assert exit_codes == {s: 0 for s in starts}, "a stage did not stop cleanly on SIGTERM (killed after 30 s?)"
    _assert_nothing_lost(got, cluster)


# --------------------------------------------------------------------------- cameras that hang and flap


class MjpegCameras:
    """Three HTTP MJPEG cameras on 127.0.0.1 (what many IP cameras serve), 10 frames a second each:

    ``/steady`` streams until the client goes; ``/hang``'s first connection sends 10 frames and then keeps the
    socket open and silent (a wedged camera: OpenCV's read blocks), later connections stream; ``/flap`` serves
    ``FLAP_UP_S`` of frames per connection and then drops it (a camera whose link comes and goes, all night).
    """

    FLAP_UP_S = 1.0

    def __init__(self, jpeg: bytes) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.release = threading.Event()
        self.connections: Counter[str] = Counter()
        cams = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                name = self.path.strip("/")
                cams.connections[name] += 1
                nth = cams.connections[name]
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                t0 = time.monotonic()
                try:
                    for i in range(100_000):
                        if cams.release.is_set():
                            return
                        if name == "hang" and nth == 1 and i == 10:
                            cams.release.wait()  # silent, socket open
                            return
                        if name == "flap" and time.monotonic() - t0 > cams.FLAP_UP_S:
                            return  # the link drops
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                         % len(jpeg) + jpeg + b"\r\n")
                        self.wfile.flush()
                        time.sleep(0.1)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


CAMERA_RUN_S = 24.0  # past the production watchdog (15 s) with room to reconnect and stream again


def test_a_hanging_and_a_flapping_camera_recover_counted_and_never_block_the_others(
        kafka_server: Endpoint, mongo_server: Endpoint, tmp_path: Path) -> None:
    """The ingest stage with production timeouts (OpenCV's 10 s read timeout, the 15 s watchdog) on the real
    broker and store: the wedged camera is marked stale, abandoned and reconnected; the flapping one reconnects
    with a climbing backoff and shows as flapping in its health document; the steady one never misses a beat."""
    import cv2
    from kafka import KafkaConsumer, TopicPartition

    from argus.config import load_settings
    from argus.imaging import read_image
    from argus.ingest.sources import OpenCVSource
    from argus.schemas import FrameV2
    from argus.store.mongo import MongoEventStore
    from argus_services.ingest.stage import IngestService

    jpeg = cv2.imencode(".jpg", read_image(str(ROOT / "assets/pyfeat/single_face.jpg")))[1].tobytes()
    cams = MjpegCameras(jpeg)
    ids = {"steady": "cam-steady", "hang": "cam-hang", "flap": "cam-flap"}
    (tmp_path / "cameras.toml").write_text("".join(
        f'[[camera]]\nid = "{cid}"\nname = "{path}"\nurl = "{cams.base}/{path}"\nfps = 5\n\n'
        f'[camera.location]\nlat = 52.5\nlon = 13.4\naddress = "Test street 1"\nzone = "test"\n\n'
        for path, cid in ids.items()))
    settings = load_settings(data_dir=tmp_path / "data", cameras_file=tmp_path / "cameras.toml", bus="kafka",
                             kafka_bootstrap=kafka_server.address, store="mongodb", mongo_uri=mongo_server.address,
                             mongo_database="argus_faults_cameras", camera_health_interval_s=1.0)
    sources = [OpenCVSource(camera_id=cid, url=f"{cams.base}/{path}", fps=5) for path, cid in ids.items()]
    stop = threading.Event()
    start_offsets = None
    try:
        with Resources(settings, sources=sources) as res:
            assert isinstance(res.store, MongoEventStore)
            res.store.reset()  # this test's own database: health documents from an earlier run must not count
            service = IngestService(res)
            start_offsets = res.bus.end_offsets(TOPIC_FRAMES)
            runner = threading.Thread(target=service.run, args=(stop,), daemon=True)
            t0 = time.time()
            runner.start()
            time.sleep(CAMERA_RUN_S)
            stats = service.group.stats()
            health = res.store.camera_health()
            stop.set()
            runner.join(timeout=30)
            service.close()
            metrics = {name: {k: res.registry.get_sample_value(f"argus_ingest_{name}_total", {"camera": cid})
                              for k, cid in ids.items()} for name in ("frames_published", "reconnects",
                                                                       "watchdog_trips", "frames_dropped")}
    finally:
        cams.close()
    consumer = KafkaConsumer(bootstrap_servers=kafka_server.address, group_id=None, enable_auto_commit=False,
                             consumer_timeout_ms=3000)

    parts = [TopicPartition(TOPIC_FRAMES, p) for p in range(len(start_offsets or []))]
    consumer.assign(parts)
    for tp, off in zip(parts, start_offsets or [], strict=True):
        consumer.seek(tp, off)
    ts: dict[str, list[float]] = {cid: [] for cid in ids.values()}
    for r in consumer:
        f = decode(r.value, FrameV2)
        if f.camera_id in ts:
            ts[f.camera_id].append(f.ts_capture)
    consumer.close()

    def gaps(cid: str) -> float:
        t = sorted(ts[cid])
        return max((b - a for a, b in itertools.pairwise(t)), default=float("inf"))

    hang_gap = gaps("cam-hang")
    hang, flap = stats["cam-hang"], stats["cam-flap"]
    figures = {
        "case": "camera reads hang (first connection silent after 10 frames) / URL flapping (up 1 s, then dropped)",
        "run_s": CAMERA_RUN_S, "steady_frames": len(ts["cam-steady"]), "steady_max_gap_s": round(gaps("cam-steady"), 2),
        "hang_recover_s": round(hang_gap, 1), "hang_watchdog_trips": hang.watchdog_trips,
        "hang_read_errors": hang.read_errors, "hang_reconnects": hang.reconnects,
        "flap_sessions": cams.connections["flap"], "flap_flaps": flap.flaps, "flap_reconnects": flap.reconnects,
        "flap_last_backoff_s": round(flap.last_backoff_s, 2), "flap_frames": len(ts["cam-flap"]),
        "dropped": {k: v for k, v in metrics["frames_dropped"].items()}, "health": {
            cid: {k: health.get(cid, {}).get(k) for k in ("state", "reconnects", "watchdog_trips", "flaps")}
            for cid in ids.values()}, "t0": round(t0, 1)}
    print("FAULT-FIGURES", json.dumps(figures))
    # the steady camera never waited for the others: ~5 fps throughout, no gap longer than a second
    assert len(ts["cam-steady"]) >= 0.8 * 5 * (CAMERA_RUN_S - 2) and gaps("cam-steady") < 1.0
    assert metrics["frames_published"]["steady"] == len(ts["cam-steady"])
    # the wedged camera: its read was cut loose (OpenCV's read timeout or the watchdog), it reconnected, streams
    assert hang.watchdog_trips + hang.read_errors >= 1 and hang.reconnects >= 1 and cams.connections["hang"] >= 2
    assert 5.0 <= hang_gap <= 20.0 and hang.state.value == "streaming"
    assert max(ts["cam-hang"]) > max(ts["cam-steady"]) - 2.0  # streaming again at the end
    # the flapping camera: every drop is counted, the backoff climbed instead of hammering it, health says so
    assert flap.flaps >= 3 and flap.reconnects >= 3 and metrics["reconnects"]["flap"] == flap.reconnects
    assert cams.connections["flap"] <= 10, "reconnected at the first backoff step all the time"
    assert flap.last_backoff_s > 1.0
    assert health["cam-flap"]["flaps"] >= 2 and health["cam-flap"]["reconnects"] >= 2
    assert health["cam-steady"]["state"] == "streaming" and health["cam-steady"]["flaps"] == 0
    assert all(v == 0 for v in metrics["frames_dropped"].values())  # nothing had to be dropped at this rate
