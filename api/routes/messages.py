"""`POST /v1/messages`: the generic inbound message from any channel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.conversation import MAX_TEXT_CHARS
from api.deps import ServicesDep
from api.services import Services
from core.errors import AuthenticationError, UsageError
from core.signing import identity_is_signed
from core.types import Channel, InboundMessage

router = APIRouter(prefix="/v1", tags=["messages"])


class MessageIn(BaseModel):
    """A customer message."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    channel: Channel
    sender: str = Field(alias="from", min_length=1, max_length=320, description="The sender's handle on the channel.")
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    message_id: str | None = Field(
        None, min_length=1, max_length=256, description="Provider message id; redeliveries are answered once."
    )
    visitor_id: str | None = Field(
        None,
        min_length=1,
        max_length=320,
        description="With a signed identity: the anonymous visitor id the widget used before sign-in; that "
        "visitor's conversation joins the signed-in customer's (an audited, undoable merge).",
    )
    identity_signature: str | None = Field(
        None,
        max_length=128,
        description="HMAC-SHA256 (hex) of `from` with THREADLINE_WEB_IDENTITY_SECRET, for a signed-in customer.",
    )


class ToolCallOut(BaseModel):
    """A tool the AI called in this turn."""

    name: str
    args: dict[str, Any]


class MessageOut(BaseModel):
    """What the message led to."""

    customer_id: str
    reply: str | None = Field(description="The reply for the channel, or null when a human owns the case.")
    tools: list[ToolCallOut]
    owner: str = Field(description="ai, queue or human")
    handoff_id: str | None
    duplicate: bool = False


def _vouched(body: MessageIn, services: Services) -> bool:
    """A signed identity is strong; a wrong or unverifiable signature is refused, never silently ignored."""
    if body.identity_signature is None:
        return False
    secret = services.settings.web_identity_secret
    if secret is None:
        raise UsageError("identity signatures are not accepted: THREADLINE_WEB_IDENTITY_SECRET is not set")
    if not identity_is_signed(secret.get_secret_value(), body.sender, body.identity_signature):
        raise AuthenticationError("the identity signature does not match the sender")
    return True


@router.post("/messages", response_model=MessageOut)
def post_message(body: MessageIn, services: ServicesDep) -> MessageOut:
    """Run one customer turn (or return the original outcome of a redelivered message)."""
    outcome = services.conversations.handle(
        InboundMessage(
            channel=body.channel,
            sender=body.sender,
            text=body.text,
            provider_message_id=body.message_id,
            vouched=_vouched(body, services),
            previous_sender=body.visitor_id,
        )
    )
    return MessageOut.model_validate(outcome.model_dump())
