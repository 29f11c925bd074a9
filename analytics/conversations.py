"""Conversations, handoffs and cases rebuilt from the event log.

A **conversation** is a maximal run of one customer's events on one channel (messages received, AI turns, knowledge
gaps, handoffs created) with no silence longer than the conversation gap; a change of channel
starts a new one. A **case** chains a customer's conversations: a conversation that starts within the first-contact
window after the previous one ended (on any channel) belongs to the same case.

An AI conversation ends in exactly one **outcome** (`Outcome`): handed to a person; left with no useful answer; a
useful answer but the customer came back within the reopen window (reopened); or resolved by the AI, *confirmed*
when the customer's own words after the answer said it helped and *assumed* when they simply did not come back.
A turn is **useful** when it was answered (understood, relevant) and rests on a tool that found something: an
order, a relevant article, matching products (or an honest "we don't carry that"), a past conversation, an order
action done or refused by policy. A greeting answered, a "you're verified" or "I don't know" is not useful.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from threadline.core.hours import aware
from threadline.core.tool_names import CHANGE_SPEAKER, ESCALATE_TO_HUMAN, VERIFY_CUSTOMER
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
USEFUL_STATUSES = frozenset({"ok", "not_carried", "done", "refused"})
"""Tool results that answer the customer: found, honestly not carried, an order action done or refused by policy."""
NOT_ANSWERS = frozenset({VERIFY_CUSTOMER, CHANGE_SPEAKER, ESCALATE_TO_HUMAN})
"""Tools whose success answers nothing the customer asked."""


class Outcome(StrEnum):
    """How an AI conversation ended (README "Analytics")."""

    HANDED_OFF = "handed_off"
    NO_USEFUL_ANSWER = "no_useful_answer"
    REOPENED = "reopened"
    CONFIRMED = "confirmed"
    ASSUMED = "assumed"


def useful_turn(payload: dict[str, Any]) -> bool:
    """An answered turn resting on a tool that found something (module docstring)."""
    results = payload.get("tool_results") or []
    grounded = any(r.get("name") not in NOT_ANSWERS and r.get("status") in USEFUL_STATUSES for r in results)
    return bool(payload.get("answered")) and grounded


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
    next_started_at: datetime | None = None
    """When the customer's next conversation (any channel) started, if there is one."""

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
    def useful(self) -> bool:
        """At least one of the AI's turns in it was useful."""
        return any(useful_turn(e.payload) for e in self.of(EventType.TURN))

    @property
    def confirmed(self) -> bool:
        """The customer said the answer helped: a turn marked `confirmed` after the first useful one."""
        turns = [e.payload for e in self.of(EventType.TURN)]
        first = next((i for i, t in enumerate(turns) if useful_turn(t)), None)
        return first is not None and any(t.get("confirmed") for t in turns[first + 1 :])

    @property
    def intent(self) -> str | None:
        """The most frequent intent of its turns (the earliest on a tie), if the model reported any."""
        intents = [str(e.payload["intent"]) for e in self.of(EventType.TURN) if e.payload.get("intent")]
        return Counter(intents).most_common(1)[0][0] if intents else None

    @property
    def contained(self) -> bool:
        """Handled by the AI alone: it took part, nothing was handed off, and at least one answer was useful."""
        return self.ai_involved and not self.escalated and self.useful

    def reopened(self, window: timedelta) -> bool:
        """The customer started another conversation (any channel) within `window` after this one ended."""
        return self.next_started_at is not None and self.next_started_at - self.ended_at <= window

    def outcome(self, window: timedelta) -> Outcome | None:
        """How an AI conversation ended (None when the AI took no part)."""
        if not self.ai_involved:
            return None
        if self.escalated:
            return Outcome.HANDED_OFF
        if not self.useful:
            return Outcome.NO_USEFUL_ANSWER
        if self.reopened(window):
            return Outcome.REOPENED
        return Outcome.CONFIRMED if self.confirmed else Outcome.ASSUMED

    def resolved(self, handoffs: dict[str, HandoffView], window: timedelta) -> bool:
        """Resolved by the AI (contained, not reopened), or by a person who resolved a case handed off in it and
        the customer did not come back within `window`."""
        by_person = any(h in handoffs and handoffs[h].resolved for h in self.handoff_ids)
        return (self.contained or by_person) and not self.reopened(window)


@dataclass
class Case:
    """A customer's conversations chained by the first-contact window."""

    conversations: list[Conversation]

    @property
    def first(self) -> Conversation:
        return self.conversations[0]

    def first_contact_resolved(self, handoffs: dict[str, HandoffView], window: timedelta) -> bool:
        """One conversation, resolved, and no contact again on any channel within the window."""
        return len(self.conversations) == 1 and self.first.resolved(handoffs, window)


def _sorted(events: Iterable[AnalyticsEvent]) -> list[AnalyticsEvent]:
    return sorted(events, key=lambda e: (aware(e.occurred_at), e.id))


def conversations(
    events: Iterable[AnalyticsEvent], gap: timedelta, thanks_window: timedelta | None = None
) -> list[Conversation]:
    """The conversations in `events`, ordered by start. With `thanks_window` (the reopen window), a thank-you
    alone that comes after the gap but within the window belongs to the conversation it thanks (`_thanks_folded`)."""
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
    if thanks_window is not None:
        found = _thanks_folded(found, thanks_window)
    following: dict[str, Conversation] = {}
    for conversation in sorted(found, key=lambda c: c.started_at, reverse=True):
        later = following.get(conversation.customer_id)
        conversation.next_started_at = later.started_at if later else None
        following[conversation.customer_id] = conversation
    return sorted(found, key=lambda c: c.started_at)


def _only_thanks(conversation: Conversation) -> bool:
    """The AI took part, nothing was handed off, and every turn was the customer saying an answer helped."""
    turns = [e.payload for e in conversation.of(EventType.TURN)]
    return bool(turns) and not conversation.escalated and all(t.get("confirmed") for t in turns)


def _thanks_folded(found: list[Conversation], window: timedelta) -> list[Conversation]:
    """A "thanks, that helped" sent after the conversation gap (usual on email) is not a conversation that reopens
    the one it thanks: its events join that conversation (confirming it), whose span stays as it was."""
    kept: list[Conversation] = []
    previous: dict[str, Conversation] = {}
    for conversation in sorted(found, key=lambda c: c.started_at):
        before = previous.get(conversation.customer_id)
        if before is not None and _only_thanks(conversation) and conversation.started_at - before.ended_at <= window:
            before.events.extend(conversation.events)
            continue
        kept.append(conversation)
        previous[conversation.customer_id] = conversation
    return kept


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
