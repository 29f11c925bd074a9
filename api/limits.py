"""Request limits: body size (413), rate limits per API key and per sender (429 with Retry-After), and no NUL
characters (422), which no text column stores (Postgres refuses them) and no customer types.

Rate limits are token buckets (`core.rate_limits`) kept in each worker process.
"""

from __future__ import annotations

import hashlib
import json
import re

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


_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
"""`\\u0000` in JSON text, not preceded by an escaped backslash."""
_URL_NUL = re.compile(rb"%00")
NUL_MESSAGE = "the request holds a NUL character (\\u0000 or %00), which no field may contain"


def holds_nul(content_type: bytes, body: bytes, query: bytes = b"", path: bytes = b"") -> bool:
    """Whether a request carries a NUL character anywhere a field could take it from: the path, the query string, a
    JSON or form body (multipart bodies are left to their fields: attachments are binary)."""
    if _URL_NUL.search(query) or _URL_NUL.search(path) or b"\x00" in query:
        return True
    kind = content_type.split(b";", 1)[0].strip().lower()
    if kind.startswith(b"multipart/"):
        return False
    if b"\x00" in body:
        return True
    if kind.endswith(b"json"):
        return bool(_JSON_NUL.search(body))
    return kind == b"application/x-www-form-urlencoded" and bool(_URL_NUL.search(body))


class LimitsMiddleware:
    """Refuses a declared body over `max_body_bytes` before reading it (a chunked one as it arrives), throttles each
    API key, and refuses NUL characters before any route sees the request."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, per_key: RateLimiter) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.per_key = per_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length", b"")
        too_large = f"the request body is larger than {self.max_body_bytes} bytes (THREADLINE_MAX_BODY_BYTES)"
        if length.isdigit() and int(length) > self.max_body_bytes:
            for part in _error(413, "payload_too_large", too_large):
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
        body, more = b"", True
        while more:
            received = await receive()
            if received["type"] != "http.request":
                await self.app(scope, _replay(received), send)
                return
            body += received.get("body", b"")
            more = received.get("more_body", False)
            if len(body) > self.max_body_bytes:  # a chunked body, counted as it arrives
                for part in _error(413, "payload_too_large", too_large):
                    await send(part)
                return
        fields = (scope.get("query_string", b""), scope.get("raw_path", b""))
        if holds_nul(headers.get(b"content-type", b""), body, *fields):
            for part in _error(422, "invalid_input", NUL_MESSAGE):
                await send(part)
            return
        await self.app(scope, _replay({"type": "http.request", "body": body, "more_body": False}, receive), send)


def _replay(first: Message, then: Receive | None = None) -> Receive:
    """A `receive` that hands over `first`, then defers to `then` (the client's disconnect, later)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return first
        if then is None:
            return {"type": "http.disconnect"}
        return await then()

    return receive
