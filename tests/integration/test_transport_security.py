"""Transport security against the real servers: Kafka SASL_SSL (SCRAM-SHA-512), MongoDB SCRAM + TLS, Triton gRPC
over TLS. Each secure client works; a plaintext client, a wrong password and a client that does not trust the
server's CA are refused.

The servers are this module's own (a private state dir, certificates made here), started once in parallel with
``argus_dev.devservers.up(security=...)``; the session's plaintext servers are untouched.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from argus.bus.base import Record
from argus.bus.kafka import KafkaBus, KafkaSecurity
from argus.config import load_settings
from argus.errors import ArgusError, BackendError, StoreError
from argus_dev import devservers
from argus_dev.devservers import Endpoint
from argus_dev.devservers.manager import SPECS
from argus_dev.devservers.mongo import MongoServer
from argus_dev.devservers.security import Security, make_security

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SERVERS = ("kafka", "mongo", "triton")
#: The one model this module's Triton serves: small, so the server is ready in seconds.
MODEL = "mtcnn_onet"


@dataclass(frozen=True, kw_only=True)
class Secure:
    security: Security
    kafka: Endpoint
    mongo: Endpoint
    triton: Endpoint
    state_dir: Path

    def kafka_security(self, *, password: str | None = None) -> KafkaSecurity:
        return KafkaSecurity(protocol="SASL_SSL", username=self.security.username,
                             password=self.security.password if password is None else password,
                             cafile=self.security.tls.ca_cert)

    def mongo_uri(self, *, password: str | None = None) -> str:
        spec = SPECS["mongo"]
        assert isinstance(spec, MongoServer)
        return spec.credentials_uri(self.mongo.ports, self.security, password=password)


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secure]:
    state = tmp_path_factory.mktemp("secure-servers")
    models = state / "models"
    models.mkdir()
    (models / MODEL).symlink_to(REPO / "triton_models" / MODEL, target_is_directory=True)
    security = make_security(state / "tls", password=f"kafka-and-mongo-{uuid.uuid4().hex}")
    ports = {key: 0 for name in SERVERS for key in SPECS[name].port_keys}
    try:
        # the shared 2-core machine is often busy: a cold JVM then takes over a minute to serve its first request
        eps = devservers.up(list(SERVERS), ports=ports, state_dir=state, security=security, model_repository=models,
                            timeout_s=240)
        yield Secure(security=security, kafka=eps["kafka"], mongo=eps["mongo"], triton=eps["triton"], state_dir=state)
    finally:
        devservers.down(list(SERVERS), state_dir=state)


def _refused_within(seconds: float, build: object) -> ArgusError:
    """Run ``build``; it must raise Argus's own error, and within ``seconds`` (a refusal, not a hang)."""
    assert callable(build)
    t0 = time.monotonic()
    with pytest.raises(ArgusError) as info:
        build()
    assert time.monotonic() - t0 < seconds, f"refusal took {time.monotonic() - t0:.1f} s"
    return info.value


# --- Kafka -----------------------------------------------------------------------------------------------------

def test_kafka_client_with_tls_and_scram_from_settings_produces_and_consumes(secure: Secure, tmp_path: Path) -> None:
    password_file = tmp_path / "kafka-password"
    password_file.write_text(secure.security.password + "\n")  # a mounted Secret ends in a newline
    settings = load_settings(bus="kafka", kafka_bootstrap=secure.kafka.address, kafka_security_protocol="SASL_SSL",
                             kafka_sasl_username=secure.security.username, kafka_sasl_password_file=password_file,
                             kafka_ssl_cafile=secure.security.tls.ca_cert)
    topic = f"tls.check.{uuid.uuid4().hex[:8]}"
    bus = KafkaBus(bootstrap=settings.kafka_bootstrap, partitions=1, security=settings.kafka_security())
    try:
        bus.ensure_topics([topic])
        bus.publish(topic, key=b"cam-1", value=b"frame over TLS")
        bus.flush()
        consumer = bus.consumer([topic], group="tls-check")
        try:
            got: list[Record] = []
            deadline = time.monotonic() + 30
            while not got and time.monotonic() < deadline:
                got = consumer.poll(max_records=10, timeout_s=1.0)
            assert [(r.key, r.value) for r in got] == [(b"cam-1", b"frame over TLS")]
            consumer.commit(got)
        finally:
            consumer.close()
        assert bus.pending("tls-check", [topic]) == 0
    finally:
        bus.close()


