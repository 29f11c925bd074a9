"""Meta senders: Messenger (and Instagram) through the Send API, WhatsApp through the Cloud API's messages endpoint.

Both are plain JSON POSTs to the Graph API (`{base_url}/{version}/...`), made with a synchronous `httpx.Client` and
an explicit timeout. What they rely on, from Meta's documentation:

- Send API reference (developers.facebook.com/docs/messenger-platform/reference/send-api): `POST .../messages`
  with `recipient.id` (the page-scoped id), `messaging_type` and `message.text`, the page access token as the
  `access_token` parameter (as the reference shows it; the token never appears in an error we raise); the answer
  is `{"recipient_id", "message_id"}`. `/me/messages` with a page token is that page's endpoint.
- Messenger send-messages guide and message tags: a RESPONSE is allowed within 24 hours of the person's last
  message; a person's reply (not the AI's) may follow up to 7 days after it as `messaging_type: MESSAGE_TAG` with
  `tag: HUMAN_AGENT` (the app needs Meta's Human Agent permission). Instagram messaging through the linked Facebook
  Page uses the same endpoint, body and windows with the Instagram-scoped id as `recipient.id`, so one sender
  serves both.
- WhatsApp Cloud API messages reference: `POST .../{phone-number-id}/messages`, Bearer token, `messaging_product:
  whatsapp`, a text message (at most 4,096 characters) inside the 24-hour customer-service window and an approved
  template outside it (error 131047 otherwise); the answer's `messages[0].id` is the `wamid.…`.
- WhatsApp business-scoped user ids (Meta's 2026 usernames change, as partner guides of the Messages API restate
  it): a BSUID (`US.13491208655302741918`, or a parent BSUID `US.ENT.…`) is sent in the top-level `recipient`
  field instead of `to`; when both are present `to` wins, so only one is ever sent. Error 131062: a message type
  that BSUIDs cannot receive.
- Template parameters: a body text parameter is at most 1,024 characters when the template has other components
  (32,768 when the body is its only one: we cannot tell, so the smaller), and may not contain line breaks, tabs or
  more than four spaces in a row (error 132018), so the reply is flattened to one line before it is clipped.
- Graph API errors: `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}` (WhatsApp adds
  `error_data.details`); throttling codes 4, 17, 32, 613, 80007, 130429, 131048 and 131056 are retried, as are
  Meta's temporary failures (1, 2, 1200, 131000, 131016, 133004) and any 5xx; 190 is an expired or revoked token.

Neither API takes an idempotency key: a crash between Meta's answer and the outbox recording it sends the message
twice when the delivery is claimed again. Errors are raised before any call when the window is closed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from threadline.channels._common import ELLIPSIS, Clock, clip, utcnow
from threadline.core.delivery import (
    Delivery,
    PermanentSendError,
    Purpose,
    SendError,
    SendReceipt,
    TransientSendError,
)
from threadline.core.errors import ConfigurationError
from threadline.core.settings import Settings
from threadline.core.types import BSUID_PATTERN

CUSTOMER_SERVICE_WINDOW = timedelta(hours=24)
"""Messenger's standard window and WhatsApp's customer-service window, from the customer's last message."""
HUMAN_AGENT_WINDOW = timedelta(days=7)
"""How long after the customer's last message a person's reply may go out with Messenger's HUMAN_AGENT tag."""
TEMPLATE_PARAMETER_MAX_CHARS = 1024
DEFAULT_TIMEOUT_S = 10.0

PAGE_TOKEN_SETTING = "THREADLINE_META_PAGE_ACCESS_TOKEN"
WHATSAPP_TOKEN_SETTING = "THREADLINE_WHATSAPP_ACCESS_TOKEN"
TEMPLATES_SETTING = "THREADLINE_WHATSAPP_TEMPLATES"

THROTTLING_CODES = frozenset({4, 17, 32, 613, 80007, 130429, 131048, 131056})
TEMPORARY_CODES = frozenset({1, 2, 1200, 131000, 131016, 133004})
"""Meta's own passing failures ("temporary issue", "service unavailable"): worth another attempt."""
TOKEN_EXPIRED_CODE = 190
MESSENGER_OUTSIDE_WINDOW = (10, 2018278)
WHATSAPP_OUTSIDE_WINDOW = 131047
INVALID_RECIPIENT_CODES = frozenset({100, 551, 131026, 131030})

