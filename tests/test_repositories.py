"""Contract tests: every SQL repository behaves the same on SQLite and Postgres."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from threadline.core.errors import ConflictError, NotFoundError
from threadline.core.types import (
    ArticleDraft,
    ArticleId,
    ArticleKind,
    ArticleStatus,
    Channel,
    CustomerId,
    Direction,
    EpisodeStatus,
    HandleType,
    HandoffStatus,
    IdentityEventKind,
    OrderId,
    OrderStatus,
    VerificationLevel,
)
from threadline.memory.stores import Stores


def test_customer_create_get_and_lookup(stores: Stores) -> None:
    c = stores.customers.create(
        provisional=False,
        external_id="ext-1",
        first_name="Ada",
        last_name="Lovelace",
        email="Ada@Example.com",
        zip="10001",
    )
    assert stores.customers.get(c.id) == c
    assert stores.customers.get_by_external_id("ext-1") == c
    assert stores.customers.find_by_email("ada@example.com") == [c]
    assert stores.customers.find_by_name_zip("ada", "LOVELACE", "10001") == [c]
    assert stores.customers.find_by_name_zip("ada", "lovelace", "99999") == []
    assert stores.customers.get(CustomerId("cus_missing")) is None
    assert c.created_at.tzinfo is not None


def test_identity_links_are_audited_and_relinking_keeps_history(stores: Stores) -> None:
    a = stores.customers.create(provisional=True)
    b = stores.customers.create(provisional=False, first_name="Bo")
    phone = "+15555550100"
    first = stores.customers.link_identity(a.id, HandleType.PHONE, phone, VerificationLevel.ANONYMOUS, actor="test")
    assert stores.customers.find_by_handle(HandleType.PHONE, phone) == first
    moved = stores.customers.link_identity(b.id, HandleType.PHONE, phone, VerificationLevel.VERIFIED, actor="test")
    assert moved.id == first.id and moved.customer_id == b.id
    assert stores.customers.identities(a.id) == []
    events = stores.customers.identity_events(b.id)
    assert [e.kind for e in events] == [IdentityEventKind.LINK]
    assert events[0].other_customer_id == a.id
    assert events[0].detail["previous"]["verification_level"] == "anonymous"
    again = stores.customers.link_identity(b.id, HandleType.PHONE, phone, VerificationLevel.STRONG, actor="test")
    assert again.verification_level is VerificationLevel.STRONG
    assert [e.kind for e in stores.customers.identity_events(b.id)] == [
        IdentityEventKind.LINK,
        IdentityEventKind.VERIFY,
    ]
    # the first customer's history still shows the handle it once had
    assert any(e.identity_id == first.id for e in stores.customers.identity_events(a.id))


def test_message_log_is_append_only_and_idempotent_per_channel(stores: Stores) -> None:
    c = stores.customers.create(provisional=True)
    m1 = stores.messages.append(c.id, Channel.SMS, Direction.INBOUND, "hi", provider_message_id="SM1", sender="+1555")
    reply = stores.messages.append(c.id, Channel.SMS, Direction.OUTBOUND, "hello", reply_to_id=m1.id)
    assert stores.messages.reply_to(m1.id) == reply
    with pytest.raises(ConflictError, match="already accepted"):
        stores.messages.append(c.id, Channel.SMS, Direction.INBOUND, "hi again", provider_message_id="SM1")
    # the same provider id on another channel is a different message
    stores.messages.append(c.id, Channel.EMAIL, Direction.INBOUND, "mail", provider_message_id="SM1")
    assert stores.messages.find_by_provider_id(Channel.SMS, "SM1") == m1
    assert [m.text for m in stores.messages.for_customer(c.id)] == ["hi", "hello", "mail"]
    assert [m.text for m in stores.messages.for_customer(c.id, limit=2)] == ["hello", "mail"]
    assert stores.messages.count(c.id) == 3


def test_episodes_track_channels_and_status(stores: Stores) -> None:
    c = stores.customers.create(provisional=True)
    ep = stores.episodes.open(c.id, Channel.WEB, topic="sofa delivery")
    assert stores.episodes.current(c.id) == ep
    ep = stores.episodes.update(ep.id, channel=Channel.VOICE, summary="asked about delivery", open_items=["call back"])
    ep = stores.episodes.update(ep.id, channel=Channel.VOICE)
    assert ep.channels == ["web", "voice"] and ep.open_items == ["call back"]
    stores.episodes.update(ep.id, status=EpisodeStatus.RESOLVED, outcome="answered")
    assert stores.episodes.current(c.id) is None
    assert [e.outcome for e in stores.episodes.recent(c.id)] == ["answered"]
    with pytest.raises(NotFoundError):
        stores.episodes.update(ep.id.__class__("ep_missing"), summary="x")


def test_handoffs_move_through_the_queue(stores: Stores) -> None:
    c = stores.customers.create(provisional=True)
    due = datetime.now(UTC) + timedelta(minutes=15)
    h = stores.handoffs.create(c.id, packet={"reason": "asked"}, packet_version="1", priority="high", sla_due_at=due)
    assert stores.handoffs.open_for_customer(c.id) == h
    assert stores.handoffs.list(HandoffStatus.QUEUED) == [h]
    claimed = stores.handoffs.set_status(h.id, HandoffStatus.CLAIMED, agent="agent-7")
    assert claimed.assigned_agent == "agent-7" and claimed.claimed_at is not None
    stores.handoffs.set_status(h.id, HandoffStatus.RESOLVED)
    assert stores.handoffs.open_for_customer(c.id) is None
    assert abs((h.sla_due_at or due) - due) < timedelta(seconds=1)


def test_knowledge_versions_and_revision(stores: Stores) -> None:
    draft = ArticleDraft(id=ArticleId("faq-shipping"), kind=ArticleKind.FAQ, title="Shipping", body="Ships in 2 days.")
    rev0 = stores.knowledge.revision()
    v1 = stores.knowledge.upsert(draft, author="t")
    assert v1.version == 1
    assert stores.knowledge.upsert(draft, author="t") == v1  # unchanged: no new version
    rev1 = stores.knowledge.revision()
    assert rev1 > rev0
    v2 = stores.knowledge.upsert(draft.model_copy(update={"body": "Ships in 3 days."}), author="t")
    assert v2.version == 2 and stores.knowledge.revision() > rev1
    assert stores.knowledge.get(draft.id, version=1) == v1
    assert [a.body for a in stores.knowledge.history(draft.id)] == ["Ships in 2 days.", "Ships in 3 days."]
    stores.knowledge.upsert(
        draft.model_copy(update={"body": "Ships in 3 days.", "status": ArticleStatus.RETIRED}), author="t"
    )
    assert stores.knowledge.list() == []
    assert [a.version for a in stores.knowledge.list(status=None)] == [3]


def test_event_log_appends_and_filters(stores: Stores) -> None:
    c = stores.customers.create(provisional=True)
    stores.events.append("message", customer_id=c.id, channel="sms", payload={"n": 1})
    stores.events.append("purchase", payload={"amount": "10.00"})
    assert [e.type for e in stores.events.list()] == ["message", "purchase"]
    assert [e.payload for e in stores.events.list(customer_id=c.id)] == [{"n": 1}]


def test_order_system_reads_the_demo_store(demo_stores: Stores) -> None:
    order = demo_stores.orders.get_order(OrderId("#W2611340"))
    assert order is not None
    assert order.status is OrderStatus.PROCESSED
    assert [i.name for i in order.items] == ["Water Bottle", "Office Chair"]
    assert order.fulfillments[0].tracking_ids == ["357962501027"]
    assert order.payments[0].amount == Decimal("536.65")
    assert order.total == Decimal("536.65")
    history = demo_stores.orders.orders_for_customer(order.customer_id)
    assert order.id in [o.id for o in history]
    assert demo_stores.orders.get_order(OrderId("#W0000000")) is None
    products = demo_stores.orders.list_products()
    assert len(products) == 50 and sum(len(p.variants) for p in products) == 591


def test_one_statement_order_reads_equal_the_rows_for_every_demo_order(demo_stores: Stores) -> None:
    """The order system reads an order as one JSON document the database builds; the ORM's relationship loaders
    read the same rows independently. Every demo order (items, fulfilments, payments and refunds, returns'
    requests, cancel reasons) reads the same both ways, and odd values survive: a negative amount, an empty order,
    quotes and non-ASCII in text, a missing placement time."""
    from sqlalchemy import insert, select

    from threadline.core.types import Order
    from threadline.memory.schema import CustomerRow, OrderRow, PaymentRow

    def independent(row: OrderRow) -> Order:
        return Order.model_validate(
            {
                **{c.key: getattr(row, c.key) for c in OrderRow.__table__.c},
                "items": [vars(i) for i in row.items],
                "fulfillments": [vars(f) for f in row.fulfillments],
                "payments": [vars(p) for p in row.payments],
            }
        )

    with demo_stores.db.session() as s:
        s.execute(insert(CustomerRow), [{"id": "cust-odd", "provisional": False}])
        odd = {"customer_id": "cust-odd", "status": "pending", "sequence": 0, "placed_at": None}
        s.execute(
            insert(OrderRow),
            [
                {**odd, "id": "#W9999998", "address": {"address1": 'O\'Brien "Flat" 2 — Zürich'}, "notes": "né"},
                {**odd, "id": "#W9999999", "address": {}, "notes": None},
            ],
        )
        s.execute(
            insert(PaymentRow),
            [
                {"order_id": "#W9999998", "position": p, "transaction_type": t, "amount": a, "payment_method_id": "x"}
                for p, (t, a) in enumerate((("payment", Decimal("0.05")), ("refund", Decimal("-0.05"))))
            ],
        )
    with demo_stores.db.session() as s:
        expected = {row.id: independent(row) for row in s.scalars(select(OrderRow))}
    assert len(expected) > 1000
    for order_id, order in expected.items():
        assert demo_stores.orders.get_order(OrderId(order_id)) == order, order_id
    by_customer: dict[str, list[Order]] = {}
    for order in sorted(expected.values(), key=lambda o: o.id):
        by_customer.setdefault(order.customer_id, []).append(order)
    for customer_id, orders in list(by_customer.items())[:200]:
        got = demo_stores.orders.orders_for_customer(CustomerId(customer_id), limit=50)
        assert sorted(got, key=lambda o: o.id) == orders
    odd_order = demo_stores.orders.get_order(OrderId("#W9999998"))
    assert odd_order is not None and [p.amount for p in odd_order.payments] == [Decimal("0.05"), Decimal("-0.05")]
    assert odd_order.address["address1"] == 'O\'Brien "Flat" 2 — Zürich' and odd_order.placed_at is None
    empty = demo_stores.orders.get_order(OrderId("#W9999999"))
    assert empty is not None and (empty.items, empty.fulfillments, empty.payments) == ([], [], [])


def test_the_knowledge_revision_counts_every_change_even_when_editors_race(stores: Stores) -> None:
    from concurrent.futures import ThreadPoolExecutor

    start = stores.knowledge.revision()

    def edit(n: int) -> None:
        draft = ArticleDraft(id=ArticleId(f"race-{n}"), kind=ArticleKind.FAQ, title=f"Race {n}", body=f"Body {n}.")
        stores.knowledge.upsert(draft, author="t")

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(edit, range(12)))
    assert stores.knowledge.revision() == start + 12
