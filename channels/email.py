"""Inbound email through a parsed-email webhook (Mailgun routes' field names), and the reply to it.

Mailgun signs each post with `signature` = hex HMAC-SHA256(webhook signing key, `timestamp` + `token`); a post
older than the tolerance is refused too, so a captured one cannot be replayed later. The signature does not cover
the email itself, so within the tolerance the route remembers each token with the `content_digest` of its post:
the same post again is a redelivery, the token on other content a forgery. The customer's new text is separated
from quoted history and signatures here, since not every provider sends `stripped-text`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from email.header import decode_header, make_header
from email.utils import parseaddr
from typing import Any

from pydantic import BaseModel, ConfigDict

from threadline.channels import LIMITS
from threadline.channels._common import Clock, clip, optional, utcnow
from threadline.core.errors import AuthenticationError, InvalidInputError, UsageError
from threadline.core.types import Channel, InboundMessage

EMAIL_LIMITS = LIMITS[Channel.EMAIL]
DEFAULT_TOLERANCE = timedelta(minutes=15)
MAX_ID_CHARS = 256  # InboundMessage.provider_message_id
MAX_REFERENCES = 20  # ids kept in a reply's References header: the thread's first and the most recent ones

_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_REPLY_PREFIX = re.compile(r"^\s*(?:(?:re|aw|sv|antw)\s*(?:\[\d+\]|\(\d+\))?\s*:\s*)+", re.I)
_AUTOMATED_SENDER = re.compile(r"^(?:mailer-daemon|postmaster|no-?reply|do-?not-?reply)@", re.I)

# Where the quoted history or the signature begins.
_ON_WROTE_START = re.compile(r"^\s*(?:On|Am|Le|El|Il|Op)\s\S")
_ON_WROTE_END = re.compile(r"(?:wrote|schrieb|a écrit|escribió|ha scritto|schreef)\s*:\s*$", re.I)
_ORIGINAL_MESSAGE = re.compile(r"^\s*-{2,}\s*Original Message\s*-{2,}\s*$", re.I)
_OUTLOOK_FROM = re.compile(r"^\s*\*?From:\*?\s+\S", re.I)
_OUTLOOK_HEADER = re.compile(r"^\s*\*?(?:Sent|Date|To|Subject|Cc):\*?\s", re.I)
_RULE = re.compile(r"^\s*_{10,}\s*$")
_SIGNATURE = re.compile(r"^--\s?$")
_MOBILE_FOOTER = re.compile(
    r"^\s*(?:Sent from my \S.{0,40}|Sent from (?:Outlook|Mail|Yahoo Mail)\b.{0,40}|Get Outlook for \S.{0,30})$", re.I
)


# --- signatures ---------------------------------------------------------------------------------------------


def mailgun_signature(signing_key: str, timestamp: str, token: str) -> str:
    """The `signature` Mailgun sends with this `timestamp` and `token`."""
    return hmac.new(signing_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()


SIGNATURE_FIELDS = ("timestamp", "token", "signature")


def content_digest(form: dict[str, str]) -> str:
    """A SHA-256 of every field of a post but its signature's: what a token was first used with."""
    fields = sorted((k, v) for k, v in form.items() if k not in SIGNATURE_FIELDS)
    return hashlib.sha256(repr(fields).encode()).hexdigest()


