"""A MongoDB-wire server for tests: PyPI ``secantusdb`` (WiredTiger storage, single-node replica set).

No real ``mongod`` is installable from the registries reachable here. secantusdb speaks the wire protocol well
enough for what Argus's event store uses (indexes incl. TTL/unique, find+sort, aggregation, change streams).
It is GPL-2.0, so it only ever runs as a separate process and is never imported. Production runs MongoDB.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from argus_dev.devservers import HOST, DevServerError, Launch, ServerSpec, install_once, make_venv

log = logging.getLogger(__name__)

SECANTUS_VERSION = "0.7.0b3"


class MongoServer(ServerSpec):
    name = "mongo"
    port_keys = ("mongo",)
    cmdline_marker = "secantusd"
    ready_timeout_s = 60.0
    stop_timeout_s = 15.0

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
        return Launch(cmd=cmd, cwd=data_dir, extra={"secantusdb_version": SECANTUS_VERSION})

    def ready(self, ports: Mapping[str, int]) -> bool:
        try:
            from pymongo import MongoClient
        except ImportError as e:
            raise DevServerError("mongo: the readiness check needs pymongo (pip install argus-watch[mongo])") from e
        client: MongoClient[dict[str, Any]] = MongoClient(self.address(ports), serverSelectionTimeoutMS=1000,
                                                          connectTimeoutMS=1000)
        try:
            return bool(client.admin.command("ping").get("ok"))
        finally:
            client.close()

    def address(self, ports: Mapping[str, int]) -> str:
        # directConnection: the server presents itself as a replica set; tests talk to this one node only.
        return f"mongodb://{HOST}:{ports['mongo']}/?directConnection=true"
