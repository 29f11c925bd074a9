"""A stand-in for Meta's Graph API on 127.0.0.1: a real HTTP server that records every request and answers from a
script, so the senders' real `httpx` clients are tested over real sockets."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a status, a body (JSON when not bytes or str), headers, and a delay before answering."""

    status: int = 200
    body: Any = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass(frozen=True)
class Recorded:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Names lowercased."""
    body: bytes

    @property
    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)


def graph_error(
    code: int, message: str, *, subcode: int | None = None, type_: str = "OAuthException", **extra: Any
) -> dict[str, Any]:
    """A Graph API error body."""
    error: dict[str, Any] = {"message": message, "type": type_, "code": code, "fbtrace_id": "AbCdEf123456", **extra}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


class GraphApiServer:
    """Serves scripted replies in order (a 500 with a Graph API error when the script runs out)."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            # A short poll keeps shutdown (and so each test's teardown) quick.
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="graph-api-server",
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        """Where the server listens: http://127.0.0.1:<port>."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def script(self, *replies: Reply) -> None:
        """Queue the answers to the next requests."""
        with self._lock:
            self._replies.extend(replies)

    def start(self) -> GraphApiServer:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> GraphApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next(self, recorded: Recorded) -> Reply:
        with self._lock:
            self.requests.append(recorded)
            if self._replies:
                return self._replies.popleft()
        return Reply(500, {"error": {"message": "no scripted reply", "type": "TestServer", "code": 1}})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                recorded = Recorded(
                    method="POST",
                    path=parts.path,
                    query={name: values[-1] for name, values in parse_qs(parts.query).items()},
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=body,
                )
                reply = server._next(recorded)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if isinstance(reply.body, bytes):
                    payload, content_type = reply.body, "application/octet-stream"
                elif isinstance(reply.body, str):
                    payload, content_type = reply.body.encode(), "text/html; charset=utf-8"
                else:
                    payload, content_type = json.dumps(reply.body).encode(), "application/json"
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