def _kafka_refusal(secure: Secure, caplog: pytest.LogCaptureFixture, **client: object) -> str:
    """Connect an admin client with ``client``'s settings: it must fail to bootstrap within seconds. Returns what
    kafka-python logged about the connection, which says *why* (a dead broker would say ECONNREFUSED instead)."""
    from kafka import KafkaAdminClient

    caplog.set_level(logging.ERROR, logger="kafka")
    t0 = time.monotonic()
    with pytest.raises(Exception) as info:  # kafka-python times out after the refusals it logged
        admin = KafkaAdminClient(bootstrap_servers=secure.kafka.address, client_id="tls-refusal",
                                 bootstrap_timeout_ms=6000, request_timeout_ms=6000, **client)
        admin.list_topics()
        admin.close()
    assert time.monotonic() - t0 < 30, f"a refusal, not a hang: took {time.monotonic() - t0:.1f} s"
    text = "\n".join([str(info.value), *(r.getMessage() for r in caplog.records)])
    assert "ECONNREFUSED" not in text, f"expected the broker to be up and refusing, got:\n{text}"
    return text


def test_kafka_plaintext_client_is_refused(secure: Secure, caplog: pytest.LogCaptureFixture) -> None:
    text = _kafka_refusal(secure, caplog, security_protocol="PLAINTEXT")
    # the broker's TLS listener drops a client that speaks Kafka in the clear
    assert "disconnected" in text or "Connection lost" in text, text


def test_kafka_wrong_password_is_refused(secure: Secure, caplog: pytest.LogCaptureFixture) -> None:
    broker_log = Path(secure.kafka.log_path)
    seen = broker_log.stat().st_size
    text = _kafka_refusal(secure, caplog, **secure.kafka_security(password="not-the-password").client_config())
    assert "not-the-password" not in text
    # kafka-python only sees the connection closed; the broker says why
    with broker_log.open("rb") as fh:
        fh.seek(seen)
        said = fh.read().decode(errors="replace")
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in said, said[-2000:]


def test_kafka_client_that_does_not_trust_the_brokers_ca_is_refused(
        secure: Secure, caplog: pytest.LogCaptureFixture) -> None:
    untrusting = KafkaSecurity(protocol="SASL_SSL", username=secure.security.username,
                               password=secure.security.password, cafile=None)  # the system's CAs only
    text = _kafka_refusal(secure, caplog, **untrusting.client_config())
    assert "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text, text


# --- MongoDB ---------------------------------------------------------------------------------------------------

def test_mongo_store_with_credentials_over_tls_from_a_uri_file_works(secure: Secure, tmp_path: Path) -> None:
    from argus.store.mongo import MongoEventStore

    uri_file = tmp_path / "mongo-uri"
    uri_file.write_text(secure.mongo_uri() + "\n")
    settings = load_settings(store="mongodb", mongo_uri_file=uri_file, mongo_database="tls_check")
    store = MongoEventStore(uri=settings.mongo_connection_uri.get_secret_value(), database="tls_check", timeout_s=5)
    store.close()


@pytest.mark.parametrize("case", ["wrong password", "no credentials", "no TLS"])
def test_mongo_client_without_the_right_credentials_or_tls_is_refused(secure: Secure, case: str) -> None:
    from argus.store.mongo import MongoEventStore

    uri = {"wrong password": secure.mongo_uri(password="not-the-password"),
           "no credentials": secure.mongo.address,
           "no TLS": secure.mongo_uri().replace("&tls=true", "").split("&tlsCAFile=")[0]}[case]
    err = _refused_within(30, lambda: MongoEventStore(uri=uri, database="tls_check", timeout_s=3))
    assert isinstance(err, StoreError)
    why = {"wrong password": "AuthenticationFailed", "no credentials": "requires authentication",
           "no TLS": "127.0.0.1"}[case]
    assert why in str(err), str(err)
    assert "not-the-password" not in str(err) and secure.security.password not in str(err)


# --- Triton ----------------------------------------------------------------------------------------------------

def test_triton_client_over_tls_runs_a_model(secure: Secure) -> None:
    from argus.inference.triton import TritonBackend

    settings = load_settings(backend="triton", triton_url=secure.triton.address, triton_ssl=True,
                             triton_ssl_root_certs=secure.security.tls.ca_cert)
    backend = TritonBackend(url=settings.triton_url, timeout_s=10, models=[MODEL], ssl=settings.triton_ssl,
                            root_certificates=settings.triton_ssl_root_certs)
    try:
        out = backend.infer(MODEL, {"input": np.zeros((2, 3, 48, 48), dtype=np.float32)})
        assert out["prob"].shape == (2, 1)
    finally:
        backend.close()


@pytest.mark.parametrize("case", ["plaintext", "untrusted CA"])
def test_triton_client_without_tls_or_trust_is_refused(secure: Secure, case: str) -> None:
    from argus.inference.triton import TritonBackend

    options: dict[str, dict[str, Any]] = {"plaintext": {"ssl": False},
                                          "untrusted CA": {"ssl": True, "root_certificates": None}}
    kwargs = options[case]
    err = _refused_within(30, lambda: TritonBackend(url=secure.triton.address, timeout_s=2, retries=0, **kwargs))
    assert isinstance(err, BackendError)
    assert "UNAVAILABLE" in str(err), str(err)
