"""Order actions in conversation, with the offline model and the scripted HTTP model, on SQLite and Postgres:
cancel (confirmed and declined), an address change, a return with a refund method, an exchange with a price
difference, refusals; the customer's yes is the only thing that runs an action, exactly once. Each test reads the
database after the last turn."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from sqlalchemy import text as sql

from tests.support import say
from threadline.core.types import Channel, Direction, InboundMessage, OrderStatus, TurnOutcome
from threadline.demo.loader import DATA_DIR, demo_customer_id
from threadline.graphs.support import build_support_graph
from threadline.product.services import Services

USERS = json.loads((DATA_DIR / "tau_retail" / "users.json").read_text())
SOFIA, SOFIAS_PENDING = USERS["sofia_rossi_8776"], "#W5918442"  # pending, paid by Mastercard
EMMA, EMMAS_DELIVERED = USERS["emma_santos_9753"], "#W3113816"  # delivered, paid by card; Emma has a gift card
AVAS_DELIVERED = "#W4817420"  # delivered Hiking Boots in size 7; size 8 is in stock for $9.20 more
JAMES = USERS["james_li_5688"]


def _ava() -> dict[str, Any]:
    return next(u for u in USERS.values() if "#W4817420" in u["orders"])


def sms(services: Services, phone: str, text: str, message_id: str | None = None) -> TurnOutcome:
    return say(services, Channel.SMS, phone, text, provider_message_id=message_id)


def audit(services: Services, customer: str) -> list[Any]:
    return services.stores.orders.actions(demo_customer_id(customer))


def test_a_customer_cancels_by_text_and_their_yes_runs_it_once(services: Services) -> None:
    phone = "+15550107001"
    first = sms(services, phone, "hi there, can u cancel my order #W5918442 pls?? i dont need it anymore")
    assert "verify" in (first.reply or "").lower()
    proposed = sms(services, phone, f"sure its {SOFIA['email']}")
    reply = proposed.reply or ""
    assert "Just to confirm" in reply and "#W5918442" in reply and "$1,463.70" in reply and "ending" in reply
    assert services.stores.orders.get_order(SOFIAS_PENDING).status is OrderStatus.PENDING  # nothing yet
    for _ in range(5):  # the provider delivers the customer's yes five times
        done = sms(services, phone, "yes please go ahead", message_id="SM-yes-1")
    assert "cancelled" in (done.reply or "") and "5-7 business days" in (done.reply or "")
    order = services.stores.orders.get_order(SOFIAS_PENDING)
    assert order is not None and order.status is OrderStatus.CANCELLED and order.cancel_reason == "no longer needed"
    assert [p.transaction_type for p in order.payments] == ["payment", "refund"]
    (record,) = audit(services, "sofia_rossi_8776")
    assert (record.kind, record.outcome, record.actor, record.channel) == ("cancel", "done", "customer", "sms")
    yes = services.stores.messages.find_by_provider_id(Channel.SMS, "SM-yes-1")
    assert yes is not None and record.confirming_message_id == yes.id
    again = sms(services, phone, "yes")  # a second yes has nothing left to confirm
    assert len(audit(services, "sofia_rossi_8776")) == 1 and "cancelled" not in (again.reply or "").split(".")[0]


def test_a_customer_who_says_no_keeps_the_order(services: Services) -> None:
    phone = "+15550107002"
    sms(services, phone, SOFIA["email"])
    proposed = sms(services, phone, "I want to cancel #W5918442, ordered it by mistake")
    assert "Just to confirm" in (proposed.reply or "") and "by mistake" in (proposed.reply or "")
    kept = sms(services, phone, "actually no, keep it")
    assert "left everything as it is" in (kept.reply or "")
    assert services.stores.orders.get_order(SOFIAS_PENDING).status is OrderStatus.PENDING
    assert sms(services, phone, "yes").tools == []  # the proposal is gone: a late yes runs nothing
    assert audit(services, "sofia_rossi_8776") == []


def test_a_new_topic_drops_the_proposal(services: Services) -> None:
    phone = "+15550107003"
    sms(services, phone, SOFIA["email"])
    sms(services, phone, "cancel order #W5918442 please, no longer needed")
    sms(services, phone, "wait whats ur return policy")
    sms(services, phone, "yes")
    assert services.stores.orders.get_order(SOFIAS_PENDING).status is OrderStatus.PENDING
    assert audit(services, "sofia_rossi_8776") == []


def test_a_return_with_the_refund_to_a_gift_card(services: Services) -> None:
    phone = "+15550107004"
    name = f"{EMMA['name']['first_name']} {EMMA['name']['last_name']} {EMMA['address']['zip']}"
    sms(services, phone, name)
    proposed = sms(
        services,
        phone,
        "hey so i want to return the office chair and the keyboard from #W3113816, refund to my gift card",
    )
    reply = proposed.reply or ""
    assert (
        "Office Chair" in reply
        and "Mechanical Keyboard" in reply
        and "gift card" in reply
        and "Just to confirm" in reply
    )
    done = sms(services, phone, "yep")
    assert "return" in (done.reply or "").lower() and "email" in (done.reply or "")
    order = services.stores.orders.get_order(EMMAS_DELIVERED)
    assert order is not None and order.status is OrderStatus.RETURN_REQUESTED
    chosen = sorted(i.item_id for i in order.items if i.name in ("Office Chair", "Mechanical Keyboard"))
    assert order.request == {"return_items": chosen, "return_payment_method_id": "gift_card_6023546"}


def test_an_exchange_for_another_size_pays_the_difference(services: Services) -> None:
    ava = _ava()
    phone = "+15550107005"
    sms(services, phone, ava["email"])
    proposed = sms(services, phone, "can i swap the hiking boots on #W4817420 for a size 8?")
    reply = proposed.reply or ""
    assert "Hiking Boots" in reply and "size 8" in reply and "$9.20" in reply
    sms(services, phone, "yes")
    order = services.stores.orders.get_order(AVAS_DELIVERED)
    assert order is not None and order.status is OrderStatus.EXCHANGE_REQUESTED
    assert order.request is not None and order.request["exchange_price_difference"] == 9.2
    assert len(order.request["exchange_new_items"]) == 1


def test_an_address_change_needs_a_signed_in_session(services: Services) -> None:
    address = "ship it to 88 Birch Lane, Apt 2B, Portland, OR 97201 instead"
    by_text = "+15550107006"
    sms(services, by_text, SOFIA["email"])
    refused = sms(services, by_text, f"my order #W5918442 - {address}")
    assert "signed in" in (refused.reply or "")
    signed = {"vouched": True}  # a signed-in web session
    asked = say(services, Channel.WEB, SOFIA["email"], f"hi, for order #W5918442 could you {address}", **signed)
    assert "88 Birch Lane, Apt 2B, Portland, OR 97201, USA" in (asked.reply or "")
    assert services.stores.orders.get_order(SOFIAS_PENDING).address["address1"] != "88 Birch Lane"
    say(services, Channel.WEB, SOFIA["email"], "yes", **signed)
    order = services.stores.orders.get_order(SOFIAS_PENDING)
    assert order is not None and order.address["address1"] == "88 Birch Lane" and order.address["zip"] == "97201"


def test_refusals_change_nothing(services: Services) -> None:
    phone = "+15550107007"
    unverified = sms(services, phone, "cancel #W5918442, ordered by mistake")  # not verified yet
    assert "verify" in (unverified.reply or "").lower()
    sms(services, phone, "yes")
    sms(services, "+15550107008", JAMES["email"])
    theirs = sms(services, "+15550107008", "pls cancel order #W5918442 its a mistake")  # Sofia's order, not his
    assert "couldn't find that order on your account" in (theirs.reply or "")
    sms(services, "+15550107008", "yes")
    assert services.stores.orders.get_order(SOFIAS_PENDING).status is OrderStatus.PENDING
    asked = sms(services, "+15550107008", "where is my order #W4435622")  # delivered
    assert "delivered" in (asked.reply or "")
    late = sms(services, "+15550107008", "ok can u cancel it then, dont need it")
    assert "has been delivered, so I can't cancel it" in (late.reply or "")
    order = services.stores.orders.get_order("#W4435622")
    assert order is not None and order.status is OrderStatus.DELIVERED
    assert audit(services, "sofia_rossi_8776") == []
    assert audit(services, "james_li_5688") == []  # refused before any proposal: nothing to audit


def test_the_customers_yes_is_read_from_their_own_message_only(services: Services) -> None:
    """What a model says cannot confirm: a proposal is run only by the confirming node, and only on a plain yes in
    the customer's message ("yes but only the perfume" is not one)."""
    phone = "+15550107009"
    sms(services, phone, SOFIA["email"])
    sms(services, phone, "cancel order #W5918442 please, no longer needed")
    hedged = sms(services, phone, "yes but only the perfume?")
    assert services.stores.orders.get_order(SOFIAS_PENDING).status is OrderStatus.PENDING
    assert "confirm_order_action" not in [t["name"] for t in hedged.tools]
    with services.db.engine.connect() as conn:
        assert conn.execute(sql("SELECT count(*) FROM order_actions")).scalar() == 0


