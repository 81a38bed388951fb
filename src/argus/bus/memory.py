"""In-memory twin of the Kafka bus: partitions, offsets, consumer groups and commits, in one process.

Messages are stored as bytes, so the demo round-trips every wire codec exactly as production does. Consumers of
one group split the partitions between them (round-robin by join order); a consumer that is closed without
committing leaves its messages to be redelivered to the next consumer of the group, like Kafka.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from argus.bus.base import Record, partition_for
from argus.errors import BusError


class MemoryBus:
    name = "memory"

    def __init__(self, *, partitions: int = 3) -> None:
        self._partitions = partitions
        self._logs: dict[str, list[list[Record]]] = {}
        self._committed: dict[tuple[str, str, int], int] = {}  # (group, topic, partition) -> next offset
        self._members: dict[str, list[MemoryConsumer]] = {}
        self._cond = threading.Condition()

    def ensure_topics(self, topics: Sequence[str]) -> None:
        with self._cond:
            for t in topics:
                self._logs.setdefault(t, [[] for _ in range(self._partitions)])

    def publish(self, topic: str, *, key: bytes | None, value: bytes) -> None:
        with self._cond:
            if topic not in self._logs:
                raise BusError(f"topic {topic!r} does not exist (create it with ensure_topics)")
            p = partition_for(key, self._partitions)
            log = self._logs[topic][p]
            log.append(Record(topic=topic, partition=p, offset=len(log), key=key, value=value,
                              timestamp_ms=int(time.time() * 1000)))
            self._cond.notify_all()

    def flush(self, timeout_s: float = 30.0) -> None:
        """Appends are synchronous here, so every published message is already acknowledged."""

    def consumer(self, topics: Sequence[str], *, group: str) -> MemoryConsumer:
        self.ensure_topics(topics)
        c = MemoryConsumer(self, list(topics), group)
        with self._cond:
            self._members.setdefault(group, []).append(c)
        return c

    def close(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # --- used by MemoryConsumer under self._cond ---
    def _assigned(self, c: MemoryConsumer) -> list[tuple[str, int]]:
        members = self._members.get(c.group, [])
        i, n = members.index(c), len(members)
        return [(t, p) for t in c.topics for p in range(self._partitions) if p % n == i]

    def pending(self, group: str, topics: Sequence[str]) -> int:
        """Messages published to ``topics`` and not yet committed by ``group``."""
        with self._cond:
            return sum(
                len(log) - self._committed.get((group, t, p), 0)
                for t in topics for p, log in enumerate(self._logs.get(t, []))
            )

    def end_offsets(self, topic: str) -> list[int]:
        with self._cond:
            return [len(log) for log in self._logs.get(topic, [])]

    def read_all(self, topic: str) -> list[Record]:
        with self._cond:
            return [r for log in self._logs.get(topic, []) for r in log]


class MemoryConsumer:
    def __init__(self, bus: MemoryBus, topics: list[str], group: str) -> None:
        self._bus = bus
        self.topics = topics
        self.group = group
        self._position: dict[tuple[str, int], int] = {}
        self._closed = False

    def _pos(self, tp: tuple[str, int]) -> int:
        if tp not in self._position:
            self._position[tp] = self._bus._committed.get((self.group, *tp), 0)
        return self._position[tp]

    def _take(self, max_records: int) -> list[Record]:
        out: list[Record] = []
        for tp in self._bus._assigned(self):
            log = self._bus._logs[tp[0]][tp[1]]
            pos = self._pos(tp)
            chunk = log[pos : pos + max_records - len(out)]
            out.extend(chunk)
            self._position[tp] = pos + len(chunk)
            if len(out) >= max_records:
                break
        return out

    def poll(self, *, max_records: int, timeout_s: float) -> list[Record]:
        deadline = time.monotonic() + timeout_s
        with self._bus._cond:
            while not self._closed:
                got = self._take(max_records)
                remaining = deadline - time.monotonic()
                if got or remaining <= 0:
                    return got
                self._bus._cond.wait(remaining)
        return []

    def commit(self, records: Sequence[Record]) -> None:
        with self._bus._cond:
            for r in records:
                k = (self.group, r.topic, r.partition)
                self._bus._committed[k] = max(self._bus._committed.get(k, 0), r.offset + 1)

    def lag(self) -> int:
        with self._bus._cond:
            return sum(
                len(self._bus._logs[t][p]) - self._pos((t, p)) for t, p in self._bus._assigned(self)
            )

    def close(self) -> None:
        with self._bus._cond:
            self._closed = True
            members = self._bus._members.get(self.group, [])
            if self in members:
                members.remove(self)
            self._bus._cond.notify_all()
