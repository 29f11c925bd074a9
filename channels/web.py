"""The web chat widget's JSON message, with the optional signed identity of a signed-in customer.

The retailer's site signs the signed-in customer's id with the per-site secret (`core.signing`): a valid
signature makes the message's identity strong, a wrong one is refused, and a message without one comes from
an anonymous visitor. `customer_id` and `signature` come together or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from threadline.channels import LIMITS
from threadline.channels._common import clip, validated_json
from threadline.core.errors import AuthenticationError, ConfigurationError, InvalidInputError
from threadline.core.signing import identity_is_signed
from threadline.core.types import Channel, InboundMessage

WEB_LIMITS = LIMITS[Channel.WEB]


class WebMessageIn(BaseModel):
    """The body the widget posts."""

    model_config = ConfigDict(extra="forbid")

    visitor_id: str = Field(min_length=1, max_length=320, description="The widget's id for this browser.")
    text: str = Field(min_length=1, description="Cut to the channel's inbound limit, not refused.")
    message_id: str | None = Field(None, min_length=1, max_length=256, description="Deduplicates redeliveries.")
    customer_id: str | None = Field(None, min_length=1, max_length=320, description="The signed-in customer.")
    signature: str | None = Field(None, min_length=1, max_length=128, description="HMAC-SHA256 hex of customer_id.")


class WebMessage(BaseModel):
    """A widget message whose identity has been checked."""

    model_config = ConfigDict(frozen=True)

    visitor_id: str
    customer_id: str | None = None
    """Set only when the site's signature of it verified."""
    text: str
    message_id: str | None = None
    truncated: bool = False

    @property
    def signed_in(self) -> bool:
        """Whether the site vouched for the customer's identity."""
        return self.customer_id is not None

    @property
    def sender(self) -> str:
        """The handle the message comes from: the signed customer id, else the visitor id."""
        return self.customer_id or self.visitor_id

    def to_inbound(self, received_at: datetime | None = None) -> InboundMessage:
        """The message as the conversation service takes it; vouched when the identity was signed."""
        metadata: dict[str, Any] = {"visitor_id": self.visitor_id}
        if self.truncated:
            metadata["truncated"] = True
        return InboundMessage(
            channel=Channel.WEB,
            sender=self.sender,
            text=self.text,
            provider_message_id=self.message_id,
            vouched=self.signed_in,
            metadata=metadata,
            received_at=received_at,
        )


def parse_web(body: Mapping[str, Any] | str | bytes, *, secret: str | None) -> WebMessage:
    """The widget's JSON body (raw or decoded) as a message; `secret` is the site's identity secret, if any."""
    raw = validated_json(WebMessageIn, body, what="the message body")
    text, truncated = clip(raw.text.strip(), WEB_LIMITS.max_inbound_chars)
    if not text:
        raise InvalidInputError("text is empty")
    visitor_id = raw.visitor_id.strip()
    if not visitor_id:
        raise InvalidInputError("visitor_id is empty")
    customer_id = raw.customer_id.strip() if raw.customer_id else None
    if raw.signature is not None and not customer_id:
        raise InvalidInputError("customer_id is missing: a signature signs a customer_id")
    if customer_id and raw.signature is None:
        raise InvalidInputError("signature is missing: a customer_id must be signed by the site")
    if customer_id and raw.signature is not None:
        if not secret:
            raise ConfigurationError("signed identities are not accepted: no web identity secret is configured")
        # core.signing compares str digests, which raises TypeError on non-ASCII input: refuse those first.
        if not raw.signature.isascii() or not identity_is_signed(secret, customer_id, raw.signature):
            raise AuthenticationError("the signature does not match the customer_id")
    return WebMessage(
        visitor_id=visitor_id, customer_id=customer_id, text=text, message_id=raw.message_id, truncated=truncated
    )
