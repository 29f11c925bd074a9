"""The turn benchmark runs end to end and reports well-formed numbers (never wall-clock limits)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from threadline.bench.turns import QUICK_TURNS, measure_baseline, render, run

SIDE_KEYS = (
    "turns_per_s",
    "mean_ms",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "first_quarter_mean_ms",
    "last_quarter_mean_ms",
)


def _positive(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_quick_run_reports_both_sides_and_their_ratio() -> None:
    result = run(quick=True)

    assert json.loads(json.dumps(result)) == result
    for side in ("threadline", "baseline"):
        summary = result[side]
        assert summary["turns"] == QUICK_TURNS
        for key in SIDE_KEYS:
            assert _positive(summary[key]), (side, key, summary[key])
        assert summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"] <= summary["max_ms"]
        assert all(_positive(v) for v in summary["by_kind_mean_ms"].values())
    assert set(result["threadline"]["by_kind_mean_ms"]) == {"greeting", "my_orders", "order_status", "policy"}
    assert _positive(result["turn_cost_ratio"])
    assert result["machine"]["cpu_count"] >= 1
    assert result["machine"]["python"]

    console = Console(record=True, width=120)
    console.print(render(result))
    assert "turn cost ratio" in console.export_text()


def test_baseline_tool_loop_answers_each_turn(tmp_path: Path) -> None:
    summary = measure_baseline(5, tmp_path)

    assert summary["turns"] == 5
    assert summary["by_kind_mean_ms"].keys() == {"order_status"}
    assert all(_positive(summary[key]) for key in SIDE_KEYS)
