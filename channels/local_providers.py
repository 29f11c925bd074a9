"""Local stand-ins for providers' HTTP APIs: real HTTP servers on 127.0.0.1 (port 0) that record every request and
answer either as the provider would or as scripted, so the real provider clients run over real HTTP in the tests and
the delivery benchmark, with no provider account (as `agents.scripted_server` stands in for a model).

`ScriptedHttpServer` is the generic part (routes, recording, a queue of scripted replies, delayed replies);
`TwilioApiServer` speaks enough of Twilio's Messages API for the official `twilio` client; `GraphApiServer` speaks
enough of Meta's Graph API for the Send API (Messenger, Instagram) and the WhatsApp Cloud API's messages endpoint.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: a dict or list body is sent as JSON, text or bytes as they are."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    """Wait this long before answering (to make a client time out)."""

    def encoded(self) -> tuple[bytes, str]:
        """The body's bytes and content type."""
        if self.body is None:
            return b"", "application/json"
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), "application/json"


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name."""
        return next((value for key, value in self.headers.items() if key.lower() == name.lower()), None)

    @property
    def form_lists(self) -> dict[str, list[str]]:
        """The urlencoded form body, every value of each name."""
        return parse_qs(self.body.decode(), keep_blank_values=True)

    @property
    def form(self) -> dict[str, str]:
        """The urlencoded form body, the first value of each name."""
        return {name: values[0] for name, values in self.form_lists.items()}

    def json(self) -> Any:
        """The JSON body."""
        return json.loads(self.body)

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        """(user, password) of an HTTP Basic Authorization header, else None."""
        value = self.header("Authorization") or ""
        scheme, _, encoded = value.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, colon, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return (user, password) if colon else None

    @property
    def bearer_token(self) -> str | None:
        """The token of an `Authorization: Bearer` header, else None."""
        scheme, _, token = (self.header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        return token.strip() or None


Route = Callable[[ReceivedRequest, "re.Match[str]"], Reply]
"""Answers a request whose path matched the route's pattern."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = ReceivedRequest(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=dict(self.headers.items()),
            body=self.rfile.read(length) if length else b"",
        )
        reply = self.server.owner.answer(request)
        if reply.delay_s and self.server.owner.stopping.wait(reply.delay_s):
            return
        body, content_type = reply.encoded()
        try:
            self.send_response(reply.status)
            headers = {"Content-Type": content_type, **reply.headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout under test): nobody is left to answer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: ScriptedHttpServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.owner = owner


class ScriptedHttpServer:
    """An HTTP server on a free loopback port. Each request is recorded, then answered by the next scripted reply
    if any is queued, else by the first route whose method and path match, else 404."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Route]] = []
        self._scripted: deque[Reply] = deque()
        self._requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def route(self, method: str, pattern: str, handler: Route) -> None:
        """Answer `method` requests whose whole path matches `pattern` with `handler`."""
        self._routes.append((method.upper(), re.compile(pattern), handler))

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order, whatever they ask; then the routes again."""
        with self._lock:
            self._scripted.extend(replies)

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def url(self) -> str:
        """The server's base URL, `http://127.0.0.1:<port>`."""
        if self._server is None:
            raise RuntimeError("the server is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def not_found(self, request: ReceivedRequest) -> Reply:
        """The answer to a request no route takes."""
        return Reply(404, {"message": f"no route for {request.method} {request.path}"})

    def answer(self, request: ReceivedRequest) -> Reply:
        """Record `request` and decide its reply."""
        with self._lock:
            self._requests.append(request)
            scripted = self._scripted.popleft() if self._scripted else None
        if scripted is not None:
            return scripted
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                return handler(request, match)
        return self.not_found(request)

    def start(self) -> Self:
        """Listen and serve in a background thread."""
        self.stopping.clear()
        self._server = _Server(self)
        # A short poll interval: `stop` waits for the serving loop to notice, up to one interval.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake any delayed reply and close the socket."""
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


class TwilioApiServer(ScriptedHttpServer):
    """Twilio's Messages API, as much as the official client needs to create a message: HTTP Basic auth with the
    account SID and auth token, the form Twilio takes, its checks for a missing To/From/Body and a To that is not
    E.164, and a 201 with the message resource. `messages` holds every resource it created."""

    ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
    AUTH_TOKEN = "test-auth-token-0123456789abcdef"

    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN) -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.messages: list[dict[str, Any]] = []
        self.route("POST", r"/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json", self._create_message)

    @staticmethod
    def error(status: int, code: int, message: str, headers: Mapping[str, str] | None = None) -> Reply:
        """Twilio's error answer: `{"code", "message", "more_info", "status"}`."""
        body = {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
        return Reply(status, body, headers or {})

    def not_found(self, request: ReceivedRequest) -> Reply:
        """Twilio's answer to a path it does not know."""
        return self.error(404, 20404, f"The requested resource {request.path} was not found")

    def _create_message(self, request: ReceivedRequest, match: re.Match[str]) -> Reply:
        if request.basic_auth != (self.account_sid, self.auth_token) or match["account"] != self.account_sid:
            return self.error(401, 20003, "Authenticate")
        form = request.form
        to, sender, service = form.get("To"), form.get("From"), form.get("MessagingServiceSid")
        if not to:
            return self.error(400, 21604, "A 'To' phone number is required.")
        if not re.fullmatch(r"\+[1-9]\d{7,14}", to):
            return self.error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not sender and not service:
            return self.error(400, 21603, "A 'From' phone number is required.")
        if not form.get("Body") and "MediaUrl" not in form:
            return self.error(400, 21602, "Message body is required.")
        sid = "SM" + secrets.token_hex(16)
        now = format_datetime(datetime.now(UTC), usegmt=True)
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}"
        resource = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": form.get("Body", ""),
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": service,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            # Twilio answers `accepted` while a Messaging Service is still choosing the number to send from.
            "status": "queued" if sender else "accepted",
            "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
            "to": to,
            "uri": f"{uri}.json",
        }
        with self._lock:
            self.messages.append(resource)
        return Reply(201, resource)


