"""`/v1/customers…`: customer 360, the cross-channel timeline, identity links, merges and their undo."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from threadline.api.auth import roles_dependency
from threadline.api.deliveries import overall_state
from threadline.api.deps import ServicesDep
from threadline.api.routes import MAX_ID
from threadline.core.auth import Role
from threadline.core.errors import ConflictError, InvalidInputError, NotFoundError
from threadline.core.order_actions import ActionRecord
from threadline.core.redaction import redact_value
from threadline.core.types import ChannelIdentity, CustomerId, HandleType, IdentityEvent, VerificationLevel
from threadline.memory.customer_view import CustomerProfile, TimelineEntry, find_customer, profile, timeline
from threadline.memory.identity import normalize_phone

router = APIRouter(
    prefix="/v1/customers", tags=["customers"], dependencies=[roles_dependency(Role.AGENT, Role.ADMIN, Role.QA)]
)
ACTOR = "api"


class IdentityIn(BaseModel):
    """A handle to put on file for a customer (a phone number they gave, a loyalty card, …)."""

    model_config = ConfigDict(extra="forbid")

    handle_type: HandleType
    handle: str = Field(min_length=1, max_length=320)
    level: VerificationLevel = Field(
        VerificationLevel.CLAIMED, description="How sure we are that the handle is theirs (at most `verified`)."
    )


class MergeIn(BaseModel):
    """Merge `source` into `target`: everything of the source moves; the audit row allows an exact undo."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, max_length=64)
    target: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=500)


class MergeOut(BaseModel):
    """A merge as recorded."""

    event_id: int
    source: str
    target: str
    moved: dict[str, int] = Field(description="Rows moved per table.")
    created_at: datetime


def _normalized(handle_type: HandleType, raw: str) -> str:
    if handle_type is HandleType.PHONE:
        return normalize_phone(raw)
    return raw.strip().lower() if handle_type is HandleType.EMAIL else raw.strip()


@router.get("", response_model=CustomerProfile)
def find(
    services: ServicesDep,
    email: str | None = None,
    phone: str | None = None,
    visitor_id: str | None = None,
    social_id: str | None = None,
    loyalty_id: str | None = None,
    external_id: str | None = None,
) -> CustomerProfile:
    """The customer these handles identify (an exact handle match wins; email beats phone)."""
    given = {
        HandleType.EMAIL: email,
        HandleType.PHONE: phone,
        HandleType.VISITOR: visitor_id,
        HandleType.SOCIAL: social_id,
        HandleType.LOYALTY: loyalty_id,
        HandleType.EXTERNAL: external_id,
    }
    handles = {kind: _normalized(kind, value) for kind, value in given.items() if value}
    if not handles:
        raise InvalidInputError("give at least one of email, phone, visitor_id, social_id, loyalty_id, external_id")
    customer = find_customer(services.db, handles)
    if customer is None:
        raise NotFoundError("no customer has those handles")
    return profile(services.db, services.stores.orders, customer.id)


@router.get("/{customer_id}", response_model=CustomerProfile)
def get_customer(customer_id: str, services: ServicesDep) -> CustomerProfile:
    """Profile, identities with their levels, orders at a glance, episodes and handoffs."""
    return profile(services.db, services.stores.orders, CustomerId(customer_id))


@router.get("/{customer_id}/timeline", response_model=list[TimelineEntry])
def get_timeline(
    customer_id: str,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    before: datetime | None = None,
) -> list[TimelineEntry]:
    """Every message and event across channels, oldest first (the `limit` most recent before `before`); an outbound
    message carries its delivery state (`delivery`) when it went through a provider."""
    entries = timeline(services.db, CustomerId(customer_id), limit=limit, before=before)
    outbound = [int(e.ref.split(":")[1]) for e in entries if e.kind == "message" and e.direction == "outbound"]
    delivery = {f"message:{m}": overall_state(d) for m, d in services.stores.outbox.for_messages(outbound).items()}
    # An export: card numbers, emails and phone numbers in what was said and recorded are redacted.
    return [
        e.model_copy(
            update={"text": redact_value(e.text), "detail": redact_value(e.detail), "delivery": delivery.get(e.ref)}
        )
        for e in entries
    ]


