"""What the customer hears, unit by unit, without booting the product: several questions in one message, the
request that waits for verification, follow-ups, languages, escalation by meaning, the desk's wording and the
relevance bar. (The whole conversations are in `evals/suites/conversation_quality.yaml`.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import Embeddings
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

import threadline.tools
from threadline.agents import language, replies
from threadline.agents.asks import split_asks
from threadline.agents.intents import IntentClassifier
from threadline.agents.models import shared_classifier
from threadline.agents.offline_model import OfflineChatModel
from threadline.agents.prompts import system_prompt
from threadline.core.hours import BusinessHours
from threadline.graphs import policy
from threadline.graphs.nodes import expected_wait
from threadline.tools.knowledge import relevant, without_products


@pytest.fixture(scope="module")
def model(embeddings: Embeddings, request: pytest.FixtureRequest) -> Any:
    cache = getattr(request.config, "cache", None)
    cache_dir = Path(cache.mkdir("threadline-intents")) if cache is not None else None
    classifier: IntentClassifier = shared_classifier(embeddings, cache_dir)
    return OfflineChatModel(classifier=classifier).bind_tools(threadline.tools.SUPPORT_TOOLS)


def _call(name: str, args: dict[str, Any], call_id: str) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}])


def _tool(name: str, payload: dict[str, Any], call_id: str) -> ToolMessage:
    return ToolMessage(json.dumps(payload), tool_call_id=call_id, name=name)


def _step(message: BaseMessage) -> tuple[str, dict[str, Any]] | str:
    assert isinstance(message, AIMessage)
    if message.tool_calls:
        return message.tool_calls[0]["name"], dict(message.tool_calls[0]["args"])
    return str(message.content)


PROMPT = SystemMessage(system_prompt(channel="web", brief="", summary=None, focus_order_id=None))


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("whats your return policy and do you ship to canada", ["whats your return policy", "do you ship to canada"]),
        ("2 things: do u price match, and whats the warranty?", ["2 things: do u price match", "whats the warranty?"]),
        ("Hi,\n\nI love it. Is there a warranty? Also what payment methods do you take?\n\nThanks,\nDana", None),
        ("do u ship to canada? and whats ur return policy", ["do u ship to canada?", "whats ur return policy"]),
        ("do you have a red speaker", ["do you have a red speaker"]),
        ("where is my order", ["where is my order"]),
    ],
)
def test_the_questions_of_one_message(text: str, asks: list[str] | None) -> None:
    found = split_asks(text)
    if asks is None:
        assert found == ["Is there a warranty?", "what payment methods do you take?"]  # "Also" joins, it asks nothing
    else:
        assert found == asks


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("hola, ¿dónde está mi pedido?", "es"),
        ("bonjour, où est ma commande ?", "fr"),
        ("where is my order", "en"),  # close to German in the small models: English words settle it
        ("do you ship to mexico?", "en"),
        ("gracias", "es"),
        ("merci", "fr"),
        ("wo ist meine bestellung", "de"),
        ("noah.brown7922@example.com", None),
        ("ok", None),
    ],
)
def test_the_customers_language(text: str, lang: str | None) -> None:
    assert language.detect(text) == lang


def test_a_name_and_zip_do_not_switch_a_spanish_conversation_to_english() -> None:
    assert language.customer_language(["hola, ¿dónde está mi pedido?", "Noah Brown 80279"]) == "es"


def test_spanish_order_status_asks_to_verify_in_spanish_then_answers_the_waiting_request(model: Any) -> None:
    asked = [PROMPT, HumanMessage("hola, ¿dónde está mi pedido?")]
    assert _step(model.invoke(asked)) == ("lookup_order", {})
    refused = [
        *asked,
        _call("lookup_order", {}, "c1"),
        _tool("lookup_order", {"status": "verification_required", "message": "verify first"}, "c1"),
    ]
    reply = _step(model.invoke(refused))
    assert isinstance(reply, str) and reply.startswith("Primero verifico su identidad")
    verifying = [*refused, AIMessage(reply), HumanMessage("Noah Brown 80279")]
    assert _step(model.invoke(verifying)) == (
        "verify_customer",
        {"first_name": "Noah", "last_name": "Brown", "zip": "80279"},
    )
    verified = [*verifying, _call("verify_customer", {}, "c2"), _tool("verify_customer", {"status": "ok"}, "c2")]
    assert _step(model.invoke(verified)) == ("lookup_order", {})  # the request that waited, not "how can I help?"


def test_other_requests_in_another_language_go_to_a_person(model: Any) -> None:
    name, args = _step(model.invoke([PROMPT, HumanMessage("¿cuánto tarda el envío a Madrid?")]))  # type: ignore[misc]
    assert name == "escalate_to_human" and "Spanish" in args["reason"]
    german = _step(model.invoke([PROMPT, HumanMessage("wo ist meine bestellung")]))
    assert german[0] == "escalate_to_human" and "German" in german[1]["reason"]


def test_the_request_that_needed_verification_is_answered_after_a_typo_apology(model: Any) -> None:
    start = [PROMPT, HumanMessage("where is my order"), _call("lookup_order", {}, "c1")]
    start += [_tool("lookup_order", {"status": "verification_required", "message": "verify"}, "c1")]
    start += [AIMessage(replies.ASK_VERIFICATION), HumanMessage("sorry typo!! Noah Brown 80279")]
    assert _step(model.invoke(start))[0] == "verify_customer"
    done = [
        *start,
        _call("verify_customer", {}, "c2"),
        _tool("verify_customer", {"status": "ok", "name": "Noah"}, "c2"),
    ]
    assert _step(model.invoke(done)) == ("lookup_order", {})


def test_several_questions_are_each_searched_and_answered_together(model: Any) -> None:
    text = "whats your return policy and do you ship to canada"
    messages: list[Any] = [PROMPT, HumanMessage(text)]
    assert _step(model.invoke(messages)) == ("search_knowledge", {"query": "whats your return policy"})
    passage = {
        "article_id": "help-returns",
        "title": "Returns",
        "version": 1,
        "kind": "faq",
        "score": 0.7,
        "text": "Returns\n\nCan I return an item?\nDelivered orders can be returned.",
    }
    messages += [
        _call("search_knowledge", {"query": "whats your return policy"}, "c1"),
        _tool("search_knowledge", {"status": "ok", "query": "x", "passages": [passage]}, "c1"),
    ]
    second = model.invoke(messages)
    assert _step(second) == ("search_knowledge", {"query": "do you ship to canada"})
    shipping = {
        **passage,
        "article_id": "help-shipping",
        "title": "Shipping and delivery",
        "text": "Shipping and delivery\n\nDo you ship internationally?\nWe ship in the United States only.",
    }
    messages += [
        second,
        _tool("search_knowledge", {"status": "ok", "query": "y", "passages": [shipping]}, second.tool_calls[0]["id"]),
    ]
    reply = _step(model.invoke(messages))
    assert reply == (
        "Delivered orders can be returned. (Source: Returns.)\n\n"
        "We ship in the United States only. (Source: Shipping and delivery.)"
    )


def test_a_short_follow_up_is_searched_with_the_question_it_follows(model: Any) -> None:
    asked = [PROMPT, HumanMessage("how long does shipping take"), _call("search_knowledge", {"query": "q"}, "c1")]
    passage = {
        "article_id": "help-shipping",
        "title": "Shipping and delivery",
        "version": 1,
        "kind": "faq",
        "score": 0.8,
        "text": "Shipping and delivery\n\nHow long does delivery take?\nThree to seven days.",
    }
    asked += [_tool("search_knowledge", {"status": "ok", "query": "how long", "passages": [passage]}, "c1")]
    asked += [AIMessage("Three to seven business days."), HumanMessage("and is it free?")]
    assert _step(model.invoke(asked)) == ("search_knowledge", {"query": "and is it free? delivery"})


def test_are_you_a_bot_is_answered_honestly_and_a_yes_to_a_person_hands_over(model: Any) -> None:
    assert _step(model.invoke([PROMPT, HumanMessage("am i talking to a real person?")])) == replies.AI_DISCLOSURE
    bot = [HumanMessage("am i talking to a real person?")]
    assert policy.evaluate(bot, requested=None, not_understood=0, verification_failures=0) is None
    asked = [HumanMessage("I want to talk to a real person")]
    found = policy.evaluate(asked, requested=None, not_understood=0, verification_failures=0)
    assert found is not None and found.stall.value == "customer_requested_human"
    offered = [
        PROMPT,
        HumanMessage("do you offer gift wrapping?"),
        AIMessage(replies.DONT_KNOW),
        HumanMessage("yes please"),
    ]
    assert _step(model.invoke(offered))[0] == "escalate_to_human"


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("the kettle i bought burned my hand when the lid popped open", "safety"),
        ("my 6yo sliced his finger open on the skateboard, theres a sharp bit of metal", "safety"),
        ("the bookshelf fell on my daughter", "safety"),
        ("tracking says delivered but i never got it, someone took it off my porch", "theft"),
        ("if i dont get my money back im going to dispute the charge with my bank", "fraud_or_legal"),
        ("the guy who delivered my package keeps texting me and asking me out", "harassment"),
        ("the grill is great, thanks", None),
        ("i got a cut price deal on the kettle", None),
    ],
)
def test_sensitive_topics_by_what_the_customer_describes(text: str, topic: str | None) -> None:
    found = policy.evaluate([HumanMessage(text)], requested=None, not_understood=0, verification_failures=0)
    assert (found.topic if found else None) == topic
    if topic == "safety":
        assert found is not None and found.urgency == "urgent"


def test_the_wait_a_customer_is_told() -> None:
    hours = BusinessHours.parse("UTC", "09:00-18:00", "mon,tue,wed,thu,fri")
    monday_noon = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    due = datetime(2026, 3, 2, 12, 15, tzinfo=UTC)
    assert expected_wait(monday_noon, "high", due, hours) == "They usually reply within 15 minutes"
    friday_night = datetime(2026, 3, 6, 22, 0, tzinfo=UTC)
    assert expected_wait(friday_night, "high", due, hours) == (
        "Our team is away right now and will pick this up when we open on Monday at 9:00"
    )
    notice = replies.handoff_notice("sensitive_topic", "safety", "voice", "They usually reply within 5 minutes")
    assert "get medical help first" in notice and notice.endswith("they'll call you back on this number.")
    assert "reply here" not in notice


@pytest.mark.parametrize(
    ("query", "score", "text", "ok"),
    [
        ("do you offer gift wrapping?", 0.43, "Can I use a gift card?\nA gift card pays for an order.", False),
        ("what are your hours", 0.40, "What are your hours?\nOur team is in Monday to Friday.", True),
        ("how do i cancel my order", 0.87, "How do I cancel?\nPending orders can be cancelled.", True),
        ("do u price match? saw it cheaper somewhere else", 0.45, "Do you price match?\nWe don't match prices.", True),
        ("who won the game last night", 0.14, "How can I talk to a person?\nJust ask.", False),
    ],
)
def test_the_relevance_bar(query: str, score: float, text: str, ok: bool) -> None:
    assert relevant(query, score, text) is ok


@pytest.mark.parametrize(
    "text",
    [
        "sofa in burnt orange?",
        "does it come in blood red",
        "spark plugs?",
        "rash guard in size M",
        "I have a burning question about returns",
        "it got scratched in transit",
        "can I return a melted candle",
        "the store keeps texting me promos",
    ],
)
def test_colours_products_and_damaged_items_are_not_sensitive(text: str) -> None:
    assert policy.evaluate([HumanMessage(text)], requested=None, not_understood=0, verification_failures=0) is None


def test_another_person_in_spanish_or_french_is_a_speaker_change(model: Any) -> None:
    for text in [
        "no soy Ana, soy su esposo. ¿dónde está mi pedido?",
        "ce n'est pas moi, c'est son mari. où est ma commande ?",
    ]:
        assert _step(model.invoke([PROMPT, HumanMessage(text)])) == ("change_speaker", {})


def test_a_language_without_replies_goes_to_a_person_at_every_step(model: Any) -> None:
    start = [PROMPT, HumanMessage("Meine E-Mail ist anna@example.de, wo ist meine Bestellung bitte?")]
    assert _step(model.invoke(start))[0] == "escalate_to_human"
    looked = [*start, _call("lookup_order", {}, "c1"), _tool("lookup_order", {"status": "ok", "orders": []}, "c1")]
    assert _step(model.invoke(looked))[0] == "escalate_to_human"  # never a reply the model does not hold


def test_typos_never_touch_emails_names_or_addresses() -> None:
    from threadline.agents.typos import spelled

    assert spelled("n.smith@example.com, u.lee@u.washington.edu") == "n.smith@example.com, u.lee@u.washington.edu"
    assert spelled("Tak Yamamoto 90210, 45 N Main St") == "Tak Yamamoto 90210, 45 N Main St"
    assert spelled("waht is ur retrun polcy") == "what is your return policy"


def test_ok_after_the_ai_disclosure_is_not_a_request_for_a_person(model: Any) -> None:
    said = [PROMPT, HumanMessage("are you a bot?"), AIMessage(replies.AI_DISCLOSURE), HumanMessage("ok")]
    assert _step(model.invoke(said)) != ("escalate_to_human", {})
    assert not isinstance(_step(model.invoke(said)), tuple)


def test_a_filler_sentence_does_not_lower_the_relevance_bar() -> None:
    gift_card = "Can I use a gift card?\nA gift card pays for an order."
    assert not relevant("Hello? Are you there? Do you offer gift wrapping?", 0.35, gift_card)


@pytest.mark.parametrize(
    ("question", "asked"),
    [
        ("whats the warranty on the espresso machine?", "whats the warranty on the ?"),
        ("can i exchange the gaming mouse for headphones instead?", "can i exchange the for instead?"),
        ("do you have a warranty", "do you have a warranty"),  # names no product
        ("espresso machine?", "espresso machine?"),  # nothing but the product: the question stays whole
    ],
)
def test_the_product_a_shopper_names_is_no_word_a_help_article_must_share(question: str, asked: str) -> None:
    names = ["Espresso Machine", "Gaming Mouse", "Headphones", "Desk Lamp"]
    assert " ".join(without_products(question, names).split()) == asked
    text = "Our products come with a one year warranty against manufacturing defects, starting from delivery."
    if "warranty on" in question:  # the warranty article answers it once the machine's words are set aside
        assert not relevant(question, 0.449, text) and relevant(asked, 0.449, text)
