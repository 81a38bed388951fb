"""The real overlays render and pass every check; the facts the issue asks for hold in each of them."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import k8s_check
import pytest
import yaml

from argus import schemas, topology
from argus.bus.kafka import topic_config
from argus.gallery.replication import GALLERY_PARTITIONS, GALLERY_TOPIC_CONFIG

Objs = list[dict[str, Any]]


def _get(objs: Objs, kind: str, name: str) -> dict[str, Any]:
    hits = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(hits) == 1, f"expected one {kind}/{name}, got {len(hits)}"
    return hits[0]


def _container(obj: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in obj["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def _wanted_topics() -> set[str]:
    """Every topic a cluster needs: the pipeline's (argus.topology), the drain control topic and the replicated
    gallery; and no wire topic in argus.schemas left without one."""
    wanted = {*topology.ALL_TOPICS, schemas.TOPIC_CONTROL, topology.TOPIC_GALLERY}
    assert {getattr(schemas, n) for n in dir(schemas) if n.startswith("TOPIC_")} <= wanted
    return wanted


@pytest.mark.parametrize("overlay", k8s_check.OVERLAYS)
def test_overlay_passes_every_manifest_check(rendered: dict[str, Objs], overlay: str) -> None:
    problems = k8s_check.check_manifests(rendered[overlay])
    assert [str(p) for p in problems] == []


@pytest.mark.parametrize("overlay", k8s_check.OVERLAYS)
def test_overlay_has_every_component(rendered: dict[str, Objs], overlay: str) -> None:
    kinds = Counter(o["kind"] for o in rendered[overlay])
    deployments = {o["metadata"]["name"] for o in rendered[overlay] if o["kind"] == "Deployment"}
    statefulsets = {o["metadata"]["name"] for o in rendered[overlay] if o["kind"] == "StatefulSet"}
    assert {"argus-inference", "argus-matcher", "argus-alerter", "argus-api", "argus-triton"} <= deployments
    assert statefulsets == {"argus-ingest", "argus-mongodb"}  # ingest: one camera shard per ordinal
    assert kinds["Kafka"] == 1 and kinds["KafkaTopic"] == len(_wanted_topics())
    assert kinds["ScaledObject"] == 2 and kinds["PrometheusRule"] == 1
    assert kinds["ServiceMonitor"] == 6  # four stages + the API + Triton
    assert kinds["PodDisruptionBudget"] == 7 and kinds["NetworkPolicy"] == 8
    assert kinds["Secret"] == 0


def test_custom_resources_are_validated_not_skipped(rendered: dict[str, Objs]) -> None:
    schemas_ = k8s_check.load_crd_schemas()
    assert set(schemas_) == {("monitoring.coreos.com/v1", "ServiceMonitor"),
                             ("monitoring.coreos.com/v1", "PrometheusRule"),
                             ("keda.sh/v1alpha1", "ScaledObject"), ("kafka.strimzi.io/v1beta2", "Kafka"),
                             ("kafka.strimzi.io/v1beta2", "KafkaNodePool"), ("kafka.strimzi.io/v1beta2", "KafkaTopic")}
    for objs in rendered.values():
        custom = [o for o in objs if o["apiVersion"].split("/")[0] in k8s_check.CUSTOM_GROUPS]
        assert {(o["apiVersion"], o["kind"]) for o in custom} == set(schemas_)


def test_dev_triton_runs_cpu_configs_and_prod_gpu(rendered: dict[str, Objs]) -> None:
    dev = _container(_get(rendered["dev"], "Deployment", "argus-triton"), "triton")
    prod_dep = _get(rendered["prod"], "Deployment", "argus-triton")
    prod = _container(prod_dep, "triton")
    assert "--model-config-name=cpu" in dev["args"]
    assert "nvidia.com/gpu" not in dev["resources"].get("limits", {})
    assert {"name": "PYTHONPATH", "value": "/repo/pylib"} in dev["env"]
    assert not any(a.startswith("--model-config-name") for a in prod["args"])
    assert prod["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert prod_dep["spec"]["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    for c in (dev, prod):
        assert c["image"].startswith("nvcr.io/nvidia/tritonserver:") and c["image"].endswith("-py3")
        assert {"--grpc-port=8001", "--metrics-port=8002", "--model-repository=/repo/models"} <= set(c["args"])


def test_topics_match_the_code_and_partitions_grow_in_prod(rendered: dict[str, Objs]) -> None:
    wanted = _wanted_topics()
    for overlay, partitions in (("dev", 6), ("prod", 24)):
        topics = {o["spec"]["topicName"]: o["spec"] for o in rendered[overlay] if o["kind"] == "KafkaTopic"}
        assert set(topics) == wanted
        for name, spec in topics.items():
            gallery = name == topology.TOPIC_GALLERY  # one partition: one total order of watch-list changes
            assert spec["partitions"] == (GALLERY_PARTITIONS if gallery else partitions), name
            want = GALLERY_TOPIC_CONFIG if gallery else topic_config(name)
            assert {k: str(spec["config"][k]) for k in want} == want, name
        assert topics[schemas.TOPIC_CONTROL]["config"]["cleanup.policy"] == "compact"  # latest state per instance
    scaled = {o["metadata"]["name"]: o["spec"] for o in rendered["prod"] if o["kind"] == "ScaledObject"}
    assert scaled["argus-inference"]["triggers"][0]["metadata"]["consumerGroup"] == "argus-inference"
    assert scaled["argus-matcher"]["triggers"][0]["metadata"]["consumerGroup"] == "argus-matcher"
    assert scaled["argus-inference"]["maxReplicaCount"] == 24


def _mongo_uri_secret(workload: dict[str, Any], container: str, env: dict[str, Any]) -> dict[str, str]:
    """The Secret and key that ARGUS_MONGO_URI_FILE's file comes from."""
    path = env["ARGUS_MONGO_URI_FILE"]["value"]
    mounts = {m["name"]: m["mountPath"] for m in _container(workload, container)["volumeMounts"]}
    for v in workload["spec"]["template"]["spec"]["volumes"]:
        secret = v.get("secret") or {}
        for item in secret.get("items") or []:
            if v["name"] in mounts and f"{mounts[v['name']]}/{item['path']}" == path:
                return {"secretName": secret["secretName"], "key": item["key"]}
    raise AssertionError(f"ARGUS_MONGO_URI_FILE={path}: expected a file on a Secret volume, got none")