def test_money_in_the_proposal_matches_the_refund(services: Services) -> None:
    phone = "+15550107010"
    sms(services, phone, SOFIA["email"])
    proposed = sms(services, phone, "cancel #W5918442 pls, dont need it")
    order = services.stores.orders.get_order(SOFIAS_PENDING)
    assert order is not None
    assert f"${order.total:,.2f}" in (proposed.reply or "")
    services.turns.handle(InboundMessage(channel=Channel.SMS, sender=phone, text="ok"))
    after = services.stores.orders.get_order(SOFIAS_PENDING)
    assert after is not None and sum(p.amount for p in after.payments if p.transaction_type == "refund") == order.total


class RogueModel(BaseChatModel):
    """A model that tries to act without the customer: it proposes a cancellation, then calls the confirming step
    itself, then claims it is done. Scripted per call."""

    script: list[AIMessage]

    @property
    def _llm_type(self) -> str:
        return "rogue"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> RogueModel:  # type: ignore[override]
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        step = self.script.pop(0) if self.script else AIMessage(content="Done! Your order is cancelled.")
        return ChatResult(generations=[ChatGeneration(message=step)])


def _call(name: str, args: dict[str, Any], n: int) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": f"rogue-{n}"}])


@pytest.mark.parametrize("settings", ["offline"], indirect=True)
def test_a_model_cannot_run_an_action_without_the_customers_yes(services: Services) -> None:
    cancel = {"order_id": SOFIAS_PENDING, "reason": "no longer needed"}
    model = RogueModel(
        script=[
            _call("verify_customer", {"email": SOFIA["email"]}, 1),
            AIMessage(content="You're verified."),
            _call("cancel_order", cancel, 2),
            AIMessage(content="Done! Your order is cancelled."),  # a claim, not an action
            AIMessage(content="Anything else?"),
            _call("cancel_order", cancel, 3),
            _call("confirm_order_action", {"answer": "yes"}, 4),  # not a tool it has: a tool error, a person
        ]
    )
    rogue = services.with_graph(build_support_graph(model, checkpointer=services.checkpointer))
    phone = "+15550107011"
    sms(rogue, phone, "hi, its sofia")
    claimed = sms(rogue, phone, "what about my order #W5918442, is it shipped?")
    # The model said "Done! Your order is cancelled."; the customer reads the real summary and question instead.
    assert (claimed.reply or "").startswith("Just to confirm, I'll cancel order #W5918442")
    sms(rogue, phone, "thanks, and the weather today?")  # not a yes: the proposal is dropped unrun
    assert services.stores.orders.get_order(SOFIAS_PENDING).status is OrderStatus.PENDING  # ... nothing happened
    forced = sms(rogue, phone, "ok whatever")
    assert forced.owner == "queue"  # calling the confirming step itself is an unknown tool: a person takes over
    assert services.stores.orders.get_order(SOFIAS_PENDING).status is OrderStatus.PENDING
    assert audit(services, "sofia_rossi_8776") == []


