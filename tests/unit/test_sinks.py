"""Alert sinks against real receivers: the webhook posts to a real HTTP server on 127.0.0.1 (scripted to fail
the way real endpoints do), the log sink writes through the logging module. The crop is a real face JPEG."""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from argus.errors import ConfigError, SinkError
from argus.schemas import AlertV2, CandidateV1, LocationV1, Quality
from argus.sinks.base import FanOut
from argus.sinks.log import LogSink
from argus.sinks.webhook import WebhookSink

CROP = (Path(__file__).resolve().parents[2] / "assets/pyfeat/0-f15-hao-ph.jpg").read_bytes()


def _alert(alert_id: str = "a1b2c3d4e5f6a1b2c3d4e5f6") -> AlertV2:
    cands = (CandidateV1(person_id="p-alice", display_name="Alice Example", watchlist="vip", score=0.83),
             CandidateV1(person_id="p-bob", display_name="Bob", watchlist="vip", score=0.41))
    return AlertV2(
        alert_id=alert_id, event_id="gate-3:42:0", camera_id="gate-3", camera_name="North gate, lane 3",
        location=LocationV1(lat=52.5163, lon=13.3777, address="Pariser Platz 1, Berlin", zone="north"),
        person_id="p-alice", display_name="Alice Example", watchlist="vip", score=0.83, threshold=0.6,
        margin=0.42, candidates=cands, emotion="happy", emotion_probs=(0.01, 0.01, 0.01, 0.9, 0.02, 0.03, 0.02),
        det_score=0.99, quality=Quality(size=96.0, blur=210.0), box=(100.0, 80.0, 196.0, 190.0), crop_jpeg=CROP,
        seq=42, ts_capture=1_763_900_000.25, ts_alert=1_763_900_000.5, gallery_version=4,
    )


class Receiver:
    """A real HTTP endpoint that answers from a script of status codes (then 200) and records every request."""

    def __init__(self, script: list[int]) -> None:
        self.script = list(script)
        self.requests: list[tuple[int, dict[str, str], bytes]] = []  # (status answered, headers, body)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver.script.pop(0) if receiver.script else 200
                receiver.requests.append((status, dict(self.headers.items()), body))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/alerts?token=tok-123"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def delivered(self) -> list[dict[str, Any]]:
        return [json.loads(body) for status, _, body in self.requests if status == 200]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    r = Receiver(getattr(request, "param", []))
    yield r
    r.close()


def _refused_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://user:hunter2@127.0.0.1:{port}/alerts"  # nothing listens there any more


def test_webhook_posts_the_alert_as_json_with_the_crop_in_base64(receiver: Receiver):
    a = _alert()
    WebhookSink(url=receiver.url, backoff_s=0.01).send(a)
    (body,) = receiver.delivered
    assert body["alert_id"] == a.alert_id and body["person_id"] == "p-alice"
    assert body["location"] == {"lat": 52.5163, "lon": 13.3777, "address": "Pariser Platz 1, Berlin",
                                "zone": "north"}
    assert body["candidates"][1]["person_id"] == "p-bob"
    assert base64.b64decode(str(body["crop_jpeg_b64"])) == CROP
    _, headers, _ = receiver.requests[0]
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == a.alert_id


def test_webhook_sends_extra_headers(receiver: Receiver):
    WebhookSink(url=receiver.url, headers={"Authorization": "Bearer t0k"}).send(_alert())
    assert receiver.requests[0][1]["Authorization"] == "Bearer t0k"


@pytest.mark.parametrize("receiver", [[500, 503]], indirect=True)
def test_webhook_retries_server_errors_and_delivers_once(receiver: Receiver):
    WebhookSink(url=receiver.url, retries=3, backoff_s=0.01).send(_alert())
    assert [status for status, _, _ in receiver.requests] == [500, 503, 200]
    assert len(receiver.delivered) == 1


@pytest.mark.parametrize("receiver", [[429]], indirect=True)
def test_webhook_retries_when_the_receiver_asks_to_slow_down(receiver: Receiver):
    WebhookSink(url=receiver.url, retries=1, backoff_s=0.01).send(_alert())
    assert [status for status, _, _ in receiver.requests] == [429, 200]


