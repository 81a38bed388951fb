"""/metrics, /healthz and /readyz on one small threaded HTTP server per process.

Liveness means the stage loop is still turning (a heartbeat newer than ``stale_after_s``); readiness means its
dependencies answered at start-up and the loop is running. Kubernetes restarts a stuck stage on liveness and keeps
traffic off an unready one.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)


class Health:
    def __init__(self, *, stale_after_s: float = 60.0) -> None:
        self.ready = False
        self._beat = time.monotonic()
        self._stale = stale_after_s
        self.detail: dict[str, object] = {}

    def beat(self) -> None:
        self._beat = time.monotonic()

    def alive(self) -> bool:
        return time.monotonic() - self._beat < self._stale


class OpsServer:
    def __init__(self, *, port: int, registry: CollectorRegistry, health: Health, host: str = "0.0.0.0") -> None:
        handler = _make_handler(registry, health)
        self._srv = ThreadingHTTPServer((host, port), handler)
        self._srv.daemon_threads = True
        self.port = self._srv.server_address[1]
        self._thread = threading.Thread(target=self._srv.serve_forever, name="ops-http", daemon=True)

    def start(self) -> OpsServer:
        self._thread.start()
        log.info("serving /metrics /healthz /readyz on port %d", self.port)
        return self

    def stop(self) -> None:
        self._srv.shutdown()
        self._srv.server_close()


def _make_handler(registry: CollectorRegistry, health: Health) -> Callable[..., BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif self.path.startswith("/healthz"):
                ok = health.alive()
                self._send(200 if ok else 503, json.dumps({"alive": ok}).encode(), "application/json")
            elif self.path.startswith("/readyz"):
                ok = health.ready and health.alive()
                body = json.dumps({"ready": ok, **health.detail}, default=str).encode()
                self._send(200 if ok else 503, body, "application/json")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("ops http: " + format, *args)

    return Handler