def test_the_handoff_packet_lists_the_cases_order_actions(services: Services) -> None:
    phone = "+15550107012"
    sms(services, phone, SOFIA["email"])
    sms(services, phone, "cancel #W5918442 please, ordered by mistake")
    sms(services, phone, "yes")
    refused = sms(services, phone, "ok and return my order #W5500815 too pls")  # pending: not returnable yet
    assert refused.owner in ("ai", "queue")
    handed = sms(services, phone, "can i talk to a real person please")
    assert handed.owner == "queue" and handed.handoff_id
    handoff = services.stores.handoffs.get(handed.handoff_id)
    assert handoff is not None
    actions = handoff.packet["order_actions"]
    assert {"status": "done", "kind": "cancel", "order_id": SOFIAS_PENDING, "actor": "customer"}.items() <= actions[
        0
    ].items()
    assert actions[0]["text"] == "cancel: pending → cancelled"


@pytest.mark.parametrize("settings", ["offline"], indirect=True)
def test_a_proposal_the_customer_never_confirmed_is_the_packets_pending_action(services: Services) -> None:
    """The customer asks for a person instead of answering the proposal: it is dropped unrun, and the agent sees it
    as pending (nothing ran; it will not run on a later "ok"), with a step to ask about it."""
    phone = "+15550107015"
    sms(services, phone, SOFIA["email"])
    proposed = sms(services, phone, "cancel #W5918442 please, ordered by mistake")
    assert "Just to confirm" in (proposed.reply or "")
    handed = sms(services, phone, "actually can i talk to a real person please")
    assert handed.owner == "queue" and handed.handoff_id
    handoff = services.stores.handoffs.get(handed.handoff_id)
    assert handoff is not None
    pending = handoff.packet["pending_action"]
    assert {"status": "proposed", "kind": "cancel", "order_id": SOFIAS_PENDING}.items() <= pending.items()
    assert "by mistake" in pending["text"]
    assert handoff.packet["order_actions"][-1] == pending
    assert any(step.startswith("Ask whether they still want this") for step in handoff.packet["next_steps"])
    assert services.stores.orders.get_order(SOFIAS_PENDING).status is OrderStatus.PENDING
    assert audit(services, "sofia_rossi_8776") == []


