"""The escalation policy end to end: one scripted conversation per stall type, each ending in the queue with a
handoff packet whose typed fields come from code; plus the policy function on message lists.

Conversations run with the offline model and the scripted HTTP model on SQLite (the human-request one also on
Postgres); out-of-scope is recorded from the model's intent, which only the offline model reports.
No-knowledge-answer and repeated-failure are distinct: a failure streak ending in a knowledge search that found
nothing is `no_knowledge_answer`; the same question asked again (or turns not understood) is `repeated_failure`.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage

from tests.support import say
from threadline.core.handoff import PACKET_VERSION, HandoffPacket, StallPoint
from threadline.core.settings import Settings
from threadline.core.types import Channel, HandoffStatus, TurnOutcome
from threadline.demo.loader import DATA_DIR, demo_customer_id
from threadline.graphs.policy import Thresholds, evaluate, normalise, sentiment_escalation, turn_signals
from threadline.product.services import Services

USERS = json.loads((DATA_DIR / "tau_retail" / "users.json").read_text())
ORDERS = json.loads((DATA_DIR / "tau_retail" / "orders.json").read_text())
JAMES = USERS["james_li_5688"]
JUAN = USERS["juan_jackson_6087"]
PHONE = "+15550100300"

SQLITE = pytest.mark.parametrize("backend", ["sqlite"])
OFFLINE = pytest.mark.parametrize("settings", ["offline"], indirect=True)


def lifetime_spend(user_id: str) -> float:
    """The customer's lifetime spend from the demo order data: the sum of every item price of every order not
    cancelled (the demo data has no returns)."""
    total = sum(
        (
            Decimal(str(i["price"]))
            for o in ORDERS.values()
            if o["user_id"] == user_id and o["status"] != "cancelled"
            for i in o["items"]
        ),
        Decimal("0"),
    )
    return float(round(total, 2))


def handed_off(services: Services, outcome: TurnOutcome, stall: StallPoint) -> dict[str, Any]:
    """The queued handoff's packet, after checking what every escalation promises."""
    assert outcome.owner == "queue"
    assert outcome.handoff_id is not None
    assert outcome.reply is not None and "our team" in outcome.reply
    handoff = services.stores.handoffs.get(outcome.handoff_id)
    assert handoff is not None
    assert handoff.status is HandoffStatus.QUEUED
    packet: dict[str, Any] = handoff.packet
    HandoffPacket.model_validate(packet)
    assert packet["version"] == PACKET_VERSION == handoff.packet_version == "1.4"
    assert packet["stall"]["type"] == stall.value
    assert packet["stall"]["evidence"]
    assert packet["customer"]["id"] == outcome.customer_id
    assert packet["transcript_ref"] == f"/v1/customers/{outcome.customer_id}/timeline"
    assert packet["next_steps"] and packet["next_steps"][-1].startswith("Reply on the customer's current channel")
    assert packet["sla_due_at"] is not None
    assert handoff.sla_due_at is not None
    assert datetime.fromisoformat(packet["sla_due_at"]) > handoff.created_at
    assert packet["goal"].startswith("The customer wrote:") and len(packet["goal"].splitlines()) == 2
    assert all(-1.0 <= s <= 1.0 for s in packet["sentiment"])
    return packet


def tools(packet: dict[str, Any]) -> list[tuple[str, str]]:
    return [(t["name"], t["outcome"]) for t in packet["tools_called"]]


