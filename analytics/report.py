"""The analytics the API serves: thin queries over the event log and the knowledge base, then the pure functions
of `conversations`, `metrics`, `journeys` and `attribution`.

Days and the date range are local days in the business time zone; a conversation belongs to the day, channel and
business/after-hours side where it starts, and a case to those of its first conversation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Any, Literal

from sqlalchemy import select

from threadline.analytics import conversations as conv
from threadline.analytics.attribution import attribution
from threadline.analytics.journeys import ESCALATION, PURCHASES, journeys, paths_before, top_paths
from threadline.analytics.metrics import Inputs, breakdown, metrics
from threadline.core.hours import BusinessHours, aware
from threadline.core.settings import Settings
from threadline.core.types import AnalyticsEvent
from threadline.memory.schema import ArticleRow, OrderActionRow
from threadline.memory.stores import Stores

Hours = Literal["all", "business", "after_hours"]
DEFAULT_DAYS = 30
"""The range when none is given: the last 30 local days, today included."""
TOP_PATHS = 10
JOURNEY_CUSTOMERS = 20
"""Customers whose journeys are listed when no customer is asked for (those with the most steps)."""


@dataclass(frozen=True)
class Config:
    """The definitions' parameters, from the settings."""

    hours: BusinessHours
    gap: timedelta
    fcr_window: timedelta
    attribution_window: timedelta
    queue_timeout: timedelta
    reopen_window: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> Config:
        return cls(
            BusinessHours.from_settings(settings),
            timedelta(minutes=settings.conversation_gap_minutes),
            timedelta(days=settings.fcr_window_days),
            timedelta(days=settings.attribution_window_days),
            timedelta(minutes=settings.queue_timeout_minutes),
            timedelta(hours=settings.reopen_window_hours),
        )


@dataclass(frozen=True)
class Filters:
    """Which conversations a figure covers: local days `start`..`end` (inclusive), a channel, a side of the hours."""

    start: date
    end: date
    channel: str | None = None
    hours: Hours = "all"

    @classmethod
    def of(cls, config: Config, start: date | None, end: date | None, channel: str | None, hours: Hours) -> Filters:
        """Filters with the default range filled in (the `DEFAULT_DAYS` ending at `end`, or today)."""
        last = end or config.hours.day(datetime.now(UTC))
        first = start or last - timedelta(days=DEFAULT_DAYS - 1)
        return cls(first, last, channel, hours)

    def describe(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "channel": self.channel,
            "hours": self.hours,
        }


def side(config: Config, moment: datetime) -> str:
    """`business` or `after_hours`."""
    return "business" if config.hours.is_open(moment) else "after_hours"


@dataclass
class Dataset:
    """The events loaded for one request and what is rebuilt from them."""

    config: Config
    filters: Filters
    events: list[AnalyticsEvent]
    conversations: list[conv.Conversation]
    cases: list[conv.Case]
    handoffs: dict[str, conv.HandoffView]
    inputs: Inputs
    stores: Stores

    @cached_property
    def actions(self) -> list[tuple[datetime, str, str, str, str | None]]:
        """Order actions since the range began: (when, kind, outcome, `ai` or `agent`, channel); read from the
        audit only by the report that shows them."""
        return _actions(self.stores, self.config, self.filters)

    def in_range(self, moment: datetime) -> bool:
        return self.filters.start <= self.config.hours.day(moment) <= self.filters.end

    def selected(self, c: conv.Conversation) -> bool:
        """Whether the filters cover a conversation (by where it starts)."""
        f = self.filters
        return (
            self.in_range(c.started_at)
            and (f.channel is None or c.channel == f.channel)
            and (f.hours == "all" or side(self.config, c.started_at) == f.hours)
        )


def _local_midnight(config: Config, day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=config.hours.zone).astimezone(UTC)


def current_versions(stores: Stores) -> dict[str, int]:
    """Every article's current version."""
    with stores.db.session() as s:
        return {str(a): int(v) for a, v in s.execute(select(ArticleRow.id, ArticleRow.current_version))}


def load(stores: Stores, config: Config, filters: Filters, now: datetime | None = None) -> Dataset:
    """The events the filters need: from the first-contact and attribution windows before the range (a case may
    have started earlier) to now (a case may come back, a handoff be claimed, after the range)."""
    lookback = max(config.fcr_window, config.attribution_window, config.gap) + timedelta(days=1)
    events = stores.events.between(since=_local_midnight(config, filters.start) - lookback)
    found = conv.conversations(events, config.gap, config.reopen_window)
    handoffs = conv.handoffs(events)
    as_of = aware(now or datetime.now(UTC))
    inputs = Inputs(handoffs, current_versions(stores), as_of, config.queue_timeout, config.reopen_window)
    cases = conv.cases(found, config.fcr_window)
    return Dataset(config, filters, events, found, cases, handoffs, inputs, stores)


