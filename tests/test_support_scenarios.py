"""The support graph's promises, end to end on SQLite and Postgres, with the offline model and with an
OpenAI-compatible model reached over real HTTP through ChatOpenAI."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support import say
from threadline.agents.scripted_server import ScriptedModelServer
from threadline.conversations.threads import thread_config
from threadline.core.settings import Settings
from threadline.core.types import Channel, CustomerId, Direction, HandoffStatus, OrderId, TurnOutcome
from threadline.demo.loader import DATA_DIR, demo_customer_id
from threadline.graphs.render import sms_segments
from threadline.product.services import Services, open_services

USERS = json.loads((DATA_DIR / "tau_retail" / "users.json").read_text())
ORDERS = json.loads((DATA_DIR / "tau_retail" / "orders.json").read_text())
JAMES = USERS["james_li_5688"]
PHONE = "+15550100200"


def tool_names(outcome: TurnOutcome) -> list[str]:
    return [t["name"] for t in outcome.tools]


def verify_by_sms(services: Services) -> TurnOutcome:
    first = say(services, Channel.SMS, PHONE, "where is my order #W2611340?")
    assert first.reply is not None
    return say(services, Channel.SMS, PHONE, JAMES["email"])


def test_sms_from_unknown_number_verifies_then_answers_from_the_order_data(services: Services) -> None:
    first = say(services, Channel.SMS, PHONE, "where is my order #W2611340?")
    assert first.reply is not None
    assert "verify" in first.reply.lower()
    for private in ("processed", "357962501027", "Water Bottle", "Office Chair", "536"):
        assert private not in first.reply
    second = say(services, Channel.SMS, PHONE, JAMES["email"])
    assert second.reply is not None
    assert "processed" in second.reply
    assert "357962501027" in second.reply
    assert sms_segments(second.reply) <= 2
    assert second.customer_id == demo_customer_id("james_li_5688")
    later = say(services, Channel.SMS, PHONE, "any news?")
    assert later.reply is not None
    assert "357962501027" in later.reply
    assert "verify_customer" not in tool_names(later)
    assert later.customer_id == demo_customer_id("james_li_5688")


def test_failed_verification_reveals_nothing_about_which_factor_was_wrong(services: Services) -> None:
    say(services, Channel.SMS, PHONE, "where is my order #W2611340?")
    wrong_email = say(services, Channel.SMS, PHONE, "someone.else@example.com")
    wrong_zip = say(services, Channel.SMS, "+15550100299", "James Li, 99999")
    assert wrong_email.reply is not None
    assert wrong_email.reply == wrong_zip.reply
    assert "357962501027" not in wrong_email.reply


def test_web_chat_recalls_the_sms_conversation_with_when_and_where(services: Services) -> None:
    verify_by_sms(services)
    web = say(services, Channel.WEB, JAMES["email"], "I texted you about my order", vouched=True)
    assert web.reply is not None
    assert "recall_context" in tool_names(web)
    assert "text message" in web.reply
    assert datetime.now(UTC).date().isoformat() in web.reply
    assert "#W2611340" in web.reply


def _other_customers_order() -> tuple[str, dict[str, Any]]:
    order_id, order = next((oid, o) for oid, o in ORDERS.items() if o["user_id"] != "james_li_5688")
    return order_id, order


def test_someone_elses_order_reads_exactly_like_a_missing_one(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    other_id, other = _other_customers_order()
    missing = say(services, Channel.WEB, JAMES["email"], "where is my order #W0000001?", vouched=True)
    foreign = say(services, Channel.WEB, JAMES["email"], f"where is my order {other_id}?", vouched=True)
    assert missing.reply is not None and foreign.reply is not None
    assert foreign.reply.replace(other_id, "#ID") == missing.reply.replace("#W0000001", "#ID")
    secrets = {i["name"] for i in other["items"]} | {t for f in other["fulfillments"] for t in f["tracking_id"]}
    secrets |= {other["address"]["address1"], f"{other['payment_history'][0]['amount']}"}
    james = demo_customer_id("james_li_5688")
    stored = json.dumps(services.threads.values(james), default=str)
    logged = " ".join(m.text for m in services.stores.messages.for_customer(james, limit=100))
    for secret in secrets:
        assert secret not in foreign.reply
        assert secret not in stored
        assert secret not in logged
        assert secret not in caplog.text


def test_policy_question_is_answered_from_the_knowledge_base_with_a_citation(services: Services) -> None:
    outcome = say(services, Channel.WEB, "visitor-42", "What is your policy on returning delivered items?")
    assert outcome.reply is not None
    assert tool_names(outcome) == ["search_knowledge"]
    assert "(Source: Returns.)" in outcome.reply  # the help center written for customers
    assert "delivered" in outcome.reply
    assert "the user" not in outcome.reply.lower()  # never the store's instructions to its agents


def test_asking_for_a_person_hands_off_and_only_a_note_says_the_message_reached_the_team(services: Services) -> None:
    outcome = say(services, Channel.WEB, JAMES["email"], "I want to talk to a person", vouched=True)
    assert outcome.owner == "queue"
    assert outcome.handoff_id is not None
    handoff = services.stores.handoffs.get(outcome.handoff_id)
    assert handoff is not None
    assert handoff.status is HandoffStatus.QUEUED
    assert handoff.packet["stall"]["type"] == "customer_requested_human"
    assert handoff.packet["customer"]["id"] == demo_customer_id("james_li_5688")
    assert (outcome.reply or "").startswith("Of course. I've passed your conversation to a member of our team")
    before = services.stores.messages.count(CustomerId(outcome.customer_id))
    noted = say(services, Channel.WEB, JAMES["email"], "hello? are you there?", vouched=True)
    assert noted.owner == "queue" and noted.tools == []  # the AI does not answer the case
    assert (noted.reply or "").startswith("Thanks, I've added this to your case for our team.")
    silent = say(services, Channel.WEB, JAMES["email"], "my order number is #W2611340 btw", vouched=True)
    assert silent.reply is None and silent.owner == "queue"  # one note per THREADLINE_QUEUE_ACK_MINUTES
    log = services.stores.messages.for_customer(CustomerId(outcome.customer_id), limit=5)
    assert services.stores.messages.count(CustomerId(outcome.customer_id)) == before + 3
    assert [m.direction for m in log[-3:]] == [Direction.INBOUND, Direction.OUTBOUND, Direction.INBOUND]


def test_off_topic_questions_never_look_up_orders(services: Services) -> None:
    for text in ["what's the capital of France?", "hi", "thanks!", "book me a flight to Paris"]:
        outcome = say(services, Channel.WEB, JAMES["email"], text, vouched=True)
        assert outcome.reply
        assert "lookup_order" not in tool_names(outcome)


def test_two_turns_not_understood_lead_to_escalation(demo_db_url: str, tmp_path: Path) -> None:
    # Only the offline model reports that it did not understand; an LLM is escalated by its own tool call.
    services = open_services(Settings(data_dir=tmp_path, database_url=demo_db_url, load_demo=False))
    first = say(services, Channel.WEB, "visitor-7", "asdfgh qwerty")
    assert first.owner == "ai"
    second = say(services, Channel.WEB, "visitor-7", "zzzz xxxx")
    assert second.owner == "queue"
    handoff = services.stores.handoffs.get(second.handoff_id or "")
    services.close()
    assert handoff is not None
    assert handoff.packet["stall"]["type"] == "repeated_failure"
    assert handoff.packet["goal"].startswith("The customer wrote:")


def test_a_restart_between_turns_loses_nothing(settings: Settings) -> None:
    first = open_services(settings)
    verify_by_sms(first)
    first.close()
    second = open_services(settings)
    try:
        later = say(second, Channel.SMS, PHONE, "any news?")
        assert later.reply is not None
        assert "357962501027" in later.reply
        assert "verify_customer" not in tool_names(later)
    finally:
        second.close()


def test_state_stays_bounded_over_many_turns(services: Services) -> None:
    verify_by_sms(services)
    for _ in range(15):
        say(services, Channel.SMS, PHONE, "any news?")
        say(services, Channel.SMS, PHONE, "thanks!")
    james = demo_customer_id("james_li_5688")
    values = services.threads.values(james)
    assert len(values["messages"]) <= 16
    assert len(values["summary"].splitlines()) <= 12
    assert services.stores.messages.count(james) >= 60  # the full transcript stays in the message log
    order = services.stores.orders.get_order(OrderId("#W2611340"))
    assert order is not None


def test_the_llm_path_speaks_the_chat_completions_protocol_over_http(
    scripted_server: ScriptedModelServer, demo_db_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=demo_db_url,
        load_demo=False,
        model="openai:scripted-model",
        openai_base_url=scripted_server.base_url,
        openai_api_key="test-key",
    )
    services = open_services(settings)
    seen = len(scripted_server.requests)
    try:
        outcome = say(services, Channel.WEB, JAMES["email"], "where is my order #W2611340?", vouched=True)
    finally:
        services.close()
    assert outcome.reply is not None
    assert "357962501027" in outcome.reply
    requests = scripted_server.requests[seen:]
    assert len(requests) == 2  # one model step that calls the tool, one that answers from its result
    assert requests[0]["model"] == "scripted-model"
    assert {t["function"]["name"] for t in requests[0]["tools"]} == {
        "recall_context",
        "search_knowledge",
        "find_products",
        "lookup_order",
        "verify_customer",
        "change_speaker",
        "order_options",
        "cancel_order",
        "return_items",
        "exchange_items",
        "change_order_items",
        "change_order_payment",
        "change_order_address",
        "change_default_address",
        "escalate_to_human",
    }
    assert "confirm_order_action" not in json.dumps(requests[0]["tools"])  # no model can run an action itself
    assert "runtime" not in json.dumps(requests[0]["tools"])  # injected context never reaches the model
    assert requests[1]["messages"][-1]["role"] == "tool"


def test_trace_metadata_names_the_channel_and_hides_the_customer_id() -> None:
    config = thread_config("cus_123", channel="sms")
    assert config["configurable"] == {"thread_id": "cus_123"}
    assert config["metadata"]["channel"] == "sms"
    assert "cus_123" not in json.dumps(config["metadata"])