# --- one conversation per stall type --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_customer_requested_human_packet_carries_customer_orders_and_tool_trail(services: Services) -> None:
    say(services, Channel.WEB, JAMES["email"], "where is my order #W2611340?", vouched=True)
    text = "I want to talk to a person"
    outcome = say(services, Channel.WEB, JAMES["email"], text, vouched=True)
    packet = handed_off(services, outcome, StallPoint.CUSTOMER_REQUESTED_HUMAN)
    assert packet["stall"]["evidence"] == [text]
    customer = packet["customer"]
    assert customer["id"] == demo_customer_id("james_li_5688")
    assert customer["name"] == "James Li"
    assert customer["verification_level"] == "strong"  # vouched for by the web app
    assert f"email:{JAMES['email']}" in customer["identities"]
    assert customer["lifetime_value"] == pytest.approx(lifetime_spend("james_li_5688"))
    assert customer["order_count"] == len(JAMES["orders"])
    assert customer["tier"] == "vip"
    assert packet["priority"] == "high"  # a vip's normal request is raised
    assert packet["channel"] == "web" and "web" in packet["channels_in_episode"]
    assert ("lookup_order", "ok") in tools(packet)
    lookup = next(t for t in packet["tools_called"] if t["name"] == "lookup_order")
    assert lookup["args"] == {"order_id": "#W2611340"}
    assert packet["facts"]["order #W2611340 status"] == ORDERS["#W2611340"]["status"]
    assert packet["facts"]["customer_name"] == "James Li"
    assert packet["next_steps"][0] == "Greet James Li and take over: they asked for a person."
    assert len(packet["sentiment"]) == 2
    assert "order asked about: #W2611340" in packet["intent_signals"]
    assert "wording: asked for a person" in packet["intent_signals"]
    assert "about order #W2611340" in packet["goal"]


@SQLITE
@OFFLINE
def test_an_angry_new_contact_wanting_a_manager_is_handed_over_as_angry_and_not_greeted_by_name(
    services: Services,
) -> None:
    text = "this is ridiculous… I've been waiting two weeks, get me a manager"
    outcome = say(services, Channel.WEB, "visitor-no-name", text)
    packet = handed_off(services, outcome, StallPoint.CUSTOMER_REQUESTED_HUMAN)
    assert packet["stall"]["evidence"] == [text]
    assert packet["sentiment"] and packet["sentiment"][-1] < -0.3  # the customer's words, read as a desk reads them
    assert packet["customer"]["name"] is None and "customer_name" not in packet["facts"]
    assert packet["next_steps"][0].startswith("Greet the customer (no name on file yet")
    assert not any("by name" in step for step in packet["next_steps"])


@SQLITE
def test_negative_sentiment_over_two_turns_escalates(services: Services) -> None:
    first = "this is so frustrating and annoying, nothing is working"
    second = "I hate this, it's awful and useless"
    assert say(services, Channel.WEB, "visitor-sad", first).owner == "ai"
    outcome = say(services, Channel.WEB, "visitor-sad", second)
    packet = handed_off(services, outcome, StallPoint.NEGATIVE_SENTIMENT)
    assert packet["stall"]["evidence"] == [first, second]
    assert len(packet["sentiment"]) == 2
    assert all(s < -0.5 for s in packet["sentiment"])
    assert packet["priority"] == "high"
    assert packet["customer"]["tier"] is None  # a visitor: no order data
    assert packet["customer"]["provisional"] is True
    assert "Acknowledge the frustration before anything else." in packet["next_steps"]
    assert "Identity not verified: verify before sharing order details." in packet["open_questions"]


@SQLITE
def test_no_knowledge_answer_twice_escalates(services: Services) -> None:
    first, second = "do you offer gift wrapping?", "do you have a loyalty program?"
    one = say(services, Channel.WEB, "visitor-kb", first)
    assert one.owner == "ai" and one.tools and one.tools[0]["name"] == "search_knowledge"
    outcome = say(services, Channel.WEB, "visitor-kb", second)
    packet = handed_off(services, outcome, StallPoint.NO_KNOWLEDGE_ANSWER)
    assert packet["stall"]["evidence"] == [first, second]
    assert tools(packet) == [("search_knowledge", "no_answer"), ("search_knowledge", "no_answer")]
    assert packet["facts"][f'asked "{second}"'] == "no answer in the knowledge base"
    assert f"Unanswered: {second}" in packet["open_questions"]
    assert "Flag the gap so an article is written for it." in packet["next_steps"]
    assert packet["priority"] == "normal"


