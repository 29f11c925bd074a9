"""Concurrent sends, redeliveries and handoff actions, explored by a hypothesis state machine.

Each example is one customer (a new phone number) whose messages arrive in concurrent bursts, some delivered twice
at once (a provider retrying), while an agent claims, replies, releases and resolves the case, sometimes in the
same instant as the customer's message. After every step the message log must show: each message logged once
and answered (or silently handed to the agent) exactly once, never lost, and never an AI reply while a person
owned the case.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy import select

from threadline.core.errors import ConflictError
from threadline.core.settings import Settings
from threadline.core.types import Channel, Handoff, HandoffStatus, InboundMessage, TurnOutcome
from threadline.memory.schema import HandoffEventRow, HandoffRow, MessageRow
from threadline.product.services import Services, open_services

TEXTS = ["hi", "how long does standard shipping take?", "what is your return policy?", "thanks"]
HUMAN = "I want to talk to a person"
AGENT = "agent:stateful"
phones = itertools.count(5550107000)
ids = itertools.count(1)


@pytest.fixture
def services(demo_db_url: str, tmp_path: Path) -> Iterator[Services]:
    opened = open_services(Settings(data_dir=tmp_path, database_url=demo_db_url, load_demo=False))
    yield opened
    opened.close()


def seconds(moment: datetime) -> float:
    """A stored UTC time (naive on SQLite) as epoch seconds, comparable with the turn's own clock."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class Conversation(RuleBasedStateMachine):
    """One customer and one agent, acting at once."""

    services: Services
    pool: ThreadPoolExecutor

    def __init__(self) -> None:
        super().__init__()
        self.phone = f"+1{next(phones)}"
        self.sent: list[str] = []
        self.outcomes: list[TurnOutcome] = []

    # -- actions ---------------------------------------------------------------------------------------------

    def _message(self, text: str, message_id: str | None = None) -> InboundMessage:
        if message_id is None:
            message_id = f"st-{next(ids)}"
            self.sent.append(message_id)
        return InboundMessage(channel=Channel.SMS, sender=self.phone, text=text, provider_message_id=message_id)

    def _together(self, *calls: Callable[[], Any]) -> list[Any]:
        """Run the calls at the same time; a refused agent action (wrong state) is a normal answer."""

        def attempt(call: Callable[[], Any]) -> Any:
            try:
                return call()
            except ConflictError as error:
                return error

        results = list(self.pool.map(attempt, calls))
        self.outcomes += [r for r in results if isinstance(r, TurnOutcome)]
        return results

    def _send(self, message: InboundMessage) -> Callable[[], TurnOutcome]:
        return lambda: self.services.turns.handle(message)

    @rule(texts=st.lists(st.sampled_from([*TEXTS, HUMAN]), min_size=1, max_size=3), redeliver=st.booleans())
    def burst(self, texts: list[str], redeliver: bool) -> None:
        """Messages at once; with `redeliver`, the first is also delivered twice more at the same moment."""
        messages = [self._message(text) for text in texts]
        calls = [self._send(m) for m in messages]
        if redeliver:
            calls += [self._send(messages[0]), self._send(messages[0])]
        self._together(*calls)

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def redeliver_later(self, data: st.DataObject) -> None:
        """A provider retries an old message: it must come back as a duplicate, with no new turn."""
        message_id = data.draw(st.sampled_from(self.sent))
        before = self._log()
        [outcome] = self._together(self._send(self._message("retry", message_id)))
        assert outcome.duplicate or outcome.folded or outcome.reply is None
        assert [r.id for r in self._replies(self._log())] == [r.id for r in self._replies(before)]

    @rule(action=st.sampled_from(["claim", "reply", "release", "resolve"]), text=st.sampled_from(TEXTS))
    def agent_acts_while_the_customer_writes(self, action: str, text: str) -> None:
        """The agent claims a waiting case, or replies on, releases or resolves a claimed one, in the same instant as
        the customer's message. What is drawn never depends on the case's state (which depends on how earlier races
        ran, so hypothesis could not replay the draws): an action the case is not ready for leaves the customer's
        message alone."""
        handoff = self._open()
        ready = handoff is not None and handoff.status is (
            HandoffStatus.QUEUED if action == "claim" else HandoffStatus.CLAIMED
        )
        if handoff is None or not ready:
            self._together(self._send(self._message(text)))
            return
        desk = self.services.desk
        act: Callable[[], Any] = {
            "claim": lambda: desk.claim(handoff.id, AGENT),
            "reply": lambda: desk.agent_reply(handoff.id, AGENT, "Happy to help."),
            "release": lambda: desk.release(handoff.id, AGENT, "ok"),
            "resolve": lambda: desk.resolve(handoff.id, AGENT),
        }[action]
        self._together(act, self._send(self._message(text)))

    # -- what must always hold -------------------------------------------------------------------------------

    def _open(self) -> Handoff | None:
        customer = self._customer()
        return self.services.stores.handoffs.open_for_customer(customer) if customer else None  # type: ignore[arg-type]

    def _customer(self) -> str | None:
        with self.services.db.session() as s:
            return s.scalar(select(MessageRow.customer_id).where(MessageRow.sender == self.phone).limit(1))

    def _log(self) -> list[MessageRow]:
        customer = self._customer()
        with self.services.db.session() as s:
            return list(s.scalars(select(MessageRow).where(MessageRow.customer_id == customer).order_by(MessageRow.id)))

    @staticmethod
    def _replies(log: list[MessageRow]) -> list[MessageRow]:
        """The AI's replies (turn outcomes), apart from the notices of the desk while a case waits for a person (the
        hand-off notice, the note that a message reached the team)."""
        return [
            r
            for r in log
            if r.direction == "outbound" and "outcome" in (r.meta or {}) and r.meta["outcome"].get("owner") == "ai"
        ]

    @invariant()
    def every_message_logged_once_and_answered_once(self) -> None:
        if not self.sent:
            return
        log = self._log()
        inbound = [r for r in log if r.direction == "inbound"]
        assert sorted(str(r.provider_message_id) for r in inbound) == sorted(self.sent)  # none lost, none twice
        assert all(r.handled is not None for r in inbound), [(r.id, r.text) for r in inbound if r.handled is None]
        answered = [i for r in log if r.direction == "outbound" for i in (r.meta or {}).get("answers", [])]
        assert len(answered) == len(set(answered))  # no message answered by two turns

    @invariant()
    def never_an_ai_reply_while_a_person_owns_the_case(self) -> None:
        customer = self._customer()
        if customer is None:
            return
        with self.services.db.session() as s:
            handoffs = [h.id for h in s.scalars(select(HandoffRow).where(HandoffRow.customer_id == customer))]
            events = list(
                s.scalars(
                    select(HandoffEventRow).where(HandoffEventRow.handoff_id.in_(handoffs)).order_by(HandoffEventRow.id)
                )
            )
        owned: list[tuple[Any, Any]] = []  # [claimed, released or resolved) intervals
        start = None
        for event in events:
            if event.kind == "claimed":
                start = event.created_at
            elif event.kind in ("released", "resolved") and start is not None:
                owned.append((start, event.created_at))
                start = None
        # A turn wholly inside an agent's ownership must stay silent. (A turn that overlaps the moment an agent lets
        # go checked ownership after it: its answer is right. No turn can overlap a claim: a claimable case is
        # queued, and a queued case is silent too.)
        for reply in self._replies(self._log()):
            turn = reply.meta["turn"]
            for claimed, ended in [*owned, *([(start, None)] if start is not None else [])]:
                inside = seconds(claimed) <= turn["started"] and (ended is None or turn["finished"] < seconds(ended))
                assert not inside, f"AI reply {reply.text!r} in a turn run while an agent owned the case"
        assert all(  # a person's case: no reply at all; a waiting case: only the desk's notices
            o.reply is None or o.owner == "ai" or (o.owner == "queue" and "our team" in o.reply)
            for o in self.outcomes
            if not o.duplicate
        )


def test_concurrent_sends_redeliveries_and_handoff_actions_keep_every_promise(
    services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    Conversation.services = services
    machines: list[Conversation] = []

    def build() -> Conversation:
        machine = Conversation()
        machines.append(machine)
        return machine

    with ThreadPoolExecutor(max_workers=5) as pool:
        Conversation.pool = pool
        run_state_machine_as_test(
            build,  # type: ignore[arg-type]  # a factory is accepted (hypothesis calls it for each example)
            settings=settings(
                max_examples=12,
                stateful_step_count=10,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
    sent = sum(len(m.sent) for m in machines)
    turns = sum(len(m.outcomes) for m in machines)
    with capsys.disabled():
        print(f"\n[stateful] {len(machines)} customers, {sent} messages, {turns} deliveries answered; invariants held")
    assert sent > 0
