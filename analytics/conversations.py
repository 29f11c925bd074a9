"""Conversations, handoffs and cases rebuilt from the event log.

A **conversation** is a maximal run of one customer's events on one channel (messages received, AI turns, knowledge
gaps, handoffs created) with no silence longer than the conversation gap; a change of channel
starts a new one. A **case** chains a customer's conversations: a conversation that starts within the first-contact
window after the previous one ended (on any channel) belongs to the same case.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from threadline.core.hours import aware
from threadline.core.types import AnalyticsEvent, EventType

CONVERSATION_EVENTS = frozenset(
    {
        EventType.MESSAGE_RECEIVED,
        EventType.TURN,
        EventType.KNOWLEDGE_GAP,
        EventType.HANDOFF_CREATED,
    }
)
"""Event types that belong to a conversation (the others are a handoff's later life or commerce)."""


@dataclass
class HandoffView:
    """One handoff's life as the log tells it (created in a conversation; claimed, closed and rated later)."""

    id: str
    stall: str
    created_at: datetime
    channel: str | None = None
    claimed: bool = False
    waited_s: float | None = None
    resolved: bool = False
    released: bool = False
    timed_out: bool = False
    usefulness: int | None = None
    reasked: int | None = None
    """Packet fields the agent marked missing or wrong: facts they had to ask the customer again."""

    def abandoned(self, as_of: datetime, timeout: timedelta) -> bool:
        """Never reached a person: not claimed, and timed out (or past the queue timeout as of `as_of`)."""
        return not self.claimed and (self.timed_out or aware(as_of) - aware(self.created_at) >= timeout)


@dataclass
class Conversation:
    """A run of one customer's activity on one channel."""

    customer_id: str
    channel: str
    started_at: datetime
    ended_at: datetime
    events: list[AnalyticsEvent] = field(default_factory=list)

    def of(self, kind: EventType) -> list[AnalyticsEvent]:
        return [e for e in self.events if e.type == kind]

    @property
    def ai_involved(self) -> bool:
        """The AI ran at least one turn in it."""
        return bool(self.of(EventType.TURN))

    @property
    def handoff_ids(self) -> list[str]:
        return [str(e.payload["handoff_id"]) for e in self.of(EventType.HANDOFF_CREATED) if e.payload.get("handoff_id")]

    @property
    def escalated(self) -> bool:
        return bool(self.of(EventType.HANDOFF_CREATED))

    @property
    def answered(self) -> bool:
        """The AI's last turn in it gave a usable answer."""
        turns = self.of(EventType.TURN)
        return bool(turns) and bool(turns[-1].payload.get("answered"))

    @property
    def intent(self) -> str | None:
        """The most frequent intent of its turns (the earliest on a tie), if the model reported any."""
        intents = [str(e.payload["intent"]) for e in self.of(EventType.TURN) if e.payload.get("intent")]
        return Counter(intents).most_common(1)[0][0] if intents else None

    @property
    def contained(self) -> bool:
        """Resolved with no human: the AI took part, nothing was handed off, and its last answer was usable."""
        return self.ai_involved and not self.escalated and self.answered

    def resolved(self, handoffs: dict[str, HandoffView]) -> bool:
        """Contained, or a person resolved a case handed off in it."""
        return self.contained or any(h in handoffs and handoffs[h].resolved for h in self.handoff_ids)


@dataclass
class Case:
    """A customer's conversations chained by the first-contact window."""

    conversations: list[Conversation]

    @property
    def first(self) -> Conversation:
        return self.conversations[0]

    def first_contact_resolved(self, handoffs: dict[str, HandoffView]) -> bool:
        """One conversation, resolved, and no contact again on any channel within the window."""
        return len(self.conversations) == 1 and self.first.resolved(handoffs)


def _sorted(events: Iterable[AnalyticsEvent]) -> list[AnalyticsEvent]:
    return sorted(events, key=lambda e: (aware(e.occurred_at), e.id))


def conversations(events: Iterable[AnalyticsEvent], gap: timedelta) -> list[Conversation]:
    """The conversations in `events`, ordered by start."""
    found: list[Conversation] = []
    open_by_customer: dict[str, Conversation] = {}
    for event in _sorted(events):
        if event.type not in CONVERSATION_EVENTS or event.customer_id is None or event.channel is None:
            continue
        at, current = aware(event.occurred_at), open_by_customer.get(event.customer_id)
        if current is None or current.channel != event.channel or at - current.ended_at > gap:
            current = Conversation(event.customer_id, event.channel, at, at)
            open_by_customer[event.customer_id] = current
            found.append(current)
        current.ended_at = at
        current.events.append(event)
    return sorted(found, key=lambda c: c.started_at)


def cases(found: list[Conversation], window: timedelta) -> list[Case]:
    """The cases the conversations make, ordered by start: a conversation starting within `window` of the end of
    the customer's previous one joins its case."""
    result: list[Case] = []
    latest: dict[str, Case] = {}
    for conversation in sorted(found, key=lambda c: c.started_at):
        case = latest.get(conversation.customer_id)
        if case is not None and conversation.started_at - case.conversations[-1].ended_at <= window:
            case.conversations.append(conversation)
            continue
        case = Case([conversation])
        latest[conversation.customer_id] = case
        result.append(case)
    return result


def handoffs(events: Iterable[AnalyticsEvent]) -> dict[str, HandoffView]:
    """Every handoff the log knows, by id, with what happened to it afterwards."""
    views: dict[str, HandoffView] = {}
    for event in _sorted(events):
        handoff_id = event.payload.get("handoff_id")
        if not handoff_id:
            continue
        if event.type == EventType.HANDOFF_CREATED:
            stall = str(event.payload.get("stall") or "unknown")
            views[handoff_id] = HandoffView(handoff_id, stall, aware(event.occurred_at), event.channel)
            continue
        view = views.get(handoff_id)
        if view is None:
            continue
        if event.type == EventType.HANDOFF_CLAIMED and not view.claimed:
            view.claimed, view.waited_s = True, float(event.payload.get("waited_s") or 0.0)
        elif event.type == EventType.HANDOFF_RESOLVED:
            view.resolved = True
        elif event.type == EventType.HANDOFF_RELEASED:
            view.released = True
        elif event.type == EventType.HANDOFF_TIMED_OUT:
            view.timed_out = True
        elif event.type == EventType.HANDOFF_RATED:
            view.usefulness = int(event.payload.get("usefulness") or 0) or None
            view.reasked = len(event.payload.get("missing") or []) + len(event.payload.get("wrong") or [])
    return views
