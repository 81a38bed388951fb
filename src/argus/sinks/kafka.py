"""Publish alerts to the ``argus.alerts.v1`` topic for downstream systems (dispatch, case management).

The value is the wire encoding (:func:`argus.schemas.encode`, MessagePack) and the key the camera id, like every
other topic. ``send`` waits for the broker's acknowledgement (``acks=all``): an alert is rare and must not be
reported as delivered while it sits in a client buffer.

Note: the alerter stage can also emit alerts as regular stage outputs on the bus (committed with the input
offsets). Enable one or the other for the same topic, not both, or consumers see each alert twice.
"""

from __future__ import annotations

import logging
from typing import Any

from argus.errors import SinkError
from argus.schemas import TOPIC_ALERTS, AlertV1, encode

log = logging.getLogger(__name__)


class KafkaSink:
    name = "kafka"

    def __init__(self, *, producer: Any, topic: str = TOPIC_ALERTS, timeout_s: float = 10.0,
                 owns_producer: bool = False) -> None:
        """``producer`` is a kafka-python ``KafkaProducer`` (or anything with its ``send``/``flush``/``close``);
        it should be built with ``acks="all"`` — :meth:`connect` does that."""
        self._producer = producer
        self._topic = topic
        self._timeout = timeout_s
        self._owns = owns_producer

    @classmethod
    def connect(cls, *, bootstrap: str, topic: str = TOPIC_ALERTS, timeout_s: float = 10.0,
                client_id: str = "argus-alerts") -> KafkaSink:
        try:
            from kafka import KafkaProducer
        except ImportError as e:  # the server clients are an optional extra
            raise SinkError("the Kafka alert sink needs kafka-python: pip install 'argus-watch[kafka]'") from e
        ms = int(timeout_s * 1000)
        # Start-up and a missing topic fail within timeout_s instead of kafka-python's 30-60 s defaults.
        # (bootstrap_timeout_ms exists from kafka-python 3; 2.x bounds the first contact by the api-version probe.)
        bounded = {"bootstrap_timeout_ms" if "bootstrap_timeout_ms" in KafkaProducer.DEFAULT_CONFIG
                   else "api_version_auto_timeout_ms": ms}
        try:
            producer = KafkaProducer(
                bootstrap_servers=bootstrap.split(","), client_id=client_id, acks="all", enable_idempotence=True,
                linger_ms=0, max_request_size=4 * 1024 * 1024, delivery_timeout_ms=ms, max_block_ms=ms,
                request_timeout_ms=max(1000, ms - 500), **bounded,
            )
        except Exception as e:
            raise SinkError(f"kafka sink: cannot connect a producer to {bootstrap}: {e}") from e
        return cls(producer=producer, topic=topic, timeout_s=timeout_s, owns_producer=True)

    def send(self, alert: AlertV1) -> None:
        value = encode(alert)
        try:
            meta = self._producer.send(self._topic, key=alert.key(), value=value).get(timeout=self._timeout)
        except Exception as e:  # KafkaError subclasses, or the future timing out
            raise SinkError(
                f"kafka sink: alert {alert.alert_id} ({len(value)} bytes) not acknowledged on {self._topic!r}: {e}"
            ) from e
        log.debug("alert %s → %s[%s]@%s", alert.alert_id, self._topic, meta.partition, meta.offset)

    def close(self) -> None:
        try:
            if self._owns:
                self._producer.close(timeout=self._timeout)
            else:
                self._producer.flush(timeout=self._timeout)
        except Exception as e:
            log.warning("closing the Kafka alert sink failed: %s", e)
