"""Email replies over SMTP: `THREADLINE_SMTP_URL` parsed into a target, and a sender that hands each delivery to
that server with the standard library's `smtplib`.

`smtp://user:pass@host:587` connects in plain text and upgrades with STARTTLS, and refuses a server that does not
offer it (the password never crosses the network in clear; `?starttls=auto` logs in without TLS when the server offers
none, for a relay on a trusted network); `smtp://host:25` without a login upgrades when offered; `smtps://…:465`
speaks TLS from the first byte. The server's
certificate is verified against the system's trust store. An SMTP reply code says whether to retry: 4xx is a
temporary refusal (greylisting, a full mailbox, a busy server), 5xx a permanent one. A server that accepted a message
has only taken it for onward delivery, so a receipt never says `delivered`.

SMTP has no idempotency key, so the Message-ID stands in for one: it is derived from the delivery's idempotency
key, and a message sent again after a crash (the server took it, the dispatcher died before recording that) carries
the same Message-ID as the first, which mailbox providers and mail clients use to drop the duplicate.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, parseaddr
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import SecretStr

from threadline.channels._common import utcnow
from threadline.core.delivery import Delivery, PermanentSendError, SendReceipt, TransientSendError
from threadline.core.errors import ConfigurationError

DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
DEFAULT_SUBJECT = "Re: your message"
SETTING = "THREADLINE_SMTP_URL"
DELIVERY_HEADER = "X-Threadline-Delivery"


@dataclass(frozen=True)
class SmtpTarget:
    """Where and how to connect: host, port, TLS mode and the login (the password never appears in its repr)."""

    host: str
    port: int
    implicit_tls: bool = False
    """`smtps://`: TLS from the first byte (port 465)."""
    starttls_required: bool = False
    """`smtp://…?starttls=required`: refuse to send when the server does not offer STARTTLS."""
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def redacted(self) -> str:
        """The target as a URL without the password, fit for logs and errors."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        login = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = "?starttls=required" if self.starttls_required else ""
        return f"{scheme}://{login}{host}:{self.port}{query}"


def parse_smtp_url(url: str | SecretStr) -> SmtpTarget:
    """`smtp://user:pass@host:587` or `smtps://user:pass@host:465` as a target; user and password are
    percent-decoded (write `@` as `%40`, `/` as `%2F`). Errors name what is wrong but never echo the URL."""
    raw = (url.get_secret_value() if isinstance(url, SecretStr) else url).strip()
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        shown = f"{scheme}://" if scheme else "no scheme"
        raise ConfigurationError(f"{SETTING} must start with smtp:// or smtps://, not {shown}")
    if not parts.hostname:
        raise ConfigurationError(f"{SETTING} has no host: expected {scheme}://user:password@host:port")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise ConfigurationError(f"{SETTING} has a port that is not a number from 1 to 65535") from None
    if parts.path not in ("", "/") or parts.fragment:
        raise ConfigurationError(f"{SETTING} takes no path or fragment: expected {scheme}://user:password@host:port")
    # A password never crosses the network in clear: with a login, smtp:// requires STARTTLS (someone on the path
    # could strip the server's offer) unless the URL says `?starttls=auto` (a relay on a trusted network).
    starttls_required = parts.password is not None and scheme == "smtp"
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name != "starttls" or value not in ("required", "auto"):
            raise ConfigurationError(f"{SETTING} takes only ?starttls=required (or auto), not ?{name}={value}")
        starttls_required = value == "required"
    if starttls_required and scheme == "smtps":
        raise ConfigurationError(f"{SETTING}: starttls=required is for smtp://; smtps:// is TLS from the start")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if (username is None) != (password is None):
        raise ConfigurationError(f"{SETTING} needs both a user and a password, or neither")
    if not f"{username or ''}{password or ''}".isascii():
        # smtplib encodes AUTH as ASCII; better refused here than on every send.
        raise ConfigurationError(f"{SETTING}: the user and password must be ASCII characters")
    return SmtpTarget(
        host=parts.hostname,
        port=port,
        implicit_tls=scheme == "smtps",
        starttls_required=starttls_required,
        username=username,
        password=password,
    )


