"""A camera that comes and goes: the reconnect backoff starts over only after a stable session, every short one is
counted as a flap, and a camera that keeps delivering frames is never given up on."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pytest

from argus.errors import ConfigError, SourceError
from argus.ingest.reader import CameraReader, ReaderState
from argus.ingest.sources import CapturedFrame
from argus.retry import Backoff

IMAGE = np.zeros((8, 8, 3), np.uint8)


@dataclass(frozen=True, kw_only=True)
class RecordingBackoff(Backoff):
    """Backoff that remembers the step it was asked for each time (what the reader decided)."""

    steps: list[int] = field(default_factory=list, compare=False)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        self.steps.append(attempt)
        return super().delay(attempt, rng)


class FlappingSource:
    """Fault injection a real camera gives only by chance: each session streams ``up_s`` seconds, then fails."""

    def __init__(self, up_s: float) -> None:
        self.camera_id = "flap"
        self.up_s = up_s
        self.sessions = 0
        self._opened = 0.0
        self._seq = 0
        self.lock = threading.Lock()

    def open(self) -> None:
        with self.lock:
            self.sessions += 1
        self._opened = time.monotonic()

    def read(self) -> CapturedFrame | None:
        if time.monotonic() - self._opened > self.up_s:
            raise SourceError("camera 'flap': connection reset by peer")
        time.sleep(0.005)
        self._seq += 1
        return CapturedFrame(camera_id=self.camera_id, seq=self._seq, ts=time.time(), image=IMAGE)

    def close(self) -> None:
        pass


def _run(up_s: float, stable_after_s: float, sessions: int, *, max_failures: int | None = None
         ) -> tuple[CameraReader, RecordingBackoff]:
    backoff = RecordingBackoff(initial_s=0.01, factor=2.0, max_s=0.08, jitter=0.0)
    src = FlappingSource(up_s)
    reader = CameraReader(src, queue_size=10_000, backoff=backoff, stable_after_s=stable_after_s,
                          max_failures=max_failures).start()
    end = time.monotonic() + 20
    while src.sessions < sessions and time.monotonic() < end and reader.running:
        time.sleep(0.01)
    assert reader.stop(timeout=2.0)
    return reader, backoff


@pytest.mark.parametrize(("up_s", "stable_after_s", "expected_steps", "flapping"), [
    (0.05, 10.0, [0, 1, 2, 3, 4], True),  # short sessions: the backoff climbs to the cap (0.08 s = step 3+)
    (0.15, 0.1, [0, 0, 0, 0, 0], False),  # each session stayed up past stable_after_s: a fresh start every time
])
def test_the_backoff_starts_over_only_after_a_stable_session(up_s: float, stable_after_s: float,
                                                             expected_steps: list[int], flapping: bool) -> None:
    reader, backoff = _run(up_s, stable_after_s, sessions=6)
    st = reader.stats()
    assert backoff.steps[:5] == expected_steps
    assert (st.flaps >= 5) is flapping and (st.flaps == 0) is not flapping
    assert st.reconnects >= 5 and st.frames_read > 0


def test_a_flapping_camera_that_delivers_frames_is_never_given_up_on() -> None:
    reader, _ = _run(0.03, 10.0, sessions=6, max_failures=2)
    st = reader.stats()
    assert st.state is not ReaderState.failed and st.flaps >= 5


def test_stable_after_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="stable_after_s: expected > 0, got 0"):
        CameraReader(FlappingSource(1.0), stable_after_s=0)
