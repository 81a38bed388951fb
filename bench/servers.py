"""Real servers for a benchmark area: started through ``argus_dev.devservers`` on free ports, always stopped after."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from argus_dev import devservers
from argus_dev.devservers import Endpoint
from argus_dev.devservers.manager import SPECS
from bench.common import Context

#: Servers started in the background (``--quick`` only: a smoke run need not keep the CPUs quiet for them).
_early: dict[str, tuple[Future[Endpoint], Path]] = {}
_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bench-servers")


def _up(name: str, state: Path) -> Endpoint:
    ports = {key: 0 for key in SPECS[name].port_keys}
    quiet = logging.getLogger("kafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # the readiness probe's client logs every refused connection while Kafka boots
    try:
        return devservers.up([name], ports=ports, state_dir=state)[name]
    finally:
        quiet.setLevel(level)


def prestart(names: list[str], state: Path) -> None:
    """Start servers now, in the background; :func:`serve` picks them up. Full runs never do this: a JVM
    booting next to a measurement would skew it."""
    for name in names:
        _early[name] = (_pool.submit(_up, name, state), state)


def stop_all() -> None:
    """Stop background-started servers that no area used (an area failed before reaching them)."""
    for name, (fut, state) in list(_early.items()):
        _early.pop(name, None)
        with contextlib.suppress(Exception):
            fut.result()
        devservers.down([name], state_dir=state)


@contextlib.contextmanager
def serve(ctx: Context, name: str) -> Iterator[Endpoint]:
    """Start ``name`` (kafka, triton, ...) with every port free and its state under the area's scratch dir."""
    early = _early.pop(name, None)
    state = early[1] if early else ctx.work_dir / "servers"
    t0 = time.monotonic()
    ctx.log(f"{'waiting for' if early else 'starting'} {name} (free ports, state {state})")
    if early:
        try:
            ep = early[0].result()
        except BaseException:
            devservers.down([name], state_dir=state)
            raise
    else:
        ep = _up(name, state)
    ctx.log(f"{name} ready at {ep.address} in {time.monotonic() - t0:.1f}s")
    try:
        yield ep
    finally:
        devservers.down([name], state_dir=state)
        ctx.log(f"{name} stopped")
