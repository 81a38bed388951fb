"""One metrics container per stage, on an injected registry.

Names are ``argus_<stage>_<what>``; labels are bounded (stage, camera, model, outcome, kind, sink, watchlist) —
never a person id or a free-text error, so cardinality stays proportional to cameras, not to people or events.
Tests and the one-process demo inject their own CollectorRegistry so stages never collide.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class StageMetrics:
    """Metrics every stage has; stage-specific ones are created through :meth:`counter` and friends."""

    def __init__(self, stage: str, *, registry: CollectorRegistry) -> None:
        self.stage = stage
        self.registry = registry
        p = f"argus_{stage}"
        self.messages_in = Counter(
            f"{p}_messages_in_total", "Messages consumed, by outcome (ok, error).", ["outcome"], registry=registry
        )
        self.messages_out = Counter(f"{p}_messages_out_total", "Messages published, by topic.", ["topic"],
                                    registry=registry)
        self.errors = Counter(f"{p}_errors_total", "Items that failed, by kind of error.", ["kind"], registry=registry)
        self.processing_seconds = Histogram(
            f"{p}_processing_seconds", "Wall time to process one batch.", buckets=LATENCY_BUCKETS, registry=registry
        )
        self.batch_size = Histogram(f"{p}_batch_size", "Messages per processed batch.", buckets=BATCH_BUCKETS,
                                    registry=registry)
        self.consumer_lag = Gauge(f"{p}_consumer_lag", "Messages waiting on this consumer's partitions.",
                                  registry=registry)
        self.e2e_latency = Histogram(
            f"{p}_latency_seconds", "Seconds from frame capture to this stage's output.",
            buckets=(*LATENCY_BUCKETS, 30.0, 60.0), registry=registry,
        )
        self.up = Gauge(f"{p}_up", "1 while the stage loop is running.", registry=registry)

    def counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(f"argus_{self.stage}_{name}", doc, list(labels), registry=self.registry)

    def gauge(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(f"argus_{self.stage}_{name}", doc, list(labels), registry=self.registry)

    def histogram(self, name: str, doc: str, labels: tuple[str, ...] = (),
                  buckets: tuple[float, ...] = LATENCY_BUCKETS) -> Histogram:
        return Histogram(f"argus_{self.stage}_{name}", doc, list(labels), buckets=buckets, registry=self.registry)


def metric_total(registry: CollectorRegistry, name: str) -> float:
    """Sum of every sample of ``name`` (all label values) in an in-process registry: the demo's and the
    benchmarks' summaries read the same counters Prometheus scrapes, not numbers of their own."""
    return sum(s.value for fam in registry.collect() for s in fam.samples if s.name == name)
