"""The suite runner: each scenario on a fresh product, k trials, evaluators, pass^k and the suite's thresholds.

A scenario passes a trial when every check of that trial passes (`task_success`); it passes the suite's pass^k
when it passes all k trials. A suite passes when its pass^k rate and each evaluator's score (share of passed
checks over every trial) reach the suite's thresholds; an evaluator with no threshold of its own must reach
`DEFAULT_EVALUATOR_THRESHOLD`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from threadline.evals.driver import CustomerFacts, Driver, DriverFactory, TurnRecord
from threadline.evals.evaluators import (
    Check,
    Judge,
    consistency_checks,
    order_checks,
    parity_check,
    scores,
    turn_checks,
)
from threadline.evals.suite import AFTER_HOURS_AT, BUSINESS_HOURS_AT, PERSONA_FIELDS, Scenario, Suite, Turn

DEFAULT_EVALUATOR_THRESHOLD = 0.9
Progress = Callable[[str], None]


@dataclass
class ScenarioRun:
    """One trial of one scenario."""

    trial: int
    records: list[TurnRecord]
    checks: list[Check]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def as_json(self) -> dict[str, Any]:
        return {
            "trial": self.trial,
            "passed": self.passed,
            "checks": [c.as_json() for c in self.checks],
            "transcript": [r.as_json() for r in self.records],
        }


@dataclass
class ScenarioResult:
    """Every trial of one scenario."""

    scenario: Scenario
    runs: list[ScenarioRun] = field(default_factory=list)

    @property
    def pass_k(self) -> bool:
        """Passed every trial."""
        return bool(self.runs) and all(r.passed for r in self.runs)

    @property
    def pass_rate(self) -> float:
        return sum(r.passed for r in self.runs) / len(self.runs) if self.runs else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.scenario.id,
            "description": self.scenario.description,
            "pass_k": self.pass_k,
            "trial_pass_rate": round(self.pass_rate, 4),
            "runs": [r.as_json() for r in self.runs],
        }


@dataclass
class SuiteResult:
    """A suite's scenarios, evaluator scores and verdict."""

    suite: Suite
    path: str
    trials: int
    model: str
    scenarios: list[ScenarioResult]

    @property
    def checks(self) -> list[Check]:
        return [c for s in self.scenarios for r in s.runs for c in r.checks]

    @property
    def scores(self) -> dict[str, float]:
        found = scores(self.checks)
        runs = [r for s in self.scenarios for r in s.runs]
        found["task_success"] = sum(r.passed for r in runs) / len(runs) if runs else 0.0
        return dict(sorted(found.items()))

    @property
    def pass_k_rate(self) -> float:
        return sum(s.pass_k for s in self.scenarios) / len(self.scenarios) if self.scenarios else 0.0

    def shortfalls(self) -> list[str]:
        """Why the suite misses its thresholds (empty when it passes)."""
        found = []
        wanted = self.suite.thresholds
        if self.pass_k_rate < wanted.pass_rate:
            found.append(f"pass^{self.trials} {self.pass_k_rate:.3f} < {wanted.pass_rate:.3f}")
        for name, score in self.scores.items():
            floor = wanted.evaluators.get(name, DEFAULT_EVALUATOR_THRESHOLD)
            if score < floor:
                found.append(f"{name} {score:.3f} < {floor:.3f}")
        return found

    @property
    def passed(self) -> bool:
        return not self.shortfalls()

    def as_json(self) -> dict[str, Any]:
        return {
            "suite": self.suite.name,
            "version": self.suite.version,
            "path": self.path,
            "model": self.model,
            "trials": self.trials,
            "passed": self.passed,
            "pass_k": round(self.pass_k_rate, 4),
            "thresholds": self.suite.thresholds.model_dump(),
            "scores": {k: round(v, 4) for k, v in self.scores.items()},
            "shortfalls": self.shortfalls(),
            "scenarios": [s.as_json() for s in self.scenarios],
        }


