"""Meta Messenger and Instagram messaging webhooks, and Send API bodies for the reply.

Meta signs each post with `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>`, so the
signature is checked on the bytes as received, before any JSON parsing. Subscribing the webhook is a GET with
`hub.mode=subscribe`, `hub.verify_token` and `hub.challenge`; the challenge is echoed when the token matches.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from threadline.channels import LIMITS
from threadline.channels._common import clip, split_to_fit, validated_json
from threadline.core.errors import AuthenticationError, InvalidInputError, UsageError
from threadline.core.types import Channel, InboundMessage

SIGNATURE_HEADER = "X-Hub-Signature-256"
SOCIAL_LIMITS = LIMITS[Channel.SOCIAL]
MAX_TEXT_CHARS = SOCIAL_LIMITS.max_reply_chars or 2000

Platform = Literal["messenger", "instagram"]


# --- signatures and subscription ----------------------------------------------------------------------------


def meta_signature(app_secret: str, raw_body: bytes) -> str:
    """The `X-Hub-Signature-256` value Meta sends with `raw_body`: `sha256=<hex>`."""
    return "sha256=" + hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()


def verify_meta(app_secret: str, raw_body: bytes, signature: str | None) -> None:
    """Refuse a post whose `X-Hub-Signature-256` is missing or not the app secret's signature of the raw body
    (constant-time comparison)."""
    if not app_secret:
        raise UsageError("no Meta app secret is configured, so webhook posts cannot be verified")
    if not signature or not signature.strip():
        raise AuthenticationError(f"the {SIGNATURE_HEADER} header is missing")
    scheme, _, digest = signature.strip().partition("=")
    if scheme.lower() != "sha256" or not digest:
        raise AuthenticationError(f"the {SIGNATURE_HEADER} header is not of the form sha256=<hex>")
    expected = meta_signature(app_secret, raw_body)
    if not hmac.compare_digest(expected.encode(), f"sha256={digest.lower()}".encode()):
        raise AuthenticationError(f"the {SIGNATURE_HEADER} header does not match the request body")


def verify_subscription(query: Mapping[str, str], verify_token: str) -> str:
    """The `hub.challenge` to echo back when Meta subscribes the webhook with our verify token."""
    if not verify_token:
        raise UsageError("no Meta verify token is configured, so the webhook cannot be subscribed")
    mode = query.get("hub.mode")
    if not mode:
        raise InvalidInputError("hub.mode is missing")
    if mode != "subscribe":
        raise InvalidInputError(f"hub.mode must be 'subscribe', not {mode!r}")
    given = query.get("hub.verify_token") or ""
    if not hmac.compare_digest(given.encode(), verify_token.encode()):
        raise AuthenticationError("hub.verify_token does not match the configured verify token")
    challenge = query.get("hub.challenge")
    if not challenge:
        raise InvalidInputError("hub.challenge is missing")
    return challenge


# --- the webhook's shape ------------------------------------------------------------------------------------


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)


class _Party(_Shape):
    id: str = Field(min_length=1, max_length=320)


class _AttachmentPayload(_Shape):
    url: str | None = None


class _Attachment(_Shape):
    type: str
    payload: _AttachmentPayload | None = None


class _QuickReply(_Shape):
    payload: str | None = None


class _Message(_Shape):
    mid: str = Field(min_length=1, max_length=256)
    text: str | None = None
    is_echo: bool = False
    is_deleted: bool = False
    attachments: list[_Attachment] = Field(default_factory=list)
    quick_reply: _QuickReply | None = None


class _Event(_Shape):
    sender: _Party
    recipient: _Party
    timestamp: int | None = None
    message: _Message | None = None


class _Entry(_Shape):
    id: str | None = None
    messaging: list[_Event] = Field(default_factory=list)


class _Webhook(_Shape):
    object: Literal["page", "instagram"]
    entry: list[_Entry]


# --- parsed events ------------------------------------------------------------------------------------------


class _Parsed(BaseModel):
    model_config = ConfigDict(frozen=True)


class Attachment(_Parsed):
    """A file, picture, sticker or location a customer sent."""

    type: str
    url: str | None = None


class SocialMessage(_Parsed):
    """A customer's text message on Messenger or Instagram (possibly with attachments)."""

    platform: Platform
    sender_id: str
    """The page-scoped (or Instagram-scoped) id the reply is addressed to."""
    recipient_id: str
    mid: str
    text: str
    sent_at: datetime | None = None
    attachments: tuple[Attachment, ...] = ()
    quick_reply_payload: str | None = None
    truncated: bool = False

    def to_inbound(self) -> InboundMessage:
        """The message as the conversation service takes it."""
        metadata: dict[str, Any] = {"platform": self.platform, "page_id": self.recipient_id, "provider": "meta"}
        if self.attachments:
            metadata["attachments"] = [item.model_dump() for item in self.attachments]
        if self.quick_reply_payload is not None:
            metadata["quick_reply_payload"] = self.quick_reply_payload
        if self.truncated:
            metadata["truncated"] = True
        return InboundMessage(
            channel=Channel.SOCIAL,
            sender=self.sender_id,
            text=self.text,
            provider_message_id=self.mid,
            metadata=metadata,
            received_at=self.sent_at,
        )


