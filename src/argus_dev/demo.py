"""``argus demo --distributed``: the demo's watch-list and clips through the four stages as separate processes over
the dev servers (Kafka, Triton, MongoDB), in place of ``argus demo``'s one process.

It lives in the dev harness because it runs a :class:`~argus_dev.cluster.LocalCluster`; the runtime's ``argus demo``
finds it through the ``argus.demo_modes`` entry point (:func:`argus_dev.commands.distributed_demo`).
"""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from argus.demo import DEMO_CAMERAS, DemoResult, alerts_json, enroll_demo_watchlist
from argus.runtime.resources import Resources
from argus.schemas import TOPIC_DEADLETTER, TOPIC_FRAMES
from argus_dev.cluster import LocalCluster, Servers


def run_distributed_demo(*, servers: Servers, data_dir: Path, cameras_file: Path = DEMO_CAMERAS,
                         timeout_s: float = 600.0) -> DemoResult:
    """The same demo with the four stages as separate processes over Kafka, Triton and MongoDB.

    It resets the demo's topics, consumer groups and its own MongoDB database (``argus_demo``) first, so every
    run starts empty; the stages keep running until every frame has passed every stage, then stop on SIGTERM.
    """
    t0 = time.monotonic()
    cluster = LocalCluster(servers=servers, data_dir=data_dir, cameras_file=cameras_file)
    cluster.reset()
    with Resources(cluster.settings, registry=CollectorRegistry()) as res:
        enroll_demo_watchlist(res)
        with cluster.running():
            cluster.wait_drained(timeout_s=timeout_s)
            faces = cluster.procs["inference"].metric("argus_inference_faces_total")
            matches = cluster.procs["matcher"].metric("argus_matcher_matches_total")
        result = DemoResult(frames=sum(cluster.end_offsets(TOPIC_FRAMES)), faces=int(faces), matches=int(matches),
                            alerts=alerts_json(res.store))
        result.extra = {"bus": "kafka", "backend": "triton", "store": "mongodb", "events": res.store.count_events(),
                        "dead_letters": sum(cluster.end_offsets(TOPIC_DEADLETTER)),
                        "processes": {s: p.starts for s, p in cluster.procs.items()},
                        "logs": str(cluster.data_dir / "logs")}
        result.seconds = time.monotonic() - t0
        return result
