"""The turn service under duplicate deliveries, a crash after acceptance, and concurrent messages."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, text, update

from threadline.conversations.sweep import PendingSweep
from threadline.conversations.threads import thread_config
from threadline.core.errors import InvalidInputError, StoreUnavailableError
from threadline.core.settings import Settings
from threadline.core.threads import customer_thread
from threadline.core.types import Channel, CustomerId, Direction, InboundMessage, VerificationLevel
from threadline.demo.loader import DATA_DIR
from threadline.memory.identity import classify_handle
from threadline.memory.schema import MessageRow, table
from threadline.product.services import Services, open_services

AGE = timedelta(minutes=2)
JAMES = json.loads((DATA_DIR / "tau_retail" / "users.json").read_text())["james_li_5688"]
JAMES_EMAIL = JAMES["email"]


@pytest.fixture
def services(demo_db_url: str, tmp_path: Path) -> Iterator[Services]:
    opened = open_services(Settings(data_dir=tmp_path, database_url=demo_db_url, load_demo=False))
    yield opened
    opened.close()


def sms(text: str, message_id: str | None = None, sender: str = "+15550100400") -> InboundMessage:
    return InboundMessage(channel=Channel.SMS, sender=sender, text=text, provider_message_id=message_id)


def test_a_message_accepted_before_a_crash_is_answered_on_redelivery(services: Services) -> None:
    handle_type, handle = classify_handle(Channel.SMS, "+15550100400")
    customer = services.stores.customers.create(provisional=True)
    services.stores.customers.link_identity(customer.id, handle_type, handle, VerificationLevel.ANONYMOUS, actor="test")
    # The process died right after accepting this message: it is logged, unanswered.
    services.stores.messages.append(
        customer.id, Channel.SMS, Direction.INBOUND, "hi", provider_message_id="SM-crash", sender=handle
    )
    answered = services.turns.handle(sms("hi", "SM-crash"))
    assert answered.reply is not None
    assert answered.duplicate is False
    again = services.turns.handle(sms("hi", "SM-crash"))
    assert again.duplicate is True
    assert again.reply == answered.reply
    log = services.stores.messages.for_customer(customer.id)
    assert [m.direction for m in log] == [Direction.INBOUND, Direction.OUTBOUND]


def test_concurrent_messages_from_one_customer_are_each_answered_once(services: Services) -> None:
    texts = [f"What is your policy on returns? ({i})" for i in range(6)] + ["hi", "thanks!"]
    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(
            pool.map(
                lambda pair: services.turns.handle(
                    InboundMessage(
                        channel=Channel.WEB,
                        sender=JAMES_EMAIL,
                        text=pair[1],
                        provider_message_id=f"w{pair[0]}",
                        vouched=True,
                    )
                ),
                enumerate(texts),
            )
        )
    # Each request got one outcome: the reply of the turn it ran, or "folded" into a turn that answered it too.
    assert all((o.reply is not None) != o.folded for o in outcomes)
    customer = CustomerId(outcomes[0].customer_id)
    log = services.stores.messages.for_customer(customer, limit=100)
    inbound = [m for m in log if m.direction is Direction.INBOUND]
    replies = [m for m in log if m.direction is Direction.OUTBOUND]
    assert sorted(m.text for m in inbound) == sorted(texts)
    assert len(replies) == sum(o.reply is not None for o in outcomes)
    answered = [i for r in replies for i in r.metadata["answers"]]
    assert sorted(answered) == sorted(m.id for m in inbound)  # every message answered exactly once
    assert all(m.handled == "answered" and m.answer_id in {r.id for r in replies} for m in inbound)
    turns = sorted((r.metadata["turn"]["started"], r.metadata["turn"]["finished"]) for r in replies)
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(turns))  # never overlap


def test_concurrent_redeliveries_run_one_turn(services: Services) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(lambda _: services.turns.handle(sms("hi", "SM-same")), range(4)))
    assert sum(not o.duplicate for o in outcomes) == 1
    assert len({o.reply for o in outcomes}) == 1
    assert services.stores.messages.count(CustomerId(outcomes[0].customer_id)) == 2


@pytest.mark.parametrize("text", ["", "   ", "x" * 4001])
def test_empty_or_oversized_text_is_refused_and_nothing_is_stored(services: Services, text: str) -> None:
    before = services.stores.messages.count()
    with pytest.raises(InvalidInputError):
        services.turns.handle(sms(text))
    assert services.stores.messages.count() == before


def test_a_turn_reads_each_record_once_and_writes_without_reading_first(services: Services) -> None:
    """Statement counts of a warm turn: the sender's record is read once (the turn reuses what identity resolution
    read), the SQLite lease is one upsert and one delete, and long-term memory writes are upserts, not a read and
    then a write. Each statement is a round trip on Postgres and a share of the turn's CPU on SQLite."""
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(" ".join(statement.split()))

    engine = services.stores.db.engine
    message = InboundMessage(channel=Channel.WEB, sender=JAMES_EMAIL, text="hi", vouched=True)
    assert services.turns.handle(message).reply  # warm: the episode and memory items exist now
    event.listen(engine, "before_cursor_execute", record)
    try:
        outcome = services.turns.handle(message)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert outcome.reply and outcome.owner == "ai"
    assert len([s for s in statements if s.startswith("SELECT customers.")]) == 1
    memory_reads = [s for s in statements if s.startswith("SELECT memory_items.")]
    assert len(memory_reads) == 2  # the episode record and the channel counts, read once in one batch
    assert len([s for s in statements if s.startswith("INSERT INTO memory_items")]) == 2
    if engine.dialect.name == "sqlite":
        assert len([s for s in statements if "turn_leases" in s]) == 2  # take, release


