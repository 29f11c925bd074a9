"""The escalation policy: explicit human requests, sensitive topics, thresholds, tool errors, model requests."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage

from threadline.core.handoff import StallPoint
from threadline.graphs.policy import Escalation, Thresholds, customer_confirmed, evaluate, missed_questions


def _after_model(*said: str) -> list[AnyMessage]:
    """A turn as the guard sees it after a model step: the customer's message(s), then the AI's reply."""
    return [SystemMessage("You are a support assistant."), *(HumanMessage(t) for t in said), AIMessage("Let me see.")]


def _evaluate(messages: list[AnyMessage], **kwargs: object) -> Escalation | None:
    args: dict[str, object] = {"requested": None, "not_understood": 0, "verification_failures": 0, **kwargs}
    return evaluate(messages, **args)  # type: ignore[arg-type]


def _tool_turn(status: str, content: str = '{"status": "ok"}') -> list[AnyMessage]:
    call = {"name": "lookup_order", "args": {"order_id": "#W2611340"}, "id": "call_1", "type": "tool_call"}
    return [
        HumanMessage("where is my order #W2611340?"),
        AIMessage("", tool_calls=[call]),
        ToolMessage(content, tool_call_id="call_1", name="lookup_order", status=status),  # type: ignore[arg-type]
    ]


@pytest.mark.parametrize(
    "text",
    [
        "I want to talk to a person",
        "get me a human",
        "can I speak to a manager",
        "Can I speak with a supervisor please?",
        "I want to speak with an agent",
        "live agent",
        "I need a customer service representative",
        "HUMAN!!!",
    ],
)
def test_explicit_human_request_escalates_as_customer_requested(text: str) -> None:
    found = _evaluate(_after_model(text))
    assert found is not None
    assert found.stall is StallPoint.CUSTOMER_REQUESTED_HUMAN
    assert found.evidence == [text]
    assert found.urgency is None


@pytest.mark.parametrize(
    "text",
    [
        "can I talk to someone",
        "let me talk to your supervisor",
        "representative please",
    ],
)
def test_other_explicit_human_requests_escalate_as_customer_requested(text: str) -> None:
    found = _evaluate(_after_model(text))
    assert found is not None
    assert found.stall is StallPoint.CUSTOMER_REQUESTED_HUMAN


def test_are_you_a_real_person_is_a_question_to_answer_not_a_request() -> None:
    assert _evaluate(_after_model("are you a real person?")) is None  # the assistant says honestly what it is
    found = _evaluate(_after_model("are you a real person? I want to talk to a real person"))
    assert found is not None and found.stall is StallPoint.CUSTOMER_REQUESTED_HUMAN


@pytest.mark.parametrize(
    "text",
    [
        "is this a bot?",
        "where is my order #W2611340?",
        "humane treatment of animals",
        "I don't want a manager, just tell me where my order is",
        "do I need a manager approval for a company invoice",
    ],
)
def test_questions_without_a_human_request_do_not_escalate(text: str) -> None:
    assert _evaluate(_after_model(text)) is None


@pytest.mark.parametrize(
    "text",
    [
        "this is fraud",
        "I'll call my lawyer",
        "I'm going to sue you",
        "I'll file a chargeback",
        "someone used my stolen card",
    ],
)
def test_sensitive_topic_escalates_with_high_urgency(text: str) -> None:
    found = _evaluate(_after_model(text))
    assert found is not None
    assert found.stall is StallPoint.SENSITIVE_TOPIC
    assert found.urgency == "high"
    assert found.evidence == [text]


def test_someone_hurt_is_the_most_urgent() -> None:
    found = _evaluate(_after_model("the chair broke and I got injured"))
    assert found is not None and found.stall is StallPoint.SENSITIVE_TOPIC
    assert (found.urgency, found.topic) == ("urgent", "safety")


def test_a_customer_named_sue_is_not_a_sensitive_topic() -> None:
    assert _evaluate(_after_model("My name is Sue Kim, zip 10001")) is None


def test_human_request_wins_over_sensitive_topic() -> None:
    found = _evaluate(_after_model("this is fraud, get me a human"))
    assert found is not None
    assert found.stall is StallPoint.CUSTOMER_REQUESTED_HUMAN


def test_every_customer_message_of_the_turn_is_evidence() -> None:
    found = _evaluate(_after_model("hello?", "I want to talk to a person", "now please"))
    assert found is not None
    assert found.evidence == ["I want to talk to a person"]


def test_a_request_from_an_earlier_turn_does_not_escalate_again() -> None:
    messages: list[AnyMessage] = [
        HumanMessage("get me a human"),
        AIMessage("I've passed your conversation to a member of our team."),
        HumanMessage("thanks"),
        AIMessage("You're welcome!"),
    ]
    assert _evaluate(messages) is None


@pytest.mark.parametrize(("count", "escalates"), [(0, False), (1, False), (2, True), (5, True)])
def test_repeated_failure_after_two_not_understood_turns(count: int, escalates: bool) -> None:
    found = _evaluate(_after_model("blorp"), not_understood=count)
    if escalates:
        assert found is not None
        assert found.stall is StallPoint.REPEATED_FAILURE
        assert found.evidence == ["blorp"]
    else:
        assert found is None


@pytest.mark.parametrize(("count", "escalates"), [(0, False), (2, False), (3, True), (4, True)])
def test_verification_failed_after_three_failures(count: int, escalates: bool) -> None:
    found = _evaluate(_after_model("my email is x@example.com"), verification_failures=count)
    if escalates:
        assert found is not None
        assert found.stall is StallPoint.VERIFICATION_FAILED
    else:
        assert found is None


def test_verification_failure_is_checked_before_repeated_failure() -> None:
    found = _evaluate(_after_model("nope"), verification_failures=3, not_understood=2)
    assert found is not None
    assert found.stall is StallPoint.VERIFICATION_FAILED


def test_custom_thresholds_apply() -> None:
    strict = Thresholds(not_understood_turns=1, verification_failures=1)
    assert _evaluate(_after_model("blorp"), not_understood=1, thresholds=strict) is not None
    found = _evaluate(_after_model("x@example.com"), verification_failures=1, thresholds=strict)
    assert found is not None
    assert found.stall is StallPoint.VERIFICATION_FAILED


def test_tool_error_as_last_message_escalates() -> None:
    found = _evaluate(_tool_turn("error", "Error: the order system timed out"))
    assert found is not None
    assert found.stall is StallPoint.TOOL_ERROR
    assert found.evidence == ["Error: the order system timed out"]


def test_tool_error_evidence_is_truncated() -> None:
    found = _evaluate(_tool_turn("error", "E" * 1000))
    assert found is not None
    assert found.evidence == ["E" * 300]


def test_successful_tool_result_does_not_escalate() -> None:
    assert _evaluate(_tool_turn("success")) is None


def test_tool_error_followed_by_a_model_reply_does_not_escalate() -> None:
    messages = [*_tool_turn("error", "Error: boom"), AIMessage("Sorry, let me try something else.")]
    assert _evaluate(messages) is None


def test_model_request_escalates_as_model_requested_with_its_reason_and_urgency() -> None:
    requested = {"reason": "Customer wants a refund to a closed card.", "urgency": "high"}
    found = _evaluate(_after_model("please refund to my old card"), requested=requested)
    assert found is not None
    assert found.stall is StallPoint.MODEL_REQUESTED
    assert found.evidence == ["Customer wants a refund to a closed card."]
    assert found.urgency == "high"


def test_model_request_after_the_customer_asked_counts_as_customer_requested() -> None:
    requested = {"reason": "The customer asked to speak with a person.", "urgency": "normal"}
    found = _evaluate(_after_model("I want to talk to a person"), requested=requested)
    assert found is not None
    assert found.stall is StallPoint.CUSTOMER_REQUESTED_HUMAN
    assert found.evidence == ["I want to talk to a person"]
    assert found.urgency == "normal"


def test_model_request_takes_precedence_over_thresholds() -> None:
    found = _evaluate(
        _after_model("blorp"),
        requested={"reason": "stuck", "urgency": "low"},
        not_understood=9,
        verification_failures=9,
    )
    assert found is not None
    assert found.stall is StallPoint.MODEL_REQUESTED


@pytest.mark.parametrize(
    "messages",
    [
        [],
        [HumanMessage("hi")],
        [HumanMessage("where is my order #W2611340?"), AIMessage("It is delivered.")],
        [HumanMessage("what is your return policy?"), AIMessage("30 days."), HumanMessage("thanks")],
    ],
)
def test_nothing_to_escalate_returns_none(messages: list[AnyMessage]) -> None:
    assert _evaluate(messages) is None


@pytest.mark.parametrize(
    ("text", "confirmed"),
    [
        ("thanks, thats perfect", True),
        ("ok got it thx", True),
        ("Thank you so much, that helped!", True),
        ("great, appreciate it", True),
        ("gracias!", True),
        ("thanks but it still hasnt arrived", False),
        ("thanks, and can I return it in store?", False),
        ("that's not what I asked, thanks", False),
        ("no thanks", False),
        ("where is my order", False),
        ("great, just great. third time I ask", False),  # sarcasm
        ("thanks, that didn't work", False),
        ("thanks, it doesnt fit though", False),
        ("cant find it, thanks", False),
        ("thx for nothing", False),
        ("great, now I want a refund", False),
        ("thanks again, that helped", True),
        ("no worries, thanks!", True),
    ],
)
def test_a_customer_saying_the_answer_helped_is_a_confirmation(text: str, confirmed: bool) -> None:
    assert customer_confirmed(_after_model(text)) is confirmed


def test_only_a_search_that_ran_and_found_nothing_is_a_knowledge_gap() -> None:
    call = {"name": "search_knowledge", "args": {"query": "gift wrapping"}, "id": "call_9", "type": "tool_call"}
    asked: list[AnyMessage] = [HumanMessage("do u do gift wrap"), AIMessage("", tool_calls=[call])]

    def result(content: str) -> list[AnyMessage]:
        return [*asked, ToolMessage(content, tool_call_id="call_9", name="search_knowledge")]

    assert missed_questions(result('{"status": "no_answer", "query": "gift wrapping", "passages": []}')) == [
        "gift wrapping"
    ]
    assert missed_questions(result('{"status": "no_answer", "query": " ", "passages": []}')) == ["do u do gift wrap"]
    # Skipped because a person took over, or failed: nothing to say about the help center.
    assert missed_questions(result('{"status": "skipped"}')) == []
    assert missed_questions(result('{"status": "error", "message": "boom"}')) == []
