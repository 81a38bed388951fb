"""``argus up``: watch your own cameras on one machine — the four stages, the operator API and the console in one
process, on the embedded defaults (in-memory bus, in-process ONNX Runtime, SQLite and FAISS under the data dir), or
over the servers when ``ARGUS_BUS=kafka`` etc. are set.

The cameras file is validated before anything starts: a broken one is refused with the registry's own error, which
names the file, the camera entry and the field (and the line, for TOML syntax errors) — a console showing a
half-configured site would hide the mistake the operator has to fix anyway. A watch-list folder (one sub-folder
per person id holding that person's photos) is enrolled at start through :func:`argus.operations.enroll_person`,
with the usual photo checks and an audit record per person (actor ``argus-up``); re-enrolling on every start is
idempotent, so the folder is the watch-list's source of truth.

The admin API key is minted on the first start and kept in ``<data_dir>/admin.key`` (mode 0600), so every later
start prints the same key; one that no longer authenticates (revoked) is replaced. Stopping (:func:`run_up`'s
``stop``, set by the CLI on Ctrl-C / SIGTERM) stops ingest, lets the other stages drain what is on the bus, stops
the API, and closes the store: nothing read from a camera is lost.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from argus.cameras import CameraRegistry
from argus.config import Settings
from argus.errors import ArgusError, ConfigError, InputError
from argus.runtime.resources import Resources

log = logging.getLogger(__name__)

__all__ = ["ADMIN_KEY_FILE", "UP_ACTOR", "Enrolled", "UpInfo", "UpResult", "admin_key", "enroll_watchlist_folder",
           "run_up"]

UP_ACTOR = "argus-up"
ADMIN_KEY_FILE = "admin.key"
ADMIN_KEY_NAME = "argus-up admin"
_API_START_S = 30.0


@dataclass(frozen=True, kw_only=True)
class Enrolled:
    """One watch-list folder entry at start: enrolled or not, and each rejected photo's reason."""

    person_id: str
    enrolled: bool
    accepted: int
    rejected: int
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class UpInfo:
    """What the operator needs once everything runs: where the console is and the admin's key."""

    console_url: str
    api_url: str
    admin_key: str
    key_is_new: bool
    cameras: int
    enrolled: tuple[Enrolled, ...] = ()
    skipped: tuple[str, ...] = ()


@dataclass(kw_only=True)
class UpResult:
    events: int = 0
    alerts: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def admin_key(store: Any, data_dir: Path) -> tuple[str, bool]:
    """The admin key kept in ``data_dir/admin.key``, or a new one (written there, mode 0600) when there is none
    or it no longer authenticates as an admin (revoked, or the store was reset). ``(key, is_new)``."""
    from argus.api.auth import AuthenticationError, Authenticator, Role, create_api_key

    path = data_dir / ADMIN_KEY_FILE
    if path.is_file():
        key = path.read_text(encoding="utf-8").strip()
        try:
            principal = Authenticator(store).authenticate(f"Bearer {key}", client="argus-up")
            if principal.role is Role.admin:
                return key, False
            log.warning("%s holds a %s key, not an admin's: minting a new admin key", path, principal.role.value)
        except (AuthenticationError, InputError) as e:
            log.warning("%s no longer authenticates (%s): minting a new admin key", path, e)
    _, key = create_api_key(store, name=ADMIN_KEY_NAME, role=Role.admin, actor=UP_ACTOR, actor_role="admin")
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(key + "\n")
    os.chmod(tmp, 0o600)  # the umask cannot widen it, but an existing tmp file kept its mode
    os.replace(tmp, path)
    return key, True


def enroll_watchlist_folder(res: Resources, folder: Path, *, reason: str | None = None
                            ) -> tuple[list[Enrolled], list[str]]:
    """Enroll every person sub-folder of ``folder`` (one :func:`argus.operations.enroll_person` each, audited as
    ``argus-up``); a person whose photos all fail, or a bad id, is reported and the rest go on."""
    from argus import operations as ops
    from argus.enroll import read_bulk_source, read_photos

    if not folder.is_dir():
        raise InputError(f"--watchlist: expected a folder with one sub-folder of photos per person id, "
                         f"got {str(folder)!r}")
    persons, problems = read_bulk_source(folder)
    why = reason or f"argus up --watchlist {folder}"
    out: list[Enrolled] = []
    for bp in persons:
        try:
            res_ = ops.enroll_person(res, person_id=bp.person_id, display_name=bp.display_name,
                                     watchlist=bp.watchlist, expires_at=bp.expires_at,
                                     photos=read_photos(bp.photos), actor=UP_ACTOR, role="admin", reason=why)
            out.append(Enrolled(person_id=bp.person_id, enrolled=res_.person is not None,
                                accepted=len(res_.accepted), rejected=len(res_.rejected),
                                reasons=tuple(p.reason for p in res_.rejected)))
        except ArgusError as e:  # a bad person id: this person only
            out.append(Enrolled(person_id=bp.person_id, enrolled=False, accepted=0, rejected=len(bp.photos),
                                reasons=(f"{type(e).__name__}: {e}",)))
    return out, problems


