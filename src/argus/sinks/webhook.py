"""POST each alert as JSON to an HTTP endpoint (a dispatch system, a chat bridge), with bounded retries.

Stdlib ``urllib`` only: one small POST per alert does not justify a dependency. Retries cover what a retry can fix:
connection errors, timeouts, 5xx, and 408/429 (the receiver asked us to come back). Any other 4xx means the
request itself is wrong and would fail again, so it is reported at once. The backoff doubles per attempt.

The body is the alert's fields with the crop as base64 (``crop_jpeg_b64``); ``Idempotency-Key: <alert_id>`` lets
the receiver drop the duplicates that at-least-once delivery produces. URLs often embed a token: only the redacted
form appears in logs and errors.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from argus.cameras import redact_url
from argus.errors import ConfigError, SinkError
from argus.retry import Backoff
from argus.schemas import AlertV2

log = logging.getLogger(__name__)

RETRYABLE_4XX = frozenset({408, 429})


def alert_payload(alert: AlertV2) -> dict[str, Any]:
    body = alert.model_dump(mode="json", exclude={"crop_jpeg"})
    body["crop_jpeg_b64"] = base64.b64encode(alert.crop_jpeg).decode("ascii")
    return body


class WebhookSink:
    name = "webhook"

    def __init__(
        self,
        *,
        url: str,
        timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not url.lower().startswith(("http://", "https://")):
            raise ConfigError(f"webhook url: expected http:// or https://, got {redact_url(url)!r}")
        if retries < 0 or timeout_s <= 0 or backoff_s < 0:
            raise ConfigError(
                f"webhook: expected retries >= 0, timeout_s > 0, backoff_s >= 0; "
                f"got retries={retries}, timeout_s={timeout_s}, backoff_s={backoff_s}"
            )
        self._url = url
        self.url_redacted = redact_url(url)
        self._timeout = timeout_s
        self._retries = retries
        self._backoff = Backoff(initial_s=backoff_s, factor=2.0, max_s=max(backoff_s, 30.0), jitter=0.0)
        self._headers = {"Content-Type": "application/json", "User-Agent": "argus-alerter/1", **(headers or {})}
        # No proxies from the environment: alerts go straight to the configured endpoint.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def send(self, alert: AlertV2) -> None:
        data = json.dumps(alert_payload(alert), separators=(",", ":")).encode()
        headers = {**self._headers, "Idempotency-Key": alert.alert_id}
        last = "no attempt"
        attempts = self._retries + 1
        for attempt in range(1, attempts + 1):
            req = urllib.request.Request(self._url, data=data, headers=headers, method="POST")
            try:
                with self._opener.open(req, timeout=self._timeout) as resp:
                    resp.read(64 * 1024)  # drain so the connection closes cleanly; the body is not used
                    status = int(resp.status)
                if 200 <= status < 300:
                    if attempt > 1:
                        log.info("webhook %s: alert %s delivered on attempt %d", self.url_redacted,
                                 alert.alert_id, attempt)
                    return
                last, retry = f"HTTP {status}", False  # 1xx/3xx that urllib did not follow
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}"
                retry = e.code >= 500 or e.code in RETRYABLE_4XX
                e.close()
            except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
                reason = e.reason if isinstance(e, urllib.error.URLError) else e
                last, retry = f"connection error: {reason}", True
            if not retry:
                break
            if attempt < attempts:
                delay = self._backoff.delay(attempt - 1)
                log.warning("webhook %s: alert %s attempt %d/%d failed (%s), retrying in %.2fs",
                            self.url_redacted, alert.alert_id, attempt, attempts, last, delay)
                time.sleep(delay)
        raise SinkError(
            f"webhook {self.url_redacted}: alert {alert.alert_id} not delivered after {attempt} attempt(s), "
            f"expected HTTP 2xx, got {last}"
        )

    def close(self) -> None:
        pass
