"""The first-turn benchmark: a real `threadline chat` process on fresh directories, then again; well-formed figures
lifted into the suite's goals (never wall-clock limits)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from rich.console import Console

from threadline.bench import start
from threadline.bench.suite import render_all, run_all


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_a_quick_run_times_a_cold_and_a_warm_first_turn_and_their_ratio() -> None:
    result = run_all(quick=True, only="start")

    assert json.loads(json.dumps(result)) == result
    measured = result["start"]
    assert len(measured["pairs"]) == start.QUICK_PAIRS
    for key in ("cold_first_turn_s", "warm_turn_s", "cold_start_ratio"):
        assert _positive(measured[key]) and result[key] == measured[key], key
    assert measured["cold_start_ratio"] == pytest.approx(measured["cold_first_turn_s"] / measured["warm_turn_s"], 1e-3)
    # Nothing of start-up is computed (the vectors shipped); at most the customer's own words are, for their memory.
    assert measured["cold_vectors_computed"] <= 2
    assert result["goals"]["cold_start_ratio"]["goal"] == "<= 2"
    assert result["goals"]["cold_start_ratio"]["met"] is (measured["cold_start_ratio"] <= 2)
    console = Console(record=True, width=140)
    for table in render_all(result):
        console.print(table)
    assert "cold_start_ratio" in console.export_text()
