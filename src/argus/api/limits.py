"""What stands between the network and the routes: body caps, rate limits, CORS, security headers, access log.

All of it is plain ASGI middleware or a small object the auth dependency calls, so each piece can be tested on its
own and none of it depends on a route's code:

* :class:`BodyLimitMiddleware` refuses a body over the cap with 413 — by ``Content-Length`` before reading, *and*
  by counting the streamed bytes, because a chunked upload has no length to check.
* :class:`RateLimiter` is a token bucket per principal (``ARGUS_API_RATE_PER_S`` refill, ``ARGUS_API_RATE_BURST``
  capacity); the auth dependency takes a token per request and answers 429 with ``Retry-After``.
* :class:`SecurityHeadersMiddleware` adds nosniff, no-store on API JSON, and frame-ancestors 'none'.
* :class:`AccessLogMiddleware` logs and counts each request by its *route template* (never the raw path, which
  holds person ids, and never the query string or any header), with bounded metric labels.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("argus.api.access")

__all__ = ["AccessLogMiddleware", "ApiMetrics", "BodyLimitMiddleware", "BodyTooLargeError", "RateLimiter",
           "SecurityHeadersMiddleware"]


class BodyTooLargeError(HTTPException):
    """Raised from inside a body read; an HTTPException so FastAPI's body parsing lets it through as a 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"request body: expected at most {limit} bytes")


def _json_error(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> list[Message]:
    body = json.dumps({"error": error, "detail": detail}).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    hdrs += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return [{"type": "http.response.start", "status": status, "headers": hdrs},
            {"type": "http.response.body", "body": body}]


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > limit:
                    for m in _json_error(413 if declared > limit else 400, "body_too_large" if declared > limit
                                         else "bad_request", f"request body: expected at most {limit} bytes"
                                         if declared > limit else "Content-Length: expected a byte count"):
                        await send(m)
                    return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLargeError(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracking_send)
        except BodyTooLargeError as e:  # raised outside a route (e.g. in another middleware's read)
            if started:
                raise
            for m in _json_error(413, "body_too_large", str(e.detail)):
                await send(m)


class RateLimiter:
    """Token buckets keyed by principal; ``take`` answers 0.0 (allowed) or the seconds until a token is back.

    At most ``max_keys`` buckets are kept (least recently used dropped): a dropped bucket comes back full, which
    errs toward letting a request through, never toward refusing a caller that was within its rate.
    """

    def __init__(self, *, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10000) -> None:
        self.rate = float(rate_per_s)
        self.burst = float(burst)
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return wait

    def check(self, key: str) -> None:
        """Raise 429 (with Retry-After in whole seconds, at least 1) when ``key`` has no token left."""
        wait = self.take(key)
        if wait > 0:
            raise HTTPException(status_code=429, detail="rate limit exceeded; retry later",
                                headers={"Retry-After": str(max(1, math.ceil(wait)))})


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_docs = scope.get("path", "") in ("/docs", "/redoc")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"cache-control"]
                headers += [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                            (b"x-frame-options", b"DENY"), (b"cache-control", b"no-store")]
                if not is_docs:  # the Swagger page loads its script from a CDN; everything else is data
                    headers.append((b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ApiMetrics:
    """argus_api_* metrics; labels are the route template, the method and the status class only."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("argus_api_requests_total", "API requests by route template, method and status "
                                "class", ["route", "method", "status"], registry=registry)
        self.latency = Histogram("argus_api_request_seconds", "API request latency by route template",
                                 ["route", "method"], registry=registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.auth_failures = Counter("argus_api_auth_failures_total", "Requests refused with 401",
                                     registry=registry)
        self.rate_limited = Counter("argus_api_rate_limited_total", "Requests refused with 429",
                                    registry=registry)


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "<unmatched>"


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            dt = time.perf_counter() - t0
            route = route_template(scope)
            method = scope.get("method", "GET")
            method = method if method in _METHODS else "OTHER"
            state: dict[str, Any] = scope.get("state") or {}
            actor = state.get("actor", "-")
            access_log.info("%s %s %d %.1fms actor=%s", method, route, status, dt * 1000, actor)
            if self.metrics is not None:
                self.metrics.requests.labels(route, method, f"{status // 100}xx").inc()
                self.metrics.latency.labels(route, method).observe(dt)
                if status == 401:
                    self.metrics.auth_failures.inc()
                elif status == 429:
                    self.metrics.rate_limited.inc()
