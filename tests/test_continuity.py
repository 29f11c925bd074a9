"""Identity and continuity across channels: the returning customer is recognised, the conversation picks up
where it left off, and nobody unverified hears anything private. SQLite and Postgres; offline and HTTP model."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support import say
from threadline.core.errors import ConflictError
from threadline.core.longterm import EPISODES, customer_namespace
from threadline.core.types import (
    ArticleDraft,
    ArticleId,
    ArticleKind,
    Channel,
    CustomerId,
    Direction,
    HandleType,
    VerificationLevel,
)
from threadline.demo.loader import DATA_DIR, demo_customer_id
from threadline.memory.knowledge_admin import create_article, update_article
from threadline.memory.schema import (
    AnalyticsEventRow,
    ChannelIdentityRow,
    CustomerRow,
    EpisodeRow,
    HandoffRow,
    MemoryItemRow,
    MessageRow,
    OrderRow,
)
from threadline.product.services import Services

USERS = json.loads((DATA_DIR / "tau_retail" / "users.json").read_text())
JAMES = USERS["james_li_5688"]
JAMES_ID = demo_customer_id("james_li_5688")
VISITOR = "visitor-7f3a9c"
JAMES_PHONE = "+15550101234"
DAY0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
LEAD_TIME = ArticleDraft(
    id=ArticleId("faq-furniture-delivery-lead-times"),
    kind=ArticleKind.FAQ,
    title="Furniture delivery lead times",
    body="Bookshelves are made to order: the delivery lead time for a bookshelf is 10 to 14 business days from "
    "the order date. Sofas and chairs ship within 5 business days.\n",
)


def _publish(services: Services, draft: ArticleDraft, *, update: bool = False) -> None:
    (update_article if update else create_article)(services.stores.knowledge, draft, author="merchandising")
    services.index.sync(services.stores.knowledge)


def _private_details(customer: dict[str, Any]) -> list[str]:
    address = customer["address"]
    return [*customer["orders"], customer["email"], address["address1"], address["zip"], "processed", "delivered"]


def test_anonymous_question_on_the_web_is_picked_up_on_a_call_two_days_later(services: Services) -> None:
    _publish(services, LEAD_TIME)
    asked = say(
        services,
        Channel.WEB,
        VISITOR,
        "How long is the delivery lead time for the bookshelf?",
        received_at=DAY0,
    )
    assert asked.reply is not None and "10 to 14 business days" in asked.reply
    visitor = asked.customer_id
    # The visitor signs in: the site signs their account email, the widget still knows the visitor id.
    signed_in = say(
        services,
        Channel.WEB,
        JAMES["email"],
        "Thanks, I've signed in now.",
        vouched=True,
        previous_sender=VISITOR,
        received_at=DAY0 + timedelta(minutes=5),
    )
    assert signed_in.customer_id == JAMES_ID
    # The anonymous conversation now belongs to James, through an audited merge.
    inbound = [m for m in services.stores.messages.for_customer(JAMES_ID) if m.direction is Direction.INBOUND]
    assert "How long is the delivery lead time for the bookshelf?" in [m.text for m in inbound]
    assert services.stores.customers.get(visitor).merged_into == JAMES_ID  # type: ignore[union-attr]
    # The phone number on file is a weak signal: the caller is James, but only "claimed".
    services.stores.customers.link_identity(
        JAMES_ID, HandleType.PHONE, JAMES_PHONE, VerificationLevel.CLAIMED, actor="agent:profile"
    )
    # The store changes the lead time the next day.
    _publish(
        services, LEAD_TIME.model_copy(update={"body": LEAD_TIME.body.replace("10 to 14", "7 to 10")}), update=True
    )

    call = say(
        services, Channel.VOICE, JAMES_PHONE, "Any update on what I asked?", received_at=DAY0 + timedelta(days=2)
    )

    assert call.customer_id == JAMES_ID
    assert [t["name"] for t in call.tools] == ["recall_context", "search_knowledge"]
    assert call.reply is not None
    reply = call.reply.lower()
    assert "bookshelf" in reply
    assert "7 to 10 business days" in reply  # today's answer, not the one given two days ago
    assert "2026-11-20" in call.reply or "november 20" in reply
    for private in _private_details(JAMES):
        assert private.lower() not in reply


def test_sms_claiming_a_known_name_learns_nothing_private_until_verified(services: Services) -> None:
    stranger = "+15550109999"
    claim = say(services, Channel.SMS, stranger, "Hi, this is James Li. Where is my order?")
    assert claim.customer_id != JAMES_ID
    recall = say(services, Channel.SMS, stranger, "What did we talk about last time?")
    for outcome in (claim, recall):
        assert outcome.reply is not None
        for private in _private_details(JAMES):
            assert private.lower() not in outcome.reply.lower()
    wrong_zip = say(services, Channel.SMS, stranger, f"James Li, {int(JAMES['address']['zip']) + 1:05d}")
    wrong_name = say(services, Channel.SMS, stranger, f"Jane Lee, {JAMES['address']['zip']}")
    assert wrong_zip.reply is not None
    assert wrong_zip.reply == wrong_name.reply  # which part was wrong is never said
    assert "zip" not in wrong_zip.reply.lower().replace("zip code", "")  # asks again, never "the zip is wrong"
    assert wrong_zip.customer_id != JAMES_ID
    right = say(services, Channel.SMS, stranger, f"James Li, {JAMES['address']['zip']}")
    assert right.customer_id == JAMES_ID
    status = say(services, Channel.SMS, stranger, f"Where is my order {JAMES['orders'][0]}?")
    assert status.reply is not None and JAMES["orders"][0] in status.reply


# --- merge and unmerge --------------------------------------------------------------------------------------

_TABLES: dict[str, Any] = {
    "customers": CustomerRow,
    "channel_identities": ChannelIdentityRow,
    "messages": MessageRow,
    "episodes": EpisodeRow,
    "handoffs": HandoffRow,
    "orders": OrderRow,
    "analytics_events": AnalyticsEventRow,
    "memory_items": MemoryItemRow,
}


def _dump(services: Services, *customers: CustomerId) -> dict[str, Any]:
    """Every row of every table a merge touches (all columns), and both customers' threads."""
    from sqlalchemy import inspect, select

    dump: dict[str, Any] = {}
    with services.db.session() as s:
        for name, table in _TABLES.items():
            columns = [c.key for c in inspect(table).mapper.column_attrs]
            rows = s.scalars(select(table).order_by(table.id))
            dump[name] = [{c: getattr(row, c) for c in columns} for row in rows]
    for customer_id in customers:
        values = services.threads.values(customer_id)
        dump[f"thread:{customer_id}"] = {
            "messages": [(m.type, m.id, m.content) for m in values.get("messages", [])],
            "summary": values.get("summary") or "",
            "focus_order_id": values.get("focus_order_id"),
        }
    return dump