@SQLITE
def test_the_same_question_twice_is_a_repeated_failure(services: Services) -> None:
    question = "What is your policy on returning delivered items?"
    first = say(services, Channel.WEB, "visitor-again", question)
    assert first.owner == "ai" and first.reply and "(Source: Returns.)" in first.reply
    outcome = say(services, Channel.WEB, "visitor-again", "what is your policy on returning delivered items")
    packet = handed_off(services, outcome, StallPoint.REPEATED_FAILURE)
    assert packet["stall"]["evidence"][0] == question
    assert len(packet["stall"]["evidence"]) == 2
    assert packet["articles_cited"]
    assert any(k.startswith("answered ") for k in packet["facts"])


@SQLITE
def test_three_failed_verifications_escalate(services: Services) -> None:
    say(services, Channel.SMS, PHONE, "where is my order #W2611340?")
    wrong = ["someone.else@example.com", "another.one@example.com", "third.try@example.com"]
    assert say(services, Channel.SMS, PHONE, wrong[0]).owner == "ai"
    assert say(services, Channel.SMS, PHONE, wrong[1]).owner == "ai"
    outcome = say(services, Channel.SMS, PHONE, wrong[2])
    packet = handed_off(services, outcome, StallPoint.VERIFICATION_FAILED)
    assert wrong[2] in packet["stall"]["evidence"]
    assert packet["customer"]["provisional"] is True
    assert packet["customer"]["verification_level"] == "anonymous"
    assert f"phone:{PHONE}" in packet["customer"]["identities"]
    assert packet["channel"] == "sms"
    assert tools(packet).count(("verify_customer", "failed")) == 3
    assert "identity" not in packet["facts"]
    assert packet["next_steps"][0].startswith("Verify the customer's identity")
    assert len(packet["sentiment"]) == 4


@SQLITE
def test_sensitive_topic_escalates_at_once_with_high_priority(services: Services) -> None:
    text = "the office chair I bought collapsed and I got injured"
    outcome = say(services, Channel.WEB, JAMES["email"], text, vouched=True)
    packet = handed_off(services, outcome, StallPoint.SENSITIVE_TOPIC)
    assert packet["stall"]["evidence"] == [text]
    assert packet["priority"] == "urgent"  # someone was hurt: the most urgent of the sensitive topics
    assert "get medical help first" in (outcome.reply or "")
    assert "wording: sensitive topic" in packet["intent_signals"]
    assert any("supervisor" in step for step in packet["next_steps"])


@SQLITE
def test_complaint_from_a_high_value_customer_goes_straight_to_a_person(services: Services) -> None:
    spend = lifetime_spend("james_li_5688")
    assert spend >= services.settings.high_value_spend
    text = "I want to complain, my order arrived broken"
    outcome = say(services, Channel.WEB, JAMES["email"], text, vouched=True)
    packet = handed_off(services, outcome, StallPoint.HIGH_VALUE_COMPLAINT)
    assert packet["stall"]["evidence"] == [text]
    assert packet["customer"]["lifetime_value"] == pytest.approx(spend)
    assert packet["customer"]["tier"] == "vip"
    assert packet["priority"] == "high"
    assert packet["sentiment"] and packet["sentiment"][-1] < 0
    assert "Prioritise: a high-value customer is complaining." in packet["next_steps"]


@SQLITE
def test_the_same_complaint_from_a_low_value_customer_stays_with_the_ai(services: Services) -> None:
    assert lifetime_spend("juan_jackson_6087") < services.settings.high_value_spend
    outcome = say(services, Channel.WEB, JUAN["email"], "I want to complain, my order arrived broken", vouched=True)
    assert outcome.owner == "ai"
    assert outcome.handoff_id is None


