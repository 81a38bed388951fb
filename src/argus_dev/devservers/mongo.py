"""A MongoDB-wire server for tests: PyPI ``secantusdb`` (WiredTiger storage, single-node replica set).

No real ``mongod`` is installable from the registries reachable here. secantusdb speaks the wire protocol well
enough for what Argus's event store uses (indexes incl. TTL/unique, find+sort, aggregation, change streams).
It is GPL-2.0, so it only ever runs as a separate process and is never imported. Production runs MongoDB.

With ``security`` (:class:`~argus_dev.devservers.security.Security`) the server requires SCRAM-SHA-256 (``--auth``)
and speaks only TLS. secantusdb provisions users the way mongod does without a localhost exception: a start without
``--auth``, ``createUser``, a restart with it; the first start does that once on a private port, so the server the
test gets has never accepted an unauthenticated client on its real port.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from argus_dev.devservers import (
    HOST,
    DevServerError,
    Launch,
    ServerSpec,
    free_port,
    install_once,
    make_venv,
    spawn,
    terminate,
    wait_ready,
)
from argus_dev.devservers.security import Security

log = logging.getLogger(__name__)

SECANTUS_VERSION = "0.7.0b3"


class MongoServer(ServerSpec):
    name = "mongo"
    port_keys = ("mongo",)
    cmdline_marker = "secantusd"
    ready_timeout_s = 60.0
    stop_timeout_s = 15.0

    def __init__(self) -> None:
        #: port -> the secure server's settings, for ``ready``/``address`` (which only get the ports).
        self._security: dict[int, Security] = {}

    def root(self, home: Path) -> Path:
        return home / "mongo" / SECANTUS_VERSION

    def venv(self, home: Path) -> Path:
        return self.root(home) / "venv"

    def install(self, home: Path) -> None:
        req = f"secantusdb=={SECANTUS_VERSION}"

        def install() -> None:
            make_venv(self.venv(home), python="3.11", requirements=[req], what="mongo")
            if not self.binary(home).is_file():
                raise DevServerError(f"mongo: expected {self.binary(home)} after installing {req}, it is missing")

        install_once(self.root(home), SECANTUS_VERSION, install, what="secantusdb")

    def binary(self, home: Path) -> Path:
        return self.venv(home) / "bin" / "secantusd-py"

    def prepare(self, home: Path, data_dir: Path, ports: Mapping[str, int], options: Mapping[str, Any]) -> Launch:
        storage = data_dir / "db"
        storage.mkdir(parents=True, exist_ok=True)
        cmd = [str(self.binary(home)), "--host", HOST, "--port", str(ports["mongo"]), "--storage-path", str(storage)]
        security: Security | None = options.get("security")
        if security is None:
            return Launch(cmd=cmd, cwd=data_dir, extra={"secantusdb_version": SECANTUS_VERSION})
        self._provision(home, data_dir, storage, security)
        cmd += ["--auth", "--tls-cert-file", str(security.tls.server_cert),
                "--tls-key-file", str(security.tls.server_key)]
        self._security[ports["mongo"]] = security
        return Launch(cmd=cmd, cwd=data_dir, extra={"secantusdb_version": SECANTUS_VERSION, "auth": "SCRAM-SHA-256",
                                                    "tls": "true", "username": security.username})

    def _provision(self, home: Path, data_dir: Path, storage: Path, security: Security) -> None:
        """Create the user once, on a throw-away port, before the server ever runs with ``--auth``."""
        marker = data_dir / ".users-provisioned"
        if marker.is_file():
            return
        from pymongo import MongoClient

        port = free_port()
        log_path = data_dir / "provision.log"
        proc = spawn([str(self.binary(home)), "--host", HOST, "--port", str(port), "--storage-path", str(storage)],
                     log_path=log_path, cwd=data_dir)
        try:
            wait_ready("mongo (provisioning)", proc.pid, lambda: self._ping(f"mongodb://{HOST}:{port}/"),
                       log_path=log_path, timeout_s=self.ready_timeout_s)
            client: MongoClient[dict[str, Any]] = MongoClient(f"mongodb://{HOST}:{port}/?directConnection=true",
                                                              serverSelectionTimeoutMS=5000)
            try:
                client.admin.command("createUser", security.username, pwd=security.password,
                                     roles=[{"role": "root", "db": "admin"}], mechanisms=["SCRAM-SHA-256"])
            finally:
                client.close()
        finally:
            terminate(proc.pid, timeout_s=self.stop_timeout_s)
        marker.write_text(security.username + "\n")

    @staticmethod
    def _ping(uri: str, **kwargs: Any) -> bool:
        from pymongo import MongoClient

        client: MongoClient[dict[str, Any]] = MongoClient(uri, directConnection=True, serverSelectionTimeoutMS=1000,
                                                          connectTimeoutMS=1000, **kwargs)
        try:
            return bool(client.admin.command("ping").get("ok"))
        finally:
            client.close()

    def ready(self, ports: Mapping[str, int]) -> bool:
        try:
            from pymongo import MongoClient
        except ImportError as e:
            raise DevServerError("mongo: the readiness check needs pymongo (pip install argus-watch[mongo])") from e
        security = self._security.get(ports["mongo"])
        if security is not None:
            return self._ping(self.credentials_uri(ports, security))
        client: MongoClient[dict[str, Any]] = MongoClient(self.address(ports), serverSelectionTimeoutMS=1000,
                                                          connectTimeoutMS=1000)
        try:
            return bool(client.admin.command("ping").get("ok"))
        finally:
            client.close()

    def address(self, ports: Mapping[str, int]) -> str:
        """The URI without credentials (it is written to the endpoint file); a secure server's asks for TLS."""
        # directConnection: the server presents itself as a replica set; tests talk to this one node only.
        security = self._security.get(ports["mongo"])
        tls = f"&tls=true&tlsCAFile={quote(str(security.tls.ca_cert))}" if security is not None else ""
        return f"mongodb://{HOST}:{ports['mongo']}/?directConnection=true{tls}"

    def credentials_uri(self, ports: Mapping[str, int], security: Security, *, password: str | None = None) -> str:
        """``address`` with the user's credentials (or ``password`` instead of the real one) in it."""
        secret = security.password if password is None else password
        creds = f"{quote(security.username, safe='')}:{quote(secret, safe='')}@"
        return self.address(ports).replace("mongodb://", f"mongodb://{creds}", 1)
