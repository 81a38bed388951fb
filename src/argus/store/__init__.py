"""Event history and alerts: :class:`~argus.store.sqlite.SqliteEventStore` embedded (laptop demo, single box),
:class:`~argus.store.mongo.MongoEventStore` in production. Both satisfy :class:`~argus.store.base.EventStore`;
the backends are imported lazily so the demo never needs pymongo."""

from argus.store.base import (
    ALERT_STATUSES,
    MAX_PAGE,
    AlertFilter,
    AlertNotFoundError,
    AlertRecord,
    ApiKeyRecord,
    AuditFilter,
    CameraRecord,
    EventFilter,
    EventStore,
    KeyNotFoundError,
    Page,
    PersonRecord,
    Retention,
    SightingEvent,
)

__all__ = [
    "ALERT_STATUSES",
    "MAX_PAGE",
    "AlertFilter",
    "AlertNotFoundError",
    "AlertRecord",
    "ApiKeyRecord",
    "AuditFilter",
    "CameraRecord",
    "EventFilter",
    "EventStore",
    "KeyNotFoundError",
    "Page",
    "PersonRecord",
    "Retention",
    "SightingEvent",
]
