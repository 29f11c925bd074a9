"""The offline chat model and its policy: the tool call an LLM would make for each turn, and grounded replies."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import Embeddings
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import BaseTool

import threadline.tools
from threadline.agents import replies
from threadline.agents.decision import CANNED, NOT_UNDERSTOOD
from threadline.agents.intents import Intent, IntentClassifier
from threadline.agents.models import shared_classifier
from threadline.agents.offline_model import OfflineChatModel
from threadline.agents.prompts import system_prompt
from threadline.core.types import (
    CustomerId,
    Fulfillment,
    ItemId,
    Order,
    OrderId,
    OrderItem,
    OrderStatus,
    Payment,
    ProductId,
)
from threadline.tools.orders import summarize_order

ORDER_ID = "#W2611340"
EMAIL = "james.li4495@example.com"  # james_li_5688 in demo/data/tau_retail/users.json, owner of #W2611340
TOOL_NAMES = {t.name for t in threadline.tools.SUPPORT_TOOLS}


@pytest.fixture(scope="module")
def classifier(embeddings: Embeddings, request: pytest.FixtureRequest) -> IntentClassifier:
    """The app's classifier (all examples); its example matrix is kept in pytest's cache between runs."""
    cache = getattr(request.config, "cache", None)
    cache_dir = Path(cache.mkdir("threadline-intents")) if cache is not None else None
    return shared_classifier(embeddings, cache_dir)


@pytest.fixture(scope="module")
def model(classifier: IntentClassifier) -> Any:
    return OfflineChatModel(classifier=classifier).bind_tools(threadline.tools.SUPPORT_TOOLS)


def _call(name: str, args: dict[str, Any], call_id: str) -> dict[str, Any]:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


def _tool(name: str, payload: dict[str, Any], call_id: str) -> ToolMessage:
    return ToolMessage(json.dumps(payload), tool_call_id=call_id, name=name)


def _only_call(message: BaseMessage) -> dict[str, Any]:
    assert isinstance(message, AIMessage)
    assert len(message.tool_calls) == 1, message
    assert message.content == ""
    return dict(message.tool_calls[0])


def _no_call(message: BaseMessage) -> str:
    assert isinstance(message, AIMessage)
    assert message.tool_calls == []
    assert isinstance(message.content, str)
    assert message.content.strip()
    return message.content


def _order() -> Order:
    """#W2611340 as demo/data/tau_retail/orders.json has it."""
    return Order(
        id=OrderId(ORDER_ID),
        customer_id=CustomerId("cus_james"),
        status=OrderStatus.PROCESSED,
        address={"address1": "215 River Road", "city": "New York", "state": "NY", "zip": "10083"},
        items=[
            OrderItem(
                item_id=ItemId("6469567736"),
                product_id=ProductId("8310926033"),
                name="Water Bottle",
                price=Decimal("47.84"),
                options={"capacity": "1000ml", "material": "glass", "color": "blue"},
            ),
            OrderItem(
                item_id=ItemId("8426249116"),
                product_id=ProductId("4794339885"),
                name="Office Chair",
                price=Decimal("488.81"),
                options={"material": "fabric", "color": "black"},
            ),
        ],
        fulfillments=[Fulfillment(tracking_ids=["357962501027"], item_ids=["6469567736", "8426249116"])],
        payments=[Payment(transaction_type="payment", amount=Decimal("536.65"), payment_method_id="gift_card_1725971")],
    )


def _asked_to_verify() -> list[AnyMessage]:
    """The customer asked about an order and the lookup said they must verify first."""
    return [
        SystemMessage("You are a support assistant.\nChannel: sms"),
        HumanMessage(f"where is my order {ORDER_ID}?"),
        AIMessage("", tool_calls=[_call("lookup_order", {"order_id": ORDER_ID}, "call_1")]),
        _tool(
            "lookup_order",
            {"status": "verification_required", "message": "The customer must verify their identity first."},
            "call_1",
        ),
        AIMessage(replies.ASK_VERIFICATION),
    ]


# --- first step of a turn -----------------------------------------------------------------------------------


def test_order_question_looks_the_order_up(model: Any) -> None:
    call = _only_call(model.invoke([HumanMessage(f"where is my order {ORDER_ID}?")]))
    assert call["name"] == "lookup_order"
    assert call["args"] == {"order_id": ORDER_ID}
    assert call["id"].startswith("call_")


def test_order_id_is_normalized_in_the_lookup(model: Any) -> None:
    call = _only_call(model.invoke([HumanMessage("has w2611340 shipped yet?")]))
    assert call["name"] == "lookup_order"
    assert call["args"] == {"order_id": ORDER_ID}


def test_greeting_is_answered_without_a_tool(model: Any) -> None:
    assert _no_call(model.invoke([HumanMessage("hi")])) == CANNED[Intent.GREETING]


