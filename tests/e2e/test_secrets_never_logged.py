"""Secrets never reach a log line, a /metrics body or ``argus config``.

Distinctive values are planted where an operator puts them: the Kafka SASL password and the MongoDB URI (with its
password) in files (mounted Secrets), the webhook signing key in a file and a token in the webhook URL, and an
operator API key made at run time. Then the pipeline runs for real in one process, the way ``argus demo`` runs it
but on the production seams: Kafka over SASL_SSL, MongoDB with SCRAM over TLS, the webhook sink posting signed
alerts to a local receiver, the operator API answering a request with that key (and one with a wrong key). Every
line the process logged at DEBUG for ``argus`` (INFO for the libraries), the /metrics body of its registry and
``argus config``'s output are searched for each planted value: zero hits. The test also checks that every secret
was really used (the alert was posted, signed, with the token; the API key was accepted), so a run that never
touched them cannot pass.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from argus.api.auth import parse_api_key
from argus_dev import devservers
from argus_dev.devservers.manager import SPECS
from argus_dev.devservers.mongo import MongoServer
from argus_dev.devservers.security import Security, make_security

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e

#: One process, the demo's wiring, the production seams; prints nothing secret itself.
DRIVER = r"""
import json, logging, sys
from pathlib import Path
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from argus.api.app import create_app
from argus.api.auth import create_api_key
from argus.config import load_settings
from argus.demo import enroll_demo_watchlist
from argus.runtime.inprocess import InProcessPipeline
from argus.runtime.resources import Resources

logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
logging.getLogger("argus").setLevel(logging.DEBUG)
out = Path(sys.argv[1])
s = load_settings()
logging.getLogger("argus").info("settings: %s", s)  # the repr a careless log line would print
logging.getLogger("argus").info("settings redacted: %s", s.redacted())
with Resources(s, registry=CollectorRegistry()) as res:
    enroll_demo_watchlist(res)
    with InProcessPipeline(res) as pipeline:
        pipeline.wait_ingest()
        pipeline.wait_drained()
    _, key = create_api_key(res.store, name="secrets-test", role="analyst", actor="secrets-test")
    (out / "api_key").write_text(key)  # the test plants it in its search; the process never prints it
    api = TestClient(create_app(res))
    ok = api.get("/api/v1/alerts", headers={"Authorization": f"Bearer {key}"})
    bad = api.get("/api/v1/alerts", headers={"Authorization": f"Bearer {key[:-4]}XXXX"})
    (out / "metrics.txt").write_bytes(generate_latest(res.registry))
    (out / "result.json").write_text(json.dumps({"api_ok": ok.status_code, "api_bad": bad.status_code,
                                                 "alerts": len(ok.json()["items"]) if ok.status_code == 200 else -1}))
