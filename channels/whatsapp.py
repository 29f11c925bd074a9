"""WhatsApp Cloud API webhooks: a customer's messages in, and the statuses of the messages we sent.

Meta signs and subscribes these webhooks exactly like Messenger's (`X-Hub-Signature-256` over the raw body with
the app secret; the `hub.challenge` handshake), so the route uses `social.verify_meta` and
`social.verify_subscription`. A post is `{"object": "whatsapp_business_account", "entry": [{"id": <WABA id>,
"changes": [{"field": "messages", "value": {...}}]}]}`; a `messages` value carries `metadata.phone_number_id`
(our number) and either `contacts` + `messages` (what a customer wrote) or `statuses` (what became of ours).

What this relies on, from Meta's WhatsApp Business Platform reference (developers.facebook.com/documentation/
business-messaging/whatsapp/...):

- `webhooks/reference/messages`: a message's `id` (the wamid), `from` (the user's phone number, digits without
  "+"), `timestamp` (Unix seconds, as a string), `type`, and `text.body`; `contacts[].profile.name` and
  `contacts[].wa_id`; `context.id` when the customer replies to one of our messages.
- `webhooks/reference/messages/button`: a tap on a template's quick-reply button is `type: button` with
  `button.text` (the label) and `button.payload`; `messages/interactive-reply-buttons-messages`: a reply button
  or list row comes back as `type: interactive` with `interactive.button_reply` / `interactive.list_reply`
  (`id`, `title`; a list row may add `description`).
- `webhooks/reference/messages/status`: `statuses[]` with `id`, `status` (sent, delivered, read, failed, and
  `played` for voice messages), `timestamp`, `recipient_id`, and `errors[]` (`code`, `title`, `message`,
  `error_data.details`) on a failure. Statuses arrive in any order, and a message read as it arrives is reported
  `read` with no `delivered` before it.
- `business-scoped-user-ids` (2026): users who adopt a username may have their phone number withheld, so every
  messages webhook carries the business-scoped user id (BSUID, `US.13491208655302741918`; a parent BSUID has
  `ENT.` after the country): `contacts[].user_id` and `messages[].from_user_id`, while `contacts[].wa_id` and
  `messages[].from` become optional; statuses carry `recipient_user_id` when we sent to a BSUID. The same field
  names appear in the typed webhook payloads of the whatsapp-api-js client (`ServerMessage`, `ServerContacts`,
  `ServerStatusPayload`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from threadline.channels import LIMITS
from threadline.channels._common import clip, validated_json
from threadline.core.delivery import DeliveryState
from threadline.core.errors import InvalidInputError
from threadline.core.types import Channel, InboundMessage

WHATSAPP_LIMITS = LIMITS[Channel.WHATSAPP]

MessageKind = Literal["text", "button", "interactive"]

_WA_ID = r"^\+?[1-9]\d{7,14}$"  # a WhatsApp phone id: 8 to 15 digits (Meta sends them without "+")
_ID_CHARS = 256  # InboundMessage.provider_message_id
_HANDLE_CHARS = 320  # InboundMessage.sender
_SKIPPED_TYPES = frozenset({"reaction", "system", "request_welcome"})
"""Messages that are not a customer writing to us: an emoji on one of our messages, a changed number, a chat opened
for the first time. Answering them "I can only read text here" would be noise."""
_STATES: dict[str, tuple[DeliveryState, bool]] = {
    "sent": (DeliveryState.SENT, False),
    "delivered": (DeliveryState.DELIVERED, False),
    "read": (DeliveryState.DELIVERED, True),
    "played": (DeliveryState.DELIVERED, True),  # a voice message listened to: read, for our purposes
    "failed": (DeliveryState.FAILED, False),
}


# --- the webhook's shape ------------------------------------------------------------------------------------


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, populate_by_name=True)


class _Metadata(_Shape):
    display_phone_number: str | None = None
    phone_number_id: str = Field(min_length=1, max_length=64)


class _Profile(_Shape):
    name: str | None = None


class _Contact(_Shape):
    profile: _Profile | None = None
    wa_id: str | None = Field(None, pattern=_WA_ID)
    user_id: str | None = Field(None, min_length=1, max_length=_HANDLE_CHARS)


class _Text(_Shape):
    body: str = ""


class _Button(_Shape):
    text: str = ""
    payload: str | None = None


class _Reply(_Shape):
    id: str = Field(min_length=1, max_length=_ID_CHARS)
    title: str = ""


class _Interactive(_Shape):
    type: str
    button_reply: _Reply | None = None
    list_reply: _Reply | None = None


class _Media(_Shape):
    caption: str | None = None


class _Context(_Shape):
    id: str | None = None


class _Message(_Shape):
    id: str = Field(min_length=1, max_length=_ID_CHARS)
    from_: str | None = Field(None, alias="from", pattern=_WA_ID)
    from_user_id: str | None = Field(None, min_length=1, max_length=_HANDLE_CHARS)
    group_id: str | None = None
    timestamp: int | None = None
    type: str = Field(min_length=1)
    text: _Text | None = None
    button: _Button | None = None
    interactive: _Interactive | None = None
    context: _Context | None = None
    image: _Media | None = None
    video: _Media | None = None
    document: _Media | None = None


class _ErrorData(_Shape):
    details: str | None = None


class _Error(_Shape):
    code: str | None = None
    title: str | None = None
    message: str | None = None
    error_data: _ErrorData | None = None


class _Status(_Shape):
    id: str = Field(min_length=1, max_length=_ID_CHARS)
    status: str = Field(min_length=1)
    timestamp: int | None = None
    recipient_id: str | None = None
    recipient_user_id: str | None = None
    errors: list[_Error] = Field(default_factory=list)


class _Value(_Shape):
    messaging_product: str | None = None
    metadata: _Metadata
    contacts: list[_Contact] = Field(default_factory=list)
    messages: list[_Message] = Field(default_factory=list)
    statuses: list[_Status] = Field(default_factory=list)


class _Change(_Shape):
    field: str
    value: _Value | None = None

    @model_validator(mode="before")
    @classmethod
    def _only_messages(cls, data: Any) -> Any:
        # Other subscribed fields (template reviews, quality ratings, account updates) have values of other
        # shapes; they are not ours to parse, so a new one from Meta never fails the whole post.
        if isinstance(data, dict) and data.get("field") != "messages":
            return {**data, "value": None}
        return data


class _Entry(_Shape):
    id: str | None = None
    changes: list[_Change] = Field(default_factory=list)


class _Webhook(_Shape):
    object: Literal["whatsapp_business_account"]
    entry: list[_Entry]


# --- parsed events ------------------------------------------------------------------------------------------


class _Parsed(BaseModel):
    model_config = ConfigDict(frozen=True)


class WhatsAppMessage(_Parsed):
    """A customer's text on WhatsApp: typed, or the label of a button or list row they tapped."""

    wamid: str
    phone: str | None
    """E.164 (`+<wa_id>`), or None when WhatsApp withholds it (the user has a username)."""
    bsuid: str | None
    """The business-scoped user id; the address to answer when there is no phone."""
    wa_id: str | None = None
    """The phone as WhatsApp sent it (digits, no "+")."""
    profile_name: str | None = None
    phone_number_id: str
    """Our business number the customer wrote to; replies go out from it."""
    sent_at: datetime | None = None
    text: str
    kind: MessageKind = "text"
    reply_id: str | None = None
    """The id we gave the tapped button or list row (a template button's payload)."""
    context_id: str | None = None
    """The wamid of our message the customer replied to."""
    truncated: bool = False

    def to_inbound(self) -> InboundMessage:
        """The message as the conversation service takes it, from the phone when known, else the BSUID."""
        metadata: dict[str, Any] = {
            "provider": "whatsapp",
            "phone_number_id": self.phone_number_id,
            "bsuid": self.bsuid,
            "wa_id": self.wa_id,
            "profile_name": self.profile_name,
            "kind": self.kind,
            "reply_id": self.reply_id,
            "context_id": self.context_id,
        }
        if self.truncated:
            metadata["truncated"] = True
        sender = self.phone or self.bsuid
        if sender is None:  # parse_webhook never builds one; a hand-made one is a programming error
            raise InvalidInputError(f"WhatsApp message {self.wamid} has neither a phone number nor a BSUID")
        return InboundMessage(
            channel=Channel.WHATSAPP,
            sender=sender,
            text=self.text,
            provider_message_id=self.wamid,
            metadata=metadata,
            received_at=self.sent_at,
            alias=self.bsuid if self.phone else None,  # linked to the phone's customer, for when it is withheld
        )