def _actions(stores: Stores, config: Config, filters: Filters) -> list[tuple[datetime, str, str, str, str | None]]:
    """The order-action audit from the range's first local midnight: a customer's action ran on their yes to the
    AI (`ai`); an agent's from the console (`agent`)."""
    query = select(
        OrderActionRow.created_at,
        OrderActionRow.kind,
        OrderActionRow.outcome,
        OrderActionRow.actor,
        OrderActionRow.channel,
    ).where(OrderActionRow.created_at >= _local_midnight(config, filters.start))
    with stores.db.session() as s:
        rows = s.execute(query).all()
    return [
        (aware(at), kind, outcome, "agent" if actor.startswith("agent:") else "ai", ch)
        for at, kind, outcome, actor, ch in rows
    ]


def actions_report(data: Dataset) -> dict[str, Any]:
    """Order actions in the range (the channel filter applies to the AI's; an agent's are on the console): done by
    kind and by who performed them, and how many were refused."""
    f = data.filters
    chosen = [
        a
        for a in data.actions
        if data.in_range(a[0])
        and (f.channel is None or a[3] == "agent" or a[4] == f.channel)
        and (f.hours == "all" or side(data.config, a[0]) == f.hours)
    ]
    done: dict[str, dict[str, int]] = {}
    for _, kind, outcome, performer, _ in chosen:
        if outcome == "done":
            done.setdefault(kind, {"ai": 0, "agent": 0})[performer] += 1
    return {
        "done_by_kind": dict(sorted(done.items())),
        "done_by_ai": sum(v["ai"] for v in done.values()),
        "done_by_agents": sum(v["agent"] for v in done.values()),
        "refused": sum(1 for a in chosen if a[2] == "refused"),
    }


def _cases_of(data: Dataset, chosen: list[conv.Conversation]) -> list[conv.Case]:
    ids = {id(c) for c in chosen}
    return [k for k in data.cases if id(k.first) in ids]


def metrics_report(data: Dataset) -> dict[str, Any]:
    """Every metric overall, per channel, per local day, and business vs after hours."""
    chosen = [c for c in data.conversations if data.selected(c)]
    cases = _cases_of(data, chosen)
    day = data.config.hours.day
    return {
        "filters": data.filters.describe(),
        "overall": metrics(chosen, cases, data.inputs),
        "by_channel": breakdown(chosen, cases, data.inputs, lambda c: c.channel),
        "by_day": breakdown(chosen, cases, data.inputs, lambda c: day(c.started_at).isoformat()),
        "by_hours": breakdown(chosen, cases, data.inputs, lambda c: side(data.config, c.started_at)),
    }


def _purchases(data: Dataset) -> list[AnalyticsEvent]:
    return [e for e in data.events if e.type in PURCHASES and data.in_range(e.occurred_at)]


def attribution_report(data: Dataset) -> dict[str, Any]:
    """Purchases in the range credited to the AI conversations (matching the channel and hours filters) before them."""
    f = data.filters

    def touch(c: conv.Conversation) -> bool:
        return (f.channel is None or c.channel == f.channel) and (
            f.hours == "all" or side(data.config, c.started_at) == f.hours
        )

    result = attribution(_purchases(data), data.conversations, data.config.attribution_window, touch)
    return {"filters": f.describe(), **result}


def journeys_report(data: Dataset, customer_id: str | None = None, limit: int = JOURNEY_CUSTOMERS) -> dict[str, Any]:
    """The most common paths before a purchase and before an escalation (ending in the range), and the journeys
    of one customer or of the customers with the most steps."""
    all_steps = journeys(data.events, data.conversations)
    steps = {
        who: [s for s in path if data.in_range(s.at)]
        for who, path in all_steps.items()
        if data.filters.channel is None or any(s.channel == data.filters.channel for s in path)
    }
    steps = {who: path for who, path in steps.items() if path}
    purchase_kinds = frozenset(str(k) for k in PURCHASES)
    if customer_id is not None:
        listed = [customer_id] if customer_id in steps else []
    else:
        listed = sorted(steps, key=lambda who: (-len(steps[who]), who))[:limit]
    return {
        "filters": data.filters.describe(),
        "customers_with_journeys": len(steps),
        "top_paths_to_purchase": top_paths(paths_before(steps, purchase_kinds), TOP_PATHS),
        "top_paths_to_escalation": top_paths(paths_before(steps, frozenset({ESCALATION})), TOP_PATHS),
        "journeys": [
            {
                "customer_id": who,
                "steps": [
                    {"at": s.at.isoformat(), "kind": s.kind, "label": s.label, "channel": s.channel, "detail": s.detail}
                    for s in steps[who]
                ],
            }
            for who in listed
        ],
    }


