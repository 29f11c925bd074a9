"""Twilio SMS sender and message status callbacks.

`TwilioSender` creates one message through Twilio's Messages API (`POST /2010-04-01/Accounts/{sid}/Messages.json`)
with the official `twilio` client, pointed at `base_url` so tests (and a regional or proxy endpoint) can stand in for
api.twilio.com. The client makes exactly one HTTP call per send: it has no retry loop of its own and its `requests`
adapters retry nothing, so the outbox's backoff is the only retry. The client logs each request's method, URL and
headers (never the authorization header, never a body) at INFO, to the `threadline.channels.senders.twilio.http`
logger, which is set to WARNING so a busy outbox stays quiet; an operator can lower it to see them.

Twilio's answer decides the outcome: 201 with a message resource is a receipt (its `SM…`/`MM…` sid); 429 and 5xx are
transient; any other 4xx is a refusal for good, reported with Twilio's error code (21211 an invalid To number, 21610
a recipient who replied STOP, 20003 bad credentials). A refused connection or a timeout is transient. A 429's
Retry-After, when Twilio sends one (it usually asks only for backoff), is read from the response the transport kept:
the client's `TwilioRestException` carries no headers. A 2xx without a readable message resource is a permanent
failure, not retried: Twilio most likely took the message.

Twilio's Messages API takes no idempotency key on create. A process that dies after Twilio accepted a message but
before the outbox recorded it (and a timeout after Twilio received the request) leads to the same delivery being
sent again: the customer gets the text twice, and nothing in the API prevents it.

Status callbacks: Twilio posts `MessageSid`, `MessageStatus` (and `ErrorCode`, sometimes `ErrorMessage`) to the
`StatusCallback` URL each time the message moves on. They arrive unordered and may repeat; `core.delivery.advances`
decides whether one changes anything. The route checks their `X-Twilio-Signature` with `channels.twilio.verify_twilio`
before `parse_status`.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from pydantic import BaseModel, ConfigDict
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from threadline.channels._common import optional, required
from threadline.channels.twilio import MAX_ID_CHARS
from threadline.core.delivery import (
    Delivery,
    DeliveryState,
    PermanentSendError,
    SendReceipt,
    TransientSendError,
)
from threadline.core.errors import InvalidInputError, UsageError

PROVIDER = "twilio"
DEFAULT_BASE_URL = "https://api.twilio.com"

_HTTP_LOG = logging.getLogger(f"{__name__}.http")
# The client logs every request and response at INFO; a busy outbox would fill the log with them.
_HTTP_LOG.setLevel(logging.WARNING)

_MESSAGE_SID = re.compile(r"^[A-Z]{2}[0-9a-fA-F]{32}$")  # SM… for SMS, MM… for MMS
_REFUSAL_PREFIX = "Unable to create record: "  # what the client puts before Twilio's own message


class _HttpClient(TwilioHttpClient):  # type: ignore[misc]  # the twilio package ships no type information
    """The client's HTTP transport, remembering each thread's last response: `TwilioRestException` carries no
    headers, so this is where a 429's Retry-After is read from."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(timeout=timeout_s, logger=_HTTP_LOG, max_retries=0)
        self._last = threading.local()

    def request(self, *args: Any, **kwargs: Any) -> Response:
        """One HTTP call, remembered for the calling thread."""
        self._last.response = None
        response = super().request(*args, **kwargs)
        self._last.response = response
        return response

    def last_response(self) -> Response | None:
        """The response this thread's last request got, if it got one."""
        response: Response | None = getattr(self._last, "response", None)
        return response


