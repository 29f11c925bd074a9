"""`POST /v1/messages`: the generic inbound message from any channel, answered in the response, as server-sent
events, or (`async=true`) at once with the message's id, its reply then read from `GET /v1/messages/{id}`."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from threadline.api.auth import roles_dependency
from threadline.api.deps import ServicesDep
from threadline.api.routes import MAX_ID, plausible_time
from threadline.conversations.desk import MAX_TEXT_CHARS
from threadline.core.auth import Principal, Role
from threadline.core.errors import (
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    ThreadlineError,
    UsageError,
)
from threadline.core.signing import identity_is_signed
from threadline.core.types import Channel, InboundMessage, LoggedMessage
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


class AcceptedOut(BaseModel):
    """A message accepted for an asynchronous turn."""

    message_id: int
    customer_id: str
    status: str = Field(description="`accepted`, or `answered`/`silent` for a redelivery of a message taken before.")
    href: str = Field(description="Where the reply is read: `GET /v1/messages/{message_id}`.")


ASYNC_DOC: dict[int | str, dict[str, Any]] = {
    202: {"model": AcceptedOut, "description": "With `async=true`: accepted; the turn runs on."}
}


STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "With `stream=true`: server-sent events `progress` (a tool started: `{tool, text}`), "
        "`delta` (model text as it is produced), `reply` (the reply rendered for the channel) and finally "
        "`outcome` (the MessageOut object) or `error` (`{code, message}`).",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


@router.post("/messages", response_model=MessageOut, responses={**STREAM_DOC, **ASYNC_DOC})
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
    run_async: Annotated[
        bool,
        Query(
            alias="async",
            description="Answer 202 as soon as the message is accepted, with its id; the turn runs on and its reply "
            "is read from `GET /v1/messages/{id}`.",
        ),
    ] = False,
) -> Any:
    """Run one customer turn (or return the original outcome of a redelivered message)."""
    inbound = _inbound(body, services, idempotency_key, request)
    if run_async:
        return await _accept_only(services, inbound)
    if not stream:
        outcome = await run_in_threadpool(services.turns.handle, inbound)
        return MessageOut.model_validate(outcome.model_dump())
    return StreamingResponse(_events(services, inbound), media_type="text/event-stream")


async def _accept_only(services: Services, inbound: InboundMessage) -> JSONResponse:
    """Start the turn and answer once its message is logged (a redelivery answers with the first id)."""
    loop = asyncio.get_running_loop()
    accepted: asyncio.Future[LoggedMessage] = loop.create_future()

    def settle(message: LoggedMessage) -> None:
        if not accepted.done():
            accepted.set_result(message)

    def on_accepted(message: LoggedMessage) -> None:
        loop.call_soon_threadsafe(settle, message)

    turn = asyncio.ensure_future(run_in_threadpool(services.turns.handle, inbound, None, on_accepted))
    waiting: set[asyncio.Future[Any]] = {accepted, turn}
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if not accepted.done():
        turn.result()  # the message was refused before it was logged: that error is the answer
        raise RuntimeError("the turn ended without accepting its message")
    turn.add_done_callback(_log_failure)
    logged = accepted.result()
    out = AcceptedOut(
        message_id=logged.id,
        customer_id=logged.customer_id,
        status=logged.handled or "accepted",
        href=f"/v1/messages/{logged.id}",
    )
    return JSONResponse(out.model_dump(), status_code=202)


def _log_failure(turn: asyncio.Future[Any]) -> None:
    if not turn.cancelled() and (error := turn.exception()) is not None:
        log.warning("an asynchronous turn failed (the pending sweep answers its message): %s", error)


class MessageStatusOut(BaseModel):
    """A customer message and where its answer stands."""

    message_id: int
    customer_id: str
    channel: Channel
    status: str = Field(description="`pending` (the turn runs), `answered`, or `silent` (a person owns the case).")
    reply: str | None = Field(description="The reply, once answered (it may answer several messages at once).")
    reply_id: int | None


@router.get(
    "/messages/{message_id}", response_model=MessageStatusOut, responses={404: {"description": "No such message."}}
)
def get_message(message_id: Annotated[int, Path(ge=1, le=MAX_ID)], services: ServicesDep) -> MessageStatusOut:
    """A customer message's state and its reply: how an asynchronous request reads its answer."""
    logged = services.stores.messages.get(message_id)
    if logged is None or logged.direction.value != "inbound":
        raise NotFoundError(f"message {message_id} not found")
    reply = services.stores.messages.get(logged.answer_id) if logged.answer_id else None
    return MessageStatusOut(
        message_id=logged.id,
        customer_id=logged.customer_id,
        channel=logged.channel,
        status=logged.handled or "pending",
        reply=reply.text if reply else None,
        reply_id=reply.id if reply else None,
    )


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