FBTRACE_ID = "AbCdEf123456"


def graph_error(
    code: int, message: str, *, subcode: int | None = None, type_: str = "OAuthException", **extra: Any
) -> dict[str, Any]:
    """A Graph API error body: `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id", ...}}`."""
    error: dict[str, Any] = {"message": message, "type": type_, "code": code, "fbtrace_id": FBTRACE_ID, **extra}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


# A business-scoped user id as Meta shows it: a country code, `ENT.` for a parent id, letters and digits.
_BSUID = re.compile(r"[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]+")
_TEXT_MAX_CHARS = 4096


class GraphApiServer(ScriptedHttpServer):
    """Meta's Graph API, as much as the senders need: `POST /{version}/{phone-number-id}/messages` (WhatsApp Cloud
    API) answers `{"messaging_product", "contacts", "messages": [{"id": "wamid.…"}]}`, and `POST /{version}/me/messages`
    or `/{version}/{page-id}/messages` (Send API) answers `{"recipient_id", "message_id": "m_…"}`. A numeric node is
    the Send API when the body's `recipient` is an object (`{"id": psid}`), WhatsApp otherwise. Built with a `token`,
    it takes only that token (a Bearer header or the `access_token` query parameter) and answers anything else with
    Meta's 401 and code 190. It checks the fields Meta requires (code 100 when one is missing) and answers unknown
    paths with code 2500. Scripted replies come first, in order. `sent` holds the body of every message it accepted.
    """

    def __init__(self, token: str | None = None) -> None:
        super().__init__()
        self.token = token
        self._sent: list[dict[str, Any]] = []
        self.route("POST", r"/(?P<version>v\d+\.\d+)/(?P<node>me|\d+)/messages", self._messages)

    @property
    def sent(self) -> list[dict[str, Any]]:
        """The JSON body of every message the server accepted itself (scripted replies aside), oldest first."""
        with self._lock:
            return list(self._sent)

    def not_found(self, request: ReceivedRequest) -> Reply:
        """Meta's answer to a path it does not know."""
        return Reply(400, graph_error(2500, f"Unknown path components: {request.path}"))

    def _authorized(self, request: ReceivedRequest) -> bool:
        if self.token is None:
            return True
        given = request.bearer_token or next(iter(request.query.get("access_token", [])), None)
        return given == self.token

    def _messages(self, request: ReceivedRequest, match: re.Match[str]) -> Reply:
        if not self._authorized(request):
            return Reply(401, graph_error(190, "Invalid OAuth access token - Cannot parse access token"))
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return Reply(400, graph_error(100, "(#100) The request body must be a JSON object"))
        if match["node"] != "me" and not isinstance(body.get("recipient"), dict):
            reply = self._cloud_api_message(body)
        else:
            reply = self._send_api_message(body)
        if reply.status == 200:
            with self._lock:
                self._sent.append(body)
        return reply

    @staticmethod
    def _cloud_api_message(body: dict[str, Any]) -> Reply:
        if body.get("messaging_product") != "whatsapp":
            return Reply(400, graph_error(100, "(#100) The parameter messaging_product is required."))
        # Meta reads `to` when both are present.
        given = body.get("to") or body.get("recipient")
        if not isinstance(given, str) or not given:
            return Reply(400, graph_error(100, "(#100) The parameter to is required."))
        kind = body.get("type", "text")
        content = body.get(kind)
        if not isinstance(content, dict):
            return Reply(400, graph_error(100, f"(#100) The parameter {kind} is required."))
        if kind == "text":
            text = content.get("body")
            if not isinstance(text, str) or not text:
                return Reply(400, graph_error(100, "(#100) The parameter text['body'] is required."))
            if len(text) > _TEXT_MAX_CHARS:
                message = f"(#100) Param text['body'] must be at most {_TEXT_MAX_CHARS} characters long."
                return Reply(400, graph_error(100, message))
        if _BSUID.fullmatch(given):
            contact = {"input": given, "user_id": given}
        else:
            contact = {"input": given, "wa_id": re.sub(r"\D", "", given)}
        wamid = "wamid." + base64.urlsafe_b64encode(secrets.token_bytes(30)).decode()
        return Reply(200, {"messaging_product": "whatsapp", "contacts": [contact], "messages": [{"id": wamid}]})

    @staticmethod
    def _send_api_message(body: dict[str, Any]) -> Reply:
        recipient = body.get("recipient")
        psid = recipient.get("id") if isinstance(recipient, dict) else None
        if not isinstance(psid, str) or not psid:
            return Reply(400, graph_error(100, "(#100) The parameter recipient is required"))
        if not isinstance(body.get("message"), dict) and "sender_action" not in body:
            return Reply(400, graph_error(100, "(#100) Must send either message or state"))
        return Reply(200, {"recipient_id": psid, "message_id": "m_" + secrets.token_hex(16)})
