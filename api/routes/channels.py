"""Provider webhooks: Twilio SMS and voice, inbound email, Meta Messenger/Instagram, and in-store associates.

Each webhook authenticates by the provider's signature (not an API key), turns the payload into an
`InboundMessage` with the channel adapter, runs the turn and answers in the provider's format. A provider's
message id makes redeliveries idempotent: a retried webhook gets the first answer and runs no second turn.

A webhook waits for its turn at most `THREADLINE_WEBHOOK_REPLY_BUDGET_MS`. A turn done by then answers in the
response where the provider takes one (TwiML); otherwise the response goes without the reply (an empty TwiML, a
200) and the reply is queued in the outbox when the turn ends. Email, Messenger and WhatsApp never take a reply in
the response: with their sender configured, every reply goes through the outbox.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from threadline.api.auth import require_roles
from threadline.api.deps import ServicesDep
from threadline.api.errors import ErrorOut
from threadline.channels import email as email_channel
from threadline.channels import social, twilio, whatsapp
from threadline.channels.senders import twilio as twilio_sender
from threadline.core.auth import Role
from threadline.core.delivery import DeliveryState
from threadline.core.errors import AuthenticationError, InvalidInputError, NotFoundError
from threadline.core.types import Channel, CustomerId, InboundMessage, OrderStatus, TurnOutcome
from threadline.product.services import Services

router = APIRouter(
    tags=["channels"],
    responses={401: {"model": ErrorOut, "description": "Missing or forged provider signature (unauthenticated)."}},
)
log = logging.getLogger("threadline.api")
XML = "application/xml"
NO_SPEECH = "Sorry, I didn't catch that. How can I help you today?"
STILL_WORKING = "Thanks, I'm still looking into that. I'll text you the answer in a moment."
"""What a caller hears when the turn outlasts the webhook's budget; the answer follows by text message."""
READY_FOR_PICKUP = {OrderStatus.PROCESSED}


def _secret(value: Any, name: str) -> str:
    if value is None:
        raise AuthenticationError(f"this webhook is not configured: set {name}")
    return str(value.get_secret_value())


def _public_url(request: Request, services: Services) -> str:
    """The URL the provider called: THREADLINE_PUBLIC_URL + path (and query) when set, else the request URL."""
    base = services.settings.public_url
    if not base:
        return str(request.url)
    query = f"?{request.url.query}" if request.url.query else ""
    return base.rstrip("/") + request.url.path + query


async def _form(request: Request) -> dict[str, str]:
    try:
        form = await request.form()
    except Exception as exc:  # a body that is not form-encoded at all
        raise InvalidInputError("expected an application/x-www-form-urlencoded or multipart body") from exc
    return {key: value for key, value in form.items() if isinstance(value, str)}


async def _turn(services: Services, message: InboundMessage) -> TurnOutcome:
    return await run_in_threadpool(services.turns.handle, services.admit(message))


