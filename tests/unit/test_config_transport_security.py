"""Transport-security settings: the unsafe or half-given combinations stop the process at start-up naming the
variable; the good ones build the client configuration every Kafka client gets (secrets read from their files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from argus.bus.kafka import KafkaSecurity
from argus.config import load_settings
from argus.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for var in [v for v in os.environ if v.startswith("ARGUS_")]:
        monkeypatch.delenv(var)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {"password": tmp_path / "kafka-password", "ca": tmp_path / "ca.pem", "uri": tmp_path / "mongo-uri",
           "not-a-uri": tmp_path / "not-a-uri", "missing": tmp_path / "missing"}
    out["password"].write_text("s3cret-from-a-file\n")
    out["ca"].write_text("-----BEGIN CERTIFICATE-----\n")
    out["uri"].write_text("mongodb://argus:pw@db:27017/?tls=true\n")
    out["not-a-uri"].write_text("argus:pw@db\n")
    return out


SASL: dict[str, object] = {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "argus"}

REFUSED: list[tuple[str, dict[str, object], str]] = [
    # id, settings (a value "<name>" is that stand-in file), expected text in the error
    ("SASL without TLS", {**SASL, "kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_password": "pw"},
     "ARGUS_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT: expected SASL_SSL"),
    ("SASL without a password", SASL, "expected ARGUS_KAFKA_SASL_USERNAME and a password"),
    ("SASL without a user", {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_password": "pw"},
     "expected ARGUS_KAFKA_SASL_USERNAME and a password"),
    ("a password both inline and as a file", {**SASL, "kafka_sasl_password": "pw", "kafka_sasl_password_file":
                                              "<password>"}, "expected one, got both"),
    ("a password file that is not there", {**SASL, "kafka_sasl_password_file": "<missing>"},
     "ARGUS_KAFKA_SASL_PASSWORD_FILE: expected a readable UTF-8 file"),
    ("credentials on a plaintext link", {"kafka_sasl_username": "argus", "kafka_sasl_password": "pw"},
     "ARGUS_KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not use them"),
    ("a CA file on a plaintext link", {"kafka_ssl_cafile": "<ca>"}, "ARGUS_KAFKA_SSL_CAFILE: set, but"),
    ("an unknown protocol", {"kafka_security_protocol": "TLS"}, "ARGUS_KAFKA_SECURITY_PROTOCOL"),
    ("Triton CA without Triton TLS", {"triton_ssl_root_certs": "<ca>"}, "expected ARGUS_TRITON_SSL=true"),
    ("Triton CA file missing", {"triton_ssl": True, "triton_ssl_root_certs": "<missing>"},
     "ARGUS_TRITON_SSL_ROOT_CERTS: expected a readable UTF-8 file"),
    ("Mongo URI both inline and as a file", {"mongo_uri": "mongodb://x", "mongo_uri_file": "<uri>"},
     "ARGUS_MONGO_URI and ARGUS_MONGO_URI_FILE: expected one, got both"),
    ("Mongo URI file without a URI", {"mongo_uri_file": "<not-a-uri>"}, "expected a mongodb:// or mongodb+srv://"),
]


def _resolve(settings: dict[str, object], files: dict[str, Path]) -> dict[str, object]:
    return {k: files[v[1:-1]] if isinstance(v, str) and v.startswith("<") else v for k, v in settings.items()}


@pytest.mark.parametrize(("settings", "expected"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_unsafe_or_incomplete_transport_settings_are_refused_naming_the_variable(
        settings: dict[str, object], expected: str, files: dict[str, Path]) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(**_resolve(settings, files))
    assert expected in str(info.value)
    assert "pw@" not in str(info.value) and "s3cret" not in str(info.value)


def test_sasl_plaintext_is_accepted_only_when_explicitly_allowed() -> None:
    s = load_settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="argus",
                      kafka_sasl_password="pw", kafka_allow_sasl_plaintext=True)
    assert s.kafka_security().client_config()["security_protocol"] == "SASL_PLAINTEXT"


def test_sasl_ssl_from_files_builds_the_client_config_and_keeps_the_password_out_of_reprs(
        files: dict[str, Path]) -> None:
    s = load_settings(**SASL, kafka_sasl_password_file=files["password"], kafka_ssl_cafile=files["ca"])
    security = s.kafka_security()
    assert security.client_config() == {
        "security_protocol": "SASL_SSL", "ssl_check_hostname": True, "ssl_cafile": str(files["ca"]),
        "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "argus", "sasl_plain_password": "s3cret-from-a-file"}
    assert "s3cret" not in repr(security) and "s3cret" not in repr(s) and "s3cret" not in str(s.redacted())


def test_the_mongo_uri_comes_from_its_file_when_given(files: dict[str, Path]) -> None:
    assert load_settings().mongo_connection_uri.get_secret_value() == "mongodb://127.0.0.1:27017"
    s = load_settings(mongo_uri_file=files["uri"])
    assert s.mongo_connection_uri.get_secret_value() == "mongodb://argus:pw@db:27017/?tls=true"
    assert "pw@" not in str(s.redacted()) and "pw@" not in repr(s)


def test_plaintext_is_the_default_and_sends_no_tls_or_sasl_options() -> None:
    assert load_settings().kafka_security().client_config() == {"security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"protocol": "SASL_SSL", "username": "argus"}, "expected a SASL username and password"),
    ({"protocol": "SASL_SSL", "username": "argus", "password": "pw", "sasl_mechanism": "GSSAPI"},
     "Kafka SASL mechanism: expected one of"),
    ({"protocol": "HTTPS"}, "Kafka security protocol: expected one of"),
])
def test_a_hand_built_kafka_security_is_as_strict(kwargs: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        KafkaSecurity(**kwargs)
