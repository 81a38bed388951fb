"""POST each alert as JSON to an HTTP endpoint (a dispatch system, a chat bridge), signed, with bounded retries.

:meth:`WebhookSink.attempt` is one signed POST; :meth:`WebhookSink.send` retries it a few times and makes its caller
wait. The alerter does not call ``send``: it queues each alert in a durable outbox whose own thread delivers through
``attempt`` for as long as the receiver fails (:mod:`argus.sinks.outbox`), so a slow or failing receiver costs the
stream nothing and loses no alert.

Stdlib ``urllib`` only: one small POST per alert does not justify a dependency. Retries cover what a retry can fix:
connection errors, timeouts, 5xx, and 408/429 (the receiver asked us to come back). Any other 4xx means the
request itself is wrong and would fail again, so it is reported at once. The backoff doubles per attempt.

The body is the alert's fields with the crop as base64 (``crop_jpeg_b64``); ``Idempotency-Key: <alert_id>`` lets
the receiver drop the duplicates that at-least-once delivery produces. URLs often embed a token: only the redacted
form appears in logs and errors.

Every request is signed, because anybody who learns the URL could otherwise post a fake "person X is at gate 3":
``X-Argus-Timestamp: <epoch seconds>`` and ``X-Argus-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>">``
(the Stripe/Slack scheme; the ``v1`` tag lets the scheme change without breaking receivers). The timestamp is in
the signed bytes, so a captured request cannot be replayed outside the receiver's window
(:data:`DEFAULT_TOLERANCE_S`); each retry is signed afresh so a slow retry is not mistaken for a replay. Receivers
check with :func:`verify_signature`. The secret is never logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from argus.cameras import redact_url
from argus.errors import ConfigError, SinkError
from argus.retry import Backoff
from argus.schemas import AlertV3

log = logging.getLogger(__name__)

RETRYABLE_4XX = frozenset({408, 429})

#: Header carrying the signing time, integer seconds since the epoch (part of the signed bytes).
TIMESTAMP_HEADER = "X-Argus-Timestamp"
#: Header carrying ``v1=<hex>``; several comma-separated ``scheme=value`` entries are allowed (key rotation).
SIGNATURE_HEADER = "X-Argus-Signature"
SIGNATURE_SCHEME = "v1"
#: Seconds a signed request stays acceptable either side of the receiver's clock (replay window, clock skew).
DEFAULT_TOLERANCE_S = 300

_TIMESTAMP_RE = re.compile(r"[0-9]{1,15}")
_HEX_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_RESERVED_HEADERS = frozenset(h.lower() for h in (TIMESTAMP_HEADER, SIGNATURE_HEADER, "Idempotency-Key"))

SignatureProblem = Literal["missing_header", "bad_format", "mismatch", "outside_window"]


class SignatureError(SinkError):
    """A webhook request's signature does not prove it came from Argus (answer it with HTTP 401).

    ``problem`` names the failed check for metrics and logs: ``missing_header``, ``bad_format``, ``mismatch``
    (wrong secret or altered body) or ``outside_window`` (authentic but too old or too far ahead: a replay or a
    skewed clock).
    """

    def __init__(self, problem: SignatureProblem, message: str) -> None:
        super().__init__(message)
        self.problem: SignatureProblem = problem


def _key(secret: str | bytes) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if not key:
        raise ConfigError("webhook secret: expected a non-empty secret, got an empty one")
    return key


def _digest(key: bytes, timestamp: str, body: bytes) -> str:
    return hmac.new(key, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Argus-Signature`` value for ``body`` sent at ``timestamp``: ``v1=<hex HMAC-SHA256>``."""
    return f"{SIGNATURE_SCHEME}={_digest(_key(secret), str(int(timestamp)), bytes(body))}"


