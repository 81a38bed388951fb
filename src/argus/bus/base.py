"""Bus protocol: keyed publish, consumer groups, explicit commits.

The contract mirrors Kafka's because production runs on Kafka: messages with the same key land on the same
partition (per-camera order), each consumer group sees every message, a consumer commits only after its own
outputs were acknowledged (``flush``), so a crash replays uncommitted messages — at-least-once, made harmless by
idempotent writes downstream.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, kw_only=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int


def partition_for(key: bytes | None, partitions: int) -> int:
    """Stable key → partition (crc32); the in-memory bus only, Kafka uses its own murmur2 partitioner."""
    if key is None or partitions == 1:
        return 0
    return zlib.crc32(key) % partitions


class Consumer(Protocol):
    def poll(self, *, max_records: int, timeout_s: float) -> list[Record]:
        """Up to ``max_records`` records; waits at most ``timeout_s`` for the first one, returns what is there."""
        ...

    def commit(self, records: Sequence[Record]) -> None:
        """Mark ``records`` (and everything before them on their partitions) as processed for this group."""
        ...

    def lag(self) -> int:
        """Messages not yet consumed by this consumer's assigned partitions (for metrics and autoscaling)."""
        ...

    def close(self) -> None: ...


class Bus(Protocol):
    name: str

    def ensure_topics(self, topics: Sequence[str]) -> None: ...

    def publish(self, topic: str, *, key: bytes | None, value: bytes) -> None:
        """Queue a message; it is durable only after ``flush`` returns."""
        ...

    def flush(self, timeout_s: float = 30.0) -> None:
        """Block until every published message is acknowledged; raise BusError if any was not."""
        ...

    def consumer(self, topics: Sequence[str], *, group: str) -> Consumer: ...

    def pending(self, group: str, topics: Sequence[str]) -> int:
        """Messages on ``topics`` not yet committed by ``group``: its lag, what autoscaling and drain checks read."""
        ...

    def end_offsets(self, topic: str) -> list[int]:
        """Per-partition end offsets of ``topic`` (how many messages were ever written to each partition)."""
        ...

    def read_all(self, topic: str) -> list[Record]:
        """Every record on ``topic`` now, from the start, without joining a consumer group: for small compacted
        topics only (the control topic ``--exit-when-drained`` reads)."""
        ...

    def close(self) -> None: ...