SUMMARY_FIELDS = (
    "conversations",
    "involvement",
    "containment",
    "ai_resolution",
    "confirmed_resolutions",
    "assumed_resolutions",
    "conversation_resolution",
    "first_contact_resolution",
    "escalation_rate",
    "median_time_to_human_s",
    "handoff_abandonment",
    "mean_usefulness",
    "mean_facts_reasked",
    "knowledge_gaps",
    "stale_answers",
)
"""The headline figures `summary` repeats from the metrics."""


def _of(part: int, whole: int, what: str) -> str:
    return f"{part} of {whole} {what}"


def explanations(m: dict[str, Any], config: Config) -> dict[str, str]:
    """Each headline figure in a sentence, with the counts behind it: what a support lead reads next to the number."""
    ai, hours = m["ai_conversations"], f"{config.reopen_window.total_seconds() / 3600:g} hours"
    outcomes = m["outcomes"]
    days, minutes = (
        f"{config.fcr_window.total_seconds() / 86400:g} days",
        f"{config.gap.total_seconds() / 60:g} minutes",
    )
    queue = f"{config.queue_timeout.total_seconds() / 60:g} minutes"
    return {
        "conversations": f"{m['conversations']} started in the range: one customer on one channel until {minutes} "
        "of silence.",
        "involvement": f"The AI took part in {_of(ai, m['conversations'], 'conversations')}; the others were only "
        "with people.",
        "containment": f"{_of(m['contained'], ai, 'AI conversations')} ended with no person and at least one useful "
        f"answer; {outcomes['no_useful_answer']} got no useful answer and {outcomes['handed_off']} went to a person.",
        "ai_resolution": f"{m['confirmed_resolutions']} confirmed (the customer said it helped) and "
        f"{m['assumed_resolutions']} assumed (a useful answer and no return within {hours}) of {ai} AI "
        f"conversations; {outcomes['reopened']} more came back within {hours}, so they are not resolved.",
        "confirmed_resolutions": "The customer's own words after a useful answer said it helped.",
        "assumed_resolutions": f"A useful answer, no handoff, and the customer did not come back within {hours} "
        "(provisional until that time has passed).",
        "conversation_resolution": f"{_of(m['resolved_conversations'], m['conversations'], 'conversations')} were "
        f"resolved by the AI or by a person and not reopened within {hours}.",
        "first_contact_resolution": f"{_of(m['first_contact_resolved'], m['cases'], 'cases')} were resolved in a "
        f"single conversation. A case is a customer's conversations on any channel until {days} pass without "
        "contact, so a customer who comes back within that time was not resolved at first contact.",
        "escalation_rate": f"{_of(m['escalated'], ai, 'AI conversations')} were handed to a person.",
        "median_time_to_human_s": f"From handoff to an agent's claim, over {m['claimed_handoffs']} claimed handoffs.",
        "handoff_abandonment": f"{_of(m['abandoned_handoffs'], m['handoffs'], 'handoffs')} never reached a person: "
        f"not claimed, and timed out or waiting longer than the queue timeout ({queue}).",
        "mean_usefulness": f"Agents' rating of {m['rated_handoffs']} handoff packets, 1 (useless) to 5 (all they "
        "needed).",
        "mean_facts_reasked": "Packet facts agents marked missing or wrong, per rated handoff: what they had to ask "
        "again.",
        "knowledge_gaps": f"{_of(m['knowledge_gaps'], m['knowledge_searches'], 'knowledge searches')} found no "
        "article relevant enough to answer; the questions are listed below.",
        "stale_answers": f"{_of(m['stale_answers'], m['citations'], 'cited answers')} came from an article version "
        "that has changed since.",
    }


def summary_report(data: Dataset) -> dict[str, Any]:
    """The dashboard's headline: key figures with an explanation of each, how AI conversations ended, the
    knowledge-gap questions, volumes by channel, business vs after hours, attribution totals."""
    report = metrics_report(data)
    credit = attribution_report(data)
    overall = report["overall"]
    pick = {k: overall[k] for k in SUMMARY_FIELDS}
    return {
        "filters": report["filters"],
        "headline": pick,
        "explanations": explanations(overall, data.config),
        "outcomes": overall["outcomes"],
        "top_gap_queries": overall["top_gap_queries"],
        "volumes_by_channel": {ch: m["conversations"] for ch, m in report["by_channel"].items()},
        "after_hours_parity": {
            s: {k: report["by_hours"].get(s, {}).get(k) for k in ("conversations", "containment", "escalation_rate")}
            for s in ("business", "after_hours")
        },
        "attribution": {
            k: credit[k] for k in ("purchases", "attributed_purchases", "attributed_share", "attributed_revenue")
        },
        "order_actions": actions_report(data),
    }