@pytest.mark.parametrize("settings", ["offline"], indirect=True)
def test_a_case_with_every_action_settled_has_no_pending_action(services: Services) -> None:
    phone = "+15550107016"
    sms(services, phone, SOFIA["email"])
    sms(services, phone, "cancel #W5918442 please, ordered by mistake")
    sms(services, phone, "yes")
    handed = sms(services, phone, "can i talk to a real person please")
    handoff = services.stores.handoffs.get(handed.handoff_id or "")
    assert handoff is not None
    assert handoff.packet["pending_action"] is None
    assert [a["status"] for a in handoff.packet["order_actions"]] == ["done"]


@pytest.mark.parametrize("settings", ["offline"], indirect=True)
def test_the_dashboard_counts_actions_by_kind_and_by_who_performed_them(services: Services) -> None:
    from threadline.analytics.report import Config, Filters, actions_report, load
    from threadline.core.order_actions import ReturnItems

    phone = "+15550107013"
    sms(services, phone, SOFIA["email"])
    sms(services, phone, "cancel #W5918442 please, ordered by mistake")
    sms(services, phone, "yes")
    emma = demo_customer_id("emma_santos_9753")
    opened = services.stores.handoffs.create(emma, packet={"channel": "sms"}, packet_version="1.2", priority="normal")
    services.desk.claim(opened.id, "sam")
    chair = next(i for i in services.stores.orders.get_order(EMMAS_DELIVERED).items if i.name == "Office Chair")
    action = ReturnItems(order_id=EMMAS_DELIVERED, item_ids=[chair.item_id], payment_method_id="gift_card_6023546")
    assert services.desk.agent_action(opened.id, "sam", action, "k1").outcome == "done"
    assert services.desk.agent_action(opened.id, "sam", action, "k1").outcome == "done"  # a retried request: once
    refused = services.desk.agent_action(opened.id, "sam", action, "k2")  # already return requested
    assert refused.outcome == "refused" and "already has a return requested" in (refused.refusal or "")
    config = Config.from_settings(services.settings)
    data = load(services.stores, config, Filters.of(config, None, None, None, "all"))
    assert actions_report(data) == {
        "done_by_kind": {"cancel": {"ai": 1, "agent": 0}, "return": {"ai": 0, "agent": 1}},
        "done_by_ai": 1,
        "done_by_agents": 1,
        "refused": 1,
    }
    events = [e.kind.value for e in services.stores.handoffs.events(opened.id)]
    assert events.count("order_action") == 3


