"""Alert sink contract and the fan-out that isolates sinks from each other.

A sink delivers one alert somewhere people (or systems) act on it. Delivery is at least once: after a crash the
alerter may send an alert again, so receivers dedupe on ``alert_id`` (the webhook also sends it as
``Idempotency-Key``). A sink raises :class:`argus.errors.SinkError` only after its own retries are exhausted.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from argus.schemas import AlertV3

log = logging.getLogger(__name__)


class AlertSink(Protocol):
    name: str

    def send(self, alert: AlertV3) -> None:
        """Deliver or raise SinkError; bounded in time by the sink's own timeout and retries."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SinkOutcome:
    sink: str
    ok: bool
    seconds: float
    error: str | None = None


class FanOut:
    """Send each alert to every sink, in order; one sink failing (or raising anything at all) never stops the rest.

    Sinks run one after the other rather than in threads: each bounds its own time, alerts are rare, and the order
    (log first, then the network sinks) keeps a record of the alert even when the network is down.
    """

    name = "fanout"

    def __init__(self, sinks: Sequence[AlertSink]) -> None:
        names = [s.name for s in sinks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            from argus.errors import ConfigError

            raise ConfigError(f"alert sinks: expected unique names, got duplicates {dupes}")
        self.sinks = list(sinks)
        self.sent: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()  # by sink name, for the sink_failures_total metric

    def send(self, alert: AlertV3) -> list[SinkOutcome]:
        out: list[SinkOutcome] = []
        for sink in self.sinks:
            t0 = time.perf_counter()
            try:
                sink.send(alert)
            except Exception as e:  # isolation is the point: any failure of one sink is recorded, not raised
                self.failures[sink.name] += 1
                out.append(SinkOutcome(sink.name, False, time.perf_counter() - t0, f"{type(e).__name__}: {e}"))
                log.error("alert %s: sink %s failed: %s", alert.alert_id, sink.name, e)
            else:
                self.sent[sink.name] += 1
                out.append(SinkOutcome(sink.name, True, time.perf_counter() - t0))
        return out

    def close(self) -> None:
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as e:  # closing is best effort; the others still get closed
                log.warning("closing alert sink %s failed: %s", sink.name, e)