@pytest.mark.parametrize(
    "text",
    [
        "what's the weather in Paris?",
        "what's the capital of France?",
        "book me a flight to Paris",
        "who won the football game last night?",
    ],
)
def test_off_topic_question_calls_no_tool(model: Any, text: str) -> None:
    reply = model.invoke([HumanMessage(text)])
    assert _no_call(reply) == CANNED[Intent.OUT_OF_SCOPE]


def test_human_request_escalates(model: Any) -> None:
    call = _only_call(model.invoke([HumanMessage("I want to talk to a person")]))
    assert call["name"] == "escalate_to_human"
    assert call["args"]["urgency"] == "normal"
    assert call["args"]["reason"]


def test_policy_question_searches_the_knowledge_base(model: Any) -> None:
    text = "What is your policy on returning delivered items?"
    call = _only_call(model.invoke([HumanMessage(text)]))
    assert call["name"] == "search_knowledge"
    assert call["args"] == {"query": text}


def test_unintelligible_turn_is_flagged_not_understood(model: Any) -> None:
    reply = model.invoke([HumanMessage("zxqv blorp wug")])
    assert _no_call(reply) == NOT_UNDERSTOOD
    assert reply.additional_kwargs["threadline"]["understood"] is False


def test_no_customer_message_yet_gets_a_greeting(model: Any) -> None:
    assert _no_call(model.invoke([SystemMessage("You are a support assistant.")])) == CANNED[Intent.GREETING]


def test_order_question_without_a_number_and_no_prompt_lists_the_orders(model: Any) -> None:
    call = _only_call(model.invoke([HumanMessage("where is my order?")]))
    assert call["name"] == "lookup_order"
    assert call["args"] == {}


def test_order_in_focus_line_of_the_system_prompt_is_the_order_looked_up(model: Any) -> None:
    prompt = system_prompt(channel="sms", brief="Verification level: verified", summary=None, focus_order_id=ORDER_ID)
    call = _only_call(model.invoke([SystemMessage(prompt), HumanMessage("when will it arrive?")]))
    assert call["name"] == "lookup_order"
    assert call["args"] == {"order_id": ORDER_ID}


def test_recent_orders_in_the_brief_do_not_pick_the_oldest_order(model: Any) -> None:
    brief = "Verification level: verified\nName: James Li\nRecent orders: #W3638028 (pending), #W2611340 (processed)"
    prompt = system_prompt(channel="sms", brief=brief, summary=None, focus_order_id=None)
    call = _only_call(model.invoke([SystemMessage(prompt), HumanMessage("where is my order?")]))
    assert call["name"] == "lookup_order"
    assert call["args"].get("order_id") in (None, "#W3638028")


# --- verification -------------------------------------------------------------------------------------------


def test_email_after_verification_request_verifies_with_that_email(model: Any) -> None:
    call = _only_call(model.invoke([*_asked_to_verify(), HumanMessage(EMAIL)]))
    assert call["name"] == "verify_customer"
    assert call["args"] == {"email": EMAIL}


def test_email_in_a_sentence_after_verification_request_is_lower_cased(model: Any) -> None:
    call = _only_call(model.invoke([*_asked_to_verify(), HumanMessage("sure, it's James.Li4495@Example.com")]))
    assert call["name"] == "verify_customer"
    assert call["args"] == {"email": EMAIL}


def test_order_and_email_after_verification_request_verifies_with_both(model: Any) -> None:
    call = _only_call(model.invoke([*_asked_to_verify(), HumanMessage(f"{ORDER_ID} and {EMAIL}")]))
    assert call["name"] == "verify_customer"
    assert call["args"] == {"email": EMAIL, "order_id": ORDER_ID}


def test_name_and_zip_after_verification_request_verifies_with_them(model: Any) -> None:
    call = _only_call(model.invoke([*_asked_to_verify(), HumanMessage("James Li, 10083")]))
    assert call["name"] == "verify_customer"
    assert call["args"] == {"first_name": "James", "last_name": "Li", "zip": "10083"}


def test_after_successful_verification_the_earlier_order_is_looked_up(model: Any) -> None:
    messages = [
        *_asked_to_verify(),
        HumanMessage(EMAIL),
        AIMessage("", tool_calls=[_call("verify_customer", {"email": EMAIL}, "call_2")]),
        _tool("verify_customer", {"status": "ok", "name": "James"}, "call_2"),
    ]
    call = _only_call(model.invoke(messages))
    assert call["name"] == "lookup_order"
    assert call["args"] == {"order_id": ORDER_ID}


def test_after_successful_verification_without_an_order_the_customer_is_greeted_by_name(model: Any) -> None:
    messages = [
        HumanMessage(EMAIL),
        AIMessage("", tool_calls=[_call("verify_customer", {"email": EMAIL}, "call_1")]),
        _tool("verify_customer", {"status": "ok", "name": "James"}, "call_1"),
    ]
    text = _no_call(model.invoke(messages))
    assert "James" in text
    assert "verified" in text


