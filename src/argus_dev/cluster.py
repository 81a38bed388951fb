"""The four stages as separate OS processes over real servers: what ``argus demo --distributed`` and the
end-to-end tests run, and the closest a laptop gets to the Kubernetes deployment.

Each stage is ``python -m argus.cli run <stage>`` — the container entry point — with its configuration passed
only through ``ARGUS_*`` environment variables, its own metrics port and its own log file. Nothing is shared
between the processes except the servers (Kafka, Triton, MongoDB) and the gallery directory, exactly as in a
cluster. :class:`LocalCluster` starts, kills (SIGKILL, to test redelivery), restarts and stops them, runs several
replicas (members) of a stage and adds one mid-stream (a rebalance), and knows when the pipeline has drained — by
the same rule ``argus run <stage> --exit-when-drained`` applies (argus.runtime.drain): every ingest shard recorded
``finished`` on ``argus.control.v1``, then every consumer group, in pipeline order, committed its whole input. With
``exit_when_drained=True`` every stage is started with that flag and :meth:`LocalCluster.wait_exited` waits for
each process to end by itself.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from argus.config import Settings, load_settings
from argus.errors import ArgusError, ConfigError
from argus.runtime.drain import DrainCheck
from argus.schemas import TOPIC_CONTROL
from argus.topology import ALL_TOPICS, CONSUMING_STAGES, INPUT_TOPICS, STAGES, consumer_group

log = logging.getLogger(__name__)


class ClusterError(ArgusError):
    """A stage process failed to start, died, or the pipeline did not drain in time."""


@dataclass(frozen=True)
class Servers:
    """Where the real servers are. ``prometheus_state_dir`` lets the cluster register its stages as scrape
    targets with the project's development Prometheus (``argus_dev.devservers.prometheus.configure``)."""

    kafka: str
    triton: str
    mongo_uri: str = field(repr=False)  # may carry a password
    triton_metrics: str | None = None  # host:port of Triton's Prometheus endpoint
    prometheus: str | None = None  # base URL
    prometheus_state_dir: Path | None = None

    @classmethod
    def from_dev(cls, *, state_dir: Path | None = None) -> Servers:
        """The servers ``argus dev up`` started; a clear error naming what is missing otherwise."""
        from argus_dev import devservers

        st = devservers.status(state_dir=state_dir)
        missing = [n for n in ("kafka", "triton", "mongo") if st.get(n) is None]
        if missing:
            raise ConfigError(f"the distributed demo needs {', '.join(missing)} running; start them with "
                              f"`argus dev up` (installs them on first use), then run it again")
        kafka, triton, mongo, prom = st["kafka"], st["triton"], st["mongo"], st.get("prometheus")
        assert kafka is not None and triton is not None and mongo is not None  # checked above, for mypy
        return cls(kafka=kafka.address, triton=triton.address, mongo_uri=mongo.address,
                   triton_metrics=f"{triton.host}:{triton.ports['triton_metrics']}",
                   prometheus=prom.address if prom else None,
                   prometheus_state_dir=Path(prom.state_dir) if prom else None)


@dataclass
class StageProcess:
    """One ``argus run <stage>`` process with its ops port (``/metrics``, ``/healthz``, ``/readyz``)."""

    stage: str
    env: dict[str, str]
    log_path: Path
    metrics_port: int
    args: tuple[str, ...] = ()  # extra ``argus run`` flags, e.g. --exit-when-drained
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    killed: bool = False  # the last stop was a SIGKILL (its exit status is not a failure)
    _log: IO[bytes] | None = None

    def start(self) -> None:
        if self.alive:
            raise ClusterError(f"{self.stage}: already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._log.write(f"--- start {self.starts + 1} at {time.strftime('%H:%M:%S')} ---\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "argus.cli", "run", self.stage, "--metrics-port", str(self.metrics_port),
             *self.args],
            env=self.env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=_terminate_with_parent(),
        )
        self.starts += 1
        self.killed = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.metrics_port}{path}"

    def readyz(self) -> dict[str, Any] | None:
        """The stage's /readyz body when it answers 200, else None."""
        try:
            with urllib.request.urlopen(self.url("/readyz"), timeout=2) as resp:
                return dict(json.loads(resp.read()))
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def metrics_text(self) -> str:
        try:
            with urllib.request.urlopen(self.url("/metrics"), timeout=5) as resp:
                return str(resp.read().decode())
        except (urllib.error.URLError, OSError) as e:
            raise ClusterError(f"{self.stage}: /metrics on port {self.metrics_port} unreachable: {e}") from e

    def metric(self, name: str) -> float:
        """Sum of every sample of ``name`` (all label values) on this process's /metrics."""
        from prometheus_client.parser import text_string_to_metric_families

        return sum(s.value for fam in text_string_to_metric_families(self.metrics_text())
                   for s in fam.samples if s.name == name)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        """SIGKILL: no drain, no final commit — what a node failure or an OOM kill looks like to Kafka."""
        if self.proc is not None and self.alive:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
            self.killed = True

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM (the stage finishes its batch, flushes and commits), SIGKILL after ``timeout_s``."""
        if self.proc is None:
            return None
        if self.alive:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0fs; killing it", self.stage, timeout_s)
                self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode


@functools.cache
def _terminate_with_parent() -> Any:
    """Linux: a preexec hook that makes the kernel SIGTERM the stage when the process that started it dies (a
    killed test run or demo), so no stage is left running unattended. libc is loaded here, in the parent: the hook
    runs between fork and exec, where importing or allocating could deadlock on a lock another thread held."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig, sigterm = 1, int(signal.SIGTERM)

    def hook() -> None:
        prctl(pr_set_pdeathsig, sigterm)

    return hook



