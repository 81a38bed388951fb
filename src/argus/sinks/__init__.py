"""Where alerts go: a log line (always), a webhook, a Kafka topic. :class:`~argus.sinks.base.FanOut` sends to all
of them and keeps one failing sink from stopping the others. Network sinks are imported lazily by their users."""

from argus.sinks.base import AlertSink, FanOut, SinkOutcome
from argus.sinks.log import LogSink

__all__ = ["AlertSink", "FanOut", "LogSink", "SinkOutcome"]