def test_failed_verification_says_so_without_a_tool(model: Any) -> None:
    messages = [
        *_asked_to_verify(),
        HumanMessage("nobody@example.com"),
        AIMessage("", tool_calls=[_call("verify_customer", {"email": "nobody@example.com"}, "call_2")]),
        _tool("verify_customer", {"status": "failed", "message": "Those details could not be verified."}, "call_2"),
    ]
    assert _no_call(model.invoke(messages)) == replies.VERIFICATION_FAILED


# --- replies from tool results ------------------------------------------------------------------------------


def test_order_reply_states_status_and_tracking_exactly_and_no_other_numbers(model: Any) -> None:
    payload = {"status": "ok", "order": summarize_order(_order(), full=False).payload()}
    messages = [
        HumanMessage(f"where is my order {ORDER_ID}?"),
        AIMessage("", tool_calls=[_call("lookup_order", {"order_id": ORDER_ID}, "call_1")]),
        _tool("lookup_order", json.loads(json.dumps(payload, default=str)), "call_1"),
    ]
    text = _no_call(model.invoke(messages))
    order = payload["order"]
    assert order["status"] in text
    assert "357962501027" in text
    assert ORDER_ID in text
    assert set(re.findall(r"\d+", text)) <= {"2611340", "357962501027"}  # no prices, totals or invented dates


def test_order_not_found_is_reported_with_the_number(model: Any) -> None:
    messages = [
        HumanMessage("where is order #W0000001?"),
        AIMessage("", tool_calls=[_call("lookup_order", {"order_id": "#W0000001"}, "call_1")]),
        _tool("lookup_order", {"status": "not_found", "order_id": "#W0000001"}, "call_1"),
    ]
    text = _no_call(model.invoke(messages))
    assert "#W0000001" in text
    assert "couldn't find" in text


def test_knowledge_result_is_answered_with_a_citation(model: Any) -> None:
    passage = {
        "article_id": "policy-returns",
        "title": "Return delivered order",
        "version": 4,
        "text": "Return delivered order\n\nDelivered orders can be returned within 30 days of delivery. "
        "The refund goes to the original payment method or an existing gift card.",
    }
    question = "What is your policy on returning delivered items?"
    messages = [
        HumanMessage(question),
        AIMessage("", tool_calls=[_call("search_knowledge", {"query": question}, "call_1")]),
        _tool("search_knowledge", {"status": "ok", "query": question, "passages": [passage]}, "call_1"),
    ]
    text = _no_call(model.invoke(messages))
    assert text.endswith("(Source: Return delivered order.)")
    assert "Delivered orders can be returned within 30 days of delivery." in text


# --- bound tools and determinism ----------------------------------------------------------------------------

TURNS = [
    [HumanMessage(f"where is my order {ORDER_ID}?")],
    [HumanMessage("I want to talk to a person")],
    [HumanMessage("What is your policy on returning delivered items?")],
    [HumanMessage("I texted you yesterday about my order")],
    [*_asked_to_verify(), HumanMessage(EMAIL)],
]


@pytest.mark.parametrize(
    "bound",
    [
        [],
        [threadline.tools.search_knowledge],
        [threadline.tools.lookup_order],
        [threadline.tools.escalate_to_human, threadline.tools.recall_context],
    ],
    ids=["none", "knowledge", "orders", "escalate+recall"],
)
def test_a_model_bound_to_some_tools_never_calls_another(classifier: IntentClassifier, bound: list[BaseTool]) -> None:
    model = OfflineChatModel(classifier=classifier).bind_tools(bound)
    allowed = {t.name for t in bound}
    for turn in TURNS:
        reply = model.invoke(turn)
        assert isinstance(reply, AIMessage)
        assert {c["name"] for c in reply.tool_calls} <= allowed
        if not reply.tool_calls:
            assert isinstance(reply.content, str)
            assert reply.content.strip()


def test_an_unbound_tool_decision_becomes_a_plain_reply(classifier: IntentClassifier) -> None:
    model = OfflineChatModel(classifier=classifier).bind_tools([threadline.tools.search_knowledge])
    reply = model.invoke([HumanMessage(f"where is my order {ORDER_ID}?")])
    assert reply.tool_calls == []
    assert reply.content


def test_every_turn_calls_only_support_tools(model: Any) -> None:
    for turn in TURNS:
        assert {c["name"] for c in model.invoke(turn).tool_calls} <= TOOL_NAMES


@pytest.mark.parametrize("turn", TURNS, ids=["order", "human", "policy", "recall", "verify"])
def test_same_input_same_output(classifier: IntentClassifier, model: Any, turn: list[AnyMessage]) -> None:
    first, second = model.invoke(turn), model.invoke(turn)
    fresh = OfflineChatModel(classifier=classifier).bind_tools(threadline.tools.SUPPORT_TOOLS).invoke(turn)
    for other in (second, fresh):
        assert other.content == first.content
        assert other.tool_calls == first.tool_calls
        assert other.additional_kwargs == first.additional_kwargs


# --- knowledge_reply ----------------------------------------------------------------------------------------