@router.get("/{customer_id}/actions", response_model=list[ActionRecord])
def order_actions(customer_id: str, services: ServicesDep) -> list[ActionRecord]:
    """The customer's order actions, newest first: who ran each (the customer, confirmed in conversation, or an
    agent), when, on which channel, the confirming message, the records before and after, or why it was refused."""
    if services.stores.customers.get(CustomerId(customer_id)) is None:
        raise NotFoundError(f"no customer {customer_id}")
    return services.stores.orders.actions(CustomerId(customer_id))


@router.get("/{customer_id}/identity-events", response_model=list[IdentityEvent])
def identity_events(customer_id: str, services: ServicesDep) -> list[IdentityEvent]:
    """The identity audit trail: every link, verification, merge and unmerge involving the customer."""
    if services.stores.customers.get(CustomerId(customer_id)) is None:
        raise NotFoundError(f"no customer {customer_id}")
    return services.stores.customers.identity_events(CustomerId(customer_id))


@router.post(
    "/{customer_id}/identities",
    response_model=ChannelIdentity,
    status_code=201,
    dependencies=[roles_dependency(Role.AGENT, Role.ADMIN)],
)
def link_identity(customer_id: str, body: IdentityIn, services: ServicesDep) -> ChannelIdentity:
    """Put a handle on file. A handle that belongs to another customer is refused (merge them instead)."""
    if services.stores.customers.get(CustomerId(customer_id)) is None:
        raise NotFoundError(f"no customer {customer_id}")
    if body.level is VerificationLevel.STRONG:
        raise InvalidInputError("a stored handle is at most `verified`; `strong` is proved per message")
    handle = _normalized(body.handle_type, body.handle)
    current = services.stores.customers.find_by_handle(body.handle_type, handle)
    if current is not None and current.customer_id != customer_id:
        raise ConflictError(f"that handle belongs to customer {current.customer_id}; merge the customers instead")
    return services.stores.customers.link_identity(
        CustomerId(customer_id), body.handle_type, handle, body.level, actor=ACTOR
    )


def _out(record: Any) -> MergeOut:
    moved = {table: len(ids) for table, ids in record.moved.items()}
    return MergeOut(
        event_id=record.event_id, source=record.source, target=record.target, moved=moved, created_at=record.created_at
    )


@router.post(
    "/merges", response_model=MergeOut, status_code=201, dependencies=[roles_dependency(Role.AGENT, Role.ADMIN)]
)
def merge(body: MergeIn, services: ServicesDep) -> MergeOut:
    """Merge two customers (never two with different external ids)."""
    record = services.merging.merge(CustomerId(body.source), CustomerId(body.target), actor=ACTOR, reason=body.reason)
    return _out(record)


@router.post(
    "/merges/{event_id}/undo", response_model=MergeOut, dependencies=[roles_dependency(Role.AGENT, Role.ADMIN)]
)
def unmerge(event_id: Annotated[int, Path(ge=1, le=MAX_ID)], services: ServicesDep) -> MergeOut:
    """Undo a merge exactly: the moved rows go back, the target's thread loses what the merge brought in."""
    return _out(services.merging.unmerge(event_id, actor=ACTOR))


class ErasureOut(BaseModel):
    """What an erasure removed: counts only, and the hash the audit trail knows the customer by."""

    subject: str = Field(description="SHA-256 of the erased id, as recorded in the audit event.")
    removed: dict[str, int] = Field(description="Rows (or entries) removed per table or store.")


@router.delete(
    "/{customer_id}",
    response_model=ErasureOut,
    dependencies=[roles_dependency(Role.ADMIN)],
    responses={404: {"description": "No such customer (already erased)."}},
)
def erase(customer_id: str, services: ServicesDep) -> ErasureOut:
    """Erase a customer (the right to erasure): their messages, conversation threads, identities, memories,
    episodes, handoffs and events go; their orders stay, anonymised. A second call is a 404."""
    report = services.erasure().erase(customer_id, actor=ACTOR)
    return ErasureOut(subject=report.subject, removed=report.removed)
