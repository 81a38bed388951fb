"""A bounded queue that sheds the OLDEST item instead of blocking the producer.

A camera does not wait for us: if the bus or inference is slow, blocking the reader would only make OpenCV's own
buffer fill with ever older frames. Dropping the oldest queued frame keeps memory bounded, never stalls ingest,
and means what finally reaches inference is the freshest picture of the scene. Every drop is counted so a slow
consumer shows up in metrics instead of as silent latency.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Generic, TypeVar

from argus.errors import ConfigError

T = TypeVar("T")

__all__ = ["DropOldestQueue"]


class DropOldestQueue(Generic[T]):
    """Thread-safe bounded FIFO; ``put`` never blocks and returns the item it evicted (or None).

    ``notify`` (optional) is set on every put so one consumer can wait on many per-camera queues at once.
    """

    def __init__(self, maxsize: int, *, notify: threading.Event | None = None) -> None:
        if not isinstance(maxsize, int) or isinstance(maxsize, bool) or maxsize < 1:
            raise ConfigError(f"DropOldestQueue maxsize: expected an int >= 1, got {maxsize!r}")
        self._maxsize = maxsize
        self._items: deque[T] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._notify = notify
        self._dropped = 0
        self._put = 0

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @property
    def dropped(self) -> int:
        """Items evicted since creation (monotonic: read it as a counter)."""
        with self._cond:
            return self._dropped

    @property
    def put_count(self) -> int:
        with self._cond:
            return self._put

    @property
    def depth(self) -> int:
        with self._cond:
            return len(self._items)

    def __len__(self) -> int:
        return self.depth

    def put(self, item: T) -> T | None:
        """Append ``item``; when full, evict and return the oldest item so the caller can count or log it."""
        evicted: T | None = None
        with self._cond:
            if len(self._items) >= self._maxsize:
                evicted = self._items.popleft()
                self._dropped += 1
            self._items.append(item)
            self._put += 1
            self._cond.notify()
        if self._notify is not None:
            self._notify.set()
        return evicted

    def get(self, timeout: float | None = None) -> T | None:
        """Oldest item, waiting up to ``timeout`` seconds (None = forever); None when nothing arrived in time."""
        with self._cond:
            if timeout is None:
                while not self._items:
                    self._cond.wait()
            else:
                deadline = time.monotonic() + max(0.0, timeout)
                while not self._items:
                    remaining = deadline - time.monotonic()
                    if (remaining <= 0 or not self._cond.wait(remaining)) and not self._items:
                        return None
            return self._items.popleft()

    def get_nowait(self) -> T | None:
        with self._cond:
            return self._items.popleft() if self._items else None

    def drain(self) -> list[T]:
        """Everything queued now, oldest first (used at shutdown to flush what was already captured)."""
        with self._cond:
            out = list(self._items)
            self._items.clear()
            return out