def test_changing_the_size_on_an_order_not_shipped_yet_changes_it_in_place(services: Services) -> None:
    """A pending order's item changes to another option (once): the order stays pending, with its items modified."""
    phone = "+15550107014"
    sms(services, phone, SOFIA["email"])
    order = services.stores.orders.get_order("#W5500815")
    assert order is not None and order.status is OrderStatus.PENDING
    item = order.items[0]
    options = services.stores.orders.get_product(item.product_id)
    assert options is not None
    other = next(v for v in options.variants if v.available and v.item_id != item.item_id)
    wanted = " and ".join(f"{k} {v}" for k, v in other.options.items() if item.options.get(k) != v)
    proposed = sms(services, phone, f"on #W5500815 can i get the {item.name.lower()} with {wanted} instead?")
    assert "Just to confirm" in (proposed.reply or "") and "can't be cancelled or changed again" in (
        proposed.reply or ""
    )
    sms(services, phone, "yes")
    after = services.stores.orders.get_order("#W5500815")
    assert after is not None and after.status is OrderStatus.PENDING_ITEMS_MODIFIED
    assert after.items[0].item_id != item.item_id and after.items[0].product_id == item.product_id


@pytest.mark.parametrize("settings", ["offline"], indirect=True)
def test_a_proposing_turn_always_shows_the_summary_and_an_acknowledgement_is_not_a_yes(services: Services) -> None:
    """A model that proposes a cancellation and then tells the customer something else entirely: the reply the
    customer gets is the code-written summary and question; "great thanks" does not confirm it."""
    cancel = {"order_id": SOFIAS_PENDING, "reason": "no longer needed"}
    model = RogueModel(
        script=[
            _call("verify_customer", {"email": SOFIA["email"]}, 1),
            AIMessage(content="You're verified."),
            _call("cancel_order", cancel, 2),
            AIMessage(content="Your order is on its way, it arrives Friday!"),
            AIMessage(content="Glad to help!"),
        ]
    )
    rogue = services.with_graph(build_support_graph(model, checkpointer=services.checkpointer))
    phone = "+15550107015"
    sms(rogue, phone, "hi its sofia")
    shown = sms(rogue, phone, "whats up with #W5918442")
    assert (shown.reply or "").startswith("Just to confirm, I'll cancel order #W5918442")
    assert "Friday" not in (shown.reply or "")
    sms(rogue, phone, "great thanks")
    assert services.stores.orders.get_order(SOFIAS_PENDING).status is OrderStatus.PENDING
    assert audit(services, "sofia_rossi_8776") == []


@pytest.mark.parametrize("settings", ["offline"], indirect=True)
def test_a_yes_that_reached_us_before_the_question_does_not_confirm_it(services: Services) -> None:
    """ "cancel it" then "ok" a second later: the ok was accepted while the proposal was being made, so it cannot be
    a yes to a summary the customer had not seen; the proposal keeps waiting for a real answer."""
    phone = "+15550107016"
    sms(services, phone, SOFIA["email"])
    sms(services, phone, "cancel #W5918442 pls, ordered it by mistake")
    sofia = demo_customer_id("sofia_rossi_8776")
    early = services.stores.messages.append(sofia, Channel.SMS, Direction.INBOUND, "ok", sender=phone, thread_key=sofia)
    with services.db.transaction() as conn:  # it reached the server before the proposal was made
        conn.execute(
            sql("UPDATE messages SET accepted_at = :at WHERE id = :id"),
            {"at": datetime.now(UTC) - timedelta(minutes=1), "id": early.id},
        )
    services.turns.answer_stale(services.stores.messages.get(early.id))  # its turn runs (the pending sweep)
    assert services.stores.orders.get_order(SOFIAS_PENDING).status is OrderStatus.PENDING
    assert services.threads.values(sofia).get("proposal") is not None  # still waiting for the customer's answer
    sms(services, phone, "yes")
    assert services.stores.orders.get_order(SOFIAS_PENDING).status is OrderStatus.CANCELLED


