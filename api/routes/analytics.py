"""`GET /v1/analytics/summary|metrics|journeys|attribution`: what the AI does across channels, computed from the
append-only event log on every request (README "Analytics" defines each figure); `GET /v1/analytics/delivery`: how
many outbound provider messages failed, per channel, from the outbox.

Filters: `from` and `to` (local days in THREADLINE_BUSINESS_TIMEZONE, inclusive; default the last 30 days),
`channel`, and `hours` (`business`, `after_hours` or `all`, by where a conversation starts). Keys: admin, qa (the
figures include agents' ratings and customers' journeys).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from threadline.analytics.report import (
    Config,
    Dataset,
    Filters,
    Hours,
    attribution_report,
    journeys_report,
    load,
    metrics_report,
    summary_report,
)
from threadline.api.auth import roles_dependency
from threadline.api.deps import ServicesDep
from threadline.core.auth import Role
from threadline.core.errors import InvalidInputError
from threadline.core.types import Channel
from threadline.product.services import Services

router = APIRouter(prefix="/v1/analytics", tags=["analytics"], dependencies=[roles_dependency(Role.ADMIN, Role.QA)])
MAX_RANGE_DAYS = 366
"""The longest date range one request may cover."""

EARLIEST, LATEST = date(2000, 1, 1), date(2999, 12, 31)
"""Days a range may name: the windows around a range (look-backs, the day after) stay inside the calendar."""

FromQ = Annotated[
    date | None,
    Query(alias="from", ge=EARLIEST, le=LATEST, description="First local day (default: 29 days before `to`)."),
]
ToQ = Annotated[
    date | None, Query(alias="to", ge=EARLIEST, le=LATEST, description="Last local day, inclusive (default: today).")
]
ChannelQ = Annotated[Channel | None, Query(description="Only conversations on this channel.")]
HoursQ = Annotated[Hours, Query(description="business, after_hours or all (where a conversation starts).")]


def _filters(config: Config, start: date | None, end: date | None, channel: Channel | None, hours: Hours) -> Filters:
    filters = Filters.of(config, start, end, channel.value if channel else None, hours)
    if filters.end < filters.start:
        raise InvalidInputError("`from` is after `to`")
    if (filters.end - filters.start).days >= MAX_RANGE_DAYS:
        raise InvalidInputError(f"the date range is longer than {MAX_RANGE_DAYS} days")
    return filters


def _dataset(
    services: Services, start: date | None, end: date | None, channel: Channel | None, hours: Hours
) -> Dataset:
    config = Config.from_settings(services.settings)
    return load(services.stores, config, _filters(config, start, end, channel, hours))


@router.get("/summary", response_model=dict[str, Any])
async def summary(
    services: ServicesDep, start: FromQ = None, end: ToQ = None, channel: ChannelQ = None, hours: HoursQ = "all"
) -> dict[str, Any]:
    """Headline figures (involvement, containment, conversation resolution, first-contact resolution per case,
    escalation rate, median time to human, handoff abandonment, packet usefulness, facts re-asked, knowledge gaps,
    stale answers, AI resolution confirmed and assumed) each with a sentence explaining it from its counts, the AI
    conversations' outcomes, the knowledge-gap questions, conversations per channel, business vs after hours, and
    attributed purchases."""
    return await run_in_threadpool(lambda: summary_report(_dataset(services, start, end, channel, hours)))


@router.get("/metrics", response_model=dict[str, Any])
async def metrics(
    services: ServicesDep, start: FromQ = None, end: ToQ = None, channel: ChannelQ = None, hours: HoursQ = "all"
) -> dict[str, Any]:
    """Every metric `overall`, `by_channel`, `by_day` and `by_hours` (business / after_hours). Rates are shares
    (0 to 1; null when nothing to divide by). Involvement: AI conversations / conversations. Outcomes: each AI
    conversation once, as handed_off, no_useful_answer, reopened (the customer came back within
    THREADLINE_REOPEN_WINDOW_HOURS), confirmed or assumed resolution. Containment: AI conversations with no handoff
    and at least one useful answer (answered from a tool that found something) / AI conversations. AI resolution:
    (confirmed + assumed) / AI conversations. Conversation resolution: resolved (contained or resolved by an agent)
    and not reopened / conversations. First-contact resolution: cases (a customer's
    conversations, on any channel, each starting within THREADLINE_FCR_WINDOW_DAYS of the previous one's end) of
    one resolved conversation / cases. Escalation rate: AI conversations handed off / AI conversations, with
    reasons by stall type. Escalation quality: mean usefulness (1-5) and facts re-asked (packet fields rated
    missing or wrong) over rated handoffs. Time to human: seconds from handoff to claim. Handoff abandonment:
    handoffs never claimed that timed out or are past the queue timeout / handoffs. Knowledge gaps: searches with
    no usable article / searches. Stale answers: citations of an article version since changed / citations."""
    return await run_in_threadpool(lambda: metrics_report(_dataset(services, start, end, channel, hours)))


@router.get("/journeys", response_model=dict[str, Any])
async def journeys(
    services: ServicesDep,
    start: FromQ = None,
    end: ToQ = None,
    channel: ChannelQ = None,
    hours: HoursQ = "all",
    customer_id: Annotated[str | None, Query(max_length=64, description="One customer's journey.")] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Journeys listed (the customers with most steps).")] = 20,
) -> dict[str, Any]:
    """Per customer, the ordered cross-channel path of touchpoints (visits with their source, carts, store visits),
    conversations, escalations and purchases; and the most common paths (the last five steps since the previous
    purchase, repeats collapsed) before a purchase and before an escalation."""
    return await run_in_threadpool(
        lambda: journeys_report(_dataset(services, start, end, channel, hours), customer_id, limit)
    )


@router.get("/attribution", response_model=dict[str, Any])
async def attribution(
    services: ServicesDep, start: FromQ = None, end: ToQ = None, channel: ChannelQ = None, hours: HoursQ = "all"
) -> dict[str, Any]:
    """Purchases (online and in store) in the range preceded by an AI conversation of the same customer within
    THREADLINE_ATTRIBUTION_WINDOW_DAYS, credited by channel and by intent: last touch (all credit to the last AI
    conversation) and linear (shared equally by every AI conversation in the window); `channel` and `hours` filter
    which conversations count as touches."""
    return await run_in_threadpool(lambda: attribution_report(_dataset(services, start, end, channel, hours)))


class DeliveryRate(BaseModel):
    """One channel's outbound provider messages in the range, and the share that failed or died."""

    channel: str
    total: int = Field(description="Deliveries created in the range (one per provider message: a long SMS is two).")
    failed: int = Field(description="Refused by the provider for good, or reported undelivered.")
    dead: int = Field(description="Failed transiently on every attempt (THREADLINE_OUTBOX_MAX_ATTEMPTS).")
    rate: float | None = Field(description="(failed + dead) / total; null when nothing was sent.")


class DeliveryReport(BaseModel):
    """Delivery failure rate by channel, and over all channels."""

    filters: dict[str, Any]
    by_channel: list[DeliveryRate]
    overall: DeliveryRate


def _rate(channel: str, total: int, failed: int, dead: int) -> DeliveryRate:
    rate = (failed + dead) / total if total else None
    return DeliveryRate(channel=channel, total=total, failed=failed, dead=dead, rate=rate)


def delivery_report(
    services: Services, start: date | None, end: date | None, channel: Channel | None
) -> DeliveryReport:
    """The outbox's failure rates for local days `start`..`end` (deliveries by when they were created)."""
    config = Config.from_settings(services.settings)
    filters = _filters(config, start, end, channel, "all")

    def midnight(day: date) -> datetime:
        return datetime.combine(day, time(), tzinfo=config.hours.zone).astimezone(UTC)

    found = services.stores.outbox.failure_rates(midnight(filters.start), midnight(filters.end + timedelta(days=1)))
    rows = [_rate(r.channel, r.total, r.failed, r.dead) for r in found if channel is None or r.channel == channel]
    overall = _rate("all", sum(r.total for r in rows), sum(r.failed for r in rows), sum(r.dead for r in rows))
    described = {k: v for k, v in filters.describe().items() if k != "hours"}
    return DeliveryReport(filters=described, by_channel=rows, overall=overall)


@router.get("/delivery", response_model=DeliveryReport)
async def delivery(
    services: ServicesDep, start: FromQ = None, end: ToQ = None, channel: ChannelQ = None
) -> DeliveryReport:
    """Delivery failure rate by channel: rate = (failed + dead) / deliveries created in the period (outbound
    provider messages: agents' replies, queue-timeout notices, late replies; one per part). `failed`: the provider
    refused it for good or reported it undelivered; `dead`: every attempt failed transiently. Deliveries still
    queued or sending count in the total. Web chat sends nothing through a provider and never appears. `hours` does
    not apply."""
    return await run_in_threadpool(lambda: delivery_report(services, start, end, channel))