"""


class _Receiver(BaseHTTPRequestHandler):
    requests: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []
    port: ClassVar[int] = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).requests.append((self.path, dict(self.headers.items()), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Security, dict[str, devservers.Endpoint]]]:
    state = tmp_path_factory.mktemp("secrets-servers")
    security = make_security(state / "tls", password=f"PLANTED-kafka-and-mongo-pw-{uuid.uuid4().hex}")
    ports = {key: 0 for name in ("kafka", "mongo") for key in SPECS[name].port_keys}
    try:
        yield security, devservers.up(["kafka", "mongo"], ports=ports, state_dir=state, security=security,
                                      timeout_s=240)
    finally:
        devservers.down(["kafka", "mongo"], state_dir=state)


@pytest.fixture(scope="module")
def receiver() -> Iterator[type[_Receiver]]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    _Receiver.port = int(srv.server_address[1])
    try:
        yield _Receiver
    finally:
        srv.shutdown()


def test_no_planted_secret_appears_in_logs_metrics_or_config(
        secure: tuple[Security, dict[str, devservers.Endpoint]], receiver: type[_Receiver], tmp_path: Path) -> None:
    security, eps = secure
    mongo_spec = SPECS["mongo"]
    assert isinstance(mongo_spec, MongoServer)
    webhook_secret = f"PLANTED-webhook-key-{uuid.uuid4().hex}"
    webhook_token = f"PLANTED-url-token-{uuid.uuid4().hex}"
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "kafka-password").write_text(security.password + "\n")
    (secrets_dir / "mongo-uri").write_text(mongo_spec.credentials_uri(eps["mongo"].ports, security) + "\n")
    (secrets_dir / "webhook-secret").write_text(webhook_secret + "\n")
    cameras = tmp_path / "cameras.toml"  # the demo's north gate only: one clip, one alert
    demo = (ROOT / "assets/demo/cameras.toml").read_text()
    cameras.write_text(demo.split("[[camera]]")[1].join(["[[camera]]", ""]).replace(
        '"../pyfeat/', f'"{ROOT / "assets/pyfeat"}/'))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARGUS_")}
    env.update({
        "ARGUS_DATA_DIR": str(tmp_path / "data"), "ARGUS_CAMERAS_FILE": str(cameras),
        "ARGUS_INGEST_QUEUE": "10000", "ARGUS_INGEST_FILES_REALTIME": "false", "ARGUS_METRICS_PORT": "0",
        "ARGUS_BUS": "kafka", "ARGUS_KAFKA_BOOTSTRAP": eps["kafka"].address, "ARGUS_KAFKA_PARTITIONS": "1",
        "ARGUS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "ARGUS_KAFKA_SASL_USERNAME": security.username,
        "ARGUS_KAFKA_SASL_PASSWORD_FILE": str(secrets_dir / "kafka-password"),
        "ARGUS_KAFKA_SSL_CAFILE": str(security.tls.ca_cert),
        "ARGUS_STORE": "mongodb", "ARGUS_MONGO_URI_FILE": str(secrets_dir / "mongo-uri"),
        "ARGUS_MONGO_DATABASE": f"secrets_{uuid.uuid4().hex[:8]}",
        "ARGUS_SINKS": "log,webhook",
        "ARGUS_WEBHOOK_URL": f"http://127.0.0.1:{receiver.port}/hook?token={webhook_token}",
        "ARGUS_WEBHOOK_SECRET_FILE": str(secrets_dir / "webhook-secret"),
    })
    out = tmp_path / "out"
    out.mkdir()
    run = subprocess.run([sys.executable, "-c", DRIVER, str(out)], env=env, capture_output=True, text=True,
                         timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-4000:]
    argus = Path(sys.executable).parent / "argus"
    config = subprocess.run([str(argus), "config"], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert config.returncode == 0, config.stderr[-2000:]

    # every secret was really used: otherwise "not logged" would prove nothing
    result = json.loads((out / "result.json").read_text())
    assert result["api_ok"] == 200 and result["api_bad"] == 401 and result["alerts"] >= 1
    hooks = [(path, headers) for path, headers, _ in receiver.requests if path.startswith("/hook")]
    assert hooks and all(webhook_token in path for path, _ in hooks)
    assert all("X-Argus-Signature" in headers for _, headers in hooks)
    shown = json.loads(config.stdout)
    assert shown["kafka_security_protocol"] == "SASL_SSL" and shown["webhook_url"] == "**********"

    api_key = (out / "api_key").read_text()
    _, api_secret = parse_api_key(api_key)
    assert len(api_secret) >= 20
    planted = {"Kafka SASL password": security.password, "webhook key": webhook_secret,
               "webhook URL token": webhook_token, "API key": api_key, "API key secret part": api_secret}
    searched = {"process log (stdout)": run.stdout, "process log (stderr)": run.stderr,
                "/metrics body": (out / "metrics.txt").read_text(), "argus config stdout": config.stdout,
                "argus config stderr": config.stderr}
    assert len(run.stderr.splitlines()) > 20, "expected the pipeline's log lines to search, got almost none"
    hits = [f"{what} in {where}" for what, value in planted.items() for where, text in searched.items()
            if value in text]
    assert hits == [], f"secrets leaked: {hits}"