class WhatsAppUnsupported(_Parsed):
    """A picture, voice note, sticker, location or other message with nothing to read (the webhook counts it and runs
    no turn)."""

    wamid: str
    phone: str | None
    bsuid: str | None
    phone_number_id: str
    type: str
    caption: str | None = None
    """What the customer wrote under a picture, video or document, if anything."""
    sent_at: datetime | None = None


class WhatsAppStatus(_Parsed):
    """What became of a message we sent: sent, delivered (or read), or failed."""

    wamid: str
    state: DeliveryState
    read: bool = False
    at: datetime | None = None
    recipient: str | None = None
    """The phone (digits) or BSUID we sent it to."""
    detail: str | None = None
    """Why it failed: the first error's code and text."""


WhatsAppEvent = WhatsAppMessage | WhatsAppUnsupported | WhatsAppStatus


def _time(timestamp: int | None) -> datetime | None:
    return datetime.fromtimestamp(timestamp, UTC) if timestamp is not None else None


def _e164(wa_id: str | None) -> str | None:
    return f"+{wa_id.lstrip('+')}" if wa_id else None


def _contact(contacts: list[_Contact], message: _Message) -> _Contact | None:
    """The contact entry of the message's sender: the one with its phone or BSUID, else the only one."""
    for contact in contacts:
        if (message.from_ and contact.wa_id == message.from_) or (
            message.from_user_id and contact.user_id == message.from_user_id
        ):
            return contact
    return contacts[0] if len(contacts) == 1 else None


