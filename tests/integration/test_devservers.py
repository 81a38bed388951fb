"""The development servers start, answer their real protocols, are reused by a second ``up`` and stop by PID."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from argus_dev import devservers
from argus_dev.devservers import DevServerError, Endpoint, pid_alive, port_open
from argus_dev.devservers.manager import SPECS
from argus_dev.devservers.prometheus import configure, query

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FREE_PORTS = dict.fromkeys(devservers.DEFAULT_PORTS, 0)


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("devservers-lifecycle")
    yield state
    devservers.down(state_dir=state)


@pytest.fixture
def servers(state_dir: Path) -> dict[str, Endpoint]:
    """All four servers of this module: started by the first test, reused by the next (``up`` is idempotent),
    started again after the test that stops them."""
    return devservers.up(ports=FREE_PORTS, state_dir=state_dir)


def test_kafka_round_trips_a_frame_sized_message_on_an_explicit_topic(servers: dict[str, Endpoint]) -> None:
    kafka_server = servers["kafka"]
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=kafka_server.address)
    try:
        admin.create_topics([NewTopic("devservers.frames", num_partitions=3, replication_factor=1)])
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, "1")], config_filter="all")
    finally:
        admin.close()
    broker = configs["broker"]["1"]
    assert broker["auto.create.topics.enable"]["value"] == "false"
    assert int(broker["message.max.bytes"]["value"]) >= 4 * 1024 * 1024
    frame = os.urandom(3 * 1024 * 1024)  # a 4K JPEG is this big; the default 1 MB limit would reject it
    producer = KafkaProducer(bootstrap_servers=kafka_server.address, max_request_size=4 * 1024 * 1024)
    producer.send("devservers.frames", key=b"cam-1", value=frame).get(timeout=20)
    producer.close()
    consumer = KafkaConsumer("devservers.frames", bootstrap_servers=kafka_server.address, group_id="devservers",
                             auto_offset_reset="earliest", fetch_max_bytes=8 * 1024 * 1024,
                             max_partition_fetch_bytes=8 * 1024 * 1024, consumer_timeout_ms=15000)
    try:
        got = next(iter(consumer))
    finally:
        consumer.close()
    assert got.key == b"cam-1"
    assert got.value == frame


def test_triton_is_ready_with_every_model_in_the_repository_loaded(servers: dict[str, Endpoint]) -> None:
    triton_server = servers["triton"]
    http = triton_server.extra["http"]
    with urllib.request.urlopen(f"{http}/v2/health/ready", timeout=5) as resp:
        assert resp.status == 200
    req = urllib.request.Request(f"{http}/v2/repository/index", data=b"{}", method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        index = json.loads(resp.read())
    expected = sorted(d.name for d in (REPO / "triton_models").iterdir() if (d / "configs" / "cpu.pbtxt").is_file())
    assert sorted(m["name"] for m in index if m.get("state") == "READY") == expected


def test_mongo_answers_ping_and_round_trips_a_document(servers: dict[str, Endpoint]) -> None:
    mongo_server = servers["mongo"]
    from pymongo import MongoClient

    client: MongoClient[dict[str, object]] = MongoClient(mongo_server.address, serverSelectionTimeoutMS=5000)
    try:
        assert client.admin.command("ping")["ok"] == 1
        coll = client["argus_devservers"]["events"]
        coll.insert_one({"camera": "cam-7", "score": 0.93})
        assert coll.find_one({"camera": "cam-7"}, {"_id": 0}) == {"camera": "cam-7", "score": 0.93}
    finally:
        client.close()


def test_prometheus_scrapes_the_targets_given_to_configure(servers: dict[str, Endpoint]) -> None:
    prometheus_server, triton_server = servers["prometheus"], servers["triton"]
    metrics = f"127.0.0.1:{triton_server.ports['triton_metrics']}"
    configure({"triton": [metrics]}, state_dir=Path(prometheus_server.state_dir))
    deadline = time.monotonic() + 15
    result: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        result = query('up{job="triton"}', base_url=prometheus_server.address)
        if result and result[0]["value"][1] == "1":  # type: ignore[index]
            break
        time.sleep(0.5)
    assert result, "Prometheus never scraped the triton job"
    assert result[0]["metric"]["instance"] == metrics  # type: ignore[index]
    assert result[0]["value"][1] == "1"  # type: ignore[index]


def test_up_twice_reuses_the_running_servers(servers: dict[str, Endpoint], state_dir: Path) -> None:
    again = devservers.up(ports=FREE_PORTS, state_dir=state_dir)
    assert {n: ep.pid for n, ep in again.items()} == {n: ep.pid for n, ep in servers.items()}
    assert {n: ep.ports for n, ep in again.items()} == {n: ep.ports for n, ep in servers.items()}
    assert devservers.status(state_dir=state_dir) == servers


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[-1].split()
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                members.append(int(entry.name))
    return members


def test_up_refuses_a_port_that_is_already_taken(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(DevServerError, match=rf"mongo: .*{port}"):
            devservers.up(["mongo"], ports={"mongo": port}, state_dir=tmp_path)


def test_triton_start_fails_fast_naming_the_model_that_did_not_load(tmp_path: Path) -> None:
    model = tmp_path / "models" / "broken"
    (model / "configs").mkdir(parents=True)
    (model / "1").mkdir()
    (model / "1" / "model.py").write_text((REPO / "tools" / "triton_python_model.py").read_text())
    (model / "configs" / "cpu.pbtxt").write_text(
        'name: "broken"\nbackend: "python"\nmax_batch_size: 4\n'
        'input [{ name: "x" data_type: TYPE_FP32 dims: [ 2 ] }]\n'
        'output [{ name: "y" data_type: TYPE_FP32 dims: [ 2 ] }]\n'
        'parameters { key: "onnx_file" value { string_value: "absent.onnx" } }\n')
    ports = {k: 0 for k in SPECS["triton"].port_keys}
    t0 = time.monotonic()
    with pytest.raises(DevServerError, match=r"did not: broken: .*absent\.onnx does not exist"):
        devservers.up(["triton"], ports=ports, state_dir=tmp_path / "state", model_repository=tmp_path / "models")
    assert time.monotonic() - t0 < 60
    assert devservers.status(state_dir=tmp_path / "state")["triton"] is None


def test_down_stops_every_server_and_its_processes_are_gone(servers: dict[str, Endpoint], state_dir: Path) -> None:
    for ep in servers.values():
        assert pid_alive(ep.pid)
        assert int((state_dir / f"{ep.name}.pid").read_text()) == ep.pid
    stopped = devservers.down(state_dir=state_dir)
    assert sorted(stopped) == sorted(devservers.SERVER_NAMES)
    for ep in servers.values():
        assert not pid_alive(ep.pid), f"{ep.name} pid {ep.pid} still alive after down"
        assert _group_members(ep.pid) == [], f"{ep.name} left processes behind (e.g. python-backend stubs)"
        assert not (state_dir / f"{ep.name}.pid").exists()
        assert not any(port_open(p) for p in ep.ports.values()), f"{ep.name} still listens on {ep.ports}"
    assert devservers.status(state_dir=state_dir) == dict.fromkeys(devservers.SERVER_NAMES)