def test_secrets_come_only_from_secret_refs(rendered: dict[str, Objs]) -> None:
    for objs in rendered.values():
        alerter = _get(objs, "Deployment", "argus-alerter")
        env = {e["name"]: e for e in _container(alerter, "alerter")["env"]}
        assert "ARGUS_MONGO_URI" not in env  # a file on a Secret volume instead: never in the environment
        assert _mongo_uri_secret(alerter, "alerter", env) == {"secretName": "argus-secrets", "key": "mongo-uri"}
        assert env["ARGUS_WEBHOOK_URL"]["valueFrom"]["secretKeyRef"]["key"] == "webhook-url"
        config = k8s_check._config_env(objs)
        assert not any(k.endswith(("_URI", "_WEBHOOK_URL", "_PASSWORD", "_SECRET")) for k in config)


def test_matchers_follow_the_gallery_topic_and_mount_no_shared_volume(rendered: dict[str, Objs]) -> None:
    """ARGUS_GALLERY_SYNC=bus: the writer (API, toolbox) keeps the gallery on its ReadWriteOnce volume and publishes
    to argus.gallery.v1; each matcher replays the topic into a snapshot in its own emptyDir, so no volume is shared
    and no ReadWriteMany storage class is needed."""
    for overlay in k8s_check.OVERLAYS:
        objs = rendered[overlay]
        assert [o["spec"]["accessModes"] for o in objs if o["kind"] == "PersistentVolumeClaim"] == [["ReadWriteOnce"]]
        pvc = _get(objs, "PersistentVolumeClaim", "argus-gallery")
        assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
        topics = {o["spec"]["topicName"] for o in objs if o["kind"] == "KafkaTopic"}
        assert topology.TOPIC_GALLERY in topics
        matcher = _get(objs, "Deployment", "argus-matcher")
        pod = matcher["spec"]["template"]["spec"]
        env = k8s_check._effective_env(objs, matcher, _container(matcher, "matcher"))
        assert env["ARGUS_GALLERY_SYNC"] == "bus"
        assert env["ARGUS_GALLERY_PATH"] == "/var/lib/argus-gallery"
        vols = {v["name"]: v for v in pod["volumes"]}
        assert not any("persistentVolumeClaim" in v for v in vols.values()), vols  # nothing shared between replicas
        mounts = {m["mountPath"]: m["name"] for m in _container(matcher, "matcher")["volumeMounts"]}
        assert "emptyDir" in vols[mounts[env["ARGUS_GALLERY_PATH"]]]  # the snapshot it replays the topic into