class SocialAttachments(_Parsed):
    """A message with attachments and no text: nothing to answer, but worth telling the customer so."""

    platform: Platform
    sender_id: str
    recipient_id: str
    mid: str
    sent_at: datetime | None = None
    attachments: tuple[Attachment, ...]


SocialEvent = SocialMessage | SocialAttachments


def _event(platform: Platform, event: _Event) -> SocialEvent | None:
    """The customer message in one messaging event, or None for echoes, deliveries, reads and the like."""
    message = event.message
    if message is None or message.is_echo or message.is_deleted:
        return None
    sent_at = datetime.fromtimestamp(event.timestamp / 1000, UTC) if event.timestamp is not None else None
    attachments = tuple(
        Attachment(type=item.type, url=item.payload.url if item.payload else None) for item in message.attachments
    )
    text = (message.text or "").strip()
    if text:
        text, truncated = clip(text, SOCIAL_LIMITS.max_inbound_chars)
        return SocialMessage(
            platform=platform,
            sender_id=event.sender.id,
            recipient_id=event.recipient.id,
            mid=message.mid,
            text=text,
            sent_at=sent_at,
            attachments=attachments,
            quick_reply_payload=message.quick_reply.payload if message.quick_reply else None,
            truncated=truncated,
        )
    if attachments:
        return SocialAttachments(
            platform=platform,
            sender_id=event.sender.id,
            recipient_id=event.recipient.id,
            mid=message.mid,
            sent_at=sent_at,
            attachments=attachments,
        )
    return None


def parse_webhook(raw_body: bytes | str) -> list[SocialEvent]:
    """The customer messages in a Messenger (`object: page`) or Instagram (`object: instagram`) webhook post, in
    order; echoes of our own messages, deliveries, reads and other events are skipped. Verify the post first."""
    webhook = validated_json(_Webhook, raw_body, what="the webhook body")
    platform: Platform = "messenger" if webhook.object == "page" else "instagram"
    events = (_event(platform, event) for entry in webhook.entry for event in entry.messaging)
    return [event for event in events if event is not None]


# --- replies ------------------------------------------------------------------------------------------------


def split_text(
    text: str, max_chars: int = MAX_TEXT_CHARS, *, max_parts: int = SOCIAL_LIMITS.max_reply_messages
) -> list[str]:
    """`text` as at most `max_parts` messages of at most `max_chars` characters, split at sentence (then word)
    boundaries; when it needs more, the last is shortened and ends with "...". Empty → []."""
    if max_chars < 1:
        raise UsageError("max_chars must be at least 1")
    return split_to_fit(text, lambda part: len(part) <= max_chars, max_parts=max_parts)


def send_api_bodies(
    recipient_id: str, text: str, *, max_parts: int = SOCIAL_LIMITS.max_reply_messages
) -> list[dict[str, Any]]:
    """Send API request bodies answering `recipient_id` (a RESPONSE within the 24-hour window), one per part of
    `text` split to Messenger's 2,000-character limit; none for an empty reply."""
    if not recipient_id.strip():
        raise UsageError("a Send API reply needs the recipient's id")
    return [
        {"recipient": {"id": recipient_id}, "messaging_type": "RESPONSE", "message": {"text": part}}
        for part in split_text(text, max_parts=max_parts)
    ]
