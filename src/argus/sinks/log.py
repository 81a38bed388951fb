"""The always-on sink: one structured log line per alert.

``key=value`` pairs (values JSON-quoted when they contain spaces) so the line is readable by a person on a console
and parseable by a log shipper; the same fields go in the record's ``extra["alert"]`` for JSON formatters. The crop
never goes into logs: logs are kept longer and read by more people than the evidence store.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from argus.schemas import AlertV3

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:+/@")


def alert_fields(alert: AlertV3) -> dict[str, Any]:
    """What a responder needs from the alert, in reading order; no crop bytes."""
    return {
        "alert_id": alert.alert_id,
        "person_id": alert.person_id,
        "person": alert.display_name,
        "watchlist": alert.watchlist,
        "camera_id": alert.camera_id,
        "camera": alert.camera_name,
        "address": alert.location.address,
        "zone": alert.location.zone,
        "lat": alert.location.lat,
        "lon": alert.location.lon,
        "score": round(alert.score, 4),
        "threshold": round(alert.threshold, 4),
        "margin": round(alert.margin, 4),
        "faces": f"{alert.faces_supporting}/{alert.faces_embedded}/{alert.faces_seen}",  # agreeing/embedded/seen
        "emotion": alert.emotion,
        "emotion_path": alert.emotion_path,  # what decided it: the CNN alone, or the ECRL rules too (argus.ecrl)
        "captured": datetime.fromtimestamp(alert.ts_capture, tz=UTC).isoformat(timespec="milliseconds"),
        "event_id": alert.event_id,
        "track_id": alert.track_id,
        "revision": alert.revision,
        **({"withdrawn": True} if alert.withdrawn else {}),
    }


def _fmt(v: Any) -> str:
    s = v if isinstance(v, str) else json.dumps(v)
    return s if s and all(c in _SAFE for c in s) else json.dumps(s, ensure_ascii=False)


class LogSink:
    name = "log"

    def __init__(self, *, logger: logging.Logger | None = None, level: int = logging.WARNING) -> None:
        """WARNING by default: an alert must show up even where INFO is filtered out."""
        self._log = logger or logging.getLogger("argus.alerts")
        self._level = level

    def send(self, alert: AlertV3) -> None:
        fields = alert_fields(alert)
        line = "ALERT " + " ".join(f"{k}={_fmt(v)}" for k, v in fields.items())
        self._log.log(self._level, "%s", line, extra={"alert": fields})

    def close(self) -> None:
        pass