def message_id(idempotency_key: str, domain: str) -> str:
    """The Message-ID of the delivery with this idempotency key: the same key always gives the same id."""
    return f"<{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}@{domain}>"


def _one_line(value: str) -> str:
    """Header text on one line: a CR or LF from a payload cannot start a header of its own."""
    return " ".join(value.split())


def _text(value: bytes | str) -> str:
    """A server's reply text, decoded."""
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def _by_code(code: int, text: str, *, stage: str) -> TransientSendError | PermanentSendError:
    """A refusal by SMTP reply code: 4xx is temporary, anything else permanent."""
    message = f"SMTP server refused the {stage}: {code} {_one_line(text)}"
    if code == 530:  # "authentication required": the URL has no login, or the wrong one
        message += f"; check the login in {SETTING}"
    if 400 <= code < 500:
        return TransientSendError(message, status=code)
    return PermanentSendError(message, status=code)


class SmtpSender:
    """Sends email deliveries through one SMTP server, opening a connection per message: a dispatcher sends a
    handful a minute, so a pool's reconnect logic would cost more than it saves, and no connection state is shared
    between dispatcher threads."""

    provider = "smtp"

    def __init__(
        self,
        target: SmtpTarget | str | SecretStr,
        *,
        from_address: str,
        timeout_s: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        """A sender to `target` (a target or a URL) with this From header (`Demo Store <support@example.com>`).
        `timeout_s` bounds each network wait (connect, every reply), not the whole send. `ssl_context` replaces
        the system trust store (a private CA); `local_hostname` is the EHLO name (default: this host's FQDN)."""
        self.target = target if isinstance(target, SmtpTarget) else parse_smtp_url(target)
        _, address = parseaddr(from_address)
        local, at, domain = address.rpartition("@")
        if not at or not local or "." not in domain:
            raise ConfigurationError(f"the From address has no mailbox@domain: {from_address!r}")
        self.from_address = from_address.strip()
        self.envelope_from = address
        self.domain = domain.lower()
        self.timeout_s = timeout_s
        self.ssl_context = ssl_context
        self.local_hostname = local_hostname

    def __repr__(self) -> str:
        return f"SmtpSender({self.target.redacted}, from_address={self.from_address!r})"

    def message(self, delivery: Delivery) -> EmailMessage:
        """The email for `delivery`: To the recipient, threaded under the customer's message by the payload's
        `in_reply_to` and `references`, with a Message-ID derived from the idempotency key."""
        _, recipient = parseaddr(delivery.recipient)
        if "@" not in recipient:
            raise PermanentSendError(f"the recipient is not an email address: {delivery.recipient!r}")
        payload = delivery.payload
        msg = EmailMessage(policy=SMTP_POLICY)
        try:
            msg["From"] = self.from_address
            msg["To"] = recipient
            msg["Subject"] = _one_line(str(payload.get("subject") or "")) or DEFAULT_SUBJECT
            msg["Date"] = format_datetime(utcnow())
            msg["Message-ID"] = message_id(delivery.idempotency_key, self.domain)
            if payload.get("in_reply_to"):
                msg["In-Reply-To"] = _one_line(str(payload["in_reply_to"]))
            refs = payload.get("references") or []
            references = _one_line(refs if isinstance(refs, str) else " ".join(str(ref) for ref in refs))
            if references:
                msg["References"] = references
            if payload.get("automated"):
                # RFC 3834: tells the customer's auto-responder not to answer, which would start a loop.
                msg["Auto-Submitted"] = "auto-replied"
            msg[DELIVERY_HEADER] = str(delivery.id)
            # Quoted-printable keeps the body 7-bit, so a server without 8BITMIME passes it on unchanged.
            msg.set_content(delivery.body, charset="utf-8", cte="quoted-printable")
        except ValueError as exc:  # a header the email package refuses to write
            raise PermanentSendError(f"the email cannot be built: {exc}") from exc
        return msg

    def _scrub(self, text: str) -> str:
        """`text` without the password, should a server or library ever echo it."""
        password = self.target.password
        return text.replace(password, "***") if password else text

    def send(self, delivery: Delivery) -> SendReceipt:
        """Hand the delivery's email to the SMTP server; the receipt's id is the Message-ID (with its brackets,
        as a customer's reply quotes it in In-Reply-To)."""
        msg = self.message(delivery)
        try:
            self._transmit(msg)
        except smtplib.SMTPAuthenticationError as exc:
            detail = f"{exc.smtp_code} {_one_line(_text(exc.smtp_error))}"
            raise PermanentSendError(
                self._scrub(f"SMTP login refused ({detail}): check {SETTING}"), status=exc.smtp_code
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()), (550, b"recipient refused"))
            raise self._scrubbed(_by_code(code, _text(text), stage="recipient")) from None
        except smtplib.SMTPSenderRefused as exc:
            raise self._scrubbed(_by_code(exc.smtp_code, _text(exc.smtp_error), stage="sender")) from None
        except smtplib.SMTPDataError as exc:
            raise self._scrubbed(_by_code(exc.smtp_code, _text(exc.smtp_error), stage="message")) from None
        except smtplib.SMTPResponseException as exc:  # the greeting, EHLO, STARTTLS
            raise self._scrubbed(_by_code(exc.smtp_code, _text(exc.smtp_error), stage="connection")) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise PermanentSendError(self._scrub(f"the SMTP server does not support what is needed: {exc}")) from None
        except smtplib.SMTPServerDisconnected as exc:
            # smtplib reports a timed-out read as a disconnection; the timeout is the more useful news.
            if isinstance(exc.__context__, TimeoutError):
                raise TransientSendError(f"the SMTP server did not answer within {self.timeout_s:g} s") from None
            raise TransientSendError(self._scrub(f"the SMTP server closed the connection: {exc}")) from None
        except ssl.SSLCertVerificationError as exc:
            # Configuration, like a refused login: retrying meets the same certificate.
            raise PermanentSendError(
                f"the SMTP server's TLS certificate did not verify ({exc.verify_message}): check {SETTING}"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:  # refused, timed out, reset, TLS failed, DNS failed
            failure = f"{type(exc).__name__} {exc}"
            raise TransientSendError(
                self._scrub(f"SMTP connection to {self.target.redacted} failed: {failure}")
            ) from None
        return SendReceipt(provider_message_id=str(msg["Message-ID"]), delivered=False)

    def _scrubbed(self, error: TransientSendError | PermanentSendError) -> TransientSendError | PermanentSendError:
        """`error` with the password scrubbed from its message."""
        error.message = self._scrub(error.message)
        error.args = (error.message,)
        return error

    def _transmit(self, msg: EmailMessage) -> None:
        """One connection: greet, secure, log in, send, quit."""
        target = self.target
        context = self.ssl_context or ssl.create_default_context()
        smtp: smtplib.SMTP
        if target.implicit_tls:
            smtp = smtplib.SMTP_SSL(
                target.host, target.port, self.local_hostname, timeout=self.timeout_s, context=context
            )
        else:
            smtp = smtplib.SMTP(target.host, target.port, self.local_hostname, timeout=self.timeout_s)
        try:
            smtp.ehlo_or_helo_if_needed()
            if not target.implicit_tls:
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=context)
                    smtp.ehlo()
                elif target.starttls_required:
                    raise PermanentSendError(
                        f"the SMTP server at {target.host}:{target.port} does not offer STARTTLS, which {SETTING} "
                        "requires (a login never crosses in clear; ?starttls=auto allows a trusted relay without it)"
                    )
            if target.username is not None and target.password is not None:
                smtp.login(target.username, target.password)
            smtp.send_message(msg, from_addr=self.envelope_from, to_addrs=[str(msg["To"])])
        except BaseException:
            smtp.close()
            raise
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            # The server already took the message; a failed goodbye must not make it look unsent.
            smtp.close()
