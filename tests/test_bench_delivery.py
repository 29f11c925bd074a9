"""The delivery benchmark: a burst of SMS webhooks against a slow model with the outbox and without a sender, real
`threadline serve` processes; well-formed figures lifted into the suite's goals (never wall-clock limits)."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from threadline.bench import delivery
from threadline.bench.suite import render_all, run_all


@pytest.mark.slow
def test_a_quick_run_times_the_burst_both_ways_and_counts_the_late_replies() -> None:
    result = run_all(quick=True, only="delivery")

    assert json.loads(json.dumps(result)) == result
    measured = result["delivery"]
    assert measured["webhooks"] == delivery.QUICK_WEBHOOKS and measured["budget_ms"] == delivery.BUDGET_MS
    outbox, synchronous = measured["outbox"], measured["synchronous"]
    assert 0 < outbox["p50_ms"] <= outbox["p99_ms"] <= outbox["max_ms"]
    assert 0 < synchronous["p50_ms"] <= synchronous["p99_ms"] <= synchronous["max_ms"]
    # Every late reply reached the local Messages API: nothing queued in the outbox was lost.
    assert outbox["replies_delivered"] == delivery.QUICK_WEBHOOKS and measured["late_replies_delivered"] == 1.0
    assert measured["webhook_budget_ratio"] == pytest.approx(outbox["p99_ms"] / delivery.BUDGET_MS, 1e-3)
    for key in ("webhook_budget_ratio", "late_replies_delivered"):
        assert result[key] == measured[key] and key in result["goals"]
    console = Console(record=True, width=160)
    for table in render_all(result):
        console.print(table)
    assert "SMS webhooks at once" in console.export_text()
