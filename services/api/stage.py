"""``argus run api``: build the app from Resources and serve it with uvicorn until SIGTERM/SIGINT.

Thin on purpose (like the other services): everything the API does is argus.api and argus.operations. Metrics
(``argus_api_*``) and the usual /healthz and /readyz go on the ops server's port, so Prometheus and the kubelet
reach this service like the four stages; the API port serves its own /healthz and /readyz too, for a load balancer
that only sees that port.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from argus.runtime.http import Health, OpsServer
from argus.runtime.resources import Resources

log = logging.getLogger(__name__)


def serve(res: Resources, *, stop: threading.Event | None = None, metrics_port: int | None = None) -> None:
    """Serve until ``stop`` is set (or uvicorn's own signal handling ends it when ``stop`` is None). It runs in a
    thread too (``argus up``): uvicorn only installs signal handlers on the main thread, and ``stop`` ends it.
    Either way the app hears of the shutdown first, so open alert streams end instead of holding it up."""
    import uvicorn

    from argus.api.app import create_app
    from argus.api.limits import ApiMetrics

    s = res.settings
    shutdown = threading.Event()
    app = create_app(res, metrics=ApiMetrics(res.registry), shutdown=shutdown)
    health = Health(stale_after_s=float("inf"))
    port = s.metrics_port if metrics_port is None else metrics_port
    ops = OpsServer(port=port, registry=res.registry, health=health).start() if port else None
    # uvicorn logs through our logging config; its access log is off (ours never logs credentials or queries)
    config = uvicorn.Config(app, host=s.api_host, port=s.api_port, access_log=False, log_config=None,
                            server_header=False, proxy_headers=False, timeout_graceful_shutdown=10)
    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            shutdown.set()
            super().handle_exit(sig, frame)
            # SIGTERM is the orchestrator's normal stop: after the graceful shutdown end with status 0 like the
            # four stages, instead of uvicorn re-raising the signal (an exit of -15 reads as a crash in pod events).
            self._captured_signals = [s for s in self._captured_signals if s != signal.SIGTERM]

    server = Server(config)
    watcher = None
    if stop is not None:
        def watch() -> None:
            stop.wait()
            shutdown.set()
            server.should_exit = True

        watcher = threading.Thread(target=watch, name="api-stop", daemon=True)
        watcher.start()
    health.ready = True
    log.info("operator API on http://%s:%d/api/v1 (docs at /docs)", s.api_host, s.api_port)
    try:
        server.run()
    finally:
        shutdown.set()
        health.ready = False
        if ops:
            ops.stop()
