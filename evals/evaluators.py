"""Evaluators: small functions from a turn (or a scenario run) and its expectations to named checks.

| evaluator | checks |
|---|---|
| `trajectory` | the tools a turn called, against the expected calls (strict / unordered / subset / superset) |
| `reply` | reply contains / excludes (text or regex), silence, cited articles, SMS length, refusal code |
| `ownership` | who owns the case after the turn |
| `handoff` | the handoff packet: stall type, required and exact fields, and the core fields every packet needs |
| `grounding` | every status, date, price, tracking number and policy statement comes from a tool result |
| `privacy` | no order id, tracking number, email or address of another customer in a reply |
| `order_state` | the order system's final state |
| `consistency` | labelled turns (e.g. the same question on two channels) state the same facts |
| `after_hours` | the scenario run at 11 PM gives the same tools, owner and facts as at noon |
| `judge` | an LLM judge's verdict on a rubric, only when a judge model is configured |

`task_success` is a scenario-level verdict: every check of the run passed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from threadline.evals import grounding
from threadline.evals.driver import CustomerFacts, Driver, TurnRecord
from threadline.evals.suite import (
    ArgMatcher,
    HandoffExpectation,
    Scenario,
    TextPattern,
    ToolCall,
    ToolExpectation,
    Turn,
)

QUEUE_WAIT = re.compile(r"They usually reply within [^.]*\.")
"""The desk's statement of the expected wait for a person (`graphs.nodes.expected_wait`)."""

EVALUATORS = (
    "task_success",
    "trajectory",
    "reply",
    "ownership",
    "handoff",
    "grounding",
    "privacy",
    "order_state",
    "consistency",
    "after_hours",
    "judge",
)
PACKET_CORE = (
    "version",
    "customer.id",
    "customer.verification_level",
    "channel",
    "intent",
    "goal",
    "stall.type",
    "stall.evidence",
    "next_steps",
    "priority",
    "sla_due_at",
    "transcript_ref",
)
SMS_SEGMENT_CHARS = 153
Judge = Callable[[str, TurnRecord], tuple[bool, str]]


@dataclass(frozen=True)
class Check:
    """One evaluator's verdict on one turn (index) or on the whole scenario (index None)."""

    evaluator: str
    passed: bool
    detail: str
    turn: int | None = None
    skipped: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "evaluator": self.evaluator,
            "passed": self.passed,
            "detail": self.detail,
            "turn": self.turn,
            "skipped": self.skipped,
        }


# --- trajectory -------------------------------------------------------------------------------------------------


def arg_matches(expected: ArgMatcher | str | int | float | bool | None, actual: Any) -> bool:
    """Whether one actual argument value satisfies its matcher (a bare value is an exact match)."""
    if not isinstance(expected, ArgMatcher):
        return bool(actual == expected)
    if expected.present is not None:
        return (actual is not None) == expected.present
    if expected.equals is not None:
        return bool(actual == expected.equals)
    text = "" if actual is None else str(actual)
    if expected.contains is not None:
        return expected.contains.lower() in text.lower()
    return expected.regex is not None and re.search(expected.regex, text, re.I) is not None


def call_matches(expected: ToolCall, actual: dict[str, Any]) -> bool:
    """Whether an actual call (`{"name", "args"}`) is the expected one."""
    if expected.name != actual.get("name"):
        return False
    args = actual.get("args") or {}
    return all(arg_matches(matcher, args.get(key)) for key, matcher in expected.args.items())


def _assign(expected: Sequence[ToolCall], actual: Sequence[dict[str, Any]]) -> int:
    """How many expected calls can be paired one-to-one with distinct actual calls (greedy in order)."""
    used: set[int] = set()
    paired = 0
    for call in expected:
        for index, candidate in enumerate(actual):
            if index not in used and call_matches(call, candidate):
                used.add(index)
                paired += 1
                break
    return paired


