"""Start, reuse, stop and list the development servers; ``argus dev up|down|status`` calls :func:`main`.

``up`` is idempotent: a server whose PID file points at a live process with the expected command line and that
answers its readiness probe is reused as is. Servers start in parallel (Kafka's JVM dominates), each in its own
session so they outlive the command that started them.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from argus_dev.devservers import (
    DEFAULT_PORTS,
    HOST,
    SERVER_NAMES,
    DevServerError,
    Endpoint,
    ServerSpec,
    default_home,
    default_state_dir,
    free_port,
    pid_alive,
    pid_cmdline,
    port_open,
    spawn,
    terminate,
    wait_ready,
)
from argus_dev.devservers.kafka import KafkaServer
from argus_dev.devservers.mongo import MongoServer
from argus_dev.devservers.prometheus import PrometheusServer
from argus_dev.devservers.security import Security
from argus_dev.devservers.triton import TritonServer

log = logging.getLogger(__name__)

SPECS: dict[str, ServerSpec] = {
    "kafka": KafkaServer(),
    "triton": TritonServer(),
    "mongo": MongoServer(),
    "prometheus": PrometheusServer(),
}


def _names(names: Sequence[str] | None) -> list[str]:
    if not names:
        return list(SERVER_NAMES)
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        raise DevServerError(f"unknown server(s) {unknown}: expected some of {list(SERVER_NAMES)}")
    return list(dict.fromkeys(names))


@contextlib.contextmanager
def _server_lock(state: Path, name: str) -> Iterator[None]:
    """Two ``up`` calls on one state dir (two terminals, two xdist workers) must not start a server twice."""
    state.mkdir(parents=True, exist_ok=True)
    with (state / f".{name}.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _load(state: Path, name: str) -> Endpoint | None:
    try:
        return Endpoint.from_json((state / f"{name}.json").read_text())
    except (OSError, ValueError, TypeError):
        return None


def _live(spec: ServerSpec, state: Path) -> Endpoint | None:
    """The recorded endpoint if its process is alive and really is our server (PIDs get recycled)."""
    ep = _load(state, spec.name)
    if ep is None or not pid_alive(ep.pid):
        return None
    if spec.cmdline_marker and spec.cmdline_marker not in pid_cmdline(ep.pid):
        return None
    return ep


def _orphan_pid(spec: ServerSpec, state: Path) -> int | None:
    try:
        pid = int((state / f"{spec.name}.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    if pid_alive(pid) and spec.cmdline_marker in pid_cmdline(pid):
        return pid
    return None


def _forget(state: Path, name: str) -> None:
    for suffix in (".pid", ".json"):
        with contextlib.suppress(FileNotFoundError):
            (state / f"{name}{suffix}").unlink()


def _resolve_ports(spec: ServerSpec, ports: Mapping[str, int], taken: set[int]) -> dict[str, int]:
    resolved: dict[str, int] = {}
    for key in spec.port_keys:
        port = int(ports.get(key, DEFAULT_PORTS[key]))
        if port == 0:
            port = free_port()
            while port in taken:
                port = free_port()
        elif not 0 < port < 65536:
            raise DevServerError(f"{spec.name}: port {key}={port}: expected 1..65535, or 0 for a free port")
        if port in taken:
            raise DevServerError(f"{spec.name}: port {key}={port} is given to two servers")
        taken.add(port)
        resolved[key] = port
    busy = {k: p for k, p in resolved.items() if port_open(p)}
    if busy:
        raise DevServerError(f"{spec.name}: expected free ports, but {busy} already accept connections on {HOST} "
                             f"(another server? pass ports={{key: 0}} for free ones, or run `argus dev down`)")
    return resolved


def _up_one(spec: ServerSpec, *, home: Path, state: Path, ports: dict[str, int], options: Mapping[str, Any],
            timeout_s: float | None) -> Endpoint:
    with _server_lock(state, spec.name):
        ep = _live(spec, state)
        if ep is not None:
            try:
                ready = spec.ready(ep.ports)
            except Exception as e:  # a probe error means "not answering", the same as False
                log.debug("%s probe failed: %s", spec.name, e)
                ready = False
            if ready:
                log.info("%s already running (pid %d) at %s; reusing it", spec.name, ep.pid, ep.address)
                return ep
            raise DevServerError(f"{spec.name}: process {ep.pid} is alive but does not answer its readiness "
                                 f"probe at {ep.address}; see {ep.log_path} or run `argus dev down {spec.name}`")
        orphan = _orphan_pid(spec, state)
        if orphan is not None:
            log.warning("%s: stopping pid %d left by an interrupted start", spec.name, orphan)
            terminate(orphan, timeout_s=spec.stop_timeout_s)
        _forget(state, spec.name)
        t_install = time.monotonic()
        spec.install(home)
        install_s = time.monotonic() - t_install
        data_dir = state / spec.name
        launch = spec.prepare(home, data_dir, ports, options)
        log_path = state / f"{spec.name}.log"
        t0 = time.monotonic()
        proc = spawn(launch.cmd, log_path=log_path, env=launch.env, cwd=launch.cwd)
        (state / f"{spec.name}.pid").write_text(f"{proc.pid}\n")
        try:
            wait_ready(spec.name, proc.pid, lambda: spec.ready(ports), log_path=log_path,
                       timeout_s=timeout_s or spec.ready_timeout_s, explain=spec.explain_exit)
        except BaseException:
            terminate(proc.pid, timeout_s=5)
            _forget(state, spec.name)
            raise
        ready_s = time.monotonic() - t0
        extra = dict(launch.extra, ready_s=f"{ready_s:.2f}", install_s=f"{install_s:.2f}")
        ep = Endpoint(name=spec.name, pid=proc.pid, host=HOST, ports=dict(ports), address=spec.address(ports),
                      log_path=str(log_path), state_dir=str(state), started_at=time.time(), extra=extra)
        (state / f"{spec.name}.json").write_text(ep.to_json())
        log.info("%s ready in %.1f s (pid %d) at %s", spec.name, ready_s, proc.pid, ep.address)
        return ep


def up(names: Sequence[str] | None = None, *, ports: Mapping[str, int] | None = None, home: Path | None = None,
       state_dir: Path | None = None, model_repository: Path | None = None,
       prometheus_targets: Mapping[str, Sequence[str]] | None = None,
       kafka_properties: Mapping[str, str] | None = None, timeout_s: float | None = None,
       security: Security | None = None) -> dict[str, Endpoint]:
    """Install (first time), start and wait for ``names`` (default: all four); reuse those already running.

    ``ports`` overrides :data:`argus_dev.devservers.DEFAULT_PORTS` per key; 0 asks for a free port. ``home`` holds the
    installs, ``state_dir`` the PID files, logs and data. ``security`` (:mod:`argus_dev.devservers.security`) starts
    Kafka, MongoDB and Triton with TLS and passwords instead of plaintext. Raises :class:`DevServerError` naming
    the server that failed; servers that did start keep running (``down`` stops them).
    """
    wanted = _names(names)
    home_dir = Path(home) if home is not None else default_home()
    state = Path(state_dir) if state_dir is not None else default_state_dir(home_dir)
    state.mkdir(parents=True, exist_ok=True)
    unknown_ports = set(ports or {}) - set(DEFAULT_PORTS)
    if unknown_ports:
        raise DevServerError(f"unknown port key(s) {sorted(unknown_ports)}: expected some of {sorted(DEFAULT_PORTS)}")
    options: dict[str, Any] = {"model_repository": model_repository, "prometheus_targets": prometheus_targets,
                               "kafka_properties": kafka_properties or {}, "security": security}
    taken: set[int] = set()
    plans: dict[str, dict[str, int]] = {}
    for name in wanted:
        spec = SPECS[name]
        live = _live(spec, state)
        if live is not None:
            plans[name] = dict(live.ports)
            taken.update(live.ports.values())
        else:
            plans[name] = _resolve_ports(spec, ports or {}, taken)
    results: dict[str, Endpoint] = {}
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
        futures = {name: pool.submit(_up_one, SPECS[name], home=home_dir, state=state, ports=plans[name],
                                     options=options, timeout_s=timeout_s) for name in wanted}
        for name, fut in futures.items():
            try:
                results[name] = fut.result()
            except DevServerError as e:
                errors.append(str(e))
    if errors:
        raise DevServerError("\n".join(errors))
    return results


def down(names: Sequence[str] | None = None, *, state_dir: Path | None = None, home: Path | None = None,
         timeout_s: float | None = None) -> list[str]:
    """Stop ``names`` (default all) by PID: SIGTERM, then SIGKILL after the server's stop timeout.

    Returns the servers that were running. Data stays in the state dir, so a later ``up`` resumes it.
    """
    wanted = _names(names)
    state = Path(state_dir) if state_dir is not None else default_state_dir(home)
    stopped: list[str] = []

    def stop(name: str) -> None:
        spec = SPECS[name]
        with _server_lock(state, name):
            ep = _live(spec, state)
            # A start interrupted before it wrote the endpoint still left a PID file.
            pid = ep.pid if ep is not None else _orphan_pid(spec, state)
            if pid is not None:
                killed = terminate(pid, timeout_s=timeout_s or spec.stop_timeout_s)
                log.info("%s (pid %d) stopped%s", name, pid, " with SIGKILL" if killed else "")
                stopped.append(name)
            _forget(state, name)

    with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
        list(pool.map(stop, wanted))
    return [n for n in wanted if n in stopped]


def status(*, state_dir: Path | None = None, home: Path | None = None) -> dict[str, Endpoint | None]:
    """Every known server → its endpoint if its process is alive, else None."""
    state = Path(state_dir) if state_dir is not None else default_state_dir(home)
    return {name: _live(SPECS[name], state) for name in SERVER_NAMES}


def _parse_ports(items: Sequence[str]) -> dict[str, int]:
    ports: dict[str, int] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not value.isdigit():
            raise DevServerError(f"--port {item!r}: expected KEY=PORT, e.g. kafka=19092")
        ports[key] = int(value)
    return ports


def main(argv: Sequence[str] | None = None) -> int:
    """``argus dev up [NAME...] | down [NAME...] | status``; exit status 0 on success, 1 on a server error."""
    parser = argparse.ArgumentParser(prog="argus dev", description="Local Kafka, Triton, MongoDB-wire, Prometheus")
    parser.add_argument("--home", type=Path, default=None, help="install cache (env ARGUS_DEV_HOME)")
    parser.add_argument("--state-dir", type=Path, default=None, help="PID files, logs, data (env ARGUS_DEV_STATE)")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="install if needed, start, wait until ready")
    p_up.add_argument("names", nargs="*", metavar="NAME", help=f"some of {list(SERVER_NAMES)} (default all)")
    p_up.add_argument("--port", action="append", default=[], metavar="KEY=PORT",
                      help=f"override a port; keys: {', '.join(DEFAULT_PORTS)} (0 = any free port)")
    p_up.add_argument("--model-repository", type=Path, default=None, help="Triton model repository")
    p_down = sub.add_parser("down", help="stop (SIGTERM, then SIGKILL)")
    p_down.add_argument("names", nargs="*", metavar="NAME")
    p_status = sub.add_parser("status", help="list running servers")
    p_status.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    # The readiness probe's client logs every refused connection while the broker is still starting: expected.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    try:
        if args.command == "up":
            eps = up(args.names or None, ports=_parse_ports(args.port), home=args.home, state_dir=args.state_dir,
                     model_repository=args.model_repository)
            for ep in eps.values():
                sys.stdout.write(f"{ep.name:<11} pid {ep.pid:<8} {ep.address}  ports {ep.ports}\n")
        elif args.command == "down":
            stopped = down(args.names or None, state_dir=args.state_dir, home=args.home)
            sys.stdout.write(f"stopped: {', '.join(stopped) or 'nothing was running'}\n")
        else:
            st = status(state_dir=args.state_dir, home=args.home)
            if args.json:
                sys.stdout.write(json.dumps({k: (json.loads(v.to_json()) if v else None) for k, v in st.items()},
                                            indent=2) + "\n")
            else:
                for name, live in st.items():
                    where = f"pid {live.pid:<8} {live.address}" if live else "stopped"
                    sys.stdout.write(f"{name:<11} {where}\n")
    except DevServerError as e:
        sys.stderr.write(f"argus dev {args.command}: {e}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