def _persona(text: str, facts: CustomerFacts | None) -> str:
    if facts is None or "{" not in text:
        return text
    values = {
        "email": facts.email,
        "name": facts.name,
        "first_name": facts.name.split()[0],
        "last_name": facts.name.split()[-1],
        "zip": facts.zip,
        "user_id": facts.user_id,
    }
    for key in PERSONA_FIELDS:
        text = text.replace("{" + key + "}", values[key])
    return text


def _clock(start: datetime, turns: Sequence[Turn], force_hour: int | None) -> list[datetime]:
    """The test clock at each turn: days between turns, business hours or after hours, in UTC."""
    now = start if start.tzinfo else start.replace(tzinfo=UTC)
    moments = []
    for turn in turns:
        now = now + timedelta(days=turn.after_days)
        at = {"business_hours": BUSINESS_HOURS_AT, "after_hours": AFTER_HOURS_AT}.get(turn.at or "")
        hour = force_hour if force_hour is not None else (at.hour if at else None)
        if hour is not None:
            now = now.replace(hour=hour, minute=0, second=0, microsecond=0)
        moments.append(now)
        now = now + timedelta(seconds=30)
    return moments


def play(scenario: Scenario, driver: Driver, force_hour: int | None = None) -> list[TurnRecord]:
    """Send a scenario's turns through an open product; returns what each turn led to."""
    persona = driver.customers().get(scenario.persona.user_id or "")
    for article in scenario.setup.articles:
        driver.publish(article.model_dump())
    for order_id, note in scenario.setup.order_notes.items():
        driver.annotate_order(order_id, note)
    records = []
    for turn, at in zip(scenario.turns, _clock(scenario.start, scenario.turns, force_hour), strict=True):
        text = " ".join([_persona(turn.text, persona)] * turn.repeat)
        record = driver.turn(turn.channel, _persona(turn.sender, persona), text, vouched=turn.vouched, at=at)
        record.label = turn.label
        records.append(record)
    return records


def _play_fresh(scenario: Scenario, factory: DriverFactory, force_hour: int | None) -> list[TurnRecord]:
    driver = factory()
    try:
        return play(scenario, driver, force_hour)
    finally:
        driver.close()


def run_scenario(scenario: Scenario, factory: DriverFactory, trial: int = 0, judge: Judge | None = None) -> ScenarioRun:
    """One trial: a fresh product, the turns, every evaluator."""
    driver = factory()
    try:
        records = play(scenario, driver)
        everyone = driver.customers()
        own = everyone.get(scenario.persona.user_id or "")
        checks = [
            check
            for index, (turn, record) in enumerate(zip(scenario.turns, records, strict=True))
            for check in turn_checks(turn, record, index, own, everyone, judge)
        ]
        checks += order_checks(scenario, driver)
    finally:
        driver.close()
    checks += consistency_checks(scenario, records)
    if scenario.expect.after_hours_parity:
        noon = _play_fresh(scenario, factory, BUSINESS_HOURS_AT.hour)
        night = _play_fresh(scenario, factory, AFTER_HOURS_AT.hour)
        checks.append(parity_check(noon, night))
    return ScenarioRun(trial, records, checks)


def run_suite(
    suite: Suite,
    factory: DriverFactory,
    *,
    path: Path | str = "",
    trials: int = 1,
    model: str = "offline",
    judge: Judge | None = None,
    progress: Progress | None = None,
) -> SuiteResult:
    """Every scenario of a suite, `trials` times each."""
    results = []
    for scenario in suite.scenarios:
        result = ScenarioResult(scenario)
        for trial in range(trials):
            result.runs.append(run_scenario(scenario, factory, trial, judge))
            if progress:
                progress(f"{suite.name}/{scenario.id}")
        results.append(result)
    return SuiteResult(suite, str(path), trials, model, results)


def summary(results: Sequence[SuiteResult]) -> dict[str, Any]:
    """All suites' results as one JSON object."""
    return {
        "passed": all(r.passed for r in results),
        "suites": [r.as_json() for r in results],
    }
