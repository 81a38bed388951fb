"""The four stages as threads in one process over one :class:`Resources`: how ``argus demo`` and the end-to-end
benchmarks run the pipeline, so both measure the very wiring a newcomer meets.

Every message still round-trips its wire codec on the (usually in-memory) bus, exactly as between pods.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from types import TracebackType

from argus.bus.base import Bus
from argus.runtime.resources import Resources
from argus.runtime.service import Service, build_service
from argus.topology import INPUT_TOPICS, STAGES, consumer_group


def drained(bus: Bus) -> bool:
    """Every consuming stage has committed everything published to its input topic."""
    return all(bus.pending(consumer_group(s), [t]) == 0 for s, t in INPUT_TOPICS.items())


def wait_drained(bus: Bus, *, timeout_s: float = 300.0, settle_s: float = 0.2, poll_s: float = 0.1) -> None:
    """Wait until :func:`drained` holds twice ``settle_s`` apart (a stage may still be publishing its last
    outputs when its input is committed); TimeoutError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if drained(bus):
            time.sleep(settle_s)
            if drained(bus):
                return
        time.sleep(poll_s)
    raise TimeoutError(f"stages did not drain within {timeout_s:.0f}s")


class InProcessPipeline:
    """``with InProcessPipeline(res) as p: p.wait_ingest(); p.wait_drained()`` — stages stopped and closed on exit.

    ``ingest_idle_exit_s``: ingest returns that long after every source ended (0: at once, for files); None keeps
    it running until :meth:`stop_ingest` (live or looping sources)."""

    def __init__(self, resources: Resources, *, stages: Sequence[str] = STAGES,
                 ingest_idle_exit_s: float | None = 0.0) -> None:
        self.resources = resources
        self.services: dict[str, Service] = {name: build_service(name, resources) for name in stages}
        self._stop_ingest = threading.Event()
        self._stop_rest = threading.Event()
        self.threads = {
            name: threading.Thread(
                target=svc.run, name=f"stage-{name}", daemon=True,
                args=(self._stop_ingest if name == "ingest" else self._stop_rest,),
                kwargs={"idle_exit_s": ingest_idle_exit_s} if name == "ingest" else {},
            )
            for name, svc in self.services.items()
        }
        self._closed = False

    def __enter__(self) -> InProcessPipeline:
        for t in self.threads.values():
            t.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def wait_ingest(self, timeout_s: float | None = None) -> None:
        """Until ingest's loop returned (its sources ended and ``ingest_idle_exit_s`` passed)."""
        if "ingest" in self.threads:
            self.threads["ingest"].join(timeout_s)

    def sources_finished(self) -> bool:
        return bool(self.services["ingest"].health.detail.get("sources_finished"))

    def stop_ingest(self, timeout_s: float = 60.0) -> None:
        """Ingest flushes what it holds and returns; the other stages go on draining."""
        self._stop_ingest.set()
        self.wait_ingest(timeout_s)

    def wait_drained(self, **kwargs: float) -> None:
        wait_drained(self.resources.bus, **kwargs)

    def stop(self, timeout_s: float = 30.0) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop_ingest.set()
        self._stop_rest.set()
        for t in self.threads.values():
            if t.ident is not None:  # started
                t.join(timeout=timeout_s)
        for svc in self.services.values():
            svc.close()