def trajectory_match(spec: ToolExpectation, actual: Sequence[dict[str, Any]]) -> bool:
    """The actual calls against the expectation under its match mode."""
    expected = spec.calls
    if spec.match == "strict":
        return len(expected) == len(actual) and all(call_matches(e, a) for e, a in zip(expected, actual, strict=True))
    if spec.match == "unordered":
        return len(expected) == len(actual) and _assign(expected, actual) == len(expected)
    if spec.match == "superset":
        return _assign(expected, actual) == len(expected)
    # subset: every actual call is one of the expected calls
    return all(any(call_matches(e, a) for e in expected) for a in actual) and _assign(expected, actual) == len(actual)


# --- per-turn checks --------------------------------------------------------------------------------------------


def _pattern_found(pattern: str | TextPattern, reply: str) -> bool:
    if isinstance(pattern, str):
        return pattern.lower() in reply.lower()
    if pattern.text is not None:
        return pattern.text.lower() in reply.lower()
    return re.search(pattern.regex or "", reply, re.I | re.S) is not None


def _describe(pattern: str | TextPattern) -> str:
    return pattern if isinstance(pattern, str) else (pattern.text or f"/{pattern.regex}/")


def _dig(packet: dict[str, Any], path: str) -> Any:
    value: Any = packet
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def handoff_checks(spec: HandoffExpectation | None, record: TurnRecord, index: int) -> list[Check]:
    """The packet of a turn that handed off: core fields always, and the turn's own expectations."""
    if record.packet is None:
        if spec is None:
            return []
        return [Check("handoff", False, "expected a handoff packet; the turn did not hand off", index)]
    missing = [p for p in (*PACKET_CORE, *(spec.required if spec else [])) if _dig(record.packet, p) in (None, "", [])]
    found = [Check("handoff", not missing, f"missing packet fields: {missing}" if missing else "complete", index)]
    if spec and spec.stall is not None:
        stall = _dig(record.packet, "stall.type")
        found.append(Check("handoff", stall == spec.stall, f"stall {stall!r}, expected {spec.stall!r}", index))
    for path, value in (spec.equals if spec else {}).items():
        actual = _dig(record.packet, path)
        found.append(Check("handoff", actual == value, f"{path} = {actual!r}, expected {value!r}", index))
    return found


def foreign_data(reply: str, own: CustomerFacts | None, everyone: dict[str, CustomerFacts], typed: str) -> list[str]:
    """Values in the reply that belong to another customer (and that the customer did not type themselves)."""
    leaks = []
    for facts in everyone.values():
        if own is not None and facts.user_id == own.user_id:
            continue
        for value in (*facts.order_ids, *facts.tracking_ids, facts.email, *facts.addresses):
            if value and value in reply and value not in typed:
                leaks.append(value)
    return leaks


