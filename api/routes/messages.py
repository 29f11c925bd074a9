"""`POST /v1/messages`: the generic inbound message from any channel."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from threadline.api.auth import roles_dependency
from threadline.api.deps import ServicesDep
from threadline.api.routes import plausible_time
from threadline.conversations.desk import MAX_TEXT_CHARS
from threadline.core.auth import Principal, Role
from threadline.core.errors import (
    AuthenticationError,
    InvalidInputError,
    PermissionDeniedError,
    ThreadlineError,
    UsageError,
)
from threadline.core.signing import identity_is_signed
from threadline.core.types import Channel, InboundMessage
from threadline.product.services import Services

log = logging.getLogger("threadline.api")
router = APIRouter(prefix="/v1", tags=["messages"], dependencies=[roles_dependency(Role.CHANNEL, Role.ADMIN)])


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
    received_at: AwareDatetime | None = Field(
        None,
        description="Admin keys only (simulated traffic, replays): when the message arrived; the turn's clock and "
        "its analytics events follow it. Default: now.",
    )

    _plausible = field_validator("received_at")(plausible_time)


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
    duplicate: bool = Field(False, description="This delivery repeated an earlier one; no second turn ran.")
    folded: bool = Field(
        False, description="Answered together with other messages by the reply of another request's turn."
    )


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


def _inbound(body: MessageIn, services: Services, idempotency_key: str | None, request: Request) -> InboundMessage:
    if body.message_id and idempotency_key and body.message_id != idempotency_key:
        raise InvalidInputError("message_id and the Idempotency-Key header differ; send one of them")
    principal = getattr(request.state, "principal", None)
    if body.received_at is not None and not (isinstance(principal, Principal) and principal.role is Role.ADMIN):
        raise PermissionDeniedError("only an admin key may set received_at")
    return services.admit(
        InboundMessage(
            channel=body.channel,
            sender=body.sender,
            text=body.text,
            provider_message_id=body.message_id or idempotency_key,
            vouched=_vouched(body, services),
            previous_sender=body.visitor_id,
            received_at=body.received_at,
        )
    )


STREAM_DOC = {
    200: {
        "description": "With `stream=true`: server-sent events `progress` (a tool started: `{tool, text}`), "
        "`delta` (model text as it is produced), `reply` (the reply rendered for the channel) and finally "
        "`outcome` (the MessageOut object) or `error` (`{code, message}`).",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


@router.post("/messages", response_model=MessageOut, responses=STREAM_DOC)  # type: ignore[arg-type]
async def post_message(
    body: MessageIn,
    services: ServicesDep,
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=256,
            description="Retries with the same key return the first outcome and run no second turn.",
        ),
    ] = None,
    stream: Annotated[bool, Query(description="Answer with server-sent events.")] = False,
) -> Any:
    """Run one customer turn (or return the original outcome of a redelivered message)."""
    inbound = _inbound(body, services, idempotency_key, request)
    if not stream:
        outcome = await run_in_threadpool(services.turns.handle, inbound)
        return MessageOut.model_validate(outcome.model_dump())
    return StreamingResponse(_events(services, inbound), media_type="text/event-stream")


def _sse(event: dict[str, Any]) -> str:
    name = event.pop("event")
    return f"event: {name}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"


async def _events(services: Services, inbound: InboundMessage) -> AsyncIterator[str]:
    """The turn's events as they happen; the turn runs in a worker thread."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def emit(event: dict[str, Any] | None) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, event)

    def run() -> None:
        try:
            outcome = services.turns.handle(inbound, on_event=emit)
            if outcome.reply is not None:
                emit({"event": "reply", "text": outcome.reply})
            emit({"event": "outcome", **MessageOut.model_validate(outcome.model_dump()).model_dump(mode="json")})
        except ThreadlineError as error:
            emit({"event": "error", "code": error.code, "message": error.message})
        except Exception:
            log.exception("streamed turn failed")
            emit({"event": "error", "code": "internal_error", "message": "The turn failed; please retry."})
        finally:
            emit(None)

    worker = loop.run_in_executor(None, run)
    while (event := await queue.get()) is not None:
        yield _sse(event)
    await worker
