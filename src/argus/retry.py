"""One backoff rule for everything that waits before trying again (camera reconnects, batch retries, Triton calls,
webhook deliveries), so the numbers an operator tunes mean the same thing everywhere."""

from __future__ import annotations

import random
from dataclasses import dataclass

from argus.errors import ConfigError

__all__ = ["Backoff"]


@dataclass(frozen=True, kw_only=True)
class Backoff:
    """Capped exponential backoff with downward jitter: delay(n) ∈ [(1-jitter)·d, d], d = min(cap, initial·factorⁿ).

    Jitter is downward so ``max_s`` stays a real ceiling; it exists so fifty cameras behind one dead switch (or
    fifty replicas behind one restarting Triton) do not retry in lock-step. ``initial_s=0`` retries at once (tests).
    """

    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not (self.initial_s >= 0 and self.max_s >= self.initial_s and self.factor >= 1 and 0 <= self.jitter < 1):
            raise ConfigError(f"Backoff: expected 0 <= initial_s <= max_s, factor >= 1, 0 <= jitter < 1, got {self}")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0 for the first retry)."""
        d = min(self.max_s, self.initial_s * self.factor ** min(max(attempt, 0), 64))
        return d * (1.0 - self.jitter * (rng or random).random()) if self.jitter else d
