"""The pipeline's shape, named once: the stages, what each reads and writes, and its consumer group.

The one-process wiring, the local cluster, the Kubernetes checker and the dashboard builder all read these, so adding
a stage or moving a topic is one edit here (and in the stage itself, which imports its topics from this module).
"""

from __future__ import annotations

from argus.schemas import TOPIC_ALERTS, TOPIC_DEADLETTER, TOPIC_FACES, TOPIC_FRAMES, TOPIC_MATCHES

#: Every stage, in pipeline order (``argus run <stage>``; one entry point each in ``argus.stages``).
STAGES: tuple[str, ...] = ("ingest", "inference", "matcher", "alerter")

#: The topic each consuming stage reads. Ingest reads cameras, not a topic.
INPUT_TOPICS: dict[str, str] = {"inference": TOPIC_FRAMES, "matcher": TOPIC_FACES, "alerter": TOPIC_MATCHES}

#: What each stage publishes besides dead letters (the alerter's topic only when the ``kafka`` sink is on).
OUTPUT_TOPICS: dict[str, tuple[str, ...]] = {
    "ingest": (TOPIC_FRAMES,), "inference": (TOPIC_FACES,), "matcher": (TOPIC_MATCHES,), "alerter": (TOPIC_ALERTS,),
}

#: Stages that consume a topic, in pipeline order.
CONSUMING_STAGES: tuple[str, ...] = tuple(s for s in STAGES if s in INPUT_TOPICS)

#: Every topic Argus creates.
ALL_TOPICS: tuple[str, ...] = (TOPIC_FRAMES, TOPIC_FACES, TOPIC_MATCHES, TOPIC_ALERTS, TOPIC_DEADLETTER)
#: The replicated gallery (ARGUS_GALLERY_SYNC=bus): compacted, keyed by person, one partition. Not in ALL_TOPICS:
#: argus.gallery.replication creates it with its own config (argus.gallery.replication.GALLERY_TOPIC_CONFIG).
TOPIC_GALLERY = "argus.gallery.v1"


def consumer_group(stage: str) -> str:
    """One consumer group per stage: replicas of a stage share the partitions, every stage sees every message."""
    return f"argus-{stage}"
