"""The Kafka alert sink against a real Apache Kafka broker (tests/servers.py): what it publishes is consumed back
and decodes to the very same AlertV1."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from argus.errors import SinkError
from argus.schemas import TOPIC_ALERTS, AlertV1, CandidateV1, LocationV1, Quality, decode
from argus.sinks.kafka import KafkaSink

CROP = (Path(__file__).resolve().parents[2] / "assets/pyfeat/15-f13-anc-ph.jpg").read_bytes()


def _alert(alert_id: str) -> AlertV1:
    return AlertV1(
        alert_id=alert_id, event_id="gate-7:9:0", camera_id="gate-7", camera_name="South gate",
        location=LocationV1(lat=48.1372, lon=11.5755, address="Marienplatz 8, München", zone="south"),
        person_id="p-carol", display_name="Carol", watchlist="wanted", score=0.77, threshold=0.62, margin=0.2,
        candidates=(CandidateV1(person_id="p-carol", display_name="Carol", watchlist="wanted", score=0.77),),
        emotion="angry", emotion_probs=(0.8, 0.05, 0.03, 0.02, 0.04, 0.03, 0.03), det_score=0.97,
        quality=Quality(size=88.0, blur=150.0), box=(5.0, 6.0, 93.0, 110.0), crop_jpeg=CROP, seq=9,
        ts_capture=time.time() - 1, ts_alert=time.time(), gallery_version=2,
    )


def _create_topic(bootstrap: str, topic: str) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=[bootstrap])
    try:
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


@pytest.mark.integration
def test_kafka_sink_publishes_an_alert_that_decodes_back_equal_keyed_by_camera(kafka_server):
    from kafka import KafkaConsumer

    _create_topic(kafka_server.address, TOPIC_ALERTS)
    sink = KafkaSink.connect(bootstrap=kafka_server.address)
    alert = _alert(uuid.uuid4().hex[:24])
    sink.send(alert)
    sink.close()
    consumer = KafkaConsumer(TOPIC_ALERTS, bootstrap_servers=[kafka_server.address],
                             group_id=f"t-{uuid.uuid4().hex[:8]}", auto_offset_reset="earliest",
                             enable_auto_commit=False)
    try:
        found: list[Any] = []
        deadline = time.monotonic() + 20
        while not found and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                found += [r for r in records if decode(r.value, AlertV1).alert_id == alert.alert_id]
    finally:
        consumer.close()
    assert len(found) == 1
    assert found[0].key == b"gate-7"
    assert decode(found[0].value, AlertV1) == alert


@pytest.mark.integration
def test_kafka_sink_to_a_missing_topic_fails_within_its_timeout(kafka_server):
    sink = KafkaSink.connect(bootstrap=kafka_server.address, topic=f"argus.missing-{uuid.uuid4().hex[:6]}.v1",
                             timeout_s=2.0)
    t0 = time.monotonic()
    with pytest.raises(SinkError, match="not acknowledged"):
        sink.send(_alert("a-missing"))
    assert time.monotonic() - t0 < 10
    sink.close()


def test_kafka_sink_without_a_reachable_broker_is_a_sink_error():
    pytest.importorskip("kafka")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SinkError, match=f"127.0.0.1:{port}"):
        KafkaSink.connect(bootstrap=f"127.0.0.1:{port}", timeout_s=1.0)