class _Handover:
    """Who delivers a turn's reply: the webhook's response, or (once the response went without it) the outbox. The
    turn's thread queues a late reply itself, right after the turn, so no reply depends on the event loop or the
    response once the turn has logged it; a lock settles a turn that ends as its webhook gives up."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._lock = threading.Lock()
        self._outcome: TurnOutcome | None = None
        self._gave_up = False

    def run(self, message: InboundMessage) -> TurnOutcome:
        """The turn, on a worker thread; its reply queued when the webhook has answered without it."""
        outcome = self._services.turns.handle(message)
        with self._lock:
            self._outcome = outcome
            late = self._gave_up
        if late:
            try:
                _queue_reply(self._services, outcome)
            except Exception:  # the reply is logged and the message answered: the sweep will not send it
                log.exception("the late reply %s could not be queued; it is in the log, not sent", outcome.reply_id)
        return outcome

    def give_up(self) -> TurnOutcome | None:
        """The webhook answers now: the outcome if the turn just ended, else None and the turn queues its reply."""
        with self._lock:
            self._gave_up = self._outcome is None
            return self._outcome


async def _turn_within_budget(services: Services, message: InboundMessage, deadline: float) -> TurnOutcome | None:
    """The turn's outcome when it ends before `deadline` (the post's reply budget, on the loop's clock); else None,
    and the turn queues its reply in the outbox when it ends (one that dies is answered by the pending sweep, whose
    reply goes through the outbox too). A channel with no sender waits for the turn: the response is its only way."""
    admitted = services.admit(message)
    if services.deliveries.provider_for(message.channel) is None:
        return await run_in_threadpool(services.turns.handle, admitted)
    handover = _Handover(services)
    task = asyncio.ensure_future(run_in_threadpool(handover.run, admitted))
    done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - asyncio.get_running_loop().time()))
    if task in done:
        return task.result()
    task.add_done_callback(_log_failure)
    return handover.give_up()


def _deadline(services: Services) -> float:
    """When a webhook post must be answered, on the event loop's clock: one budget for all of a post's messages."""
    return asyncio.get_running_loop().time() + services.settings.webhook_reply_budget_ms / 1000


def _log_failure(finished: asyncio.Future[TurnOutcome]) -> None:
    if not finished.cancelled() and finished.exception() is not None:
        log.warning("a webhook's turn failed after its response: the pending sweep answers the message")


def _queue_reply(services: Services, outcome: TurnOutcome) -> bool:
    """Queue the outcome's reply for the channel's provider; whether it is (now or already) queued."""
    return bool(services.deliveries.queue_reply(outcome))


async def _queued(services: Services, outcome: TurnOutcome) -> bool:
    """`_queue_reply` on the thread pool."""
    queued: bool = await run_in_threadpool(_queue_reply, services, outcome)
    return queued


@router.post("/v1/channels/twilio/sms", response_class=Response, responses={200: {"content": {XML: {}}}})
async def twilio_sms(request: Request, services: ServicesDep) -> Response:
    """Twilio's incoming-message webhook: answered with TwiML `<Message>`s (each within two segments)."""
    params = await _form(request)
    token = _secret(services.settings.twilio_auth_token, "THREADLINE_TWILIO_AUTH_TOKEN")
    twilio.verify_twilio(token, _public_url(request, services), params, request.headers.get(twilio.SIGNATURE_HEADER))
    outcome = await _turn_within_budget(services, twilio.parse_sms(params).to_inbound(), _deadline(services))
    if outcome is None or not outcome.reply:
        return Response(twilio.sms_twiml([]), media_type=XML)  # the reply, if any, goes through the outbox
    if outcome.duplicate and await _queued(services, outcome):
        # A redelivery: its reply may have gone out through the outbox already (the first delivery's webhook gave
        # up on its turn); queueing it again is a no-op then, and the response must not carry it a second time.
        return Response(twilio.sms_twiml([]), media_type=XML)
    return Response(twilio.sms_twiml(twilio.split_sms(outcome.reply)), media_type=XML)


@router.post("/v1/channels/twilio/voice", response_class=Response, responses={200: {"content": {XML: {}}}})
async def twilio_voice(request: Request, services: ServicesDep, turn: int = 0) -> Response:
    """Twilio's voice webhook with the caller's speech: answered with `<Say>` inside `<Gather input="speech">`,
    whose action posts the next utterance back here (`turn` numbers the utterances of one call)."""
    params = await _form(request)
    token = _secret(services.settings.twilio_auth_token, "THREADLINE_TWILIO_AUTH_TOKEN")
    twilio.verify_twilio(token, _public_url(request, services), params, request.headers.get(twilio.SIGNATURE_HEADER))
    heard = twilio.parse_voice(params, turn=str(turn))
    base = services.settings.public_url.rstrip("/") if services.settings.public_url else str(request.base_url)[:-1]
    action = f"{base}{request.url.path}?turn={turn + 1}"
    if isinstance(heard, twilio.VoiceNoSpeech):
        return Response(twilio.voice_twiml(NO_SPEECH, action), media_type=XML)
    outcome = await _turn_within_budget(services, heard.to_inbound(), _deadline(services))
    if outcome is None:  # the caller hears that the answer follows by text
        return Response(twilio.voice_twiml(STILL_WORKING, action), media_type=XML)
    return Response(twilio.voice_twiml(outcome.reply or "", action), media_type=XML)


class StatusOut(BaseModel):
    """Whether a status report named a message the outbox sent."""

    applied: bool = Field(description="False for a message this server did not send (the report is ignored).")


@router.post("/v1/channels/twilio/status", response_model=StatusOut)
async def twilio_status(request: Request, services: ServicesDep) -> StatusOut:
    """Twilio's StatusCallback for a message the outbox sent (sent, delivered, read, undelivered, failed): the
    delivery's state moves forward only, whatever order the reports arrive in; an undelivered message raises the
    case for a person."""
    params = await _form(request)
    token = _secret(services.settings.twilio_auth_token, "THREADLINE_TWILIO_AUTH_TOKEN")
    twilio.verify_twilio(token, _public_url(request, services), params, request.headers.get(twilio.SIGNATURE_HEADER))
    status = twilio_sender.parse_status(params)
    report = ("twilio", status.message_sid, status.state, status.read, status.detail, None)
    return StatusOut(applied=await run_in_threadpool(_status, services, *report))