def turn_checks(
    turn: Turn,
    record: TurnRecord,
    index: int,
    own: CustomerFacts | None,
    everyone: dict[str, CustomerFacts],
    judge: Judge | None,
) -> list[Check]:
    """Every check one turn's expectations ask for."""
    expect, reply = turn.expect, record.reply or ""
    found: list[Check] = []
    if expect.error is not None or record.error is not None:
        ok = record.error == expect.error
        found.append(Check("reply", ok, f"refusal {record.error!r}, expected {expect.error!r}", index))
        return found
    if expect.tools is not None:
        ok = trajectory_match(expect.tools, record.tools)
        called = [f"{t['name']}({t.get('args') or {}})" for t in record.tools]
        found.append(Check("trajectory", ok, f"{expect.tools.match} match; called {called}", index))
    evidence = "\n".join(r.content for r in record.results)
    for pattern in expect.tool_results_contain:
        ok = _pattern_found(pattern, evidence)
        found.append(Check("trajectory", ok, f"tool results contain {_describe(pattern)!r}", index))
    for pattern in expect.reply_contains:
        ok = _pattern_found(pattern, reply)
        found.append(Check("reply", ok, f"reply contains {_describe(pattern)!r}", index))
    for pattern in expect.reply_excludes:
        ok = not _pattern_found(pattern, reply)
        found.append(Check("reply", ok, f"reply does not contain {_describe(pattern)!r}", index))
    if expect.silent is not None:
        ok = (record.reply is None) == expect.silent
        found.append(Check("reply", ok, "no reply" if expect.silent else "a reply", index))
    for title in expect.cites:
        found.append(Check("reply", f"Source: {title}".lower() in reply.lower(), f"cites {title!r}", index))
    if expect.max_sms_segments is not None:
        segments = -(-len(reply) // SMS_SEGMENT_CHARS)
        found.append(Check("reply", segments <= expect.max_sms_segments, f"{segments} SMS segments", index))
    if expect.owner is not None:
        found.append(Check("ownership", record.owner == expect.owner, f"owner {record.owner!r}", index))
    found += handoff_checks(expect.handoff, record, index)
    if expect.grounded and record.reply:
        # A hand-off the policy decided from the order system quotes what the code read there (the stall detail);
        # the wait a waiting customer is told is the queue's target, not a claim about the store.
        decided = [str(_dig(record.packet, "stall.detail") or "")] if record.packet else []
        said = QUEUE_WAIT.sub("", record.reply) if record.owner == "queue" else record.reply
        bad = grounding.unsupported(said, [*(r.content for r in record.results), *decided], record.text)
        detail = "; ".join(f"{c.kind}: {c.text}" for c in bad) if bad else "every claim supported"
        found.append(Check("grounding", not bad, detail, index))
    if expect.no_foreign_data and record.reply:
        leaks = foreign_data(record.reply, own, everyone, record.text)
        found.append(Check("privacy", not leaks, f"other customers' data: {leaks}" if leaks else "clean", index))
    if expect.judge is not None:
        if judge is None:
            found.append(Check("judge", True, "no judge model configured", index, skipped=True))
        else:
            ok, why = judge(expect.judge, record)
            found.append(Check("judge", ok, why, index))
    return found


# --- scenario checks --------------------------------------------------------------------------------------------


def order_checks(scenario: Scenario, driver: Driver) -> list[Check]:
    """The order system's final state."""
    found = []
    for order_id, state in scenario.expect.orders.items():
        actual = driver.order_status(order_id)
        if actual is None:
            found.append(Check("order_state", False, f"{order_id} not found"))
            continue
        status, items = actual
        ok = (state.status is None or state.status == status) and (state.item_count in (None, items))
        found.append(Check("order_state", ok, f"{order_id}: {status}, {items} items"))
    return found


def consistency_checks(scenario: Scenario, records: Sequence[TurnRecord]) -> list[Check]:
    """Turns in a consistency group state the same facts (and some facts at all)."""
    by_label = {r.label: r for r in records if r.label}
    found = []
    for group in scenario.expect.consistent:
        sets = {label: grounding.facts(by_label[label].reply) for label in group}
        first = next(iter(sets.values()))
        ok = bool(first) and all(s == first for s in sets.values())
        detail = "; ".join(f"{label}: {sorted(s)}" for label, s in sets.items())
        found.append(Check("consistency", ok, detail))
    return found


def parity_check(noon: Sequence[TurnRecord], night: Sequence[TurnRecord]) -> Check:
    """The same scenario at noon and at 11 PM: same tools, owner, silence and facts turn by turn."""

    def shape(record: TurnRecord) -> tuple[Any, ...]:
        names = tuple(t["name"] for t in record.tools)
        return names, record.owner, record.reply is None, grounding.facts(record.reply), record.error

    differences = [i for i, (a, b) in enumerate(zip(noon, night, strict=True)) if shape(a) != shape(b)] + (
        [-1] if len(noon) != len(night) else []
    )
    detail = f"turns differing between noon and 11 PM: {differences}" if differences else "same outcome"
    return Check("after_hours", not differences, detail)


def scores(checks: Sequence[Check]) -> dict[str, float]:
    """Share of passed checks per evaluator (skipped checks do not count)."""
    total, passed = Counter[str](), Counter[str]()
    for check in checks:
        if check.skipped:
            continue
        total[check.evaluator] += 1
        passed[check.evaluator] += check.passed
    return {name: passed[name] / total[name] for name in total}
