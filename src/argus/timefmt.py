"""The one way a person types a time for Argus (CLI flags, bulk manifests): epoch seconds or ISO-8601, UTC when the
text names no zone — an analyst's "2026-11-01" must mean the same instant on every machine."""

from __future__ import annotations

from datetime import UTC, datetime

from argus.errors import InputError


def parse_time(value: str, where: str) -> float:
    """Epoch seconds from ``value``; InputError naming ``where`` when it is neither form."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(value)
    except ValueError as e:
        raise InputError(f"{where}: expected epoch seconds or an ISO-8601 time, got {value!r}") from e
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
