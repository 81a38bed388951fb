"""The prod overlay encrypts and authenticates every link, and no secret value is inline in a manifest: the check
passes on the real overlays and names each deliberately broken case."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import k8s_check
import pytest

Objs = list[dict[str, Any]]


def _name(objs: Objs, kind: str, prefix: str) -> str:
    return next(str(o["metadata"]["name"]) for o in objs
                if o.get("kind") == kind and str(o["metadata"]["name"]).startswith(prefix))


def _container(o: dict[str, Any]) -> dict[str, Any]:
    return o["spec"]["template"]["spec"]["containers"][0]


def _drop_volume(volume: str) -> Callable[[dict[str, Any]], None]:
    def f(o: dict[str, Any]) -> None:
        spec = o["spec"]["template"]["spec"]
        spec["volumes"] = [v for v in spec["volumes"] if v["name"] != volume]
        c = _container(o)
        c["volumeMounts"] = [m for m in c["volumeMounts"] if m["name"] != volume]
    return f


def _drop_arg(flag: str) -> Callable[[dict[str, Any]], None]:
    def f(o: dict[str, Any]) -> None:
        _container(o)["args"] = [a for a in _container(o)["args"] if a != flag]
    return f


def _plaintext_listener(o: dict[str, Any]) -> None:
    o["spec"]["kafka"]["listeners"][0].update(tls=False)
    o["spec"]["kafka"]["listeners"][0].pop("authentication")


def _keda_without_sasl(o: dict[str, Any]) -> None:
    o["spec"]["triggers"][0]["metadata"].pop("sasl")


def test_prod_overlay_uses_tls_everywhere_and_keeps_secrets_out_of_manifests(
        rendered: dict[str, Objs]) -> None:
    assert k8s_check.check_transport_security(rendered["prod"], require_tls=True) == []


def test_dev_overlay_keeps_secrets_out_of_manifests_and_is_not_prod_grade(rendered: dict[str, Objs]) -> None:
    assert k8s_check.check_transport_security(rendered["dev"], require_tls=False) == []
    text = "\n".join(p.message for p in k8s_check.check_transport_security(rendered["dev"], require_tls=True))
    assert "expected SASL_SSL in prod" in text and "expected tls: true" in text


CASES: list[tuple[str, str, str, Callable[[dict[str, Any]], object], str]] = [
    # id, kind, name (or prefix for the hashed ConfigMap), mutation, expected text in a problem
    ("kafka plaintext client", "ConfigMap", "argus-config-",
     lambda o: o["data"].update(ARGUS_KAFKA_SECURITY_PROTOCOL="PLAINTEXT"), "expected SASL_SSL in prod"),
    ("triton plaintext client", "ConfigMap", "argus-config-",
     lambda o: o["data"].update(ARGUS_TRITON_SSL="false"), "ARGUS_TRITON_SSL: expected true"),
    ("password inline in a ConfigMap", "ConfigMap", "argus-config-",
     lambda o: o["data"].update(ARGUS_KAFKA_SASL_PASSWORD="hunter2hunter2"), "value inline in a ConfigMap"),
    ("plaintext broker listener", "Kafka", "argus", _plaintext_listener, "expected tls: true with authentication"),
    ("KEDA lag reader without SASL", "ScaledObject", "argus-inference", _keda_without_sasl, "sasl: scram_sha512"),
    ("triton without TLS", "Deployment", "argus-triton", _drop_arg("--grpc-use-ssl=true"), "--grpc-use-ssl=true"),
    ("mongodb without TLS", "StatefulSet", "argus-mongodb", _drop_arg("--tlsMode=requireTLS"), "requireTLS"),
    ("stage without the Kafka password mount", "Deployment", "argus-matcher", _drop_volume("kafka-user"),
     "ARGUS_KAFKA_SASL_PASSWORD_FILE=/etc/argus/kafka-user/password: expected a file on a mounted Secret volume"),
]


@pytest.mark.parametrize(("kind", "name", "mutation", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_weakened_prod_link_is_named(rendered: dict[str, Objs], kind: str, name: str,
                                      mutation: Callable[[dict[str, Any]], object], expected: str) -> None:
    objs = rendered["prod"]
    target = _name(objs, kind, name) if name.endswith("-") else name
    broken = k8s_check.mutate(objs, kind, target, mutation)
    problems = k8s_check.check_transport_security(broken, require_tls=True)
    assert any(expected in p.message for p in problems), [p.message for p in problems]
