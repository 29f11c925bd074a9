"""Request limits: body size (413) and rate limits per API key and per sender (429 with Retry-After).

Rate limits are token buckets kept in each worker process: with N workers behind a balancer a client gets
up to N times the configured rate, which bounds abuse without a shared store on the hot path.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time

from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threadline.core.errors import RateLimitedError

MAX_BUCKETS = 100_000


class RateLimiter:
    """Token buckets: `per_minute` requests a minute per key, in bursts of up to `per_minute`."""

    def __init__(self, per_minute: int) -> None:
        self._rate = per_minute / 60.0
        self._capacity = float(per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> int | None:
        """Take one token for `key`; None when allowed, else the seconds until the next one."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self._capacity, now))
            tokens = min(self._capacity, tokens + (now - last) * self._rate)
            if tokens >= 1:
                if len(self._buckets) >= MAX_BUCKETS:  # forget idle clients rather than grow without bound
                    self._buckets.clear()
                self._buckets[key] = (tokens - 1, now)
                return None
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((1 - tokens) / self._rate))

    def check(self, key: str, what: str) -> None:
        """Raise `RateLimitedError` when `key` is over its rate."""
        wait = self.retry_after(key)
        if wait is not None:
            raise RateLimitedError(f"too many requests for this {what}; retry in {wait} s", retry_after_s=wait)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> tuple[Message, Message]:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return {"type": "http.response.start", "status": status, "headers": raw}, {
        "type": "http.response.body",
        "body": body,
    }


class LimitsMiddleware:
    """Refuses a declared body over `max_body_bytes` before reading it, and throttles each API key."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, per_key: RateLimiter) -> None:
        # A body without Content-Length (chunked) is counted as it arrives by Starlette's limiter.
        self.app = RequestBodyLimitMiddleware(app, max_body_size=max_body_bytes)
        self.max_body_bytes = max_body_bytes
        self.per_key = per_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_body_bytes:
            message = f"the request body is larger than {self.max_body_bytes} bytes (THREADLINE_MAX_BODY_BYTES)"
            for part in _error(413, "payload_too_large", message):
                await send(part)
            return
        credential = headers.get(b"authorization", b"").removeprefix(b"Bearer ").strip()
        if credential:
            key = "key:" + hashlib.sha256(credential).hexdigest()[:32]
            wait = self.per_key.retry_after(key)
            if wait is not None:
                message = f"too many requests for this API key; retry in {wait} s"
                for part in _error(429, "rate_limited", message, {"Retry-After": str(wait)}):
                    await send(part)
                return
        await self.app(scope, receive, send)