def _status(
    services: Services,
    provider: str,
    provider_message_id: str,
    state: DeliveryState,
    read: bool,
    detail: str | None,
    at: datetime | None,
) -> bool:
    """Apply a provider's status report to the delivery it names; whether it named one of ours."""
    at = at or datetime.now(UTC)
    found = services.deliveries.status(provider, provider_message_id, state, at=at, detail=detail, read=read)
    return found is not None


class EmailOut(BaseModel):
    """The reply for the sending provider, threaded under the customer's email (null when none is sent)."""

    reply: email_channel.EmailReply | None
    skipped: str | None = Field(None, description="Why no turn ran (automated mail).")
    owner: str = "ai"
    queued: bool = Field(
        False, description="The reply went to the outbox and is sent over SMTP (THREADLINE_SMTP_URL): don't send it."
    )
    pending: bool = Field(
        False,
        description="The turn outlasted THREADLINE_WEBHOOK_REPLY_BUDGET_MS; its reply follows through the outbox.",
    )


@router.post("/v1/channels/email", response_model=EmailOut)
async def inbound_email(request: Request, services: ServicesDep) -> EmailOut:
    """A parsed inbound email (Mailgun-style fields, signed with THREADLINE_EMAIL_SIGNING_KEY): quoted history
    and signatures are stripped; the reply comes back threaded (Re: subject, In-Reply-To, References)."""
    form = await _form(request)
    email_channel.verify_mailgun(_secret(services.settings.email_signing_key, "THREADLINE_EMAIL_SIGNING_KEY"), form)
    token, digest = form["token"].strip(), email_channel.content_digest(form)
    keep = 2 * email_channel.DEFAULT_TOLERANCE
    nonces = services.stores.nonces
    if not await run_in_threadpool(nonces.first_use, "email", token, digest, now=datetime.now(UTC), keep=keep):
        raise AuthenticationError("this signature was already used for another email; a signature is good once")
    message = email_channel.parse_email(form)
    if message.automated:  # auto-replies and bounces never start a loop
        return EmailOut(reply=None, skipped="automated")
    outcome = await _turn_within_budget(services, message.to_inbound(), _deadline(services))
    if outcome is None:
        return EmailOut(reply=None, pending=True)
    if outcome.reply is None:
        return EmailOut(reply=None, owner=outcome.owner)
    queued = await _queued(services, outcome)
    # The turn already wrote greeting and sign-off; the adapter adds addressing and threading.
    threaded = email_channel.email_reply(message, outcome.reply, store_name=services.settings.store_name)
    return EmailOut(reply=threaded.model_copy(update={"body": outcome.reply}), owner=outcome.owner, queued=queued)


@router.get(
    "/v1/channels/social",
    response_class=Response,
    responses={200: {"description": "The challenge, echoed.", "content": {"text/plain": {}}}},
)
def social_subscription(request: Request, services: ServicesDep) -> Response:
    """Meta's webhook verification challenge (`hub.mode`, `hub.verify_token`, `hub.challenge`)."""
    token = _secret(services.settings.meta_verify_token, "THREADLINE_META_VERIFY_TOKEN")
    return PlainTextResponse(social.verify_subscription(dict(request.query_params), token))


class SocialOut(BaseModel):
    """Send API bodies for the replies when no page access token is configured (the caller posts them to Meta's
    Send API); with one, the replies go through the outbox and `queued` counts them."""

    replies: list[dict[str, Any]]
    queued: int = 0
    pending: int = Field(0, description="Turns that outlasted the budget; their replies follow through the outbox.")


@router.post("/v1/channels/social", response_model=SocialOut)
async def social_webhook(request: Request, services: ServicesDep) -> SocialOut:
    """Messenger/Instagram webhook, signed with X-Hub-Signature-256 over the raw body."""
    raw = await request.body()
    secret = _secret(services.settings.meta_app_secret, "THREADLINE_META_APP_SECRET")
    social.verify_meta(secret, raw, request.headers.get("X-Hub-Signature-256"))
    answer, deadline = SocialOut(replies=[]), _deadline(services)
    for event in social.parse_webhook(raw):
        if not isinstance(event, social.SocialMessage):
            continue  # attachments only: nothing to answer in text
        outcome = await _turn_within_budget(services, event.to_inbound(), deadline)
        if outcome is None:
            answer.pending += 1
        elif outcome.reply and await _queued(services, outcome):
            answer.queued += 1
        elif outcome.reply:
            answer.replies += social.send_api_bodies(event.sender_id, outcome.reply)
    return answer