def retry_after_s(value: str | None, *, now: datetime | None = None) -> float | None:
    """A Retry-After header in seconds: a number of seconds or an HTTP date; None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _header(headers: Any, name: str) -> str | None:
    """A response header by case-insensitive name (the client keeps `requests`' headers, or none)."""
    if not headers:
        return None
    value = headers.get(name)
    if value is None and isinstance(headers, Mapping):
        value = next((v for k, v in headers.items() if str(k).lower() == name.lower()), None)
    return None if value is None else str(value)


class TwilioSender:
    """Sends SMS through Twilio's Messages API with the official client; one instance serves every thread."""

    provider = PROVIDER

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        status_callback_url: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        if not account_sid.strip() or not auth_token.strip():
            raise UsageError("sending through Twilio needs the account SID and the auth token")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"the Twilio API base URL is not an http(s) URL: {base_url!r}")
        if not timeout_s > 0:
            raise UsageError("the Twilio request timeout must be positive")
        self.account_sid = account_sid.strip()
        self.from_number = (from_number or "").strip() or None
        self.messaging_service_sid = (messaging_service_sid or "").strip() or None
        self.status_callback_url = (status_callback_url or "").strip() or None
        self._http = _HttpClient(timeout_s)
        self._client = Client(self.account_sid, auth_token, http_client=self._http)
        # The base URL names the host: TWILIO_EDGE / TWILIO_REGION from the environment would rewrite it.
        self._client.edge = None
        self._client.region = None
        self._client.api.base_url = base_url.rstrip("/")

    def _sender_fields(self, delivery: Delivery) -> dict[str, str]:
        """From the number the customer wrote to, else our number, else the Messaging Service's sender pool."""
        given = delivery.payload.get("from")
        if given is not None and (not isinstance(given, str) or not given.strip()):
            raise PermanentSendError(f"the delivery's 'from' is not a phone number: {given!r}")
        number = given.strip() if isinstance(given, str) else self.from_number
        if number:
            return {"from_": number}
        if self.messaging_service_sid:
            return {"messaging_service_sid": self.messaging_service_sid}
        raise PermanentSendError(
            "no number to send from: the delivery names none and neither a Twilio number nor a Messaging Service "
            "is configured"
        )

    def send(self, delivery: Delivery) -> SendReceipt:
        """Create the message at Twilio; the receipt carries its message sid."""
        fields: dict[str, Any] = {"to": delivery.recipient, "body": delivery.body, **self._sender_fields(delivery)}
        if self.status_callback_url:
            fields["status_callback"] = self.status_callback_url
        try:
            message = self._client.api.v2010.accounts(self.account_sid).messages.create(**fields)
        except TwilioRestException as exc:
            raise self._refusal(exc.status, exc.code, str(exc.msg)) from exc
        except TwilioServiceException as exc:
            text = f"{exc.title}: {exc.detail}" if exc.detail else exc.title
            raise self._refusal(exc.status, exc.code, text) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            kind = "timed out" if isinstance(exc, requests.Timeout) else "could not connect"
            raise TransientSendError(f"Twilio {kind}: {exc}") from exc
        except requests.RequestException as exc:
            raise TransientSendError(f"the Twilio request failed: {exc}") from exc
        except (ValueError, AttributeError, TypeError) as exc:
            # The client parses a 2xx body itself and fails this way on one that is not a JSON object.
            response = self._http.last_response()
            if response is None or not 200 <= response.status_code < 300:
                raise
            raise self._unreadable(f"its body is not a message resource ({exc})") from exc
        sid = message.sid
        if not isinstance(sid, str) or not _MESSAGE_SID.match(sid):
            raise self._unreadable(f"it carries no message sid ({sid!r})")
        return SendReceipt(provider_message_id=sid)

    def _refusal(self, status: int, code: int | None, text: str) -> TransientSendError | PermanentSendError:
        """Twilio's error answer as a send error: 429 and 5xx are worth retrying, any other refusal is final."""
        text = text.removeprefix(_REFUSAL_PREFIX).strip() or "no message"
        error = f", error {code}" if code and code != status else ""  # the client uses the status when Twilio gave none
        message = f"Twilio answered HTTP {status}{error}: {text}"
        if status == 429 or status >= 500:
            response = self._http.last_response()
            wait = retry_after_s(_header(response.headers, "Retry-After")) if response is not None else None
            return TransientSendError(message, status=status, retry_after_s=wait)
        return PermanentSendError(message, status=status)

    def _unreadable(self, why: str) -> PermanentSendError:
        """A success answer the client could not read. Not retried: Twilio most likely took the message, and a
        retry would send it again; a person checks Twilio's message log instead."""
        response = self._http.last_response()
        status = response.status_code if response is not None else None
        return PermanentSendError(
            f"Twilio answered HTTP {status} but {why}: the message may have gone out, check Twilio's message log",
            status=status,
        )


# --- status callbacks -----------------------------------------------------------------------------------------


_STATES: dict[str, tuple[DeliveryState, bool]] = {
    # Twilio holds the message and has not reached the carrier yet: that is what `sent` means here (the provider
    # accepted it), so these move a delivery that is still `sending` on and leave every later state alone.
    "accepted": (DeliveryState.SENT, False),
    "scheduled": (DeliveryState.SENT, False),
    "queued": (DeliveryState.SENT, False),
    "sending": (DeliveryState.SENT, False),
    "sent": (DeliveryState.SENT, False),
    # Some recipients have it and some do not (a group message): no claim of delivery, no failure either.
    "partially_delivered": (DeliveryState.SENT, False),
    "delivered": (DeliveryState.DELIVERED, False),
    "read": (DeliveryState.DELIVERED, True),
    "undelivered": (DeliveryState.FAILED, False),
    "failed": (DeliveryState.FAILED, False),
    "canceled": (DeliveryState.FAILED, False),
}
_INBOUND_STATUSES = frozenset({"receiving", "received"})


class TwilioStatus(BaseModel):
    """One status callback: which message, and what it means for the delivery that carried it."""

    model_config = ConfigDict(frozen=True)

    message_sid: str
    status: str
    """Twilio's own MessageStatus, as it came."""
    state: DeliveryState
    read: bool = False
    """The recipient opened it (WhatsApp, RCS); plain SMS never reports this."""
    detail: str | None = None
    """Twilio's error code and message, when it gave them (`30003: Unreachable destination handset`)."""


def parse_status(params: Mapping[str, str]) -> TwilioStatus:
    """A status callback's parameters (MessageSid, MessageStatus, ErrorCode, ErrorMessage) as a status."""
    message_sid = required(params, "MessageSid", max_length=MAX_ID_CHARS)
    status = required(params, "MessageStatus", max_length=40).lower()
    if status in _INBOUND_STATUSES:
        raise InvalidInputError(f"MessageStatus {status!r} belongs to an inbound message, not one we sent")
    if status not in _STATES:
        raise InvalidInputError(f"MessageStatus is not a Twilio message status: {status!r}")
    state, read = _STATES[status]
    code, text = optional(params, "ErrorCode"), optional(params, "ErrorMessage")
    detail = f"{code}: {text}" if code and text else code or text
    return TwilioStatus(message_sid=message_sid, status=status, state=state, read=read, detail=detail)
