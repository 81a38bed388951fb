"""Real servers for a benchmark area: started through ``argus.devservers`` on free ports, always stopped after."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

from argus import devservers
from argus.devservers import Endpoint
from argus.devservers.manager import SPECS
from bench.common import Context


@contextlib.contextmanager
def serve(ctx: Context, name: str) -> Iterator[Endpoint]:
    """Start ``name`` (kafka, triton, ...) with every port free and its state under the area's scratch dir."""
    state = ctx.work_dir / "servers"
    ports = {key: 0 for key in SPECS[name].port_keys}
    t0 = time.monotonic()
    ctx.log(f"starting {name} (free ports, state {state})")
    quiet = logging.getLogger("kafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # the readiness probe's client logs every refused connection while Kafka boots
    try:
        ep = devservers.up([name], ports=ports, state_dir=state)[name]
    finally:
        quiet.setLevel(level)
    ctx.log(f"{name} ready at {ep.address} in {time.monotonic() - t0:.1f}s")
    try:
        yield ep
    finally:
        devservers.down([name], state_dir=state)
        ctx.log(f"{name} stopped")