def _content(message: _Message) -> tuple[MessageKind, str, str | None] | None:
    """The kind, text and reply id of a message we can read; None for anything else."""
    if message.type == "text" and message.text is not None:
        return "text", message.text.body, None
    if message.type == "button" and message.button is not None:
        return "button", message.button.text, message.button.payload
    if message.type == "interactive" and message.interactive is not None:
        reply = message.interactive.button_reply or message.interactive.list_reply
        if reply is not None:
            return "interactive", reply.title or reply.id, reply.id
    return None


def _message(message: _Message, value: _Value, path: str) -> WhatsAppMessage | WhatsAppUnsupported | None:
    """One customer message as an event; None for reactions, system notices and group messages."""
    if message.type in _SKIPPED_TYPES or message.group_id:
        return None
    contact = _contact(value.contacts, message)
    wa_id = message.from_ or (contact.wa_id if contact else None)
    bsuid = message.from_user_id or (contact.user_id if contact else None)
    if wa_id is None and bsuid is None:
        raise InvalidInputError(f"{path}: the sender has neither a phone number (from) nor a BSUID (from_user_id)")
    phone, sent_at = _e164(wa_id), _time(message.timestamp)
    content = _content(message)
    if content is None:
        media = message.image or message.video or message.document
        caption = media.caption.strip() if media and media.caption and media.caption.strip() else None
        return WhatsAppUnsupported(
            wamid=message.id,
            phone=phone,
            bsuid=bsuid,
            phone_number_id=value.metadata.phone_number_id,
            type=message.type,
            caption=caption,
            sent_at=sent_at,
        )
    kind, text, reply_id = content
    if not text.strip():  # nothing to answer, and nothing unsupported either
        return None
    text, truncated = clip(text.strip(), WHATSAPP_LIMITS.max_inbound_chars)
    return WhatsAppMessage(
        wamid=message.id,
        phone=phone,
        bsuid=bsuid,
        wa_id=wa_id.lstrip("+") if wa_id else None,
        profile_name=contact.profile.name if contact and contact.profile else None,
        phone_number_id=value.metadata.phone_number_id,
        sent_at=sent_at,
        text=text,
        kind=kind,
        reply_id=reply_id,
        context_id=message.context.id if message.context else None,
        truncated=truncated,
    )


def _detail(errors: list[_Error]) -> str | None:
    """The first error as one line: `131047 Re-engagement message: <details>`."""
    if not errors:
        return None
    error = errors[0]
    head = " ".join(part for part in (error.code, error.title) if part)
    explanations = []
    for part in (error.message, error.error_data.details if error.error_data else None):
        if part and part != error.title and part not in explanations:
            explanations.append(part)
    body = "; ".join(explanations)
    return f"{head}: {body}" if head and body else head or body or None


def _status(status: _Status) -> WhatsAppStatus | None:
    """One status report; None for a status this adapter does not know (Meta adds new ones)."""
    known = _STATES.get(status.status)
    if known is None:
        return None
    state, read = known
    return WhatsAppStatus(
        wamid=status.id,
        state=state,
        read=read,
        at=_time(status.timestamp),
        recipient=status.recipient_id or status.recipient_user_id,
        detail=_detail(status.errors) if state is DeliveryState.FAILED else None,
    )


def parse_webhook(raw_body: bytes | str) -> list[WhatsAppEvent]:
    """The customer messages and our messages' statuses in a WhatsApp Cloud API webhook post, in the post's order
    (per change: its messages, then its statuses); reactions, system notices, group messages, other webhook
    fields and unknown statuses are skipped. Verify the post first."""
    webhook = validated_json(_Webhook, raw_body, what="the webhook body")
    events: list[WhatsAppEvent] = []
    for e, entry in enumerate(webhook.entry):
        for c, change in enumerate(entry.changes):
            value = change.value
            if value is None:
                continue
            for m, message in enumerate(value.messages):
                event = _message(message, value, f"entry[{e}].changes[{c}].value.messages[{m}]")
                if event is not None:
                    events.append(event)
            events.extend(status for status in map(_status, value.statuses) if status is not None)
    return events