@SQLITE
def test_a_failing_order_system_escalates_as_tool_error(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(*args: object, **kwargs: object) -> None:
        raise RuntimeError("order system timed out")

    monkeypatch.setattr(services.stores.orders, "get_order", unavailable)
    text = "where is my order #W2611340?"
    outcome = say(services, Channel.WEB, JAMES["email"], text, vouched=True)
    packet = handed_off(services, outcome, StallPoint.TOOL_ERROR)
    assert "tool_failed" in packet["stall"]["evidence"][0]
    assert packet["stall"]["detail"] == "lookup_order failed"
    assert text in packet["goal"]
    assert tools(packet) == [("lookup_order", "error")]
    assert "lookup_order failed: its result is still needed." in packet["open_questions"]
    assert packet["priority"] == "high"


@SQLITE
@OFFLINE
def test_repeated_out_of_scope_requests_escalate(services: Services) -> None:
    first, second = "what's the capital of France?", "book me a flight to Paris"
    assert say(services, Channel.WEB, "visitor-oos", first).owner == "ai"
    outcome = say(services, Channel.WEB, "visitor-oos", second)
    packet = handed_off(services, outcome, StallPoint.OUT_OF_SCOPE)
    assert packet["stall"]["evidence"] == [first, second]
    assert packet["intent"] == "out_of_scope"
    assert packet["intent_confidence"] is not None and 0 < packet["intent_confidence"] <= 1
    assert "model intent: out_of_scope" in packet["intent_signals"]
    assert f"What the customer needs with: {second}" in packet["open_questions"]


@SQLITE
def test_the_model_deciding_to_hand_over_is_model_requested(services: Services) -> None:
    # Classified as a request for a person, but in words the policy's own rule does not recognise.
    text = "transfer me to your team"
    outcome = say(services, Channel.WEB, "visitor-model", text)
    packet = handed_off(services, outcome, StallPoint.MODEL_REQUESTED)
    assert packet["stall"]["evidence"] == ["The customer asked to speak with a person."]
    assert text in packet["goal"]
    assert ("escalate_to_human", "queued") in tools(packet)


# --- the policy on message lists ------------------------------------------------------------------------------


def _turns(*said: str, reply: str = "Let me see.") -> list[AnyMessage]:
    messages: list[AnyMessage] = []
    for text in said:
        messages += [HumanMessage(text), AIMessage(reply)]
    return messages


def _policy(messages: list[AnyMessage], **kwargs: Any) -> Any:
    return evaluate(messages, requested=None, not_understood=0, verification_failures=0, **kwargs)


def test_policy_negative_sentiment_needs_consecutive_negative_turns() -> None:
    messages = _turns("this is bad", "this is worse")
    assert _policy(messages, sentiment=[-0.6]) is None
    assert _policy(messages, sentiment=[-0.6, 0.2]) is None
    found = _policy(messages, sentiment=[-0.6, -0.7])
    assert found is not None and found.stall is StallPoint.NEGATIVE_SENTIMENT
    assert found.evidence == ["this is bad", "this is worse"] and found.urgency == "high"
    assert _policy(messages, sentiment=[-0.6, -0.7], thresholds=Thresholds(negative_turns=3)) is None


def test_policy_falling_sentiment_escalates_once_it_ends_negative() -> None:
    messages = _turns("fine", "hmm", "not great at all")
    found = sentiment_escalation([0.4, -0.1, -0.6], ["fine", "hmm", "not great at all"], Thresholds())
    assert found is not None and found.evidence == ["fine", "hmm", "not great at all"]
    assert _policy(messages, sentiment=[0.4, -0.1, -0.6]) is not None
    assert _policy(messages, sentiment=[0.4, 0.3, -0.2]) is None  # falling, but not below the threshold


def test_policy_failed_answers_distinguish_knowledge_gaps_from_repeats() -> None:
    call = {"name": "search_knowledge", "args": {"query": "bitcoin?"}, "id": "c1", "type": "tool_call"}
    missed: list[AnyMessage] = [
        *_turns("can I pay with bitcoin?"),
        HumanMessage("do you take crypto?"),
        AIMessage("", tool_calls=[call]),
        ToolMessage('{"status": "no_answer", "passages": []}', tool_call_id="c1", name="search_knowledge"),
        AIMessage("Sorry, I couldn't find an answer."),
    ]
    assert turn_signals(missed).unusable and not turn_signals(missed).repeated
    found = _policy(missed, failed_answers=2)
    assert found is not None and found.stall is StallPoint.NO_KNOWLEDGE_ANSWER
    assert found.evidence == ["can I pay with bitcoin?", "do you take crypto?"]
    assert _policy(missed, failed_answers=1) is None
    again = _turns("Where is my refund for the chair?", "where is my refund for the chair")
    assert turn_signals(again).repeated
    found = _policy(again, failed_answers=2)
    assert found is not None and found.stall is StallPoint.REPEATED_FAILURE
    assert not turn_signals(_turns("any news?", "any news?")).repeated  # too short to be the same question


def test_policy_high_value_complaint_needs_both_complaint_and_spend() -> None:
    complaint = _turns("this is unacceptable, the lamp arrived damaged")
    found = _policy(complaint, lifetime_spend=1500.0)
    assert found is not None and found.stall is StallPoint.HIGH_VALUE_COMPLAINT and found.urgency == "high"
    assert found.evidence == ["this is unacceptable, the lamp arrived damaged"]
    assert _policy(complaint, lifetime_spend=999.0) is None
    assert _policy(complaint, lifetime_spend=None) is None
    assert _policy(_turns("where is my order?"), lifetime_spend=5000.0) is None
    model_says = [HumanMessage("my lamp"), AIMessage("ok", additional_kwargs={"threadline": {"intent": "complaint"}})]
    found = _policy(model_says, lifetime_spend=1000.0)
    assert found is not None and found.stall is StallPoint.HIGH_VALUE_COMPLAINT


def test_policy_out_of_scope_turns_escalate_at_the_threshold() -> None:
    messages = _turns("weather tomorrow?", "book a flight")
    assert _policy(messages, out_of_scope=1) is None
    found = _policy(messages, out_of_scope=2)
    assert found is not None and found.stall is StallPoint.OUT_OF_SCOPE
    assert found.evidence == ["weather tomorrow?", "book a flight"]


def test_policy_order_puts_sensitive_before_complaint_and_sentiment() -> None:
    messages = _turns("awful service, I'm calling my lawyer")
    found = _policy(messages, lifetime_spend=5000.0, sentiment=[-0.9, -0.9], failed_answers=5)
    assert found is not None and found.stall is StallPoint.SENSITIVE_TOPIC


def test_normalise_ignores_case_punctuation_and_spacing() -> None:
    assert normalise("Where is  my order #W2611340??") == normalise("where is my order #W2611340")


def test_thresholds_come_from_settings() -> None:
    settings = Settings(
        escalation_sentiment=-0.3, escalation_negative_turns=3, escalation_failed_answers=4, high_value_spend=250
    )
    assert Thresholds.from_settings(settings) == Thresholds(
        negative_sentiment=-0.3, negative_turns=3, failed_answers=4, out_of_scope_turns=4, high_value_spend=250.0
    )


def test_an_order_change_the_policy_does_not_allow_is_policy_blocked(services: Services) -> None:
    # James's #W2611340 is "processed": a return needs "delivered", so a person decides on an exception.
    text = "I want to return order #W2611340, please"
    outcome = say(services, Channel.WEB, JAMES["email"], text, vouched=True)
    packet = handed_off(services, outcome, StallPoint.POLICY_BLOCKED)
    assert packet["stall"]["evidence"] == [text]
    assert "processed" in packet["stall"]["detail"] and "delivered" in packet["stall"]["detail"]
    # The customer hears why, in their words, and that a person can look at an exception.
    assert (outcome.reply or "").startswith(
        "Order #W2611340 is already being processed, so I can't return it: only delivered orders can be returned."
    )
    assert "look at an exception" in (outcome.reply or "")


@SQLITE
def test_an_allowed_order_change_or_another_customers_order_is_not_blocked(services: Services) -> None:
    noah_order = USERS["noah_brown_6181"]["orders"][0]
    outcome = say(services, Channel.WEB, JAMES["email"], f"I want to return order {noah_order}", vouched=True)
    assert outcome.owner == "ai"  # not James's order: nothing is read, nothing is decided from it
    assert (
        evaluate(
            [HumanMessage("please cancel order #W1234567")],
            requested=None,
            not_understood=0,
            verification_failures=0,
            order_statuses={"#W1234567": "pending"},
        )
        is None
    )
