"""The evaluation suite format and the deterministic evaluators, on hand-made turns (no product needed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from threadline.core.errors import InvalidInputError
from threadline.evals import grounding
from threadline.evals.driver import CustomerFacts, ToolResult, TurnRecord
from threadline.evals.evaluators import parity_check, trajectory_match, turn_checks
from threadline.evals.report import render_html
from threadline.evals.suite import SCHEMA_PATH, SUITES_DIR, ToolExpectation, Turn, json_schema, load_suite, suite_paths

AT = datetime(2026, 3, 2, 12, tzinfo=UTC)
ORDER_RESULT = json.dumps(
    {
        "status": "ok",
        "order": {
            "order_id": "#W2611340",
            "status": "processed",
            "total": "536.65",
            "shipments": [{"tracking_ids": ["357962501027"]}],
        },
    }
)
JAMES = CustomerFacts(
    "james_li_5688",
    "james.li4495@example.com",
    "James Li",
    "10083",
    frozenset({"#W2611340"}),
    frozenset({"357962501027"}),
    frozenset({"215 River Road"}),
)
NOAH = CustomerFacts(
    "noah_brown_6181",
    "noah.brown7922@example.com",
    "Noah Brown",
    "80279",
    frozenset({"#W7678072"}),
    frozenset({"517177699738"}),
    frozenset({"986 Sunset Drive"}),
)


def calls(*names: str, **args: str) -> list[dict[str, object]]:
    return [{"name": n, "args": dict(args) if i == 0 else {}} for i, n in enumerate(names)]


def record(reply: str | None, results: list[str], text: str = "where is my order?", **extra: object) -> TurnRecord:
    found = TurnRecord(channel="web", sender="x", text=text, at=AT, reply=reply)
    found.results = [ToolResult("lookup_order", {}, r) for r in results]
    for key, value in extra.items():
        setattr(found, key, value)
    return found


@pytest.mark.parametrize(
    ("match", "expected", "actual", "ok"),
    [
        ("strict", ["a", "b"], ["a", "b"], True),
        ("strict", ["a", "b"], ["b", "a"], False),
        ("unordered", ["a", "b"], ["b", "a"], True),
        ("unordered", ["a", "b"], ["b", "a", "a"], False),
        ("subset", ["a", "b"], ["b"], True),
        ("subset", ["a"], ["a", "c"], False),
        ("superset", ["a"], ["c", "a"], True),
        ("superset", ["a", "b"], ["a"], False),
        ("strict", [], [], True),
        ("strict", [], ["a"], False),
    ],
)
def test_trajectory_modes(match: str, expected: list[str], actual: list[str], ok: bool) -> None:
    spec = ToolExpectation.model_validate({"match": match, "calls": [{"name": n} for n in expected]})
    assert trajectory_match(spec, [{"name": n, "args": {}} for n in actual]) is ok


def test_argument_matchers() -> None:
    spec = ToolExpectation.model_validate(
        {
            "calls": [
                {
                    "name": "search_knowledge",
                    "args": {"query": {"contains": "RETURN"}, "k": 3, "order_id": {"present": False}},
                },
                {"name": "lookup_order", "args": {"order_id": {"regex": r"^#W\d{7}$"}}},
            ]
        }
    )
    good = [
        {"name": "search_knowledge", "args": {"query": "return policy", "k": 3}},
        {"name": "lookup_order", "args": {"order_id": "#W2611340"}},
    ]
    assert trajectory_match(spec, good)
    assert not trajectory_match(spec, [good[0], {"name": "lookup_order", "args": {"order_id": "2611340"}}])
    assert not trajectory_match(spec, [{**good[0], "args": {"query": "return", "k": 4}}, good[1]])


def test_grounding_flags_claims_no_tool_result_supports() -> None:
    results = [ORDER_RESULT]
    assert grounding.unsupported("Order #W2611340 is processed. Tracking number: 357962501027.", results) == []
    bad = grounding.unsupported(
        "Order #W2611340 was delivered on 2026-02-01 for $99.00, tracking 111122223333.", results
    )
    assert {(c.kind, c.text) for c in bad} == {
        ("status", "delivered"),
        ("date", "2026-02-01"),
        ("price", "$99.00"),
        ("tracking_number", "111122223333"),
    }
    assert grounding.unsupported("The total was $536.65.", results) == []
    # A rule stated without a knowledge result behind it is a policy claim nobody supports.
    assert [c.kind for c in grounding.unsupported("Returns are free within 90 days.", [])] == ["policy"]
    # The customer's own order number may be echoed.
    assert grounding.unsupported("I can't find #W0000001.", [], "where is #W0000001") == []


def test_privacy_and_reply_checks() -> None:
    turn = Turn.model_validate(
        {
            "channel": "web",
            "sender": "x",
            "text": "hi",
            "expect": {"reply_contains": ["processed", {"regex": r"\d{12}"}], "reply_excludes": ["delivered"]},
        }
    )
    everyone = {"james_li_5688": JAMES, "noah_brown_6181": NOAH}
    clean = record("Order #W2611340 is processed. Tracking number: 357962501027.", [ORDER_RESULT])
    assert all(c.passed for c in turn_checks(turn, clean, 0, JAMES, everyone, None))
    leaky = record("Order #W7678072 is delivered.", [ORDER_RESULT])
    failed = {c.evaluator for c in turn_checks(turn, leaky, 0, JAMES, everyone, None) if not c.passed}
    assert failed == {"reply", "privacy", "grounding"}


def test_handoff_completeness_names_missing_fields() -> None:
    turn = Turn.model_validate(
        {"channel": "web", "sender": "x", "text": "agent", "expect": {"handoff": {"stall": "customer_requested_human"}}}
    )
    packet = {
        "version": "1.1",
        "customer": {"id": "c", "verification_level": "anonymous"},
        "channel": "web",
        "intent": "human_request",
        "goal": "",
        "stall": {"type": "customer_requested_human", "evidence": ["x"]},
        "next_steps": ["y"],
        "priority": "normal",
        "sla_due_at": "z",
        "transcript_ref": "/v1/…",
    }
    checks = turn_checks(turn, record("ok", [], packet=packet, owner="queue"), 0, None, {}, None)
    handoff = [c for c in checks if c.evaluator == "handoff"]
    assert [c.passed for c in handoff] == [False, True]
    assert "goal" in handoff[0].detail


def test_after_hours_parity_compares_facts_not_wording() -> None:
    noon = [record("Hi! Order #W2611340 is processed.", [ORDER_RESULT])]
    night = [record("Good evening! Order #W2611340 is processed.", [ORDER_RESULT])]
    assert parity_check(noon, night).passed
    assert not parity_check(noon, [record("Order #W2611340 is delivered.", [ORDER_RESULT])]).passed


def test_shipped_suites_validate_and_cover_the_issue(tmp_path: Path) -> None:
    suites = [load_suite(p) for p in suite_paths()]
    assert {s.name for s in suites} >= {
        "order_status",
        "policy_faq",
        "promotions_delays",
        "continuity",
        "escalation",
        "silence",
        "injection",
        "sms_burst",
        "long_conversation",
        "bad_input",
    }
    assert all(s.version == 1 and s.offline and s.thresholds.pass_rate >= 0.9 for s in suites)
    stalls = {t.expect.handoff.stall for s in suites for sc in s.scenarios for t in sc.turns if t.expect.handoff}
    assert stalls >= {
        "customer_requested_human",
        "negative_sentiment",
        "repeated_failure",
        "no_knowledge_answer",
        "verification_failed",
        "policy_blocked",
        "sensitive_topic",
        "out_of_scope",
        "high_value_complaint",
    }
    assert SCHEMA_PATH.read_text() == json_schema(), "run `threadline eval schema > evals/suite.schema.json`"
    assert SUITES_DIR.is_dir()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 2\nname: x\nscenarios: []\n", "unsupported version 2"),
        ("version: 1\nname: x\nscenarios: []\n", "scenarios"),
        ("version: 1\nname: x\nscenarios:\n  - id: a\n    turns: [{channel: fax, sender: s}]\n", "channel"),
        (
            "version: 1\nname: x\nscenarios:\n  - id: a\n    turns: [{channel: web, sender: s, expect: {tools: "
            "{match: fuzzy}}}]\n",
            "match",
        ),
        (
            "version: 1\nname: x\nscenarios:\n  - id: a\n    turns: [{channel: web, sender: s, surprise: 1}]\n",
            "surprise",
        ),
        ("[1, 2", "cannot read suite"),
    ],
)
def test_bad_suites_fail_with_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInputError, match=message):
        load_suite(path)


def test_report_escapes_everything() -> None:
    hostile = "<script>alert(1)</script>"
    data = {
        "passed": False,
        "suites": [
            {
                "suite": "s",
                "model": "offline",
                "trials": 1,
                "pass_k": 0.0,
                "passed": False,
                "thresholds": {"pass_rate": 1.0},
                "shortfalls": ["pass^1 0.000 < 1.000"],
                "scores": {"reply": 0.0},
                "scenarios": [
                    {
                        "id": "a",
                        "description": hostile,
                        "pass_k": False,
                        "trial_pass_rate": 0.0,
                        "runs": [
                            {
                                "trial": 0,
                                "passed": False,
                                "checks": [{"evaluator": "reply", "passed": False, "detail": hostile, "turn": 0}],
                                "transcript": [record(hostile, [hostile], text=hostile).as_json()],
                            },
                        ],
                    },
                ],
            }
        ],
    }
    page = render_html(data)
    assert hostile not in page
    assert "&lt;script&gt;" in page
    assert "<link" not in page and "src=" not in page and "http" not in page.split("</style>")[0]
