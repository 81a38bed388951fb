"""Prometheus from Debian's ``prometheus`` package, run as a plain process (not the systemd unit).

Scrape targets change with every test session (free ports), so the config is generated from a ``targets`` map
kept in the state dir and hot-reloaded through ``/-/reload``. The scrape interval is 1 s so a test sees a fresh
sample within a couple of seconds.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from argus_dev.devservers import (
    HOST,
    DevServerError,
    Launch,
    ServerSpec,
    default_state_dir,
    http_ok,
    install_lock,
    pid_alive,
    read_json,
    run_checked,
)

log = logging.getLogger(__name__)

SCRAPE_INTERVAL = "1s"


def _find(exe: str) -> str | None:
    return shutil.which(exe) or (f"/usr/bin/{exe}" if Path(f"/usr/bin/{exe}").is_file() else None)


def render_config(targets: Mapping[str, Sequence[str]], *, scrape_interval: str = SCRAPE_INTERVAL,
                  rule_files: Sequence[str] = ()) -> str:
    """Prometheus YAML (JSON is valid YAML, which spares a YAML dependency) with one static job per entry."""
    for job, addrs in targets.items():
        for addr in addrs:
            host, _, port = addr.rpartition(":")
            if not host or not port.isdigit():
                raise DevServerError(f"prometheus: target {addr!r} of job {job!r}: expected host:port")
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval,
                   "scrape_timeout": scrape_interval},
        "rule_files": [str(r) for r in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": list(addrs)}]} for job, addrs in sorted(targets.items())
        ],
    }
    return json.dumps(config, indent=2) + "\n"


class PrometheusServer(ServerSpec):
    name = "prometheus"
    port_keys = ("prometheus",)
    cmdline_marker = "prometheus"
    ready_timeout_s = 60.0
    stop_timeout_s = 15.0

    def install(self, home: Path) -> None:
        if _find("prometheus") and _find("promtool"):
            return
        with install_lock(home / "prometheus"):
            if _find("prometheus") and _find("promtool"):
                return
            apt = shutil.which("apt-get")
            if apt is None:
                raise DevServerError("prometheus: not on PATH and no apt-get to install it (Debian package "
                                     "'prometheus' provides the server and promtool)")
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            try:
                run_checked([apt, "install", "-y", "--no-install-recommends", "prometheus"],
                            what="prometheus: apt-get install", env=env)
            except DevServerError:
                # A fresh container has empty package lists; refresh them only when the plain install failed.
                run_checked([apt, "update"], what="prometheus: apt-get update", env=env)
                run_checked([apt, "install", "-y", "--no-install-recommends", "prometheus"],
                            what="prometheus: apt-get install", env=env)
            if not _find("prometheus"):
                raise DevServerError("prometheus: expected /usr/bin/prometheus after apt-get install, not found")

    def prepare(self, home: Path, data_dir: Path, ports: Mapping[str, int], options: Mapping[str, Any]) -> Launch:
        data_dir.mkdir(parents=True, exist_ok=True)
        targets_file = data_dir / "targets.json"
        targets: Mapping[str, Sequence[str]] | None = options.get("prometheus_targets")
        if targets is None:
            targets = read_json(targets_file) or {}
        targets = {"prometheus": [f"{HOST}:{ports['prometheus']}"], **targets}
        conf = write_config(data_dir, targets)
        exe = _find("prometheus")
        if exe is None:
            raise DevServerError("prometheus: binary not found; install() should have put it in /usr/bin")
        cmd = [exe, f"--config.file={conf}", f"--storage.tsdb.path={data_dir / 'tsdb'}",
               f"--web.listen-address={HOST}:{ports['prometheus']}", "--web.enable-lifecycle",
               "--storage.tsdb.retention.time=1d", "--log.level=warn"]
        return Launch(cmd=cmd, cwd=data_dir, extra={"config": str(conf)})

    def ready(self, ports: Mapping[str, int]) -> bool:
        return http_ok(f"http://{HOST}:{ports['prometheus']}/-/ready")

    def address(self, ports: Mapping[str, int]) -> str:
        return f"http://{HOST}:{ports['prometheus']}"


def write_config(data_dir: Path, targets: Mapping[str, Sequence[str]], *,
                 rule_files: Sequence[str] = ()) -> Path:
    """Write and validate ``prometheus.yml``; promtool catches what would otherwise be a silent failed reload."""
    conf = data_dir / "prometheus.yml"
    tmp = data_dir / "prometheus.yml.new"
    tmp.write_text(render_config(targets, rule_files=rule_files))
    promtool = _find("promtool")
    if promtool is not None:
        run_checked([promtool, "check", "config", str(tmp)], what="prometheus: checking generated config")
    tmp.replace(conf)
    (data_dir / "targets.json").write_text(json.dumps({k: list(v) for k, v in targets.items()}, indent=2))
    return conf


def configure(targets: Mapping[str, Sequence[str]], *, state_dir: Path | None = None,
              rule_files: Sequence[str] = ()) -> Path:
    """Point Prometheus at ``{job: ["host:port", ...]}`` (replacing earlier targets) and hot-reload it if running.

    Prometheus always scrapes itself as job ``prometheus`` as well. Returns the config path.
    """
    state = Path(state_dir) if state_dir is not None else default_state_dir()
    data_dir = state / "prometheus"
    data_dir.mkdir(parents=True, exist_ok=True)
    endpoint = read_json(state / "prometheus.json")
    full = dict(targets)
    if endpoint is not None:
        full = {"prometheus": [f"{HOST}:{endpoint['ports']['prometheus']}"], **full}
    conf = write_config(data_dir, full, rule_files=rule_files)
    if endpoint is None or not pid_alive(int(endpoint["pid"])):
        log.info("prometheus not running; %s will be used at the next start", conf)
        return conf
    url = f"{endpoint['address']}/-/reload"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10) as resp:
            if resp.status != 200:
                raise DevServerError(f"prometheus: reload at {url}: expected HTTP 200, got {resp.status}")
    except urllib.error.HTTPError as e:
        body = e.read().decode(errors="replace")
        raise DevServerError(f"prometheus: reload at {url} rejected the config: {body}") from e
    except (urllib.error.URLError, OSError):
        log.warning("prometheus: %s unreachable, falling back to SIGHUP", url)
        os.kill(int(endpoint["pid"]), signal.SIGHUP)
    return conf


def query(expr: str, *, base_url: str, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """Instant query; returns ``data.result``. A small helper so tests need no Prometheus client library."""
    qs = urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(f"{base_url}/api/v1/query?{qs}", timeout=timeout_s) as resp:
            body = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise DevServerError(f"prometheus: query {expr!r} at {base_url} failed: {e}") from e
    if body.get("status") != "success":
        raise DevServerError(f"prometheus: query {expr!r}: expected status success, got {body}")
    result = body["data"]["result"]
    return list(result)
