"""The outbox and its dispatcher on SQLite and Postgres: idempotent queueing, claims that two dispatchers never share,
retries with backoff, dead after the last attempt (and the case raised), a crashed dispatcher's row sent again with
the same key, and status reports that arrive out of order."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from threadline.channels.local_providers import TwilioApiServer
from threadline.channels.senders.twilio import TwilioSender
from threadline.conversations.delivery import CaseRaiser, Deliveries, Dispatcher
from threadline.core.delivery import (
    Delivery,
    DeliveryState,
    NewDelivery,
    PermanentSendError,
    Purpose,
    SendReceipt,
    TransientSendError,
    backoff_s,
)
from threadline.core.types import Channel, Direction, HandoffEventKind
from threadline.memory.db import Database
from threadline.memory.erasure import CustomerErasure
from threadline.memory.merges import CustomerMerges
from threadline.memory.retention import RetentionPolicy, run_retention
from threadline.memory.stores import Stores

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class ScriptedSender:
    """Answers each send from a script (an exception to raise, or None to accept); records every call."""

    provider = "twilio"

    def __init__(self, script: list[Exception | None] | None = None) -> None:
        self.script = list(script or [])
        self.calls: list[Delivery] = []
        self._lock = threading.Lock()

    def send(self, delivery: Delivery) -> SendReceipt:
        with self._lock:
            self.calls.append(delivery)
            outcome = self.script.pop(0) if self.script else None
            number = len(self.calls)
        if outcome is not None:
            raise outcome
        return SendReceipt(provider_message_id=f"SM{number:032x}")


def _customer(stores: Stores) -> str:
    return stores.customers.create(provisional=True).id


def _new(customer_id: str, key: str = "msg:1:0", body: str = "Your order shipped.") -> NewDelivery:
    return NewDelivery(
        idempotency_key=key,
        message_id=None,
        customer_id=customer_id,
        channel=Channel.SMS,
        provider="twilio",
        recipient="+15555550100",
        body=body,
    )


def test_queueing_the_same_key_twice_keeps_one_row(stores: Stores) -> None:
    customer = _customer(stores)
    first, created = stores.outbox.enqueue(_new(customer), now=T0)
    again, created_again = stores.outbox.enqueue(_new(customer, body="different text"), now=T0 + timedelta(seconds=5))
    assert created and not created_again
    assert again.id == first.id and again.body == "Your order shipped."
    assert first.state is DeliveryState.QUEUED and first.attempts == 0


def test_a_sent_message_then_its_status_reports_out_of_order(stores: Stores) -> None:
    customer = _customer(stores)
    stores.outbox.enqueue(_new(customer), now=T0)
    sender = ScriptedSender()
    dispatcher = Dispatcher(stores.outbox, {"twilio": sender}, clock=Clock())
    assert dispatcher.drain() == 1
    [sent] = stores.outbox.for_customer(customer)  # type: ignore[arg-type]
    assert sent.state is DeliveryState.SENT and sent.provider_message_id and sent.attempts == 1
    pid = sent.provider_message_id
    delivered = stores.outbox.apply_status("twilio", pid, DeliveryState.DELIVERED, at=T0 + timedelta(seconds=3))
    late_sent = stores.outbox.apply_status("twilio", pid, DeliveryState.SENT, at=T0 + timedelta(seconds=1))
    late_failed = stores.outbox.apply_status("twilio", pid, DeliveryState.FAILED, at=T0 + timedelta(seconds=2))
    reading = stores.outbox.apply_status(
        "twilio", pid, DeliveryState.DELIVERED, at=T0 + timedelta(seconds=9), read=True
    )
    assert delivered and late_sent and late_failed and reading
    assert [delivered[0], late_sent[0], late_failed[0]] == [DeliveryState.SENT] + [DeliveryState.DELIVERED] * 2
    read = reading[1]
    assert read.state is DeliveryState.DELIVERED  # a late `sent` or `failed` never moves it back
    assert read.delivered_at == T0 + timedelta(seconds=3) and read.read_at == T0 + timedelta(seconds=9)
    assert [h["state"] for h in read.history] == ["queued", "sent", "delivered", "sent", "failed", "read"]
    assert stores.outbox.apply_status("twilio", "SMnotours", DeliveryState.DELIVERED, at=T0) is None


def test_a_transient_failure_is_retried_after_a_backoff_then_succeeds(stores: Stores) -> None:
    customer = _customer(stores)
    stores.outbox.enqueue(_new(customer), now=T0)
    clock = Clock()
    sender = ScriptedSender([TransientSendError("HTTP 500 from Twilio", status=500)])
    dispatcher = Dispatcher(stores.outbox, {"twilio": sender}, clock=clock, backoff_s=2, backoff_max_s=60)
    assert dispatcher.run_once() == 1
    [waiting] = stores.outbox.for_customer(customer)  # type: ignore[arg-type]
    assert waiting.state is DeliveryState.QUEUED and waiting.last_error == "500: HTTP 500 from Twilio"
    assert T0 + timedelta(seconds=1) <= waiting.next_attempt_at <= T0 + timedelta(seconds=2)
    assert dispatcher.run_once() == 0  # not due yet
    clock.now = waiting.next_attempt_at
    assert dispatcher.run_once() == 1
    [sent] = stores.outbox.for_customer(customer)  # type: ignore[arg-type]
    assert sent.state is DeliveryState.SENT and sent.attempts == 2 and sent.last_error is None
    assert [h["state"] for h in sent.history] == ["queued", "retry", "sent"]


def test_five_transient_failures_make_it_dead_and_raise_the_case(stores: Stores) -> None:
    customer = _customer(stores)
    stores.outbox.enqueue(_new(customer), now=T0)
    clock = Clock()
    sender = ScriptedSender([TransientSendError("HTTP 500", status=500) for _ in range(5)])
    raiser = CaseRaiser(stores.handoffs, stores.customers)
    dispatcher = Dispatcher(stores.outbox, {"twilio": sender}, clock=clock, on_problem=raiser, max_attempts=5)
    for _ in range(5):
        clock.now += timedelta(minutes=10)
        assert dispatcher.run_once() == 1
    clock.now += timedelta(hours=1)
    assert dispatcher.run_once() == 0  # dead rows are never claimed again
    [dead] = stores.outbox.for_customer(customer)  # type: ignore[arg-type]
    assert dead.state is DeliveryState.DEAD and dead.attempts == 5 and len(sender.calls) == 5
    assert [d.id for d in stores.outbox.problems()] == [dead.id]
    case = stores.handoffs.open_for_customer(customer)  # type: ignore[arg-type]
    assert case is not None and case.priority == "high"
    assert case.packet["stall"]["type"] == "delivery_failed"
    kinds = [e.kind for e in stores.handoffs.events(case.id)]  # type: ignore[arg-type]
    assert HandoffEventKind.DELIVERY_FAILED in kinds
    rates = {r.channel: r for r in stores.outbox.failure_rates()}
    assert rates["sms"].total == 1 and rates["sms"].dead == 1 and rates["sms"].rate == 1.0


def test_a_permanent_refusal_fails_at_once_and_lands_on_the_open_case(stores: Stores) -> None:
    customer = _customer(stores)
    existing = stores.handoffs.create(customer, packet={"channel": "sms"}, packet_version="1.4", priority="normal")
    stores.outbox.enqueue(_new(customer), now=T0)
    sender = ScriptedSender([PermanentSendError("21211: The 'To' number is not a valid phone number", status=400)])
    raiser = CaseRaiser(stores.handoffs, stores.customers)
    Dispatcher(stores.outbox, {"twilio": sender}, clock=Clock(), on_problem=raiser).drain()
    [failed] = stores.outbox.for_customer(customer)  # type: ignore[arg-type]
    assert failed.state is DeliveryState.FAILED and failed.attempts == 1
    assert "not a valid phone number" in (failed.last_error or "")
    assert stores.handoffs.open_for_customer(customer).id == existing.id  # type: ignore[union-attr,arg-type]
    events = stores.handoffs.events(existing.id)  # type: ignore[arg-type]
    assert [e.payload["state"] for e in events if e.kind is HandoffEventKind.DELIVERY_FAILED] == ["failed"]


def test_a_dispatcher_that_died_mid_send_leaves_the_row_to_be_sent_again_with_the_same_key(stores: Stores) -> None:
    customer = _customer(stores)
    stores.outbox.enqueue(_new(customer), now=T0)
    [claimed] = stores.outbox.claim("worker-that-dies", now=T0, lease=timedelta(seconds=60))
    assert claimed.state is DeliveryState.SENDING
    clock = Clock(T0 + timedelta(seconds=30))
    sender = ScriptedSender()
    survivor = Dispatcher(stores.outbox, {"twilio": sender}, clock=clock, lease_s=60)
    assert survivor.run_once() == 0  # the claim still holds
    clock.now = T0 + timedelta(seconds=61)
    assert survivor.run_once() == 1
    assert [c.idempotency_key for c in sender.calls] == ["msg:1:0"] and sender.calls[0].attempts == 2
    late = stores.outbox.mark_sent(claimed.id, "worker-that-dies", SendReceipt(provider_message_id="SMlate"), now=T0)
    assert late is None  # the dead worker's claim was taken over: its late write changes nothing
    assert stores.outbox.get(claimed.id).provider_message_id != "SMlate"  # type: ignore[union-attr]


def test_backoff_doubles_with_jitter_up_to_the_ceiling() -> None:
    waits = [backoff_s(n, base_s=2, max_s=60) for n in range(1, 9)]
    assert 1 <= waits[0] <= 2 and 2 <= waits[1] <= 4 and 4 <= waits[2] <= 8
    assert all(30 <= w <= 60 for w in waits[5:])
    assert len({round(backoff_s(3, base_s=2, max_s=60), 6) for _ in range(20)}) > 1  # jittered


def test_two_dispatchers_send_a_burst_of_200_and_none_twice(db_url: str) -> None:
    """Two workers, each with its own connection pool and dispatcher, drain one burst concurrently through the
    official Twilio client to a local Messages API: the server receives each of the 200 messages once."""
    databases = [Database.from_url(db_url, pool_size=10) for _ in range(2)]
    try:
        with TwilioApiServer() as api:
            stores = [Stores.over(d) for d in databases]
            customer = _customer(stores[0])
            for n in range(200):
                stores[0].outbox.enqueue(_new(customer, key=f"msg:{n}:0", body=f"message {n}"), now=T0)
            sender = TwilioSender(
                account_sid=api.account_sid,
                auth_token=api.auth_token,
                from_number="+15550009999",
                base_url=api.url,
                timeout_s=5,
            )
            dispatchers = [
                Dispatcher(s.outbox, {"twilio": sender}, clock=Clock(T0 + timedelta(seconds=1)), batch=4)
                for s in stores
            ]
            threads = [threading.Thread(target=d.drain, kwargs={"rounds": 500}) for d in dispatchers]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            received = Counter(m["body"] for m in api.messages)
            assert len(received) == 200 and max(received.values()) == 1
            claimed_by = Counter(d.history[-1]["source"] for d in stores[0].outbox.for_customer(customer, limit=500))
            states = Counter(d.state for d in stores[0].outbox.for_customer(customer, limit=500))  # type: ignore[arg-type]
            assert states == {DeliveryState.SENT: 200} and claimed_by == {"dispatcher": 200}
            workers = Counter(d.claimed_by for d in stores[0].outbox.for_customer(customer, limit=500))
            assert len(workers) == 2, workers  # both workers took part
            for d in dispatchers:
                d.stop()
    finally:
        for d in databases:
            d.dispose()


def _log(stores: Stores, customer: str, channel: Channel, direction: Direction, text: str, **kw: Any) -> Any:
    return stores.messages.append(customer, channel, direction, text, **kw)  # type: ignore[arg-type]


def test_deliveries_address_an_sms_reply_from_the_customers_last_text(stores: Stores) -> None:
    customer = _customer(stores)
    _log(stores, customer, Channel.SMS, Direction.INBOUND, "hi", sender="+15555550123", metadata={"to": "+15555550999"})
    long = "Thanks for waiting. " * 30
    reply = _log(stores, customer, Channel.SMS, Direction.OUTBOUND, long.strip())
    deliveries = Deliveries(stores.outbox, stores.messages, providers={"twilio": object()})
    queued = deliveries.queue(reply, Purpose.AGENT_REPLY)
    assert len(queued) >= 2 and [d.part for d in queued] == list(range(len(queued)))
    assert {d.recipient for d in queued} == {"+15555550123"} and queued[0].payload == {"from": "+15555550999"}
    assert deliveries.queue(reply, Purpose.AGENT_REPLY) == queued  # the same message again adds nothing
    web = _log(stores, customer, Channel.WEB, Direction.OUTBOUND, "on the page")
    assert deliveries.queue(web) == []  # web chat reads the log
    assert Deliveries(stores.outbox, stores.messages, providers={}).queue(reply) == []  # no sender configured


def test_deliveries_thread_an_email_reply_under_the_customers_email(stores: Stores) -> None:
    customer = _customer(stores)
    meta = {"subject": "RE: Where is my sofa?", "references": ["<first@mail.example>"]}
    _log(
        stores,
        customer,
        Channel.EMAIL,
        Direction.INBOUND,
        "any news?",
        sender="jane@example.com",
        provider_message_id="<second@mail.example>",
        metadata=meta,
    )
    reply = _log(stores, customer, Channel.EMAIL, Direction.OUTBOUND, "Hi Jane,\n\nIt ships Monday.\n\nBest regards")
    [queued] = Deliveries(stores.outbox, stores.messages, providers={"smtp": object()}).queue(reply)
    assert queued.recipient == "jane@example.com" and queued.provider == "smtp"
    assert queued.payload == {
        "subject": "Re: Where is my sofa?",
        "in_reply_to": "<second@mail.example>",
        "references": ["<first@mail.example>", "<second@mail.example>"],
    }


@pytest.mark.parametrize("hours_ago", [1, 30])
def test_deliveries_carry_the_whatsapp_window_and_the_template_for_the_purpose(stores: Stores, hours_ago: int) -> None:
    customer = _customer(stores)
    wrote = datetime.now(UTC) - timedelta(hours=hours_ago)
    _log(
        stores,
        customer,
        Channel.WHATSAPP,
        Direction.INBOUND,
        "hola",
        sender="US.13491208655302741918",
        created_at=wrote,
        metadata={"phone_number_id": "1098765"},
    )
    reply = _log(stores, customer, Channel.WHATSAPP, Direction.OUTBOUND, "We found your parcel.")
    templates = {Purpose.AGENT_REPLY: {"name": "support_followup", "language": "en_US"}}
    deliveries = Deliveries(stores.outbox, stores.messages, providers={"whatsapp": object()}, templates=templates)
    [queued] = deliveries.queue(reply, Purpose.AGENT_REPLY)
    assert queued.recipient == "US.13491208655302741918" and queued.payload["phone_number_id"] == "1098765"
    assert datetime.fromisoformat(queued.payload["last_inbound_at"]) == wrote
    assert queued.payload["template"] == {"name": "support_followup", "language": "en_US"}


def test_a_follow_up_to_a_caller_is_a_text_from_our_texting_number(stores: Stores) -> None:
    customer = _customer(stores)
    _log(stores, customer, Channel.VOICE, Direction.INBOUND, "where's my order", sender="+15555550123",
         metadata={"to": "+15555550888", "call_sid": "CA1"})  # fmt: skip
    reply = _log(stores, customer, Channel.VOICE, Direction.OUTBOUND, "It ships tomorrow; tracking follows by text.")
    [queued] = Deliveries(stores.outbox, stores.messages, providers={"twilio": object()}).queue(reply)
    assert queued.provider == "twilio" and queued.recipient == "+15555550123" and queued.payload == {}


def test_erasure_retention_and_merges_take_the_outbox_with_the_customer(stores: Stores, db: Database) -> None:
    """The outbox holds the customer's address and words: erasing them removes it, retention prunes what was sent
    long ago (never what still waits), and a merge moves it with the rest."""
    erased, merged, kept = _customer(stores), _customer(stores), _customer(stores)
    stores.outbox.enqueue(_new(erased, key="msg:1:0"), now=T0)
    stores.outbox.enqueue(_new(merged, key="msg:2:0"), now=T0)
    old = T0 - timedelta(days=400)
    stores.outbox.enqueue(_new(kept, key="msg:3:0"), now=old)
    stores.outbox.enqueue(_new(kept, key="msg:4:0"), now=old)
    [claimed] = stores.outbox.claim("w", now=T0, lease=timedelta(seconds=60), limit=1)  # the oldest: msg:3
    stores.outbox.mark_sent(claimed.id, "w", SendReceipt(provider_message_id="SMold"), now=T0)

    report = CustomerErasure(db, None).erase(erased, actor="test")
    assert report.removed["outbox"] == 1 and stores.outbox.for_customer(erased) == []  # type: ignore[arg-type]

    record = CustomerMerges(db).merge(merged, kept, actor="test", reason="same person")  # type: ignore[arg-type]
    assert [d.idempotency_key for d in stores.outbox.for_customer(kept)] == ["msg:2:0", "msg:3:0", "msg:4:0"]  # type: ignore[arg-type]
    CustomerMerges(db).unmerge(record.event_id, actor="test")
    assert [d.idempotency_key for d in stores.outbox.for_customer(merged)] == ["msg:2:0"]  # type: ignore[arg-type]

    pruned = run_retention(db, RetentionPolicy(messages_days=30), now=T0)
    assert pruned.removed["outbox"] == 1  # the old sent one; the old one still queued stays
    assert [d.idempotency_key for d in stores.outbox.for_customer(kept)] == ["msg:4:0"]  # type: ignore[arg-type]


def test_concurrent_status_reports_each_land_and_never_move_the_state_back(db_url: str) -> None:
    """Reports of one message from many threads at once (each its own connection): every one is in the history,
    and a `failed` racing a `delivered` never leaves the message `failed`."""
    database = Database.from_url(db_url, pool_size=20)
    try:
        stores = Stores.over(database)
        customer = _customer(stores)
        stores.outbox.enqueue(_new(customer), now=T0)
        Dispatcher(stores.outbox, {"twilio": ScriptedSender()}, clock=Clock()).drain()
        [sent] = stores.outbox.for_customer(customer)  # type: ignore[arg-type]
        reports = [DeliveryState.DELIVERED, DeliveryState.FAILED] * 8
        start = threading.Barrier(len(reports))

        def report(state: DeliveryState) -> None:
            start.wait()
            stores.outbox.apply_status("twilio", sent.provider_message_id or "", state, at=T0)

        threads = [threading.Thread(target=report, args=(state,)) for state in reports]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        final = stores.outbox.get(sent.id)
        assert final is not None and len(final.history) == 2 + len(reports)  # queued, sent, then every report
        # A `failed` may be followed by `delivered`, never the reverse: whatever the order, the customer has it.
        assert final.state is DeliveryState.DELIVERED and final.delivered_at == T0
    finally:
        database.dispose()


def test_parts_failing_together_open_one_case(stores: Stores) -> None:
    customer = _customer(stores)
    for part in range(3):
        stores.outbox.enqueue(_new(customer, key=f"msg:9:{part}"), now=T0)
    sender = ScriptedSender([PermanentSendError("21610: unsubscribed recipient", status=400) for _ in range(3)])
    raiser = CaseRaiser(stores.handoffs, stores.customers)
    Dispatcher(stores.outbox, {"twilio": sender}, clock=Clock(), on_problem=raiser, batch=3).drain()
    cases = stores.handoffs.list(limit=10)
    assert [c.customer_id for c in cases] == [customer]  # one case, whatever order the three parts failed in
    events = stores.handoffs.events(cases[0].id)  # type: ignore[arg-type]
    assert sorted(e.payload["delivery_id"] for e in events if e.kind is HandoffEventKind.DELIVERY_FAILED) == [1, 2, 3]
