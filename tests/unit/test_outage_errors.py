"""What the server clients raise during an outage is told apart from what can never succeed, at the boundary: the
first becomes a TransientError (the runner holds the batch until the server is back), the second is dead-lettered
at once. The exceptions are the clients' own types, built as the clients raise them (seen in tests/e2e/
test_outages.py against the real servers); no server is faked."""

from __future__ import annotations

import pytest


def _pymongo(name: str, *args: object, **kwargs: object) -> Exception:
    import pymongo.errors

    exc: Exception = getattr(pymongo.errors, name)(*args, **kwargs)
    return exc


@pytest.mark.parametrize(("error", "retry_later"), [
    (lambda: _pymongo("ServerSelectionTimeoutError", "127.0.0.1:27017: [Errno 111] Connection refused"), True),
    (lambda: _pymongo("AutoReconnect", "connection closed"), True),
    (lambda: _pymongo("NetworkTimeout", "timed out"), True),
    (lambda: _pymongo("NotPrimaryError", "node is shutting down", {"code": 91}), True),
    (lambda: _pymongo("ExecutionTimeout", "operation exceeded time limit", 50), True),
    (lambda: _pymongo("WTimeoutError", "waiting for replication timed out", 64), True),
    (lambda: _pymongo("OperationFailure", "interrupted at shutdown", 11600), True),
    (lambda: _pymongo("OperationFailure", "socket exception", 9001), True),
    (lambda: _pymongo("OperationFailure", "x", 1, {"errorLabels": ["RetryableWriteError"]}), True),
    (lambda: _pymongo("OperationFailure", "unknown operator: $foo", 2), False),
    (lambda: _pymongo("DuplicateKeyError", "E11000 duplicate key", 11000), False),
    (lambda: _pymongo("DocumentTooLarge", "BSON document too large"), False),
    (lambda: _pymongo("OperationFailure", "Authentication failed.", 18), False),
    (lambda: ValueError("not a pymongo error"), False),
])
def test_pymongo_errors_that_mean_the_server_is_away_are_retried_later_and_no_others(error, retry_later) -> None:
    from argus.store.mongo import retry_later as classify

    assert classify(error()) is retry_later


@pytest.mark.parametrize(("name", "args", "transient"), [
    ("KafkaTimeoutError", ("Unable to bootstrap from ['127.0.0.1:9092']",), True),  # what 3.x raises for no broker
    ("KafkaTimeoutError", ("Timeout waiting for future",), True),  # producer.flush during an outage
    ("KafkaConnectionError", ("111 ECONNREFUSED",), True),
    ("NodeNotReadyError", (), True),
    ("RequestTimedOutError", (), True),
    ("NotLeaderForPartitionError", (), True),  # a leader election after the restart
    ("CoordinatorNotAvailableError", (), True),
    ("MessageSizeTooLargeError", (), False),
    ("TopicAuthorizationFailedError", (), False),
    ("CommitFailedError", (), False),  # not retried: the records come again after the rejoin (KafkaBusConsumer)
])
def test_kafka_errors_a_broker_restart_causes_are_transient_and_bad_requests_are_not(name, args, transient) -> None:
    import kafka.errors

    from argus.bus.kafka import _retriable

    assert _retriable(getattr(kafka.errors, name)(*args)) is transient


@pytest.mark.parametrize(("status", "message", "transient"), [
    # what a restarting Triton answered, in order (tests/e2e/test_outages.py on the real server)
    ("StatusCode.UNAVAILABLE", "[request id: <id_unknown>] Server is stopping, scheduler for model has stopped "
                               "accepting new inference requests", True),
    ("StatusCode.NOT_FOUND", "Request for unknown model: 'face_embedder' has no available versions", True),
    ("StatusCode.UNAVAILABLE", "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:8001: "
                               "Failed to connect to remote host: Connection refused", True),
    ("StatusCode.DEADLINE_EXCEEDED", "Deadline Exceeded", True),
    ("StatusCode.RESOURCE_EXHAUSTED", "queue full", True),
    ("StatusCode.INVALID_ARGUMENT", "unexpected shape for input 'input' for model 'face_embedder'", False),
    ("StatusCode.NOT_FOUND", "no such output 'emb'", False),
    ("StatusCode.INTERNAL", "onnx runtime error 2: invalid input", False),
])
def test_triton_answers_from_a_restarting_server_are_transient_and_bad_requests_are_not(
        status: str, message: str, transient: bool) -> None:
    from tritonclient.utils import InferenceServerException

    from argus.inference.triton import _is_transient

    assert _is_transient(InferenceServerException(message, status=status)) is transient
