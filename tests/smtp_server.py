"""A real SMTP server on 127.0.0.1 for tests: aiosmtpd in a thread on a free port, recording what it received.

`LocalSmtpServer` keeps every accepted message (parsed, and raw with its envelope), the logins it accepted, and
whether each message came over TLS. `script_reply` makes the next RCPT or DATA answer with a chosen reply, so a test
can play a greylisting (451) or a refusal (550). `tls_contexts` makes a self-signed certificate with the `openssl`
command for STARTTLS and implicit-TLS tests.
"""

from __future__ import annotations

import asyncio
import email
import shutil
import ssl
import subprocess
import threading
import warnings
from collections import deque
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    """One accepted message as it arrived."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    tls: bool
    login: str | None
    message: EmailMessage = field(repr=False)


class _PortZeroController(Controller):
    """aiosmtpd's Controller bound to port 0: the port the system chose is read back before the first connection."""

    def _trigger_server(self) -> None:
        if self.port == 0 and isinstance(self.server, asyncio.Server):
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]

    def factory(self) -> SMTP:
        # A login without TLS is what the plain-text tests exercise on purpose; aiosmtpd warns about it.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
            smtp: SMTP = super().factory()  # type: ignore[no-untyped-call]
            return smtp


class _Handler:
    def __init__(self, owner: LocalSmtpServer) -> None:
        self.owner = owner

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        scripted = self.owner._next_reply("RCPT")
        if scripted is not None:
            return scripted
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        scripted = self.owner._next_reply("DATA")
        if scripted is not None:
            return scripted
        raw = envelope.original_content or b""
        transport = server.transport
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        received = Received(
            mail_from=str(envelope.mail_from),
            rcpt_tos=tuple(envelope.rcpt_tos),
            raw=raw,
            tls=transport is not None and transport.get_extra_info("ssl_object") is not None,
            login=login,
            message=email.message_from_bytes(raw, policy=policy.default),
        )
        with self.owner._lock:
            self.owner.received.append(received)
        return "250 Message accepted for delivery"


class LocalSmtpServer:
    """An SMTP server on 127.0.0.1 and a free port; `url` is what `THREADLINE_SMTP_URL` would hold to reach it.

    `auth=(user, password)` requires that login (AUTH PLAIN/LOGIN, allowed without TLS for the test);
    `starttls=server_context` offers STARTTLS; `implicit_tls=server_context` speaks TLS from the first byte.
    """

    def __init__(
        self,
        *,
        auth: tuple[str, str] | None = None,
        starttls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
    ) -> None:
        self.auth = auth
        self.received: list[Received] = []
        self.failed_logins: list[str] = []
        self._replies: dict[str, deque[str]] = {"RCPT": deque(), "DATA": deque()}
        self._lock = threading.Lock()
        smtp_kwargs: dict[str, Any] = {"server_hostname": "mx.test.invalid", "timeout": 5}
        if auth is not None:
            # With STARTTLS offered, AUTH waits for it, as a real submission server's does.
            smtp_kwargs.update(
                authenticator=self._authenticate, auth_required=True, auth_require_tls=starttls is not None
            )
        if starttls is not None:
            smtp_kwargs["tls_context"] = starttls
        self.scheme = "smtps" if implicit_tls is not None else "smtp"
        self._offers_starttls = starttls is not None
        self._controller = _PortZeroController(
            _Handler(self), hostname=HOST, port=0, ssl_context=implicit_tls, **smtp_kwargs
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and self.auth is not None
            and (auth_data.login.decode(), auth_data.password.decode()) == self.auth
        )
        if not ok:
            self.failed_logins.append(auth_data.login.decode() if isinstance(auth_data, LoginPassword) else "?")
        return AuthResult(success=ok, handled=False, auth_data=auth_data)  # unhandled: aiosmtpd answers 535

    def _next_reply(self, stage: str) -> str | None:
        with self._lock:
            queue = self._replies[stage]
            return queue.popleft() if queue else None

    def script_reply(self, code_text: str, *, stage: str = "DATA") -> None:
        """Answer the next RCPT or DATA with `code_text` ("451 4.7.1 try later") instead of accepting it."""
        self._replies[stage.upper()].append(code_text)

    @property
    def messages(self) -> list[EmailMessage]:
        """Every accepted message, parsed."""
        with self._lock:
            return [item.message for item in self.received]

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self._controller.port)

    @property
    def url(self) -> str:
        """The SMTP URL of this server, with its login when it requires one (and `?starttls=auto` when it takes the
        login without offering STARTTLS: a loopback server has no certificate)."""
        login = query = ""
        if self.auth is not None:
            login = f"{quote(self.auth[0], safe='')}:{quote(self.auth[1], safe='')}@"
            query = "?starttls=auto" if self.scheme == "smtp" and not self._offers_starttls else ""
        return f"{self.scheme}://{login}{HOST}:{self.port}{query}"

    def start(self) -> LocalSmtpServer:
        """Start listening; returns the server."""
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening and close every connection."""
        self._controller.stop()

    def __enter__(self) -> LocalSmtpServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def tls_contexts(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh self-signed certificate for 127.0.0.1 and a client context that trusts only
    it; skips the calling test when the `openssl` command is missing."""
    import pytest

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client