def test_a_tool_turn_takes_six_graph_steps(services: Services) -> None:
    """An order lookup runs load_context, agent (the guard inside it), tools, guard, agent, respond (which also
    remembers the turn): six graph steps, where a separate guard after every model step and a separate remember
    step made nine. Each step costs LangGraph's machinery about half a millisecond of CPU."""
    assert services.checkpointer is not None
    first = services.turns.handle(InboundMessage(channel=Channel.WEB, sender=JAMES_EMAIL, text="hi", vouched=True))
    config = thread_config(customer_thread(first.customer_id))

    def step() -> int:
        saved = services.checkpointer.get_tuple(config) if services.checkpointer else None
        assert saved is not None
        return int(saved.metadata["step"])

    before = step()
    question = f"What is the status of order {JAMES['orders'][0]}?"
    outcome = services.turns.handle(
        InboundMessage(channel=Channel.WEB, sender=JAMES_EMAIL, text=question, vouched=True)
    )
    assert outcome.owner == "ai" and [t["name"] for t in outcome.tools] == ["lookup_order"]
    assert step() - before == 8  # the input, six steps, and the end


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_more_turns_than_connections_never_exhaust_the_pool(demo_db_url: str, tmp_path: Path) -> None:
    """A pool of 2 (+2 overflow) and 24 messages from 12 customers at once, on 12 threads: a turn holds its lock
    connection and uses one more, so unbounded turns ran the pool dry (500s after a 30 s pool timeout). Now the
    excess waits without a connection, or gets a retryable 503; every message is answered exactly once."""
    settings = Settings(data_dir=tmp_path, database_url=demo_db_url, load_demo=False, db_pool_size=2)
    opened = open_services(settings)
    try:
        messages = [
            InboundMessage(
                channel=Channel.SMS, sender=f"+1555010{7100 + c}", text=said, provider_message_id=f"SM-p{c}-{i}"
            )
            for c in range(12)
            for i, said in enumerate(["hi, what's your return window?", "and do you ship to alaska?"])
        ]

        def until_answered(message: InboundMessage) -> int:
            for attempt in range(20):  # as a provider retries after a 503
                try:
                    opened.turns.handle(message)
                    return attempt
                except StoreUnavailableError:
                    time.sleep(0.2)
            raise AssertionError("never answered")

        with ThreadPoolExecutor(max_workers=12) as pool:
            retries = list(pool.map(until_answered, messages))
        with opened.db.engine.connect() as conn:
            rows = conn.execute(text("SELECT handled FROM messages WHERE provider_message_id LIKE 'SM-p%'")).all()
            answers = conn.execute(text("SELECT reply_to_id FROM messages WHERE direction = 'outbound'")).all()
        assert len(rows) == 24 and all(handled for (handled,) in rows)
        assert len(answers) == len({r for (r,) in answers})  # no message got two replies
        print(f"\n[pool 2] 24 messages over 12 customers on 12 threads: {sum(retries)} retries after a 503")
    finally:
        opened.close()


def _died_mid_turn(services: Services, sender: str, text: str, age: timedelta) -> tuple[CustomerId, int]:
    """A message accepted `age` ago whose turn never finished (the worker was killed), and nobody redelivered."""
    handle_type, handle = classify_handle(Channel.SMS, sender)
    customer = services.stores.customers.create(provisional=True)
    services.stores.customers.link_identity(customer.id, handle_type, handle, VerificationLevel.ANONYMOUS, actor="test")
    logged = services.stores.messages.append(
        customer.id,
        Channel.SMS,
        Direction.INBOUND,
        text,
        provider_message_id=f"SM-died-{sender[-4:]}",
        sender=handle,
        thread_key=customer.id,
    )
    messages = table(MessageRow)
    with services.db.transaction() as conn:  # accepted `age` ago
        conn.execute(update(messages).where(messages.c.id == logged.id).values(accepted_at=datetime.now(UTC) - age))
    return customer.id, logged.id


def test_a_message_whose_turn_died_is_answered_by_the_sweep_without_a_redelivery(services: Services) -> None:
    customer_id, message_id = _died_mid_turn(services, "+15550100411", "hey is the oak desk back in stock??", AGE)
    _, fresh = _died_mid_turn(services, "+15550100412", "hello?", timedelta(seconds=5))  # may still be running
    sweep = PendingSweep(services.turns, services.stores.messages, stale_after=timedelta(seconds=60), interval_s=60)
    assert sweep.sweep_once() == 1
    assert sweep.sweep_once() == 0  # answered once, whoever looks again
    log = services.stores.messages.for_customer(customer_id)
    assert [m.direction for m in log] == [Direction.INBOUND, Direction.OUTBOUND]
    assert log[0].handled == "answered" and log[1].reply_to_id == message_id and log[1].text
    still_running = services.stores.messages.get(fresh)
    assert still_running is not None and still_running.handled is None  # a turn may still be running: left alone
    redelivered = services.turns.handle(sms("hey is the oak desk back in stock??", "SM-died-0411", "+15550100411"))
    assert redelivered.duplicate and redelivered.reply == log[1].text  # a late redelivery gets that same answer


def test_every_worker_runs_the_sweep_in_the_background(demo_db_url: str, tmp_path: Path) -> None:
    opened = open_services(Settings(data_dir=tmp_path, database_url=demo_db_url, load_demo=False, pending_sweep_s=1))
    try:
        customer_id, _ = _died_mid_turn(opened, "+15550100413", "is anyone there", AGE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and opened.stores.messages.count(customer_id) < 2:
            time.sleep(0.2)
        assert [m.handled for m in opened.stores.messages.for_customer(customer_id)][:1] == ["answered"]
    finally:
        opened.close()
