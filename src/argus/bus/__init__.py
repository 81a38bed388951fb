"""The message bus seam: an in-memory broker for one process, Apache Kafka for production."""

from argus.bus.base import Bus, Consumer, Record

__all__ = ["Bus", "Consumer", "Record"]
