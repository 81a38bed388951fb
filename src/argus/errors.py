"""One exception root for Argus, split by what the caller can do about an error.

Third-party errors (OpenCV, ONNX Runtime, kafka-python, tritonclient, pymongo, FAISS) are translated at the
boundary with ``raise ... from e`` so callers only ever catch :class:`ArgusError` subclasses, and the message
names the thing that was wrong (camera id, topic, model, file) rather than a library internal.

The stage runner decides from the type alone (pytriton's split of timeout / unavailable / bad request):

- :class:`TransientError` — a server is unavailable or too slow *now*; the same call can succeed later. The batch
  is held (nothing committed, the stage reports not ready) and retried with capped backoff until the server
  returns: an outage is not bad input, and no sighting is moved to the dead-letter topic by it.
- :class:`InputError` — this item is bad (corrupt frame, malformed message): dead-lettered, the rest goes on.
- any other :class:`ArgusError` — retrying cannot help (a configuration error, an unknown camera, a malformed
  stored record, a model with the wrong shape): the items that cause it are dead-lettered at once with the reason.
"""

from __future__ import annotations


class ArgusError(Exception):
    """Root of every error Argus raises on purpose."""


class TransientError(ArgusError):
    """A server Argus depends on is unavailable or too slow right now; the same call can succeed later."""


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


class BackendUnavailable(BackendError, TransientError):
    """Triton cannot be reached or timed out (restart, roll-out, overload): retry later, the request was fine."""


class BusUnavailable(BusError, TransientError):
    """The broker did not acknowledge in time (restart, leader election): retry later."""


class StoreUnavailable(StoreError, TransientError):
    """The event store cannot be reached or timed out: retry later, the write was fine."""