def _wait_listening(host: str, port: int, thread: threading.Thread, timeout_s: float) -> None:
    """Until the API accepts connections; ConfigError when its thread ended first (port taken) or it is slow."""
    deadline = time.monotonic() + timeout_s
    probe = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise ConfigError(f"the operator API could not start on {host}:{port} (is the port in use? "
                              "set --port or ARGUS_API_PORT)")
        try:
            with socket.create_connection((probe, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise ConfigError(f"the operator API did not listen on {host}:{port} within {timeout_s:.0f}s")


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def serve_console(res: Resources, *, stop: threading.Event) -> threading.Thread:
    """The API and console (services/api's ``serve``) in a thread until ``stop``; returns once it listens."""
    from argus.runtime.service import load_api_server

    serve = load_api_server()
    s = res.settings
    t = threading.Thread(target=serve, args=(res,), kwargs={"stop": stop, "metrics_port": 0}, name="api",
                         daemon=True)
    t.start()
    _wait_listening(s.api_host, s.api_port, t, _API_START_S)
    return t


def console_info(res: Resources, data_dir: Path, **kw: Any) -> UpInfo:
    s = res.settings
    base = f"http://{_url_host(s.api_host)}:{s.api_port}"
    key, new = admin_key(res.store, data_dir)
    return UpInfo(console_url=f"{base}/console/", api_url=f"{base}/api/v1", admin_key=key, key_is_new=new, **kw)


def run_up(settings: Settings, *, stop: threading.Event, watchlist: Path | None = None,
           on_ready: Callable[[UpInfo], None] = lambda _info: None, drain_timeout_s: float = 120.0) -> UpResult:
    """Run everything until ``stop`` is set, then stop it in order (see the module docstring). ``settings`` must
    name the cameras file; it is validated (ConfigError naming camera and field) before anything starts."""
    t0 = time.monotonic()
    if settings.cameras_file is None:
        raise ConfigError("argus up: expected a cameras file (--cameras FILE or ARGUS_CAMERAS_FILE), got none")
    cameras = CameraRegistry.load(settings.cameras_file)  # refuse a broken file before any server or model
    from argus.runtime.inprocess import InProcessPipeline

    with Resources(settings, cameras=cameras) as res:
        enrolled: list[Enrolled] = []
        skipped: list[str] = []
        if watchlist is not None:
            enrolled, skipped = enroll_watchlist_folder(res, watchlist)
        api_stop = threading.Event()
        with InProcessPipeline(res, ingest_idle_exit_s=None) as pipeline:
            api = serve_console(res, stop=api_stop)
            try:
                on_ready(console_info(res, settings.data_dir, cameras=len(cameras), enrolled=tuple(enrolled),
                                      skipped=tuple(skipped)))
                stop.wait()
                log.info("argus up: stopping ingest, draining the stages")
                pipeline.stop_ingest()
                try:
                    pipeline.wait_drained(timeout_s=drain_timeout_s)
                except TimeoutError:
                    log.error("argus up: the stages did not drain within %.0fs; stopping anyway", drain_timeout_s)
            finally:
                api_stop.set()
                api.join(timeout=20.0)
        return UpResult(events=res.store.count_events(), alerts=res.store.count_alerts(),
                        seconds=time.monotonic() - t0, extra={"bus": res.bus.name, "store": settings.store.value})


def run_console(settings: Settings, *, stop: threading.Event,
                on_ready: Callable[[UpInfo], None] = lambda _info: None) -> None:
    """The API and console over an existing data dir's store and gallery (``argus demo --console`` after the
    demo ran) until ``stop``; no stage runs."""
    with Resources(settings) as res:
        api_stop = threading.Event()
        api = serve_console(res, stop=api_stop)
        try:
            on_ready(console_info(res, settings.data_dir, cameras=len(res.store.list_cameras())))
            stop.wait()
        finally:
            api_stop.set()
            api.join(timeout=20.0)