class LocalCluster:
    """Run the stages as processes against ``servers``, with state under ``data_dir``.

    ``overrides`` are extra settings (field name → value) for every stage, e.g. ``{"cooldown_s": 30}``.
    ``replicas`` maps a stage to how many processes (members of its consumer group; for ingest, shards of the
    camera registry) it starts with (default 1 each). ``exit_when_drained`` starts every stage with
    ``--exit-when-drained``.
    """

    def __init__(self, *, servers: Servers, data_dir: Path, cameras_file: Path, database: str = "argus_demo",
                 overrides: Mapping[str, Any] | None = None, replicas: Mapping[str, int] | None = None,
                 exit_when_drained: bool = False) -> None:
        from argus_dev.devservers import free_port

        self.servers = servers
        self.data_dir = Path(data_dir).resolve()
        self.cameras_file = Path(cameras_file).resolve()
        self.database = database
        self.exit_when_drained = exit_when_drained
        self._free_port = free_port
        counts = {s: 1 for s in STAGES} | dict(replicas or {})
        unknown = sorted(set(counts) - set(STAGES))
        if unknown or any(n < 1 for n in counts.values()):
            raise ConfigError(f"replicas: expected stages among {', '.join(STAGES)} with at least 1 each, got "
                              f"{dict(replicas or {})}")
        self.ingest_shards = counts["ingest"]
        values: dict[str, Any] = {
            "data_dir": self.data_dir, "cameras_file": self.cameras_file,
            "bus": "kafka", "kafka_bootstrap": servers.kafka,
            "backend": "triton", "triton_url": servers.triton,
            "store": "mongodb", "mongo_uri": servers.mongo_uri, "mongo_database": database,
            "sinks": "log,kafka", "ingest_queue": 10_000, "ingest_files_realtime": False,
            "ort_threads": 1, "log_level": "INFO", "ingest_shards": self.ingest_shards,
            **(overrides or {}),
        }
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("ARGUS_")},
                    **{f"ARGUS_{k.upper()}": str(v) for k, v in values.items()}}
        self.settings: Settings = load_settings(**values)  # validates here, before any process starts
        self.members: dict[str, list[StageProcess]] = {s: [] for s in STAGES}
        for s in STAGES:
            for _ in range(counts[s]):
                self._new_member(s)

    def _new_member(self, stage: str) -> StageProcess:
        """One more process of ``stage`` (not started): member 0 logs to ``logs/<stage>.log``, member i to
        ``logs/<stage>-<i>.log``; an ingest member is shard i of ``ingest_shards``."""
        i = len(self.members[stage])
        env = dict(self.env)
        if stage == "ingest":
            if i >= self.ingest_shards:
                raise ClusterError(f"ingest has {self.ingest_shards} shard(s); a member {i} would read no camera")
            env["ARGUS_INGEST_SHARD"] = str(i)
        name = stage if i == 0 else f"{stage}-{i}"
        p = StageProcess(stage=stage, env=env, log_path=self.data_dir / "logs" / f"{name}.log",
                         metrics_port=self._free_port(),
                         args=("--exit-when-drained",) if self.exit_when_drained else ())
        self.members[stage].append(p)
        return p

    @property
    def procs(self) -> dict[str, StageProcess]:
        """The first member of each stage (a one-replica cluster's processes)."""
        return {s: ms[0] for s, ms in self.members.items()}

    def all_members(self) -> list[StageProcess]:
        return [p for ms in self.members.values() for p in ms]

    # -- state ------------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Empty slate for a demo or test run: the Argus topics (the control topic too, so no earlier run's
        ``finished`` is believed) and consumer groups on the broker, the history in the cluster's own database, and
        the local gallery. Never points at production: the CLI only runs this on the servers ``argus dev up``
        started."""
        from argus.bus.kafka import KafkaBus
        from argus.store.mongo import MongoEventStore

        bus = KafkaBus(bootstrap=self.servers.kafka, partitions=self.settings.kafka_partitions)
        try:
            bus.delete(topics=[*ALL_TOPICS, TOPIC_CONTROL], groups=[consumer_group(s) for s in INPUT_TOPICS])
            bus.ensure_topics([*ALL_TOPICS, TOPIC_CONTROL])  # recreated and led before any stage subscribes
        finally:
            bus.close()
        store = MongoEventStore(uri=self.servers.mongo_uri, database=self.database)
        try:
            store.reset()
        finally:
            store.close()
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        self.data_dir.mkdir(parents=True)

    # -- processes --------------------------------------------------------------------------------------------
    def start(self, stages: Sequence[str] = STAGES, *, timeout_s: float = 120.0) -> None:
        """Start ``stages`` (every member) and wait until each answers /readyz; consumers first, so none misses a
        rebalance."""
        order = [s for s in ("alerter", "matcher", "inference", "ingest") if s in stages]
        for s in order:
            for p in self.members[s]:
                p.start()
        self._register_with_prometheus()
        for s in order:
            for p in self.members[s]:
                self._wait_ready(p, timeout_s=timeout_s)

    def wait_ready(self, stage: str, *, timeout_s: float = 120.0, member: int = 0) -> dict[str, Any]:
        return self._wait_ready(self.members[stage][member], timeout_s=timeout_s)

    def _wait_ready(self, p: StageProcess, *, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not p.alive:
                if self.exit_when_drained and p.proc is not None and p.proc.returncode == 0:
                    return {"ready": False, "exited": 0}  # drained before anyone asked (a fast ingest)
                raise ClusterError(f"{p.stage} exited with status {p.proc.returncode if p.proc else None} before "
                                   f"it was ready; last lines of {p.log_path}:\n{p.log_tail()}")
            body = p.readyz()
            if body is not None:
                return body
            time.sleep(0.2)
        raise ClusterError(f"{p.stage} not ready after {timeout_s:.0f}s; last lines of {p.log_path}:\n"
                           f"{p.log_tail()}")

    def add_member(self, stage: str, *, timeout_s: float = 120.0, wait: bool = True) -> StageProcess:
        """Start one more process of a consuming stage mid-stream: its group rebalances to take it in."""
        if stage not in INPUT_TOPICS:
            raise ClusterError(f"add_member: expected a consuming stage ({', '.join(INPUT_TOPICS)}), got {stage!r}")
        p = self._new_member(stage)
        p.start()
        self._register_with_prometheus()
        if wait:
            self._wait_ready(p, timeout_s=timeout_s)
        return p

    def kill(self, stage: str, member: int = 0) -> None:
        self.members[stage][member].kill()

    def restart(self, stage: str, *, timeout_s: float = 120.0, member: int = 0) -> None:
        p = self.members[stage][member]
        p.stop()
        p.start()
        self._wait_ready(p, timeout_s=timeout_s)

    def stop(self) -> dict[str, int | None]:
        """SIGTERM every member, ingest first so the consumers see its last frames; returns exit codes (member 0
        under the stage's name, member i under ``<stage>-<i>``)."""
        return {(s if i == 0 else f"{s}-{i}"): p.stop() for s in STAGES for i, p in enumerate(self.members[s])}

    def _register_with_prometheus(self) -> None:
        if self.servers.prometheus_state_dir is None:
            return
        from argus_dev.devservers.prometheus import configure

        targets = {f"argus-{s}": [f"127.0.0.1:{p.metrics_port}" for p in ms] for s, ms in self.members.items()}
        if self.servers.triton_metrics:
            targets["triton"] = [self.servers.triton_metrics]
        configure(targets, state_dir=self.servers.prometheus_state_dir)

    # -- progress ---------------------------------------------------------------------------------------------
    def pending(self) -> dict[str, int]:
        """Uncommitted messages per consuming stage (its consumer group's lag on its input topic)."""
        from argus.bus.kafka import KafkaBus

        bus = KafkaBus(bootstrap=self.servers.kafka)
        try:
            return {s: bus.pending(consumer_group(s), [t]) for s, t in INPUT_TOPICS.items()}
        finally:
            bus.close()

    def metric(self, stage: str, name: str) -> float:
        """Sum of ``name`` over the stage's live members (a killed member's counts died with it)."""
        return sum(p.metric(name) for p in self.members[stage] if p.alive)

    def _check_members(self) -> None:
        """A member that died on its own is an error; one the caller killed, or one that exited 0 after draining
        (``exit_when_drained``), is not."""
        for p in self.all_members():
            rc = p.proc.poll() if p.proc is not None else None
            if rc is None or p.killed or rc == -signal.SIGKILL or (rc == 0 and self.exit_when_drained):
                continue
            raise ClusterError(f"{p.stage} exited with status {rc}; last lines of {p.log_path}:\n{p.log_tail()}")

    def wait_drained(self, *, timeout_s: float = 600.0) -> float:
        """Block until the pipeline has drained by the ``--exit-when-drained`` rule for its last stage (every
        ingest shard finished, then every group in pipeline order committed its whole input; one ordered pass is
        enough, no settling sleep); returns the seconds waited. A stage that dies meanwhile is an error (unless the
        caller killed it)."""
        from argus.bus.kafka import KafkaBus

        t0 = time.monotonic()
        deadline = t0 + timeout_s
        bus = KafkaBus(bootstrap=self.servers.kafka)
        check = DrainCheck.for_stage(bus, CONSUMING_STAGES[-1])
        verdict = None
        try:
            while time.monotonic() < deadline:
                self._check_members()
                verdict = check.check()
                if verdict.drained:
                    return time.monotonic() - t0
                time.sleep(0.5)
        finally:
            bus.close()
        raise ClusterError(f"pipeline did not drain within {timeout_s:.0f}s: waiting for "
                           f"{verdict.waiting_for if verdict else '?'}; pending per stage {self.pending()}")

    def wait_exited(self, *, timeout_s: float = 600.0) -> float:
        """With ``exit_when_drained``: block until every member that was not killed has exited by itself with
        status 0 (each once its input drained); returns the seconds waited."""
        if not self.exit_when_drained:
            raise ClusterError("wait_exited: the stages were not started with --exit-when-drained")
        t0 = time.monotonic()
        while time.monotonic() < t0 + timeout_s:
            self._check_members()
            if not any(p.alive for p in self.all_members()):
                return time.monotonic() - t0
            time.sleep(0.3)
        running = [f"{p.stage}:{p.pid}" for p in self.all_members() if p.alive]
        raise ClusterError(f"stages still running {timeout_s:.0f}s after start of the wait: {running}; pending "
                           f"per stage {self.pending()}")

    def group_members(self, stage: str) -> dict[str, list[int]]:
        """The stage's consumer group as the broker sees it now: member id → partitions of its input topic
        (empty while it rebalances). What the replica test times rebalances with."""
        from kafka.admin import KafkaAdminClient

        topic = INPUT_TOPICS[stage]
        admin = KafkaAdminClient(bootstrap_servers=self.servers.kafka.split(","), client_id="argus-cluster")
        try:
            desc = admin.describe_groups([consumer_group(stage)])[consumer_group(stage)]
        finally:
            admin.close()
        out: dict[str, list[int]] = {}
        for m in desc.get("members") or []:
            parts: list[int] = []
            assignment = _get(m, "member_assignment")
            for tp in _get(assignment, "assigned_partitions") or []:
                if _get(tp, "topic") == topic:
                    parts += list(_get(tp, "partitions") or [])
            out[str(_get(m, "member_id"))] = sorted(parts)
        return out

    def end_offsets(self, topic: str) -> list[int]:
        from argus.bus.kafka import KafkaBus

        bus = KafkaBus(bootstrap=self.servers.kafka)
        try:
            return bus.end_offsets(topic)
        finally:
            bus.close()

    @contextlib.contextmanager
    def running(self, stages: Sequence[str] = STAGES) -> Iterator[LocalCluster]:
        """``with cluster.running():`` — started on entry, stopped on exit whatever happens."""
        try:
            self.start(stages)
            yield self
        finally:
            self.stop()


def _get(obj: Any, name: str) -> Any:
    """A field of kafka-python's decoded group description: a dict or an object, depending on the version."""
    if obj is None:
        return None
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