def verify_signature(
    secret: str | bytes,
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    *,
    now: float | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> None:
    """Check that a webhook request was signed by Argus with ``secret``; raise :class:`SignatureError` if not.

    ``body`` must be the raw request bytes exactly as received: parsing and re-serialising JSON changes them and the
    signature with them. The signature is checked before the timestamp so that "outside the replay window" means
    the request is authentic but old (a replay, or a clock off by more than ``tolerance_s``), never a forgery.
    Comparison is constant-time.
    """
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError(f"verify_signature: expected the raw request body as bytes, got {type(body).__name__}")
    if tolerance_s < 0:
        raise ConfigError(f"verify_signature: expected tolerance_s >= 0, got {tolerance_s}")
    key = _key(secret)
    ts, sig = (timestamp_header or "").strip(), (signature_header or "").strip()
    missing = [h for h, v in ((TIMESTAMP_HEADER, ts), (SIGNATURE_HEADER, sig)) if not v]
    if missing:
        raise SignatureError("missing_header", f"webhook signature: expected headers {TIMESTAMP_HEADER} and "
                                               f"{SIGNATURE_HEADER}, got no {' and no '.join(missing)}")
    if not _TIMESTAMP_RE.fullmatch(ts):
        raise SignatureError("bad_format", f"webhook signature: expected {TIMESTAMP_HEADER} as integer epoch "
                                           f"seconds, got {ts[:40]!r}")
    candidates = []
    for part in sig.split(","):
        scheme, sep, value = part.strip().partition("=")
        if sep and scheme == SIGNATURE_SCHEME:
            candidates.append(value.strip())
    if not candidates or not all(_HEX_SHA256_RE.fullmatch(c) for c in candidates):
        raise SignatureError("bad_format", f"webhook signature: expected {SIGNATURE_HEADER} as "
                                           f"'{SIGNATURE_SCHEME}=<64 lowercase hex digits>', got "
                                           f"{sig[:80]!r}")
    expected = _digest(key, ts, bytes(body))
    # Compare against every candidate (no early exit), so timing does not tell which one was close.
    ok = False
    for c in candidates:
        ok |= hmac.compare_digest(expected, c)
    if not ok:
        raise SignatureError("mismatch", "webhook signature: expected an HMAC-SHA256 of timestamp + '.' + body "
                                         "under the shared secret, got a different one (wrong secret, or the body "
                                         "or timestamp was altered)")
    clock = time.time() if now is None else now
    age = clock - int(ts)
    if abs(age) > tolerance_s:
        when = f"{age:.0f} s old" if age > 0 else f"{-age:.0f} s in the future"
        raise SignatureError("outside_window", f"webhook signature: expected {TIMESTAMP_HEADER} within "
                                               f"{tolerance_s:g} s of now (replay window), got {ts}, {when}")


def alert_payload(alert: AlertV3) -> dict[str, Any]:
    body = alert.model_dump(mode="json", exclude={"crop_jpeg"})
    body["crop_jpeg_b64"] = base64.b64encode(alert.crop_jpeg).decode("ascii")
    return body


def body_of(alert: AlertV3) -> bytes:
    """The exact bytes posted (and signed) for ``alert``."""
    return json.dumps(alert_payload(alert), separators=(",", ":")).encode()


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """One POST's outcome: delivered, or not and whether trying again can help (5xx, 408/429, network)."""

    ok: bool
    retry: bool
    reason: str


class WebhookSink:
    name = "webhook"

    def __init__(
        self,
        *,
        url: str,
        secret: str | bytes,
        timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        headers: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``secret`` signs every request (required: an unsigned webhook can be forged by anyone who learns the
        URL). ``clock`` is the wall clock the signature timestamp is read from, once per attempt."""
        if not url.lower().startswith(("http://", "https://")):
            raise ConfigError(f"webhook url: expected http:// or https://, got {redact_url(url)!r}")
        if retries < 0 or timeout_s <= 0 or backoff_s < 0:
            raise ConfigError(
                f"webhook: expected retries >= 0, timeout_s > 0, backoff_s >= 0; "
                f"got retries={retries}, timeout_s={timeout_s}, backoff_s={backoff_s}"
            )
        clash = sorted(h for h in (headers or {}) if h.lower() in _RESERVED_HEADERS)
        if clash:
            raise ConfigError(f"webhook headers: expected none of {TIMESTAMP_HEADER}, {SIGNATURE_HEADER}, "
                              f"Idempotency-Key (the sink sets them), got {clash}")
        self._url = url
        self.url_redacted = redact_url(url)
        self._secret = _key(secret)
        self._clock = clock
        self._timeout = timeout_s
        self._retries = retries
        self._backoff = Backoff(initial_s=backoff_s, factor=2.0, max_s=max(backoff_s, 30.0), jitter=0.0)
        self._headers = {"Content-Type": "application/json", "User-Agent": "argus-alerter/1", **(headers or {})}
        # No proxies from the environment: alerts go straight to the configured endpoint.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def __repr__(self) -> str:
        return f"WebhookSink(url={self.url_redacted!r}, secret='**********')"

    def _signed_headers(self, data: bytes, alert_id: str) -> dict[str, str]:
        ts = int(self._clock())
        return {**self._headers, "Idempotency-Key": alert_id, TIMESTAMP_HEADER: str(ts),
                SIGNATURE_HEADER: f"{SIGNATURE_SCHEME}={_digest(self._secret, str(ts), data)}"}

    def attempt(self, data: bytes, alert_id: str) -> Attempt:
        """One signed POST of ``data`` (bounded by ``timeout_s``): what happened and whether a retry can help."""
        # Signed per attempt: a retry after a long backoff must not look like a replay to the receiver.
        headers = self._signed_headers(data, alert_id)
        req = urllib.request.Request(self._url, data=data, headers=headers, method="POST")
        try:
            with self._opener.open(req, timeout=self._timeout) as resp:
                resp.read(64 * 1024)  # drain so the connection closes cleanly; the body is not used
                status = int(resp.status)
            if 200 <= status < 300:
                return Attempt(ok=True, retry=False, reason=f"HTTP {status}")
            return Attempt(ok=False, retry=False, reason=f"HTTP {status}")  # 1xx/3xx that urllib did not follow
        except urllib.error.HTTPError as e:
            e.close()
            return Attempt(ok=False, retry=e.code >= 500 or e.code in RETRYABLE_4XX, reason=f"HTTP {e.code}")
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            reason = e.reason if isinstance(e, urllib.error.URLError) else e
            return Attempt(ok=False, retry=True, reason=f"connection error: {reason}")

    def failure(self, alert_id: str, attempts: int, last: str) -> SinkError:
        hint = " (the receiver may have rejected the signature: check both sides use the same secret and " \
               "clocks agree)" if last in ("HTTP 401", "HTTP 403") else ""
        return SinkError(
            f"webhook {self.url_redacted}: alert {alert_id} not delivered after {attempts} attempt(s), "
            f"expected HTTP 2xx, got {last}{hint}"
        )

    def send(self, alert: AlertV3) -> None:
        """Deliver now, retrying ``retries`` times; SinkError when that was not enough (the caller waits)."""
        data = body_of(alert)
        last = "no attempt"
        attempts = self._retries + 1
        for attempt in range(1, attempts + 1):
            outcome = self.attempt(data, alert.alert_id)
            if outcome.ok:
                if attempt > 1:
                    log.info("webhook %s: alert %s delivered on attempt %d", self.url_redacted,
                             alert.alert_id, attempt)
                return
            last = outcome.reason
            if not outcome.retry:
                break
            if attempt < attempts:
                delay = self._backoff.delay(attempt - 1)
                log.warning("webhook %s: alert %s attempt %d/%d failed (%s), retrying in %.2fs",
                            self.url_redacted, alert.alert_id, attempt, attempts, last, delay)
                time.sleep(delay)
        raise self.failure(alert.alert_id, attempt, last)

    def close(self) -> None:
        pass