def _two_conversations(services: Services) -> CustomerId:
    """James on the web (signed in) and a stranger texting from an unknown number; returns the stranger."""
    say(services, Channel.WEB, JAMES["email"], "where is my order #W2611340?", vouched=True)
    say(services, Channel.WEB, JAMES["email"], "what is your return policy?", vouched=True)
    first = say(services, Channel.SMS, "+15550104321", "do you sell bookshelves?")
    say(services, Channel.SMS, "+15550104321", "I'd prefer delivery on weekends")
    return first.customer_id


def test_a_wrong_merge_is_undone_exactly(services: Services) -> None:
    stranger = _two_conversations(services)
    before = _dump(services, stranger, JAMES_ID)
    assert before[f"thread:{stranger}"]["messages"] and before[f"thread:{JAMES_ID}"]["messages"]

    merge = services.merging.merge(stranger, JAMES_ID, actor="admin:test", reason="looked like the same person")
    merged = _dump(services, stranger, JAMES_ID)
    assert merged != before
    moved = merge.moved
    assert moved["messages"] and moved["episodes"] and moved["channel_identities"] and moved["memory_items"]
    assert {m["customer_id"] for m in merged["messages"]} == {JAMES_ID}
    james_thread = [m[1] for m in merged[f"thread:{JAMES_ID}"]["messages"]]
    assert all(m[1] in james_thread for m in before[f"thread:{stranger}"]["messages"])
    moved_items = {m["id"] for m in moved["memory_items"]}
    james_prefix = ".".join(customer_namespace(JAMES_ID)) + "."
    assert all(row["namespace"].startswith(james_prefix) for row in merged["memory_items"] if row["id"] in moved_items)
    left = [row for row in merged["memory_items"] if row["id"] not in moved_items and stranger in row["namespace"]]
    assert [row["key"] for row in left] == ["channels"]  # James has his own item of that key: his wins
    # The phone now reaches James, and the audit trail says why.
    assert services.stores.customers.find_by_handle(HandleType.PHONE, "+15550104321").customer_id == JAMES_ID  # type: ignore[union-attr]

    services.merging.unmerge(merge.event_id, actor="admin:test")
    assert _dump(services, stranger, JAMES_ID) == before
    kinds = [e.kind.value for e in services.stores.customers.identity_events(stranger)]
    assert kinds[-2:] == ["merge", "unmerge"]  # nothing deleted: both are audit rows
    with pytest.raises(ConflictError):
        services.merging.unmerge(merge.event_id, actor="admin:test")


def test_rows_written_after_a_merge_stay_with_the_target_when_it_is_undone(services: Services) -> None:
    stranger = _two_conversations(services)
    merge = services.merging.merge(stranger, JAMES_ID, actor="admin:test", reason="test")
    later = say(services, Channel.WEB, JAMES["email"], "do you have gift cards?", vouched=True)
    services.merging.unmerge(merge.event_id, actor="admin:test")
    james_texts = [m.text for m in services.stores.messages.for_customer(JAMES_ID)]
    assert "do you have gift cards?" in james_texts
    assert "do you sell bookshelves?" not in james_texts
    assert later.reply is not None and later.reply in james_texts
    thread = services.threads.values(JAMES_ID)
    texts = [m.content for m in thread["messages"]]
    assert "do you have gift cards?" in texts and "do you sell bookshelves?" not in texts
    memories = services.memories
    assert memories.search(customer_namespace(stranger, EPISODES))  # the stranger's memories went back


def test_two_known_customers_are_never_merged(services: Services) -> None:
    noah = demo_customer_id("noah_brown_6181")
    with pytest.raises(ConflictError, match="external ids"):
        services.merging.merge(noah, JAMES_ID, actor="admin:test", reason="oops")
    assert services.stores.customers.get(noah).merged_into is None  # type: ignore[union-attr]
