"""Alert sinks against real receivers: the webhook posts to a real HTTP server on 127.0.0.1 (scripted to fail
the way real endpoints do, and verifying signatures as a receiver would), the log sink writes through the logging
module. The crop is a real face JPEG."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from argus.config import load_settings
from argus.errors import ConfigError, SinkError
from argus.runtime.resources import Resources
from argus.schemas import AlertV3, CandidateV1, LocationV1, Quality
from argus.sinks.base import FanOut
from argus.sinks.log import LogSink
from argus.sinks.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    WebhookSink,
    sign,
    verify_signature,
)
from argus_services.alerter.stage import make_sinks

CROP = (Path(__file__).resolve().parents[2] / "assets/pyfeat/0-f15-hao-ph.jpg").read_bytes()
SECRET = "whsec-7f3a9c1e5b2d4068a1c3e5f7b9d0"  # the signing key shared with the receiver


def _alert(alert_id: str = "a1b2c3d4e5f6a1b2c3d4e5f6") -> AlertV3:
    cands = (CandidateV1(person_id="p-alice", display_name="Alice Example", watchlist="vip", score=0.83),
             CandidateV1(person_id="p-bob", display_name="Bob", watchlist="vip", score=0.41))
    return AlertV3(
        alert_id=alert_id, event_id="gate-3:42:0", camera_id="gate-3", camera_name="North gate, lane 3",
        location=LocationV1(lat=52.5163, lon=13.3777, address="Pariser Platz 1, Berlin", zone="north"),
        person_id="p-alice", display_name="Alice Example", watchlist="vip", score=0.83, threshold=0.6,
        margin=0.42, candidates=cands, emotion="happy", emotion_probs=(0.01, 0.01, 0.01, 0.9, 0.02, 0.03, 0.02),
        det_score=0.99, quality=Quality(size=96.0, blur=210.0), box=(100.0, 80.0, 196.0, 190.0), crop_jpeg=CROP,
        seq=42, ts_capture=1_763_900_000.25, ts_alert=1_763_900_000.5, gallery_version=4,
    )


class Receiver:
    """A real HTTP endpoint that answers from a script of status codes (then 200) and records every request.

    With ``secret`` it verifies each request as a real receiver would (:func:`verify_signature` on the raw bytes)
    and answers 401 to one that fails, before the script is consulted; ``verdicts`` holds "ok" or the error."""

    def __init__(self, script: list[int], secret: str | None = None) -> None:
        self.script = list(script)
        self.requests: list[tuple[int, dict[str, str], bytes]] = []  # (status answered, headers, body)
        self.verdicts: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = 0
                if secret is not None:
                    try:
                        verify_signature(secret, self.headers.get(TIMESTAMP_HEADER),
                                         self.headers.get(SIGNATURE_HEADER), body)
                    except SignatureError as e:
                        receiver.verdicts.append(str(e))
                        status = 401
                    else:
                        receiver.verdicts.append("ok")
                if not status:
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


@pytest.fixture()
def verifier(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    """A receiver that checks every signature with SECRET (parametrize with a status script like ``receiver``)."""
    r = Receiver(getattr(request, "param", []), secret=SECRET)
    yield r
    r.close()


def _refused_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://user:hunter2@127.0.0.1:{port}/alerts"  # nothing listens there any more


def test_webhook_posts_the_alert_as_json_with_the_crop_in_base64(receiver: Receiver):
    a = _alert()
    WebhookSink(url=receiver.url, secret=SECRET, backoff_s=0.01).send(a)
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
    WebhookSink(url=receiver.url, secret=SECRET, headers={"Authorization": "Bearer t0k"}).send(_alert())
    assert receiver.requests[0][1]["Authorization"] == "Bearer t0k"


@pytest.mark.parametrize("receiver", [[500, 503]], indirect=True)
def test_webhook_retries_server_errors_and_delivers_once(receiver: Receiver):
    WebhookSink(url=receiver.url, secret=SECRET, retries=3, backoff_s=0.01).send(_alert())
    assert [status for status, _, _ in receiver.requests] == [500, 503, 200]
    assert len(receiver.delivered) == 1


@pytest.mark.parametrize("receiver", [[429]], indirect=True)
def test_webhook_retries_when_the_receiver_asks_to_slow_down(receiver: Receiver):
    WebhookSink(url=receiver.url, secret=SECRET, retries=1, backoff_s=0.01).send(_alert())
    assert [status for status, _, _ in receiver.requests] == [429, 200]


@pytest.mark.parametrize("receiver", [[500, 500, 500, 500]], indirect=True)
def test_webhook_gives_up_after_its_retries_naming_the_last_status(receiver: Receiver):
    t0 = time.monotonic()
    with pytest.raises(SinkError) as ei:
        WebhookSink(url=receiver.url, secret=SECRET, retries=2, backoff_s=0.05).send(_alert())
    assert len(receiver.requests) == 3
    assert time.monotonic() - t0 >= 0.05 + 0.1  # backoff doubled: 0.05 then 0.1
    msg = str(ei.value)
    assert "HTTP 500" in msg and "3 attempt" in msg
    assert "tok-123" not in msg and "127.0.0.1" in msg


@pytest.mark.parametrize("receiver", [[400]], indirect=True)
def test_webhook_does_not_retry_a_client_error(receiver: Receiver):
    with pytest.raises(SinkError, match="HTTP 400"):
        WebhookSink(url=receiver.url, secret=SECRET, retries=3, backoff_s=0.01).send(_alert())
    assert len(receiver.requests) == 1


def test_webhook_connection_refused_is_a_sink_error_naming_the_redacted_url():
    url = _refused_url()
    with pytest.raises(SinkError) as ei:
        WebhookSink(url=url, secret=SECRET, retries=1, backoff_s=0.01, timeout_s=1).send(_alert())
    msg = str(ei.value)
    assert url.split("@")[1].split("/")[0] in msg  # host:port named
    assert "hunter2" not in msg
    assert "connection error" in msg and "2 attempt" in msg


def test_webhook_refuses_a_url_that_is_not_http():
    with pytest.raises(ConfigError, match="expected http"):
        WebhookSink(url="ftp://example.org/alerts", secret=SECRET)


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
    assert "revision=1" in line and "track_id=" in line and "faces=1/1/1" in line  # the track's evidence
    assert "withdrawn" not in line
    assert base64.b64encode(CROP)[:40].decode() not in line and "\\xff\\xd8" not in line
    assert len(line) < 600
    assert rec.alert["address"] == "Pariser Platz 1, Berlin"  # type: ignore[attr-defined]


class _Exploding:
    """Injects a failure no real sink produces on demand: an unexpected exception type."""

    name = "exploding"

    def send(self, alert: AlertV3) -> None:
        raise RuntimeError("bug in a sink")

    def close(self) -> None:
        raise RuntimeError("bug on close")


def test_fan_out_delivers_to_every_sink_even_when_others_fail(receiver: Receiver,
                                                              caplog: pytest.LogCaptureFixture):
    dead = WebhookSink(url=_refused_url(), secret=SECRET, retries=0, timeout_s=1)
    dead.name = "webhook-dead"
    live = WebhookSink(url=receiver.url, secret=SECRET)
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


# ---------------------------------------------------------------------------------------------------------------
# signed webhooks (issue 16: without a signature anybody who learns the URL can post a forged alert)
def _signed(r: Receiver, i: int = 0) -> tuple[str, str, bytes]:
    """(timestamp header, signature header, raw body) of the i-th request the receiver got."""
    _, headers, body = r.requests[i]
    return headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], body


def test_webhook_signs_every_request_and_the_receiver_verifies_it(verifier: Receiver):
    t0 = time.time()
    WebhookSink(url=verifier.url, secret=SECRET).send(_alert())
    assert verifier.verdicts == ["ok"] and len(verifier.delivered) == 1
    ts, sig, body = _signed(verifier)
    assert ts.isdigit() and abs(int(ts) - t0) <= 2
    assert sig.startswith("v1=") and len(sig) == 3 + 64
    assert sig == sign(SECRET, int(ts), body)  # HMAC-SHA256 over timestamp + "." + the exact bytes sent
    want = hmac.new(SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    assert sig == f"v1={want}"


def test_a_tampered_body_fails_verification(verifier: Receiver):
    WebhookSink(url=verifier.url, secret=SECRET).send(_alert())
    ts, sig, body = _signed(verifier)
    forged = body.replace(b'"person_id":"p-alice"', b'"person_id":"p-mallory"')
    assert forged != body
    with pytest.raises(SignatureError, match="got a different one .*altered") as ei:
        verify_signature(SECRET, ts, sig, forged)
    assert ei.value.problem == "mismatch"
    with pytest.raises(SignatureError, match="different one"):  # the timestamp is signed too
        verify_signature(SECRET, str(int(ts) + 1), sig, body)


def test_a_sender_with_the_wrong_secret_is_refused_and_not_retried(verifier: Receiver):
    with pytest.raises(SinkError) as ei:
        WebhookSink(url=verifier.url, secret="whsec-someone-else-entirely", retries=3, backoff_s=0.01).send(_alert())
    assert "HTTP 401" in str(ei.value) and "same secret" in str(ei.value)
    assert len(verifier.requests) == 1 and verifier.delivered == []
    (verdict,) = verifier.verdicts
    assert "expected an HMAC-SHA256" in verdict and "wrong secret" in verdict


def test_a_timestamp_outside_the_replay_window_is_refused(verifier: Receiver):
    with pytest.raises(SinkError, match="HTTP 401"):
        WebhookSink(url=verifier.url, secret=SECRET, clock=lambda: time.time() - 301).send(_alert())
    (verdict,) = verifier.verdicts
    assert "within 300 s of now (replay window)" in verdict and "s old" in verdict
    ts, sig, body = _signed(verifier)
    with pytest.raises(SignatureError, match="replay window") as ei:  # a captured request replayed later
        verify_signature(SECRET, ts, sig, body)
    assert ei.value.problem == "outside_window"
    verify_signature(SECRET, ts, sig, body, now=int(ts) + 300)  # the edge of the window still passes
    with pytest.raises(SignatureError, match="in the future"):
        verify_signature(SECRET, ts, sig, body, now=int(ts) - 301)
    with pytest.raises(SignatureError, match="within 10 s"):
        verify_signature(SECRET, ts, sig, body, now=int(ts) + 11, tolerance_s=10)


def test_a_request_without_signature_headers_is_refused(verifier: Receiver):
    req = urllib.request.Request(verifier.url, data=b'{"alert_id":"forged"}', method="POST",
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as ei:
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=5)
    assert ei.value.code == 401
    ei.value.close()
    (verdict,) = verifier.verdicts
    assert f"got no {TIMESTAMP_HEADER} and no {SIGNATURE_HEADER}" in verdict
    with pytest.raises(SignatureError, match=f"got no {SIGNATURE_HEADER}$") as e2:
        verify_signature(SECRET, "1763900000", None, b"{}")
    assert e2.value.problem == "missing_header"
    with pytest.raises(SignatureError, match=f"got no {TIMESTAMP_HEADER}$"):
        verify_signature(SECRET, "  ", "v1=" + "0" * 64, b"{}")


@pytest.mark.parametrize(("ts", "sig", "expected"), [
    ("1763900000.5", "v1=" + "0" * 64, "as integer epoch seconds, got '1763900000.5'"),
    ("yesterday", "v1=" + "0" * 64, "as integer epoch seconds"),
    ("1763900000", "sha256=" + "0" * 64, "'v1=<64 lowercase hex digits>', got 'sha256="),
    ("1763900000", "v1=xyz", "'v1=<64 lowercase hex digits>', got 'v1=xyz'"),
    ("1763900000", "0" * 64, "'v1=<64 lowercase hex digits>'"),
], ids=["fractional timestamp", "word timestamp", "unknown scheme", "not hex", "no scheme"])
def test_a_malformed_header_is_refused_naming_the_format(ts: str, sig: str, expected: str):
    with pytest.raises(SignatureError) as ei:
        verify_signature(SECRET, ts, sig, b"{}", now=1763900000)
    assert expected in str(ei.value) and ei.value.problem == "bad_format"


def test_several_signatures_pass_when_one_is_valid_for_key_rotation():
    body, ts = b'{"alert_id":"a"}', 1763900000
    good = sign(SECRET, ts, body)
    verify_signature(SECRET, str(ts), f"v1={'0' * 64}, {good}", body, now=ts)
    with pytest.raises(SignatureError, match="different one"):
        verify_signature(SECRET, str(ts), f"v1={'0' * 64}", body, now=ts)


def test_verify_refuses_a_parsed_body_or_an_empty_secret():
    with pytest.raises(TypeError, match="raw request body as bytes, got dict"):
        verify_signature(SECRET, "1", "v1=" + "0" * 64, {"alert_id": "a"})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="non-empty secret"):
        verify_signature("", "1", "v1=" + "0" * 64, b"{}")
    with pytest.raises(ConfigError, match="non-empty secret"):
        WebhookSink(url="https://hooks.example/a", secret="")


def test_extra_headers_cannot_replace_the_signature():
    with pytest.raises(ConfigError, match=r"expected none of X-Argus-Timestamp.*got \['x-argus-signature'\]"):
        WebhookSink(url="https://hooks.example/a", secret=SECRET, headers={"x-argus-signature": "v1=forged"})


@pytest.mark.parametrize("verifier", [[500]], indirect=True)
def test_a_retry_is_signed_again_with_a_fresh_timestamp(verifier: Receiver):
    t0 = float(int(time.time()))
    ticks = iter([t0 + 0.4, t0 + 7.6])  # the clock read at each attempt: the retry goes out seconds later
    sink = WebhookSink(url=verifier.url, secret=SECRET, retries=2, backoff_s=0.01, clock=lambda: next(ticks))
    sink.send(_alert())
    assert [status for status, _, _ in verifier.requests] == [500, 200]
    assert verifier.verdicts == ["ok", "ok"]  # both deliveries verify at the receiver
    (ts1, sig1, body1), (ts2, sig2, body2) = _signed(verifier, 0), _signed(verifier, 1)
    assert (int(ts1), int(ts2)) == (t0, t0 + 7) and sig1 != sig2
    assert body1 == body2
    assert verifier.requests[0][1]["Idempotency-Key"] == verifier.requests[1][1]["Idempotency-Key"] \
        == _alert().alert_id
    with pytest.raises(SignatureError, match="different one"):  # the first signature does not cover the retry
        verify_signature(SECRET, ts2, sig1, body2)


@pytest.mark.parametrize("verifier", [[503, 503]], indirect=True)
def test_a_retried_delivery_in_real_time_passes_the_replay_check(verifier: Receiver):
    WebhookSink(url=verifier.url, secret=SECRET, retries=2, backoff_s=0.01).send(_alert())
    assert verifier.verdicts == ["ok", "ok", "ok"] and len(verifier.delivered) == 1


@pytest.mark.parametrize("verifier", [[500, 500]], indirect=True)
def test_the_secret_never_appears_in_logs_errors_or_reprs(verifier: Receiver, caplog: pytest.LogCaptureFixture):
    sink = WebhookSink(url=verifier.url, secret=SECRET, retries=1, backoff_s=0.01)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(SinkError) as ei:
            sink.send(_alert())
        WebhookSink(url=_refused_url(), secret=SECRET, retries=0, timeout_s=1)
        FanOut([WebhookSink(url=_refused_url(), secret=SECRET, retries=0, timeout_s=1)]).send(_alert())
    assert any("retrying" in r.getMessage() for r in caplog.records)  # the retry was logged, without the key
    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.__dict__!r}" for r in caplog.records)
    assert SECRET not in logged and SECRET not in caplog.text
    assert SECRET not in str(ei.value) and SECRET not in repr(sink) and "**" in repr(sink)


# settings: where the key comes from, and that it never shows
KEY = "k8s-mounted-key-0123456789abcdef"


def _webhook_env(monkeypatch: pytest.MonkeyPatch, url: str = "https://hooks.example/T0K3N") -> None:
    for var in ("ARGUS_WEBHOOK_SECRET", "ARGUS_WEBHOOK_SECRET_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ARGUS_SINKS", "log,webhook")
    monkeypatch.setenv("ARGUS_WEBHOOK_URL", url)


def test_the_key_comes_from_the_setting_and_never_shows(monkeypatch: pytest.MonkeyPatch):
    _webhook_env(monkeypatch)
    monkeypatch.setenv("ARGUS_WEBHOOK_SECRET", KEY)
    s = load_settings()
    assert s.webhook_signing_secret is not None and s.webhook_signing_secret.get_secret_value() == KEY
    shown = json.dumps(s.redacted(), default=str) + repr(s) + str(s)
    assert KEY not in shown and s.redacted()["webhook_secret"] == "**********"


def test_the_key_file_is_read_once_with_its_trailing_newline_stripped(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path):
    key_file = tmp_path / "webhook-secret"
    key_file.write_text(KEY + "\n")  # kubectl create secret --from-file keeps the editor's newline
    _webhook_env(monkeypatch)
    monkeypatch.setenv("ARGUS_WEBHOOK_SECRET_FILE", str(key_file))
    s = load_settings()
    key_file.write_text("rotated-on-disk-0123456789")  # read at start-up: a later change needs a restart
    assert s.webhook_signing_secret is not None and s.webhook_signing_secret.get_secret_value() == KEY
    assert KEY not in json.dumps(s.redacted(), default=str) + repr(s)
    assert s.redacted()["webhook_secret_file"] == str(key_file)  # the path is not secret


def test_make_sinks_signs_with_the_configured_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                  verifier: Receiver):
    key_file = tmp_path / "webhook-secret"
    key_file.write_text(SECRET + "\n")
    _webhook_env(monkeypatch, url=verifier.url)
    monkeypatch.setenv("ARGUS_WEBHOOK_SECRET_FILE", str(key_file))
    sinks = make_sinks(Resources(load_settings(data_dir=tmp_path, metrics_port=0)))
    assert [x.name for x in sinks] == ["log", "webhook"]
    sinks[1].send(_alert())
    assert sinks[1].wait_idle(10)  # type: ignore[attr-defined]  # the alerter's webhook delivers from an outbox
    assert verifier.verdicts == ["ok"]
    assert list((tmp_path / "outbox").glob("webhook-*.sqlite")), "expected a durable outbox in the data dir"


@pytest.mark.parametrize(("env", "expected"), [
    ({}, "neither ARGUS_WEBHOOK_SECRET nor ARGUS_WEBHOOK_SECRET_FILE is set: expected a signing key"),
    ({"ARGUS_WEBHOOK_SECRET": KEY, "ARGUS_WEBHOOK_SECRET_FILE": "{key_file}"},
     "ARGUS_WEBHOOK_SECRET and ARGUS_WEBHOOK_SECRET_FILE: expected one of them, got both"),
    ({"ARGUS_WEBHOOK_SECRET_FILE": "{missing}"}, "ARGUS_WEBHOOK_SECRET_FILE: expected a readable UTF-8 file, got"),
    ({"ARGUS_WEBHOOK_SECRET": "short"}, "ARGUS_WEBHOOK_SECRET: expected a key of at least 16 characters"),
    ({"ARGUS_WEBHOOK_SECRET_FILE": "{empty}"}, "ARGUS_WEBHOOK_SECRET_FILE: expected a key of at least 16 "
                                               "characters (e.g. openssl rand -hex 32), got 0"),
], ids=["neither", "both", "missing file", "short key", "empty file"])
def test_webhook_key_settings_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str],
                                     expected: str):
    (tmp_path / "key").write_text(KEY)
    (tmp_path / "empty").write_text("\n")
    _webhook_env(monkeypatch)
    for var, value in env.items():
        monkeypatch.setenv(var, value.format(key_file=tmp_path / "key", missing=tmp_path / "nope",
                                             empty=tmp_path / "empty"))
    with pytest.raises(ConfigError) as ei:
        load_settings()
    msg = str(ei.value)
    assert expected in msg
    assert KEY not in msg and "T0K3N" not in msg  # model-level errors never echo the values given


def test_both_key_settings_are_refused_even_without_the_webhook_sink(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path):
    monkeypatch.setenv("ARGUS_SINKS", "log")
    monkeypatch.setenv("ARGUS_WEBHOOK_SECRET", KEY)
    monkeypatch.setenv("ARGUS_WEBHOOK_SECRET_FILE", str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match="got both"):
        load_settings()
    monkeypatch.delenv("ARGUS_WEBHOOK_SECRET")  # the file is read only when the webhook sink is on
    assert load_settings().webhook_signing_secret is None


def _readme_verifier() -> Any:
    """The receiver snippet from README.md's "Verifying Argus webhooks", as a receiver would paste it."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Verifying Argus webhooks", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), scope)
    return scope["verify_argus_webhook"]


def test_the_readme_receiver_snippet_accepts_argus_and_nothing_else(verifier: Receiver):
    verify = _readme_verifier()
    WebhookSink(url=verifier.url, secret=SECRET).send(_alert())
    _, headers, body = verifier.requests[0]
    assert verify(SECRET.encode(), headers, body)
    assert not verify(SECRET.encode(), headers, body.replace(b"p-alice", b"p-mallo"))
    assert not verify(b"whsec-someone-else-entirely", headers, body)
    assert not verify(SECRET.encode(), {**headers, TIMESTAMP_HEADER: str(int(time.time()) - 301)}, body)
    assert not verify(SECRET.encode(), {k: v for k, v in headers.items() if k != SIGNATURE_HEADER}, body)
    stale = int(time.time()) - 301
    assert not verify(SECRET.encode(), {TIMESTAMP_HEADER: str(stale), SIGNATURE_HEADER: sign(SECRET, stale, body)},
                      body)
