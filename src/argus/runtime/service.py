"""What ``argus run <stage>`` starts: a stage object with ``run(stop)`` and ``close()``, discovered by entry point."""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Protocol

from argus.errors import ConfigError
from argus.runtime.http import Health
from argus.runtime.resources import Resources
from argus.topology import STAGES

__all__ = ["STAGES", "Service", "build_service"]


class Service(Protocol):
    stage: str
    health: Health  # what /healthz and /readyz report

    def run(self, stop: threading.Event, *, idle_exit_s: float | None = None,
            exit_when_drained: bool = False) -> None: ...

    def close(self) -> None: ...


def build_service(stage: str, resources: Resources) -> Service:
    """Look the stage up in the ``argus.stages`` entry points (the library never imports services/*)."""
    eps = {ep.name: ep for ep in entry_points(group="argus.stages")}
    if stage not in eps:
        raise ConfigError(f"unknown stage {stage!r}; expected one of {', '.join(sorted(eps)) or STAGES}")
    factory = eps[stage].load()
    service: Service = factory(resources)
    return service


def load_api_server() -> Callable[..., None]:
    """The operator API's ``serve(resources, *, stop=None, metrics_port=None)`` from the ``argus.services`` entry
    points: it lives in services/api like the stages, so the library finds it the same way."""
    eps = {ep.name: ep for ep in entry_points(group="argus.services")}
    if "api" not in eps:
        raise ConfigError("the operator API is not installed: expected an 'api' entry point in the argus.services "
                          "group (pip install argus-watch, or scripts/setup.sh in a checkout)")
    serve: Callable[..., None] = eps["api"].load()
    return serve
