"""Deliberately broken manifests, rules, dashboards and Dockerfiles ARE caught — so a green check means something.

Each case breaks one thing in a copy of the rendered dev (or prod) overlay and expects a problem naming it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import k8s_check
import pytest
import yaml

Objs = list[dict[str, Any]]
Mut = Callable[[dict[str, Any]], object]


def _c(o: dict[str, Any], i: int = 0) -> dict[str, Any]:
    return o["spec"]["template"]["spec"]["containers"][i]


def _env(o: dict[str, Any], name: str) -> dict[str, Any]:
    return next(e for e in _c(o)["env"] if e["name"] == name)


def _volume(o: dict[str, Any], name: str) -> dict[str, Any]:
    return next(v for v in o["spec"]["template"]["spec"]["volumes"] if v["name"] == name)


def _set_cm(key: str, value: str) -> Mut:
    def f(o: dict[str, Any]) -> None:
        o["data"][key] = value
    return f


CASES: list[tuple[str, str, str, Mut, str]] = [
    # id, kind, name, mutation, expected text in a problem
    ("wrong type", "Deployment", "argus-alerter", lambda o: o["spec"].update(replicas="two"), "expected type"),
    ("unknown field", "Deployment", "argus-matcher", lambda o: _c(o).update(imagePullPolicyy="Always"),
     "unknown field"),
    ("unknown field in Service", "Service", "argus-ingest", lambda o: o["spec"].update(clusterIp="None"),
     "unknown field"),
    ("selector does not match labels", "Deployment", "argus-inference",
     lambda o: o["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/name": "argus-infer"}),
     "expected it to match the pod template labels"),
    ("Service selects nothing", "Service", "argus-matcher",
     lambda o: o["spec"]["selector"].update({"app.kubernetes.io/name": "argus-matchr"}), "matching none"),
    ("Service targetPort not a container port", "Service", "argus-alerter",
     lambda o: o["spec"]["ports"][0].update(targetPort="metric"), "expected a container port named 'metric'"),
    ("PDB selects nothing", "PodDisruptionBudget", "argus-triton",
     lambda o: o["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/name": "triton"}), "matching none"),
    ("NetworkPolicy selects nothing", "NetworkPolicy", "argus-mongodb",
     lambda o: o["spec"]["podSelector"]["matchLabels"].update({"app.kubernetes.io/name": "mongodb"}),
     "matching none"),
    ("NetworkPolicy peer selects nothing", "NetworkPolicy", "argus-triton",
     lambda o: o["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"].update(
         {"app.kubernetes.io/name": "argus-inferense"}), "expected it to match a pod"),
    ("ServiceMonitor port not on the Service", "ServiceMonitor", "argus-triton",
     lambda o: o["spec"]["endpoints"][0].update(port="prometheus"), "expected a port name of"),
    ("bad quantity", "StatefulSet", "argus-ingest", lambda o: _c(o)["resources"]["limits"].update(memory="1Gb"),
     "expected a quantity"),
    ("requests above limits", "StatefulSet", "argus-ingest",
     lambda o: _c(o)["resources"]["requests"].update(memory="8Gi"), "expected requests.memory <= limits.memory"),
    ("bad PVC size", "PersistentVolumeClaim", "argus-gallery",
     lambda o: o["spec"]["resources"]["requests"].update(storage="lots"), "expected a quantity"),
    ("runs as root", "Deployment", "argus-alerter",
     lambda o: o["spec"]["template"]["spec"]["securityContext"].update(runAsUser=0), "non-zero runAsUser"),
    ("writable root filesystem", "Deployment", "argus-triton",
     lambda o: _c(o)["securityContext"].update(readOnlyRootFilesystem=False), "readOnlyRootFilesystem"),
    ("liveness probe on the wrong path", "Deployment", "argus-matcher",
     lambda o: _c(o)["livenessProbe"]["httpGet"].update(path="/metrics"), "livenessProbe httpGet /healthz"),
    ("probe on a port the container lacks", "StatefulSet", "argus-ingest",
     lambda o: _c(o)["readinessProbe"]["httpGet"].update(port="http"), "expected a port of the container"),
    ("secret as a literal", "Deployment", "argus-alerter",
     lambda o: _env(o, "ARGUS_MONGO_URI_FILE").update(name="ARGUS_MONGO_URI", value="mongodb://u:p@db"),
     "expected valueFrom.secretKeyRef"),
    ("missing ConfigMap", "StatefulSet", "argus-ingest",
     lambda o: _volume(o, "cameras")["configMap"].update(name="cameras"),
     "expected ConfigMap 'cameras'"),
    ("unknown field in ScaledObject", "ScaledObject", "argus-inference",
     lambda o: o["spec"].update(maxReplicas=3), "unknown field"),
    ("wrong type in KafkaTopic", "KafkaTopic", "argus-frames-v2", lambda o: o["spec"].update(partitions="six"),
     "expected type integer"),
    ("unknown field in Kafka listener", "Kafka", "argus",
     lambda o: o["spec"]["kafka"]["listeners"][0].update(authentification={"type": "tls"}), "unknown field"),
    ("invalid Kafka listener name", "Kafka", "argus",
     lambda o: o["spec"]["kafka"]["listeners"][0].update(name="plain_text"), "does not match"),
    ("node pool role misspelt", "KafkaNodePool", "dual-role", lambda o: o["spec"].update(roles=["brokers"]),
     "is not one of"),
    ("unknown field in ServiceMonitor endpoint", "ServiceMonitor", "argus-ingest",
     lambda o: o["spec"]["endpoints"][0].update(intervall="15s"), "unknown field"),
    ("bad duration in PrometheusRule", "PrometheusRule", "argus",
     lambda o: o["spec"]["groups"][0]["rules"][0].update({"for": "2 minutes"}), "does not match"),
    ("topic retention differs from the code", "KafkaTopic", "argus-faces-v3",
     lambda o: o["spec"]["config"].update({"retention.ms": 3600000}), "argus.bus.kafka.topic_config"),
    ("partitions differ from ARGUS_KAFKA_PARTITIONS", "KafkaTopic", "argus-matches-v3",
     lambda o: o["spec"].update(partitions=3), "expected ARGUS_KAFKA_PARTITIONS"),
    ("the gallery topic is not compacted", "KafkaTopic", "argus-gallery-v1",
     lambda o: o["spec"]["config"].update({"cleanup.policy": "delete"}), "GALLERY_TOPIC_CONFIG"),
    ("the gallery topic split into partitions", "KafkaTopic", "argus-gallery-v1",
     lambda o: o["spec"].update(partitions=6), "expected GALLERY_PARTITIONS = 1"),
    ("a ReadWriteMany gallery volume though the gallery replicates through Kafka", "PersistentVolumeClaim",
     "argus-gallery", lambda o: o["spec"].update(accessModes=["ReadWriteMany"]), "expected no ReadWriteMany"),
    ("KEDA watches the wrong consumer group", "ScaledObject", "argus-matcher",
     lambda o: o["spec"]["triggers"][0]["metadata"].update(consumerGroup="matcher"), "consumerGroup"),
    ("KEDA may exceed the partitions", "ScaledObject", "argus-inference",
     lambda o: o["spec"].update(maxReplicaCount=50), "more consumers would idle"),
    ("ScaledObject targets nothing", "ScaledObject", "argus-matcher",
     lambda o: o["spec"]["scaleTargetRef"].update(name="matcher"), "expected an existing Deployment"),
    ("ingest replicas differ from its camera shards", "StatefulSet", "argus-ingest",
     lambda o: o["spec"].update(replicas=2), "expected ARGUS_INGEST_SHARDS = 1"),
    ("ingest as a Deployment has no stable shard ordinal", "StatefulSet", "argus-ingest",
     lambda o: o.update(kind="Deployment"), "expected a StatefulSet"),
    # the operator API
    ("API readiness probe on the wrong path", "Deployment", "argus-api",
     lambda o: _c(o)["readinessProbe"]["httpGet"].update(path="/healthz"), "expected readinessProbe httpGet /readyz"),
    ("API liveness probe on the API port", "Deployment", "argus-api",
     lambda o: _c(o)["livenessProbe"]["httpGet"].update(port="http"), "expected livenessProbe httpGet /healthz"),
    ("API with one replica", "Deployment", "argus-api", lambda o: o["spec"].update(replicas=1),
     "expected at least 2"),
    ("API bound to loopback", "Deployment", "argus-api",
     lambda o: _env(o, "ARGUS_API_HOST").update(value="127.0.0.1"), "ARGUS_API_HOST: expected 0.0.0.0"),
    ("API port differs from its container port", "Deployment", "argus-api",
     lambda o: _env(o, "ARGUS_API_PORT").update(value="8081"), "expected ARGUS_API_PORT = 8081"),
    ("API env name unknown to Settings", "Deployment", "argus-api",
     lambda o: _c(o)["env"].append({"name": "ARGUS_API_PORTT", "value": "8080"}),
     "ARGUS_API_PORTT: expected a setting"),
    ("API image of another service", "Deployment", "argus-api",
     lambda o: _c(o).update(image="registry.example.com/argus/alerter:dev"), "expected the api image"),
    ("API not scraped", "ServiceMonitor", "argus-api",
     lambda o: o["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/name": "argus-apii"}),
     "expected a ServiceMonitor scraping its port 'metrics'"),
    ("API port open to every source", "NetworkPolicy", "argus-api", lambda o: o["spec"]["ingress"][0].pop("from"),
     "expected ingress to port 8080 only from the ingress controller"),
    ("API metrics open to the ingress controller", "NetworkPolicy", "argus-api",
     lambda o: o["spec"]["ingress"][0]["ports"].append({"protocol": "TCP", "port": 9100}),
     "expected port 9100 (metrics, health) only from the monitoring namespace"),
    ("API cannot reach MongoDB", "NetworkPolicy", "argus-mongodb",
     lambda o: o["spec"]["ingress"][0]["from"].pop(1), "Deployment/argus/argus-api: NetworkPolicy: expected it to "
                                                       "reach argus-mongodb"),
    ("ingest cannot write camera health", "NetworkPolicy", "argus-ingest",
     lambda o: o["spec"]["egress"].pop(2), "StatefulSet/argus/argus-ingest: NetworkPolicy: expected it to reach "
                                           "argus-mongodb"),
    ("API cannot reach Triton to enroll", "NetworkPolicy", "argus-triton",
     lambda o: o["spec"]["ingress"][0]["from"].pop(2), "expected egress to Triton"),
    ("API egress to anywhere", "NetworkPolicy", "argus-api",
     lambda o: o["spec"]["egress"].append({"ports": [{"protocol": "TCP", "port": 443}]}),
     "expected named destinations"),
    ("API egress to an address block without OIDC", "NetworkPolicy", "argus-api",
     lambda o: o["spec"]["egress"].append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}), "expected no address block"),
    ("API Service without the http port", "Service", "argus-api", lambda o: o["spec"]["ports"].pop(0),
     "expected a Service exposing its port http"),
]


@pytest.fixture(scope="module")
def dev(rendered: dict[str, Objs]) -> Objs:
    assert k8s_check.check_manifests(rendered["dev"]) == []  # the baseline is clean, so each hit is the mutation's
    return rendered["dev"]


@pytest.mark.parametrize(("kind", "name", "mutation", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_broken_manifest_is_caught(dev: Objs, kind: str, name: str, mutation: Mut, expected: str) -> None:
    problems = [str(p) for p in k8s_check.check_manifests(k8s_check.mutate(dev, kind, name, mutation))]
    assert any(expected in p for p in problems), f"expected a problem containing {expected!r}, got {problems}"


def _config(objs: Objs) -> str:
    return next(o["metadata"]["name"] for o in objs if o["kind"] == "ConfigMap"
                and o["metadata"]["name"].startswith("argus-config"))


def _cameras(objs: Objs) -> str:
    return next(o["metadata"]["name"] for o in objs if o["kind"] == "ConfigMap"
                and o["metadata"]["name"].startswith("argus-cameras"))


@pytest.mark.parametrize(("which", "mutation", "expected"), [
    ("config", _set_cm("ARGUS_INFERENCE_BATCH_MAXX", "8"), "ARGUS_INFERENCE_BATCH_MAXX: expected a setting"),
    ("config", _set_cm("ARGUS_INFERENCE_BATCH_MAX", "0"), "ARGUS_INFERENCE_BATCH_MAX"),
    ("config", _set_cm("ARGUS_SINKS", "log,pager"), "ARGUS_SINKS"),
    ("cameras", _set_cm("cameras.toml", '[[camera]]\nid = "A b"\nname = "x"\nurl = "rtsp://h/s"\nfps = 0\n'
                        '[camera.location]\nlat = 1.0\nlon = 2.0\naddress = "a"\nzone = "z"\n'), "fps"),
], ids=["unknown setting", "invalid setting", "unknown sink", "invalid camera registry"])
def test_broken_configuration_is_caught(dev: Objs, which: str, mutation: Mut, expected: str) -> None:
    name = _config(dev) if which == "config" else _cameras(dev)
    problems = [str(p) for p in k8s_check.check_manifests(k8s_check.mutate(dev, "ConfigMap", name, mutation))]
    assert any(expected in p for p in problems), f"expected a problem containing {expected!r}, got {problems}"


def test_unrendered_custom_kind_without_schema_is_caught(dev: Objs) -> None:
    stray = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor", "metadata": {"name": "x"}, "spec": {}}
    problems = [str(p) for p in k8s_check.check_custom([*dev, stray])]
    assert problems == ["PodMonitor/x: no CRD schema in deploy/k8s/schemas for apiVersion "
                        "'monitoring.coreos.com/v1' kind 'PodMonitor'"]


def test_quantity_parser() -> None:
    assert k8s_check.parse_quantity("500m") == k8s_check.parse_quantity("0.5")
    assert k8s_check.parse_quantity("2Gi") == 2 * 1024**3
    assert k8s_check.parse_quantity(1) == 1
    assert k8s_check.parse_quantity("1e3") == 1000
    for bad in ("1Gb", "", "1.2.3", "Mi", True, None):
        with pytest.raises(ValueError, match="expected a quantity"):
            k8s_check.parse_quantity(bad)


# ---- rules ------------------------------------------------------------------------------------------------------
def _rule(objs: Objs, alert: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def find(o: dict[str, Any]) -> dict[str, Any]:
        return next(r for g in o["spec"]["groups"] for r in g["rules"] if r.get("alert") == alert)
    return find


@pytest.mark.parametrize(("mutation", "expected"), [
    (lambda r: r.update(expr="max by (camera) (argus_ingest_camera_upp) == 0"), "metric 'argus_ingest_camera_upp'"),
    (lambda r: r.update(expr="max by (camera) (argus_ingest_camera_up) == 2"), "promtool test rules"),
    (lambda r: r.update(expr="max by (camera) (argus_ingest_camera_up) = 0"), "promtool check rules"),
    (lambda r: r.update(alert="ArgusCameraOffline"), "alert ArgusCameraOffline: expected a unit test"),
    (lambda r: r["labels"].update(severity="page"), "labels.severity"),
], ids=["unknown metric", "alert no longer fires in its test", "PromQL syntax", "alert without test",
        "bad severity"])
def test_broken_rules_are_caught(dev: Objs, promtool: str, mutation: Mut, expected: str) -> None:
    find = _rule(dev, "ArgusCameraDown")
    broken = k8s_check.mutate(dev, "PrometheusRule", "argus", lambda o: mutation(find(o)))
    problems = [str(p) for p in k8s_check.check_rules(broken)]
    assert any(expected in p for p in problems), f"expected a problem containing {expected!r}, got {problems}"


def test_name_regex_with_an_unknown_alternative_is_caught() -> None:
    problems = k8s_check.check_metric_names(
        [("x", 'sum({__name__=~"argus_(inference|matcher|alerterr)_consumer_lag"})')], k8s_check.known_metrics())
    assert [p.message for p in problems] == [
        "__name__=~'argus_(inference|matcher|alerterr)_consumer_lag': expected every alternative to be an exported "
        "metric, got unknown 'argus_alerterr_consumer_lag'"]


# ---- dashboard ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("mutation", "expected"), [
    (lambda d: d["panels"][0]["targets"][0].update(expr="sum(rate(argus_ingest_frames_sent_total[1m]))"),
     "metric 'argus_ingest_frames_sent_total'"),
    (lambda d: d["panels"][1]["targets"][0].update(expr="sum by camera (rate(argus_ingest_frames_dropped_total[1m]))"),
     "expected every expr to parse"),
    (lambda d: d["panels"][2].update(targets=[]), "expected targets with a non-empty expr"),
    (lambda d: d["panels"][3].update(id=1), "expected unique ids"),
], ids=["unknown metric", "PromQL syntax", "panel without expr", "duplicate panel id"])
def test_broken_dashboard_is_caught(tmp_path: Path, promtool: str, mutation: Mut, expected: str) -> None:
    dash = json.loads(k8s_check.DASHBOARD.read_text())
    mutation(dash)
    path = tmp_path / "argus-dashboard.json"
    path.write_text(json.dumps(dash))
    problems = [str(p) for p in k8s_check.check_dashboard(path)]
    assert any(expected in p for p in problems), f"expected a problem containing {expected!r}, got {problems}"


def test_dashboard_edited_by_hand_is_caught(tmp_path: Path, promtool: str) -> None:
    shutil.copy(k8s_check.DASHBOARD.parent / "build_dashboard.py", tmp_path / "build_dashboard.py")
    dash = json.loads(k8s_check.DASHBOARD.read_text())
    dash["title"] = "edited by hand"
    (tmp_path / "argus-dashboard.json").write_text(json.dumps(dash, indent=2) + "\n")
    problems = [str(p) for p in k8s_check.check_dashboard(tmp_path / "argus-dashboard.json")]
    assert any("expected the file build_dashboard.py generates" in p for p in problems), problems


# ---- Dockerfiles ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("stage", "old", "new", "expected"), [
    ("ingest", "USER 10001:10001", "USER root", "USER: expected a non-root user"),
    ("matcher", "USER 10001:10001\n", "", "expected a USER instruction"),
    ("alerter", '"argus", "run", "alerter"', '"argus", "run", "matcher"', "ENTRYPOINT: expected"),
    ("inference", "[kafka,triton]", "[kafka]", "expected extras ['kafka', 'triton']"),
    ("ingest", "FROM python:3.11-slim\nENV", "FROM python:3.12\nENV", "expected python:3.11-slim"),
    ("matcher", 'ENTRYPOINT ["argus", "run", "matcher"]', "ENTRYPOINT argus run matcher", "exec form"),
], ids=["root user", "no USER", "wrong stage", "missing extra", "wrong base", "shell-form entrypoint"])
def test_broken_dockerfile_is_caught(tmp_path: Path, stage: str, old: str, new: str, expected: str) -> None:
    text = (k8s_check.DOCKER_DIR / f"{stage}.Dockerfile").read_text()
    assert old in text, f"expected {old!r} in {stage}.Dockerfile"
    path = tmp_path / f"{stage}.Dockerfile"
    path.write_text(text.replace(old, new))
    problems = [str(p) for p in k8s_check.check_dockerfile(path, stage)]
    assert any(expected in p for p in problems), f"expected a problem containing {expected!r}, got {problems}"


def test_pod_uid_must_match_the_dockerfile_user(dev: Objs) -> None:
    broken = k8s_check.mutate(dev, "Deployment", "argus-inference",
                              lambda o: o["spec"]["template"]["spec"]["securityContext"].update(runAsUser=1000))
    problems = [str(p) for p in k8s_check.check_manifests(broken)]
    assert "Deployment/argus/argus-inference: runAsUser: expected 10001 (USER in inference.Dockerfile), got 1000" \
        in problems


def test_kustomize_failure_is_reported(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({"resources": ["missing.yaml"]}))
    with pytest.raises(k8s_check.CheckError, match="kubectl kustomize .*expected exit 0"):
        k8s_check.render(tmp_path)


def test_api_oidc_url_without_egress_to_the_idp_is_caught(rendered: dict[str, Objs]) -> None:
    """prod fetches the JWKS from an https URL: dropping the IdP rule from its policy must be caught."""
    prod = rendered["prod"]
    assert k8s_check.check_manifests(prod) == []
    broken = k8s_check.mutate(prod, "NetworkPolicy", "argus-api", lambda o: o["spec"]["egress"].pop())
    problems = [str(p) for p in k8s_check.check_manifests(broken)]
    assert any("expected egress to the identity provider (login.example.com) on TCP 443" in p for p in problems), \
        problems


def test_unknown_api_setting_in_its_configmap_is_caught(dev: Objs) -> None:
    name = next(o["metadata"]["name"] for o in dev if o["kind"] == "ConfigMap"
                and o["metadata"]["name"].startswith("argus-api"))
    broken = k8s_check.mutate(dev, "ConfigMap", name, _set_cm("ARGUS_API_OIDC_ISSUR", "https://x"))
    problems = [str(p) for p in k8s_check.check_manifests(broken)]
    assert f"ConfigMap/{name}: ARGUS_API_OIDC_ISSUR: expected a setting among `argus config --list`, got an unknown " \
           f"variable" in problems


def test_every_service_has_a_dockerfile_entrypoint_of_its_name() -> None:
    assert (*k8s_check.STAGES, "api") == k8s_check.SERVICES
    assert k8s_check.check_dockerfiles() == []
    assert "api" not in k8s_check.STAGES  # no topics: not a bus stage
