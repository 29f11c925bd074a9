"""The conversation package on its own: turns, the agents' desk, merging and threads wired by hand over a database
and a scripted model, with no HTTP app, no knowledge index and no embedding model."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from sqlalchemy import text as sql

from threadline.conversations.desk import HandoffDesk
from threadline.conversations.merging import CustomerMerging
from threadline.conversations.threads import Threads
from threadline.conversations.turns import TurnService
from threadline.core.context import TurnServices
from threadline.core.types import Channel, Direction, InboundMessage, Passage
from threadline.graphs.support import build_support_graph
from threadline.memory.checkpoints import open_checkpointer
from threadline.memory.db import Database
from threadline.memory.identity import IdentityResolver
from threadline.memory.merges import CustomerMerges
from threadline.memory.stores import Stores
from threadline.memory.turn_locks import TurnLocks

REPLY = "Thanks - noted. Anything else I can help with?"


class NotedModel(BaseChatModel):
    """Answers every turn with the same sentence and calls no tool."""

    @property
    def _llm_type(self) -> str:
        return "noted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> NotedModel:  # type: ignore[override]
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=REPLY))])


class NoKnowledge:
    """A knowledge search that finds nothing (this module tests the conversation, not retrieval)."""

    def search(self, query: str, k: int = 5, **_: Any) -> list[Passage]:
        return []


@dataclass
class Conversation:
    stores: Stores
    turns: TurnService
    desk: HandoffDesk
    merging: CustomerMerging
    threads: Threads


def wire(db: Database, model: BaseChatModel, saver: Any) -> Conversation:
    """The conversation objects of one worker over `db`: its own turn locks, as a separate process has."""
    stores = Stores.over(db)
    graph = build_support_graph(model, checkpointer=saver)
    threads = Threads(graph, db.engine, history=2)
    locks = TurnLocks(db, lease_s=30)
    identity = IdentityResolver(stores.customers, stores.orders, timedelta(hours=24))
    desk = HandoffDesk(
        handoffs=stores.handoffs,
        messages=stores.messages,
        episodes=stores.episodes,
        events=stores.events,
        threads=threads,
        locks=locks,
    )
    merging = CustomerMerging(CustomerMerges(db), stores.customers, threads, locks)
    services = TurnServices(
        customers=stores.customers,
        orders=stores.orders,
        messages=stores.messages,
        episodes=stores.episodes,
        handoffs=stores.handoffs,
        events=stores.events,
        knowledge=NoKnowledge(),
        identity=identity,
        articles=stores.knowledge,
    )
    turns = TurnService(
        graph=graph, services=services, identity=identity, threads=threads, desk=desk, merging=merging, locks=locks
    )
    return Conversation(stores, turns, desk, merging, threads)


@pytest.fixture
def conversation(db_url: str) -> Iterator[Conversation]:
    db = Database.from_url(db_url)
    with open_checkpointer(db_url) as saver:
        yield wire(db, NotedModel(), saver)
    db.dispose()


def sms(sender: str, text: str, message_id: str | None = None) -> InboundMessage:
    return InboundMessage(channel=Channel.SMS, sender=sender, text=text, provider_message_id=message_id)


def test_a_turn_is_answered_logged_and_kept_on_the_customers_thread(conversation: Conversation) -> None:
    first = conversation.turns.handle(sms("+15550100900", "hey, do u ship to canada??", "SM-1"))
    assert first.reply == REPLY and first.owner == "ai" and not first.duplicate
    again = conversation.turns.handle(sms("+15550100900", "hey, do u ship to canada??", "SM-1"))
    assert again.duplicate and again.reply == REPLY  # a redelivery is not a second turn
    log = conversation.stores.messages.for_customer(first.customer_id)
    assert [(m.direction, m.text) for m in log] == [
        (Direction.INBOUND, "hey, do u ship to canada??"),
        (Direction.OUTBOUND, REPLY),
    ]
    said = [m.content for m in conversation.threads.values(first.customer_id)["messages"]]
    assert said == ["hey, do u ship to canada??", REPLY]


def test_the_thread_keeps_only_its_latest_checkpoints(conversation: Conversation, db_url: str) -> None:
    for text in ["hi", "still there?", "ok thanks", "bye"]:
        outcome = conversation.turns.handle(sms("+15550100901", text))
    db = Database.from_url(db_url)
    with db.engine.connect() as conn:
        kept = conn.execute(sql("SELECT COUNT(*) FROM checkpoints WHERE thread_id = :t"), {"t": outcome.customer_id})
        assert kept.scalar_one() == 2
    db.dispose()
    assert len(conversation.threads.values(outcome.customer_id)["messages"]) == 8


def test_an_agents_reply_goes_to_the_log_and_the_thread_and_the_ai_stays_silent(conversation: Conversation) -> None:
    opened = conversation.turns.handle(sms("+15550100902", "my parcel never came, sort it out"))
    handoff = conversation.stores.handoffs.create(
        opened.customer_id, packet={"channel": "sms"}, packet_version="1.1", priority="normal"
    )
    conversation.desk.claim(handoff.id, "agent:ana")
    silent = conversation.turns.handle(sms("+15550100902", "hello?? anyone"))
    assert silent.reply is None and silent.owner == "human"
    sent = conversation.desk.agent_reply(handoff.id, "agent:ana", "Hi, Ana here - I'm checking with the courier now.")
    assert (sent.channel, sent.direction) == (Channel.SMS, Direction.OUTBOUND)
    last = conversation.threads.values(opened.customer_id)["messages"][-1]
    assert isinstance(last, AIMessage) and "checking with the courier" in str(last.content)
    conversation.desk.release(handoff.id, "agent:ana", "courier re-sending tomorrow")
    back = conversation.turns.handle(sms("+15550100902", "ok thx"))
    assert back.reply == REPLY and back.owner == "ai"


def test_a_merge_joins_the_threads_and_its_undo_restores_them(conversation: Conversation) -> None:
    visitor = conversation.turns.handle(sms("+15550100903", "is the oak desk back in stock"))
    known = conversation.turns.handle(sms("+15550100904", "hi, question about my order"))
    before = [m.id for m in conversation.threads.values(known.customer_id)["messages"]]
    record = conversation.merging.merge(visitor.customer_id, known.customer_id, actor="test", reason="same person")
    joined = [m.content for m in conversation.threads.values(known.customer_id)["messages"]]
    assert "is the oak desk back in stock" in joined
    conversation.merging.unmerge(record.event_id, actor="test")
    assert [m.id for m in conversation.threads.values(known.customer_id)["messages"]] == before


class GatedModel(NotedModel):
    """Answers once `gate` opens, after saying it has started (a slow model, held mid-turn by the test)."""

    started: Any
    gate: Any

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.started.set()
        assert self.gate.wait(60)
        return super()._generate(messages, *args, **kwargs)


def test_a_turn_behind_a_long_queue_answers_every_earlier_message_first(conversation: Conversation) -> None:
    """More messages than one batch wait for the customer's turn (their requests queue on the lock); the request
    that gets the lock first may be the newest: its turn takes everything up to its own message, so no message is
    ever answered before an earlier one."""
    first = conversation.turns.handle(sms("+15550100906", "hi there", "SM-q-0"))
    log = conversation.stores.messages
    thread = log.for_customer(first.customer_id)[0].thread_key
    waiting = [
        log.append(
            first.customer_id, Channel.SMS, Direction.INBOUND, f"also {n}", sender="+15550100906", thread_key=thread
        )
        for n in range(60)
    ]
    newest = conversation.turns.handle(sms("+15550100906", "hello?? anyone", "SM-q-61"))
    assert newest.reply == REPLY
    messages = log.for_customer(first.customer_id)
    inbound = [m for m in messages if m.direction == Direction.INBOUND]
    assert all(m.handled for m in inbound)
    assert len(log.pending(thread)) == 0
    reply = messages[-1]
    assert reply.metadata["answers"] == [m.id for m in waiting] + [inbound[-1].id]


def test_a_turn_that_lost_its_lock_never_sends_a_second_reply(db_url: str) -> None:
    """Worker A's turn lock is lost mid-turn (its lease lapsed, or its Postgres connection dropped); worker B
    answers the redelivered message meanwhile. When A finishes, the reply's transaction sees the message already
    answered: A writes nothing and returns B's outcome. One message, one reply."""
    db = Database.from_url(db_url)
    started, gate = threading.Event(), threading.Event()
    with open_checkpointer(db_url) as saver:
        slow = wire(db, GatedModel(started=started, gate=gate), saver)
        fast = wire(db, NotedModel(), saver)
        message = sms("+15550100905", "hey is my order shipped yet", "SM-fence-1")
        with ThreadPoolExecutor(max_workers=1) as pool:
            first = pool.submit(slow.turns.handle, message)
            assert started.wait(60)
            _lose_the_turn_lock(db)
            second = fast.turns.handle(message)  # the provider redelivers; the other worker takes the turn
            gate.set()
            late = first.result(timeout=60)
        assert second.reply == REPLY and not second.duplicate
        assert late.duplicate and late.reply == REPLY
        log = fast.stores.messages.for_customer(second.customer_id)
        assert [m.direction for m in log] == [Direction.INBOUND, Direction.OUTBOUND]
    db.dispose()


def _lose_the_turn_lock(db: Database) -> None:
    """What a crash or a dropped connection does to the lock of a turn still running."""
    if db.backend == "postgresql":
        with db.engine.connect() as conn:
            conn.execute(
                sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()"
                )
            )
        return
    with db.transaction() as conn:
        conn.execute(sql("DELETE FROM turn_leases"))