@pytest.mark.parametrize("settings", ["offline"], indirect=True)
def test_a_hand_off_drops_the_proposal(services: Services) -> None:
    """A model proposes a cancellation and hands the case to a person in the same turn; the agent releases it with
    no change. The customer's next "ok" is not a yes to a proposal made before a person took over."""
    cancel = {"order_id": SOFIAS_PENDING, "reason": "ordered by mistake"}
    model = RogueModel(
        script=[
            _call("verify_customer", {"email": SOFIA["email"]}, 1),
            AIMessage(content="You're verified."),
            _call("cancel_order", cancel, 2),
            _call("escalate_to_human", {"reason": "wants a person", "urgency": "normal"}, 3),
            AIMessage(content="Anything else?"),
        ]
    )
    rogue = services.with_graph(build_support_graph(model, checkpointer=services.checkpointer))
    phone = "+15550107017"
    sms(rogue, phone, "hi its sofia")
    handed = sms(rogue, phone, "cancel #W5918442 pls")
    assert handed.owner == "queue" and handed.handoff_id
    services.desk.claim(handed.handoff_id, "sam")
    services.desk.release(handed.handoff_id, "sam", "Answered their question; no changes to the order.")
    sms(rogue, phone, "ok")
    assert services.stores.orders.get_order(SOFIAS_PENDING).status is OrderStatus.PENDING
    assert audit(services, "sofia_rossi_8776") == []


def test_paying_a_pending_order_another_way_and_moving_house(services: Services) -> None:
    phone = "+15550107018"
    sms(services, phone, "raj.lopez2997@example.com")
    proposed = sms(services, phone, "hey can i pay for #W3502364 with my paypal instead of the card?")
    assert "PayPal" in (proposed.reply or "") and "$489.62" in (proposed.reply or "")
    sms(services, phone, "yes please")
    order = services.stores.orders.get_order("#W3502364")
    assert order is not None and order.status is OrderStatus.PENDING
    assert [(p.transaction_type, p.payment_method_id.split("_")[0]) for p in order.payments] == [
        ("payment", "credit"),
        ("payment", "paypal"),
        ("refund", "credit"),
    ]
    moved = "i moved! please update the address on my profile to 4 Elm Street, Boston, MA 02108"
    on_sms = sms(services, phone, moved)
    assert "signed in" in (on_sms.reply or "")
    raj = {"vouched": True}
    asked = say(services, Channel.WEB, "raj.lopez2997@example.com", moved, **raj)
    assert "4 Elm Street, Boston, MA 02108, USA" in (asked.reply or "") and "default address" in (asked.reply or "")
    say(services, Channel.WEB, "raj.lopez2997@example.com", "yes", **raj)
    customer = services.stores.customers.get(demo_customer_id("raj_lopez_5873"))
    assert customer is not None and customer.address is not None and customer.address["address1"] == "4 Elm Street"


def test_two_questions_at_once_exchange_only_the_item_given_a_new_option(services: Services) -> None:
    ava = _ava()
    phone = "+15550107019"
    sms(services, phone, ava["email"])
    both = "hey! the hiking boots from #W4817420 are too small, can i swap em for a size 8? and hows the water bottle"
    proposed = sms(services, phone, both)
    reply = proposed.reply or ""
    assert "Hiking Boots" in reply and "size 8" in reply and "Water Bottle" not in reply
    sms(services, phone, "yes")
    order = services.stores.orders.get_order(AVAS_DELIVERED)
    assert order is not None and order.request is not None and len(order.request["exchange_items"]) == 1