@router.get(
    "/v1/channels/whatsapp",
    response_class=Response,
    responses={200: {"description": "The challenge, echoed.", "content": {"text/plain": {}}}},
)
def whatsapp_subscription(request: Request, services: ServicesDep) -> Response:
    """The WhatsApp Cloud API's webhook verification challenge (`hub.mode`, `hub.verify_token`, `hub.challenge`),
    with the Meta verify token."""
    token = _secret(services.settings.meta_verify_token, "THREADLINE_META_VERIFY_TOKEN")
    return PlainTextResponse(social.verify_subscription(dict(request.query_params), token))


class WhatsAppOut(BaseModel):
    """What the post led to (WhatsApp takes no reply in the response: replies go through the outbox)."""

    messages: int = Field(0, description="Customer messages accepted.")
    queued: int = Field(0, description="Replies queued for the WhatsApp Cloud API.")
    pending: int = Field(0, description="Turns that outlasted the budget; their replies follow through the outbox.")
    statuses: int = Field(0, description="Status reports applied to messages the outbox sent.")
    unsupported: int = Field(0, description="Messages with nothing to read (a picture, a voice note).")


@router.post("/v1/channels/whatsapp", response_model=WhatsAppOut)
async def whatsapp_webhook(request: Request, services: ServicesDep) -> WhatsAppOut:
    """WhatsApp Cloud API webhook, signed with X-Hub-Signature-256 by the Meta app secret: customer messages (text,
    button and list replies) run turns, and `statuses` (sent, delivered, read, failed; in any order) update the
    outbox. A customer known only by their business-scoped user id is the same customer as their phone number once
    a message has carried both."""
    raw = await request.body()
    secret = _secret(services.settings.meta_app_secret, "THREADLINE_META_APP_SECRET")
    social.verify_meta(secret, raw, request.headers.get(social.SIGNATURE_HEADER))
    answer, deadline = WhatsAppOut(), _deadline(services)
    for event in whatsapp.parse_webhook(raw):
        if isinstance(event, whatsapp.WhatsAppStatus):
            report = ("whatsapp", event.wamid, event.state, event.read, event.detail, event.at)
            answer.statuses += await run_in_threadpool(_status, services, *report)
            continue
        if isinstance(event, whatsapp.WhatsAppUnsupported):
            answer.unsupported += 1
            continue
        answer.messages += 1
        outcome = await _turn_within_budget(services, event.to_inbound(), deadline)
        if outcome is None:
            answer.pending += 1
        elif outcome.reply and await _queued(services, outcome):
            answer.queued += 1
    return answer


class StoreMessageIn(BaseModel):
    """A message an associate types for a customer standing in front of them."""

    model_config = ConfigDict(extra="forbid")

    customer_email: str = Field(min_length=3, max_length=320, description="The customer the associate checked.")
    associate_id: str = Field(min_length=1, max_length=64, description="Who checked them (kept on the message).")
    text: str = Field(min_length=1, max_length=4000)
    message_id: str | None = Field(None, min_length=1, max_length=256)


class PickupStatus(BaseModel):
    """Associate-only: whether an order can be handed over now."""

    order_id: str
    status: str
    ready_for_pickup: bool
    items: list[str]


class StoreMessageOut(BaseModel):
    """The customer's reply plus fields only the associate sees."""

    customer_id: str
    reply: str | None
    owner: str
    handoff_id: str | None
    associate: dict[str, Any] = Field(description="Associate-only: the customer's name and order pickup status.")


@router.post(
    "/v1/store/messages", response_model=StoreMessageOut, dependencies=[Depends(require_roles(Role.ASSOCIATE))]
)
async def store_message(body: StoreMessageIn, services: ServicesDep) -> StoreMessageOut:
    """An in-store associate talks for a customer they checked in person: the identity is `strong`. The reply
    is what the customer may hear; `associate` carries what only staff see (pickup readiness)."""
    customers = services.stores.customers.find_by_email(body.customer_email)
    known = [c for c in customers if not c.provisional]
    if len(known) != 1:
        raise NotFoundError("no single customer has that email on file")
    customer = known[0]
    message = InboundMessage(
        channel=Channel.STORE,
        sender=body.customer_email,
        text=body.text,
        vouched=True,
        provider_message_id=body.message_id,
        metadata={"associate_id": body.associate_id},
    )
    outcome = await _turn(services, message)
    orders = services.stores.orders.orders_for_customer(CustomerId(customer.id), limit=10)
    pickup = [
        PickupStatus(
            order_id=o.id,
            status=o.status.value,
            ready_for_pickup=o.status in READY_FOR_PICKUP,
            items=[i.name for i in o.items],
        ).model_dump()
        for o in orders
    ]
    return StoreMessageOut(
        customer_id=outcome.customer_id,
        reply=outcome.reply,
        owner=outcome.owner,
        handoff_id=outcome.handoff_id,
        associate={"customer_name": customer.display_name, "orders": pickup},
    )