@pytest.mark.parametrize("receiver", [[500, 500, 500, 500]], indirect=True)
def test_webhook_gives_up_after_its_retries_naming_the_last_status(receiver: Receiver):
    t0 = time.monotonic()
    with pytest.raises(SinkError) as ei:
        WebhookSink(url=receiver.url, retries=2, backoff_s=0.05).send(_alert())
    assert len(receiver.requests) == 3
    assert time.monotonic() - t0 >= 0.05 + 0.1  # backoff doubled: 0.05 then 0.1
    msg = str(ei.value)
    assert "HTTP 500" in msg and "3 attempt" in msg
    assert "tok-123" not in msg and "127.0.0.1" in msg


@pytest.mark.parametrize("receiver", [[400]], indirect=True)
def test_webhook_does_not_retry_a_client_error(receiver: Receiver):
    with pytest.raises(SinkError, match="HTTP 400"):
        WebhookSink(url=receiver.url, retries=3, backoff_s=0.01).send(_alert())
    assert len(receiver.requests) == 1


def test_webhook_connection_refused_is_a_sink_error_naming_the_redacted_url():
    url = _refused_url()
    with pytest.raises(SinkError) as ei:
        WebhookSink(url=url, retries=1, backoff_s=0.01, timeout_s=1).send(_alert())
    msg = str(ei.value)
    assert url.split("@")[1].split("/")[0] in msg  # host:port named
    assert "hunter2" not in msg
    assert "connection error" in msg and "2 attempt" in msg


def test_webhook_refuses_a_url_that_is_not_http():
    with pytest.raises(ConfigError, match="expected http"):
        WebhookSink(url="ftp://example.org/alerts")


def test_log_sink_writes_one_line_with_the_location_and_no_crop(caplog: pytest.LogCaptureFixture):
    a = _alert()
    with caplog.at_level(logging.INFO, logger="argus.alerts"):
        LogSink().send(a)
    (rec,) = caplog.records
    line = rec.getMessage()
    assert rec.levelno == logging.WARNING and "\n" not in line
    assert 'address="Pariser Platz 1, Berlin"' in line
    assert 'camera="North gate, lane 3"' in line and "camera_id=gate-3" in line
    assert 'person="Alice Example"' in line and "score=0.83" in line
    assert "emotion=happy" in line and f"alert_id={a.alert_id}" in line
    assert base64.b64encode(CROP)[:40].decode() not in line and "\\xff\\xd8" not in line
    assert len(line) < 600
    assert rec.alert["address"] == "Pariser Platz 1, Berlin"  # type: ignore[attr-defined]


class _Exploding:
    """Injects a failure no real sink produces on demand: an unexpected exception type."""

    name = "exploding"

    def send(self, alert: AlertV2) -> None:
        raise RuntimeError("bug in a sink")

    def close(self) -> None:
        raise RuntimeError("bug on close")


def test_fan_out_delivers_to_every_sink_even_when_others_fail(receiver: Receiver,
                                                              caplog: pytest.LogCaptureFixture):
    dead = WebhookSink(url=_refused_url(), retries=0, timeout_s=1)
    dead.name = "webhook-dead"
    live = WebhookSink(url=receiver.url)
    fan = FanOut([_Exploding(), dead, LogSink(), live])
    with caplog.at_level(logging.WARNING, logger="argus.alerts"):
        outcomes = fan.send(_alert("x1"))
        fan.send(_alert("x2"))
    assert [(o.sink, o.ok) for o in outcomes] == [
        ("exploding", False), ("webhook-dead", False), ("log", True), ("webhook", True)]
    assert outcomes[0].error is not None and "bug in a sink" in outcomes[0].error
    assert [b["alert_id"] for b in receiver.delivered] == ["x1", "x2"]
    assert fan.failures == {"exploding": 2, "webhook-dead": 2}
    assert fan.sent == {"log": 2, "webhook": 2}
    assert sum("ALERT" in r.getMessage() for r in caplog.records) == 2
    fan.close()  # a sink failing to close does not stop the others from closing


def test_fan_out_refuses_two_sinks_with_the_same_name():
    with pytest.raises(ConfigError, match="duplicates"):
        FanOut([LogSink(), LogSink()])
