"""Request limits: body size (413) and rate limits per API key and per sender (429 with Retry-After).

Rate limits are token buckets (`core.rate_limits`) kept in each worker process.
"""

from __future__ import annotations

import hashlib
import json

from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threadline.core.rate_limits import RateLimiter


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