def verify_mailgun(
    signing_key: str,
    form: Mapping[str, str],
    *,
    clock: Clock = utcnow,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> None:
    """Refuse a post whose `signature` is missing or forged, or whose `timestamp` is further than `tolerance`
    from `clock()` (constant-time comparison)."""
    if not signing_key:
        raise UsageError("no Mailgun signing key is configured, so inbound email cannot be verified")
    missing = [name for name in ("timestamp", "token", "signature") if not optional(form, name)]
    if missing:
        raise AuthenticationError(f"the Mailgun signature is incomplete: {', '.join(missing)} missing")
    timestamp, token = str(form["timestamp"]).strip(), str(form["token"]).strip()
    expected = mailgun_signature(signing_key, timestamp, token)
    if not hmac.compare_digest(expected.encode(), str(form["signature"]).strip().lower().encode()):
        raise AuthenticationError("the Mailgun signature does not match the timestamp and token")
    if not timestamp.isdigit():
        raise InvalidInputError(f"timestamp is not a Unix time: {timestamp!r}")
    age = clock().timestamp() - int(timestamp)
    if abs(age) > tolerance.total_seconds():
        when = "old" if age > 0 else "in the future"
        limit = int(tolerance.total_seconds())
        raise AuthenticationError(f"the Mailgun timestamp is {abs(int(age))} s {when}, beyond the {limit} s tolerance")


# --- quoted history -----------------------------------------------------------------------------------------


def _history_starts(lines: list[str], index: int) -> bool:
    """Whether quoted history or a signature begins at `lines[index]`."""
    line = lines[index]
    following = [text for text in lines[index + 1 : index + 5] if text.strip()]
    # Gmail wraps a long "On <date> <name> <address> wrote:" header over two lines.
    if _ON_WROTE_START.match(line) and (
        _ON_WROTE_END.search(line) or (following and _ON_WROTE_END.search(f"{line} {following[0]}"))
    ):
        return True
    if _ORIGINAL_MESSAGE.match(line) or _SIGNATURE.match(line) or _MOBILE_FOOTER.match(line):
        return True
    if _OUTLOOK_FROM.match(line) and any(_OUTLOOK_HEADER.match(text) for text in following[:3]):
        return True
    return bool(_RULE.match(line) and following and _OUTLOOK_FROM.match(following[0]))


def strip_quoted(text: str) -> str:
    """The new part of an email reply: everything from the first quoted-history header ("On … wrote:",
    "-----Original Message-----", an Outlook "From: … Sent: …" block), signature delimiter ("-- ") or mobile
    footer ("Sent from my iPhone") on is dropped, and so are lines quoted with ">"."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        if _history_starts(lines, index):
            break
        if not line.lstrip().startswith(">"):
            kept.append(line.rstrip())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


# --- inbound ------------------------------------------------------------------------------------------------


def _decoded(value: str) -> str:
    """A header value with RFC 2047 encoded words (`=?utf-8?q?…?=`) decoded."""
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeDecodeError):
        return value


def _one_line(value: str) -> str:
    """Header text on one line: no CR/LF can reach a reply's headers."""
    return " ".join(value.split())


def _message_ids(value: str | None) -> tuple[str, ...]:
    """The `<id@host>` tokens of a Message-Id, In-Reply-To or References value (bare ids get brackets)."""
    if not value:
        return ()
    found = _MESSAGE_ID.findall(value)
    if found:
        return tuple(found)
    return tuple(f"<{token.strip('<>')}>" for token in value.split() if token.strip("<>"))


def greeting_name(display_name: str | None) -> str | None:
    """The first name to greet from a From display name ("Jane Doe" and "Doe, Jane" → "Jane"), or None."""
    if not display_name:
        return None
    name = display_name.strip().strip("\"'").strip()
    if "@" in name:
        return None
    if "," in name:
        name = name.split(",", 1)[1].strip()
    first = name.split()[0] if name.split() else ""
    if not any(ch.isalpha() for ch in first):
        return None
    return first.capitalize() if first.isupper() or first.islower() else first


def _header(form: Mapping[str, str], name: str) -> str | None:
    """A header of the original message: a form field of that name, else from Mailgun's `message-headers`."""
    for key, value in form.items():
        if key.lower() == name.lower() and str(value).strip():
            return str(value).strip()
    try:
        headers = json.loads(form.get("message-headers") or "[]")
    except ValueError:
        return None
    if isinstance(headers, list):
        for pair in headers:
            if isinstance(pair, list) and len(pair) == 2 and str(pair[0]).lower() == name.lower():
                return str(pair[1]).strip()
    return None


class _Parsed(BaseModel):
    model_config = ConfigDict(frozen=True)


class InboundEmail(_Parsed):
    """A customer's email, reduced to its new text."""

    message_id: str
    sender: str
    sender_name: str | None = None
    recipient: str | None = None
    subject: str = ""
    text: str
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    automated: bool = False
    """An auto-reply, bounce or list mail (Auto-Submitted, Precedence, mailer-daemon): answering it loops."""
    truncated: bool = False

    @property
    def has_text(self) -> bool:
        """Whether anything is left once quoted history and signatures are removed."""
        return bool(self.text.strip())

    def to_inbound(self, received_at: datetime | None = None) -> InboundMessage:
        """The email as the conversation service takes it."""
        metadata: dict[str, Any] = {
            "subject": self.subject,
            "recipient": self.recipient,
            "sender_name": self.sender_name,
            "in_reply_to": self.in_reply_to,
            "references": list(self.references),
            "provider": "mailgun",
        }
        if self.automated:
            metadata["automated"] = True
        if self.truncated:
            metadata["truncated"] = True
        return InboundMessage(
            channel=Channel.EMAIL,
            sender=self.sender,
            text=self.text,
            provider_message_id=self.message_id,
            metadata=metadata,
            received_at=received_at,
        )


def _sender(form: Mapping[str, str]) -> tuple[str, str | None]:
    """The sender's address and display name: the From header's, else the envelope `sender`."""
    for field in ("from", "sender"):
        raw = optional(form, field)
        if raw is None:
            continue
        name, address = parseaddr(_decoded(raw))
        if _ADDRESS.match(address):
            return address, (name.strip() or None)
    if optional(form, "from") is None and optional(form, "sender") is None:
        raise InvalidInputError("from is missing")
    raise InvalidInputError(f"from has no email address: {form.get('from') or form.get('sender')!r}")


def parse_email(form: Mapping[str, str]) -> InboundEmail:
    """A parsed-email webhook's fields as the customer's email; the text is `stripped-text` when present, else
    `body-plain`, with quoted history and signatures removed either way. Verify the post first."""
    address, name = _sender(form)
    raw_id = _header(form, "Message-Id")
    if raw_id is None:
        raise InvalidInputError("Message-Id is missing")
    ids = _message_ids(raw_id)
    if not ids or len(ids[0]) > MAX_ID_CHARS:
        raise InvalidInputError(f"Message-Id is not a message id: {raw_id!r}")
    raw_text = optional(form, "stripped-text") or form.get("body-plain")
    if raw_text is None:
        raise InvalidInputError("body-plain is missing")
    text, truncated = clip(strip_quoted(str(raw_text)), EMAIL_LIMITS.max_inbound_chars)
    in_reply_to = _message_ids(_header(form, "In-Reply-To"))
    auto_submitted = (_header(form, "Auto-Submitted") or "no").lower()
    precedence = (_header(form, "Precedence") or "").lower()
    return InboundEmail(
        message_id=ids[0],
        sender=address,
        sender_name=name,
        recipient=optional(form, "recipient"),
        subject=_one_line(_decoded(optional(form, "subject") or "")),
        text=text,
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=_message_ids(_header(form, "References")),
        automated=auto_submitted != "no"
        or precedence in ("bulk", "junk", "list", "auto_reply")
        or bool(_AUTOMATED_SENDER.match(address)),
        truncated=truncated,
    )


# --- replies ------------------------------------------------------------------------------------------------


class EmailReply(_Parsed):
    """A reply ready for the sending provider: threaded under the customer's message."""

    to: str
    subject: str
    body: str
    in_reply_to: str
    references: tuple[str, ...]

    def headers(self) -> dict[str, str]:
        """The threading and addressing headers, as strings."""
        return {
            "To": self.to,
            "Subject": self.subject,
            "In-Reply-To": self.in_reply_to,
            "References": " ".join(self.references),
        }


def reply_subject(subject: str) -> str:
    """`subject` with exactly one "Re: " in front (existing Re:/RE:/AW:/SV: prefixes are folded into it)."""
    rest = _REPLY_PREFIX.sub("", _one_line(subject)).strip()
    return f"Re: {rest}" if rest else "Re: your message"


def _references(message: InboundEmail) -> tuple[str, ...]:
    """The parent's References followed by its Message-Id (RFC 5322), keeping the first and the latest ids."""
    ids = tuple(dict.fromkeys((*message.references, message.message_id)))
    if len(ids) > MAX_REFERENCES:
        ids = (ids[0], *ids[-(MAX_REFERENCES - 1) :])
    return ids


def email_reply(message: InboundEmail, text: str, *, store_name: str, name: str | None = None) -> EmailReply:
    """The reply to `message`: to its sender (never a Reply-To, which would let anyone redirect a customer's
    answers), "Re:" subject, threading headers, and a body of greeting, `text` and sign-off. `name` overrides
    the first name taken from the sender's display name."""
    first_name = name or greeting_name(message.sender_name)
    greeting = f"Hi {first_name}," if first_name else "Hello,"
    body = f"{greeting}\n\n{text.strip()}\n\nBest regards,\n{store_name.strip()}"
    return EmailReply(
        to=message.sender,
        subject=reply_subject(message.subject),
        body=body,
        in_reply_to=message.message_id,
        references=_references(message),
    )