def test_cli_validates_everything_and_prints_one_line_per_problem(rendered: dict[str, Objs], promtool: str) -> None:
    proc = subprocess.run([sys.executable, str(k8s_check.ROOT / "tools" / "k8s_check.py")], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == ""
    counts = ", ".join(  # every rendered object validated, the custom resources against their CRD schemas
        f"{name} {len(objs)} ({sum(o['apiVersion'].split('/')[0] in k8s_check.CUSTOM_GROUPS for o in objs)} custom)"
        for name, objs in rendered.items())
    assert "problems: 0" in proc.stderr and f"objects validated: {counts};" in proc.stderr, proc.stderr


@pytest.mark.parametrize("overlay", k8s_check.OVERLAYS)
def test_kubernetes_validate_cli_strict_accepts_the_builtin_objects(rendered: dict[str, Objs], overlay: str) -> None:
    """The same verdict from the kubernetes-validate command itself (check_builtin uses its schemas and also lists
    every error, not just the first); a planted unknown field makes it fail, so the pass means something."""
    exe = str(Path(sys.executable).parent / "kubernetes-validate")
    builtin = [o for o in rendered[overlay] if o["apiVersion"].split("/")[0] not in k8s_check.CUSTOM_GROUPS]
    args = [exe, "--strict", "-k", k8s_check.K8S_VERSION, "--quiet", "-"]
    ok = subprocess.run(args, input=yaml.safe_dump_all(builtin), capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = k8s_check.mutate(builtin, "Service", "argus-alerter", lambda o: o["spec"].update(bogus=1))
    bad = subprocess.run(args, input=yaml.safe_dump_all(broken), capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "'bogus' was unexpected" in bad.stdout + bad.stderr


@pytest.mark.parametrize("overlay", k8s_check.OVERLAYS)
def test_api_runs_two_replicas_on_8080_with_the_ops_port_probed(rendered: dict[str, Objs], overlay: str) -> None:
    dep = _get(rendered[overlay], "Deployment", "argus-api")
    api = _container(dep, "api")
    assert dep["spec"]["replicas"] == 2
    assert api["command"] == ["argus", "run", "api"]
    env = {e["name"]: e for e in api["env"]}
    assert env["ARGUS_API_HOST"]["value"] == "0.0.0.0" and env["ARGUS_API_PORT"]["value"] == "8080"
    assert _mongo_uri_secret(dep, "api", env) == {"secretName": "argus-secrets", "key": "mongo-uri"}
    assert {p["name"]: p["containerPort"] for p in api["ports"]} == {"http": 8080, "metrics": 9100}
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert vols["gallery"]["persistentVolumeClaim"]["claimName"] == "argus-gallery"
    mounts = {m["name"]: m["mountPath"] for m in api["volumeMounts"]}
    assert mounts["gallery"] == k8s_check._config_env(rendered[overlay])["ARGUS_GALLERY_PATH"]
    svc = _get(rendered[overlay], "Service", "argus-api")
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"http": 8080, "metrics": 9100}
    monitor = _get(rendered[overlay], "ServiceMonitor", "argus-api")
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]


def test_api_network_reach_follows_the_config(rendered: dict[str, Objs]) -> None:
    """The API port is open to the ingress controller and nothing else; the ops port to Prometheus only; MongoDB
    is reachable from the API and from ingest (camera health); the IdP only where OIDC is configured (prod)."""
    Ep = k8s_check.Endpoint
    for overlay in k8s_check.OVERLAYS:
        objs = rendered[overlay]
        api = k8s_check._pod_endpoint(_get(objs, "Deployment", "argus-api"))
        mongo = k8s_check._pod_endpoint(_get(objs, "StatefulSet", "argus-mongodb"))
        ingest = k8s_check._pod_endpoint(_get(objs, "StatefulSet", "argus-ingest"))
        controller = Ep("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
        prometheus = Ep("monitoring", {"app.kubernetes.io/name": "prometheus"})
        assert k8s_check.allows(objs, controller, api, 8080)
        assert not k8s_check.allows(objs, controller, api, 9100)
        assert not k8s_check.allows(objs, Ep("argus", {"app.kubernetes.io/name": "argus-matcher"}), api, 8080)
        assert not k8s_check.allows(objs, Ep("default", {"run": "curl"}), api, 8080)
        assert k8s_check.allows(objs, prometheus, api, 9100) and not k8s_check.allows(objs, prometheus, api, 8080)
        assert k8s_check.allows(objs, api, mongo, 27017) and k8s_check.allows(objs, ingest, mongo, 27017)
        oidc = "ARGUS_API_OIDC_JWKS" in (k8s_check._configmap_data(objs, next(
            o["metadata"]["name"] for o in objs if o["kind"] == "ConfigMap"
            and o["metadata"]["name"].startswith("argus-api")), "argus") or {})
        assert oidc == (overlay == "prod")
        assert k8s_check.allows(objs, api, Ep("", None), 443) == oidc
