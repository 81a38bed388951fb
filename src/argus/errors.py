"""One exception root for Argus.

Third-party errors (OpenCV, ONNX Runtime, kafka-python, tritonclient, pymongo, FAISS) are translated at the
boundary with ``raise ... from e`` so callers only ever catch :class:`ArgusError` subclasses, and the message
names the thing that was wrong (camera id, topic, model, file) rather than a library internal.
"""

from __future__ import annotations


class ArgusError(Exception):
    """Root of every error Argus raises on purpose."""


class ConfigError(ArgusError):
    """A configuration value is missing or invalid; raised at start-up, before any I/O."""


class InputError(ArgusError):
    """Bad input data (corrupt frame, image with no face, wrong shape). The item is skipped, the stage goes on."""


class NoFaceError(InputError):
    """An image that had to contain exactly one face contained none (or several)."""


class SchemaError(InputError):
    """A wire message is malformed or of an unknown schema version."""


class SourceError(ArgusError):
    """A camera stream could not be opened or stopped delivering frames."""


class BackendError(ArgusError):
    """The inference backend failed (model missing, shape mismatch, server unreachable)."""


class BusError(ArgusError):
    """The message bus failed to deliver or acknowledge."""


class StoreError(ArgusError):
    """The event store or gallery failed to persist or query."""


class SinkError(ArgusError):
    """An alert sink failed after its retries."""