_PHONE = re.compile(r"^\+?([1-9]\d{7,14})$")
_TEMPLATE_NAME = r"^[a-z0-9_]{1,512}$"
_LANGUAGE = r"^[a-z]{2,3}(?:_[A-Za-z0-9]{2,4})?$"
_WHITESPACE = re.compile(r"\s+")
_MAX_DETAIL_CHARS = 300


# --- windows and templates ----------------------------------------------------------------------------------


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _within(last_inbound_at: datetime | None, now: datetime, span: timedelta) -> bool:
    # A last message "in the future" (clocks a little apart) counts as just now.
    return last_inbound_at is not None and _aware(now) - _aware(last_inbound_at) < span


def whatsapp_window_open(last_inbound_at: datetime | None, now: datetime) -> bool:
    """Whether a free-form WhatsApp message may go out now: the customer wrote less than 24 hours ago."""
    return _within(last_inbound_at, now, CUSTOMER_SERVICE_WINDOW)


def messenger_messaging(purpose: Purpose, last_inbound_at: datetime | None, now: datetime) -> dict[str, str] | None:
    """The Send API's messaging fields for a message sent now: a RESPONSE within 24 hours of the customer's last
    message, the HUMAN_AGENT tag for a person's reply within 7 days, None when Meta would refuse it."""
    if _within(last_inbound_at, now, CUSTOMER_SERVICE_WINDOW):
        return {"messaging_type": "RESPONSE"}
    if purpose is Purpose.AGENT_REPLY and _within(last_inbound_at, now, HUMAN_AGENT_WINDOW):
        return {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
    return None


class Template(BaseModel):
    """An approved WhatsApp template: its name and language code (`en_US`). Its body takes one text parameter."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=_TEMPLATE_NAME)
    language: str = Field(pattern=_LANGUAGE)

    def as_payload(self) -> dict[str, str]:
        """The form `Delivery.payload["template"]` carries."""
        return {"name": self.name, "language": self.language}


def parse_templates(setting: str) -> dict[Purpose, Template]:
    """The templates of `THREADLINE_WHATSAPP_TEMPLATES`: comma-separated `purpose:template_name:language` entries,
    e.g. `agent_reply:support_followup:en_US,queue_timeout:queue_update:en_US`; empty means none."""
    templates: dict[Purpose, Template] = {}
    for raw in setting.split(","):
        entry = raw.strip()
        if not entry:
            continue
        fields = [field.strip() for field in entry.split(":")]
        if len(fields) != 3 or not all(fields):
            raise ConfigurationError(f"{TEMPLATES_SETTING}: {entry!r} is not purpose:template_name:language")
        purpose_name, name, language = fields
        try:
            purpose = Purpose(purpose_name)
        except ValueError:
            known = ", ".join(purpose.value for purpose in Purpose)
            raise ConfigurationError(
                f"{TEMPLATES_SETTING}: unknown purpose {purpose_name!r} in {entry!r} (one of {known})"
            ) from None
        if purpose in templates:
            raise ConfigurationError(f"{TEMPLATES_SETTING}: {purpose_name} has more than one template")
        try:
            templates[purpose] = Template(name=name, language=language)
        except ValidationError:
            raise ConfigurationError(
                f"{TEMPLATES_SETTING}: {entry!r} needs a template name of lowercase letters, digits and underscores "
                "and a language code such as en or en_US"
            ) from None
    return templates


def whatsapp_recipient(recipient: str) -> dict[str, str]:
    """The messages endpoint's recipient field: `to` with the digits of a phone number, or `recipient` with a
    business-scoped user id (sent alone: when both are present Meta uses `to`)."""
    value = recipient.strip()
    if BSUID_PATTERN.match(value):
        return {"recipient": value}
    phone = _PHONE.match(value.replace(" ", ""))
    if phone:
        return {"to": phone.group(1)}
    raise PermanentSendError(f"{recipient!r} is neither a phone number nor a WhatsApp business-scoped user id")


def template_parameter(text: str) -> str:
    """`text` as a template's body parameter: on one line (Meta refuses line breaks, tabs and runs of spaces in a
    parameter) and clipped to the parameter limit, ending with an ellipsis when cut."""
    flat = _WHITESPACE.sub(" ", text).strip()
    if len(flat) <= TEMPLATE_PARAMETER_MAX_CHARS:
        return flat
    cut, _ = clip(flat, TEMPLATE_PARAMETER_MAX_CHARS - len(ELLIPSIS))
    return cut + ELLIPSIS


# --- the Graph API's answers --------------------------------------------------------------------------------


def _last_inbound(payload: Mapping[str, Any]) -> datetime | None:
    value = payload.get("last_inbound_at")
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return _aware(value)
    try:
        return _aware(datetime.fromisoformat(str(value)))
    except ValueError:
        raise PermanentSendError(f"payload.last_inbound_at is not an ISO-8601 time: {str(value)[:40]!r}") from None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _wamid(answer: dict[str, Any]) -> object:
    messages = answer.get("messages")
    first = messages[0] if isinstance(messages, list) and messages else None
    return first.get("id") if isinstance(first, dict) else None


def _redact(text: str, secret: str) -> str:
    # The page token rides in the URL, which an error (or an echoing proxy) can quote.
    return text.replace(secret, "[token]") if secret else text


def _failure(response: httpx.Response, *, api: str, token_setting: str, outside_window: str) -> SendError:
    """The error for a Graph API answer that is not a success."""
    status = response.status_code
    body = _json(response)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        snippet = _WHITESPACE.sub(" ", response.text).strip()[:_MAX_DETAIL_CHARS]
        detail = f"{api} answered HTTP {status} without a Graph API error" + (f": {snippet}" if snippet else "")
        if status >= 500 or status == 429:
            return TransientSendError(detail, status=status, retry_after_s=_retry_after(response))
        return PermanentSendError(detail, status=status)

    code, subcode = _int(error.get("code")), _int(error.get("error_subcode"))
    message = str(error.get("message") or "no message")
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    described = f"{message} ({details})" if details and str(details) not in message else message
    described = described[:_MAX_DETAIL_CHARS]
    codes = f"code {code}" + (f"/{subcode}" if subcode is not None else "")
    trace = f", fbtrace_id {error['fbtrace_id']}" if error.get("fbtrace_id") else ""
    detail = f"{api} refused the message (HTTP {status}, {codes}{trace}): {described}"

    if status >= 500 or status == 429 or code in THROTTLING_CODES or code in TEMPORARY_CODES:
        return TransientSendError(detail, status=status, retry_after_s=_retry_after(response))
    if code == TOKEN_EXPIRED_CODE:
        return PermanentSendError(
            f"the access token is expired or revoked, set a valid {token_setting}: {detail}", status=status
        )
    if (code, subcode) == MESSENGER_OUTSIDE_WINDOW or code == WHATSAPP_OUTSIDE_WINDOW:
        return PermanentSendError(f"{outside_window}: {detail}", status=status)
    if code in INVALID_RECIPIENT_CODES:
        return PermanentSendError(f"the recipient cannot be messaged: {detail}", status=status)
    return PermanentSendError(detail, status=status)


class _GraphClient:
    """One Graph API endpoint called with JSON over a pooled `httpx.Client` (shared safely by dispatcher threads)."""

    def __init__(
        self,
        *,
        api: str,
        token: str,
        token_setting: str,
        outside_window: str,
        timeout_s: float,
    ) -> None:
        self.api = api
        self.token_setting = token_setting
        self.outside_window = outside_window
        self.timeout_s = timeout_s
        self.token = token
        self.http = httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=False)

    def send(
        self,
        url: str,
        body: dict[str, Any],
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        message_id: Callable[[dict[str, Any]], object],
        field: str,
    ) -> str:
        """POST `body` and return the message id `message_id` reads from the answer (`field` names it in errors);
        a SendError when Meta refuses or cannot be reached."""
        try:
            response = self.http.post(url, json=body, params=params, headers=headers)
        except httpx.TimeoutException as exc:
            # `from None`: the chained httpx error would carry the request, and with it the token, into logs.
            raise TransientSendError(f"{self.api} did not answer within {self.timeout_s:g} s ({exc!r})") from None
        except httpx.TransportError as exc:
            raise TransientSendError(_redact(f"could not reach {self.api}: {exc!r}", self.token)) from None
        if not response.is_success:
            error = _failure(
                response, api=self.api, token_setting=self.token_setting, outside_window=self.outside_window
            )
            error.message = _redact(error.message, self.token)
            error.args = (error.message,)
            raise error
        answer = _json(response)
        found = message_id(answer) if isinstance(answer, dict) else None
        if isinstance(found, str) and found:
            return found
        # Not retried: Meta most likely sent the message, and another attempt would send it again.
        snippet = _WHITESPACE.sub(" ", response.text).strip()[:_MAX_DETAIL_CHARS]
        raise PermanentSendError(
            _redact(
                f"{self.api} accepted the request (HTTP {response.status_code}) but its answer has no {field}, so the "
                f"message may have been sent: check before sending it again. Answer: {snippet!r}",
                self.token,
            ),
            status=response.status_code,
        )

    def close(self) -> None:
        self.http.close()


# --- the senders --------------------------------------------------------------------------------------------


class MessengerSender:
    """Sends Messenger and Instagram messages through a Facebook Page's Send API (`/me/messages`)."""

    provider = "messenger"

    def __init__(
        self,
        page_access_token: str,
        *,
        base_url: str = "https://graph.facebook.com",
        version: str = "v23.0",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        clock: Clock = utcnow,
    ) -> None:
        if not page_access_token:
            raise ConfigurationError(f"the Send API needs a page access token: set {PAGE_TOKEN_SETTING}")
        self._token = page_access_token
        self._url = f"{base_url.rstrip('/')}/{version}/me/messages"
        self._clock = clock
        self._graph = _GraphClient(
            api="Meta's Send API",
            token=page_access_token,
            token_setting=PAGE_TOKEN_SETTING,
            outside_window="Messenger's messaging window is closed",
            timeout_s=timeout_s,
        )

    def send(self, delivery: Delivery) -> SendReceipt:
        """Send `delivery.body` as a text message; refused without calling Meta when no messaging window is open."""
        if not delivery.recipient.strip():
            raise PermanentSendError("a Send API message needs the recipient's page-scoped id")
        last_inbound_at = _last_inbound(delivery.payload)
        messaging = messenger_messaging(delivery.purpose, last_inbound_at, self._clock())
        if messaging is None:
            raise PermanentSendError(self._closed(delivery.purpose, last_inbound_at))
        body = {"recipient": {"id": delivery.recipient}, **messaging, "message": {"text": delivery.body}}
        message_id = self._graph.send(
            self._url,
            body,
            params={"access_token": self._token},
            message_id=lambda answer: answer.get("message_id"),
            field="message_id",
        )
        return SendReceipt(provider_message_id=message_id)

    @staticmethod
    def _closed(purpose: Purpose, last_inbound_at: datetime | None) -> str:
        if last_inbound_at is None:
            return "Messenger's messaging window is closed: the customer's last message time is unknown"
        since = f"the customer last wrote at {last_inbound_at.isoformat()}"
        if purpose is Purpose.AGENT_REPLY:
            return f"Messenger's messaging window is closed: {since}, more than 7 days ago (the HUMAN_AGENT limit)"
        return (
            f"Messenger's messaging window is closed: {since}, more than 24 hours ago, and only a person's reply "
            f"may follow later (HUMAN_AGENT tag, up to 7 days); this is a {purpose.value}"
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._graph.close()

    def __enter__(self) -> MessengerSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WhatsAppSender:
    """Sends WhatsApp messages from one business phone number through the Cloud API: text inside the customer's
    24-hour window, the purpose's approved template outside it."""

    provider = "whatsapp"

    def __init__(
        self,
        access_token: str,
        phone_number_id: str,
        *,
        templates: Mapping[Purpose, Template] | None = None,
        base_url: str = "https://graph.facebook.com",
        version: str = "v23.0",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        clock: Clock = utcnow,
    ) -> None:
        if not access_token:
            raise ConfigurationError(f"the WhatsApp Cloud API needs an access token: set {WHATSAPP_TOKEN_SETTING}")
        if not phone_number_id.strip().isdigit():
            raise ConfigurationError(
                "THREADLINE_WHATSAPP_PHONE_NUMBER_ID must be the numeric id of the business phone number"
            )
        self._base = f"{base_url.rstrip('/')}/{version}"
        self._url = f"{self._base}/{phone_number_id.strip()}/messages"
        self._headers = {"Authorization": f"Bearer {access_token}"}
        self._templates = dict(templates or {})
        self._clock = clock
        self._graph = _GraphClient(
            api="the WhatsApp Cloud API",
            token=access_token,
            token_setting=WHATSAPP_TOKEN_SETTING,
            outside_window="WhatsApp's 24-hour customer-service window is closed",
            timeout_s=timeout_s,
        )

    def send(self, delivery: Delivery) -> SendReceipt:
        """Send `delivery.body` as text, or as the template's parameter when the 24-hour window has closed."""
        recipient = whatsapp_recipient(delivery.recipient)
        if whatsapp_window_open(_last_inbound(delivery.payload), self._clock()):
            content: dict[str, Any] = {"type": "text", "text": {"body": delivery.body, "preview_url": False}}
        else:
            content = self._template_message(delivery)
        body = {"messaging_product": "whatsapp", "recipient_type": "individual", **recipient, **content}
        # From the business number the customer wrote to (a store may have several under one account), else ours.
        number = str(delivery.payload.get("phone_number_id") or "").strip()
        url = f"{self._base}/{number}/messages" if number.isdigit() else self._url
        wamid = self._graph.send(url, body, headers=self._headers, message_id=_wamid, field="messages[0].id")
        return SendReceipt(provider_message_id=wamid)

    def template_for(self, delivery: Delivery) -> Template | None:
        """The template a delivery goes out with outside the window: the one its payload names (chosen when it was
        queued), else the one configured for its purpose."""
        given = delivery.payload.get("template")
        if given is None:
            return self._templates.get(delivery.purpose)
        try:
            return Template.model_validate(given)
        except ValidationError:
            raise PermanentSendError(
                f"payload.template must be {{'name': <approved template name>, 'language': <code such as en_US>}}, "
                f"not {str(given)[:80]!r}"
            ) from None

    def _template_message(self, delivery: Delivery) -> dict[str, Any]:
        template = self.template_for(delivery)
        if template is None:
            raise PermanentSendError(
                f"outside WhatsApp's 24-hour window and no template is configured for {delivery.purpose.value}: "
                f"set {TEMPLATES_SETTING}"
            )
        parameter = template_parameter(delivery.body)
        if not parameter:
            raise PermanentSendError("a WhatsApp template's text parameter cannot be empty")
        return {
            "type": "template",
            "template": {
                "name": template.name,
                "language": {"code": template.language},
                "components": [{"type": "body", "parameters": [{"type": "text", "text": parameter}]}],
            },
        }

    def close(self) -> None:
        """Close the connection pool."""
        self._graph.close()

    def __enter__(self) -> WhatsAppSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- from settings ------------------------------------------------------------------------------------------


def messenger_sender(settings: Settings, *, clock: Clock = utcnow) -> MessengerSender | None:
    """The Messenger/Instagram sender the settings describe; None when no page access token is set."""
    if settings.meta_page_access_token is None:
        return None
    return MessengerSender(
        settings.meta_page_access_token.get_secret_value(),
        base_url=settings.meta_graph_base_url,
        version=settings.meta_graph_version,
        clock=clock,
    )


def whatsapp_sender(settings: Settings, *, clock: Clock = utcnow) -> WhatsAppSender | None:
    """The WhatsApp sender the settings describe (templates parsed and checked); None when WhatsApp is not set up."""
    token, number = settings.whatsapp_access_token, settings.whatsapp_phone_number_id
    templates = parse_templates(settings.whatsapp_templates)
    if token is None and not number:
        return None
    if token is None or not number:
        raise ConfigurationError(
            f"WhatsApp replies need both {WHATSAPP_TOKEN_SETTING} and THREADLINE_WHATSAPP_PHONE_NUMBER_ID"
        )
    return WhatsAppSender(
        token.get_secret_value(),
        number,
        templates=templates,
        base_url=settings.meta_graph_base_url,
        version=settings.meta_graph_version,
        clock=clock,
    )
