"""The history, order-lookup and suite-level benchmark code: well-formed figures and honest goal checks (never
wall-clock limits)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from rich.console import Console

from threadline.bench import history, orders
from threadline.bench.suite import GOALS, goals, render_all


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_goals_compare_each_figure_with_its_bound_in_the_right_direction() -> None:
    figures = {"turn_cost_ratio": 1.2, "api_scaling_2w": 1.59, "kb_recall10_100k": 0.95, "api_turns_per_s": 50.0}

    met = goals(figures)

    assert set(met) == {"turn_cost_ratio", "api_scaling_2w", "kb_recall10_100k"}  # turns/s is reported, no goal
    assert met["turn_cost_ratio"] == {"value": 1.2, "goal": "<= 1.5", "met": True}
    assert met["api_scaling_2w"]["met"] is False  # below a floor
    assert met["kb_recall10_100k"]["met"] is True  # exactly on the bound meets it
    assert set(GOALS) >= {"history_flatness_ratio", "api_turn_ratio", "api_scaling_2w", "api_added_p99_ratio"}


def test_order_lookup_reads_every_order_back_and_reports_both_clocks() -> None:
    result = orders.run(quick=True)

    assert json.loads(json.dumps(result)) == result
    assert result["orders"] == orders.QUICK_ORDERS
    for side in ("get_order", "bare_primary_key"):
        row = result[side]
        assert all(_positive(row[k]) for k in ("p50_ms", "p99_ms", "cpu_p50_ms", "cpu_p99_ms")), row
        assert row["p50_ms"] <= row["p99_ms"]
    assert result["order_lookup_p99_ms"] == result["get_order"]["p99_ms"]
    ratio = result["get_order"]["p99_ms"] / result["bare_primary_key"]["p99_ms"]
    assert result["order_lookup_ratio"] == pytest.approx(ratio, rel=0.01)
    # the floor is a single-row primary-key read: assembling a whole order cannot be cheaper in CPU
    assert result["bare_primary_key"]["cpu_p50_ms"] < result["get_order"]["cpu_p50_ms"]


def test_bulk_filled_orders_read_back_whole_through_the_order_system(tmp_path: Any) -> None:
    from threadline.core.types import OrderId
    from threadline.memory.db import Database
    from threadline.memory.repositories.orders import SqlOrderSystem

    url = f"sqlite:///{tmp_path / 'orders.db'}"
    orders.fill(url, 12, lambda _line: None)
    db = Database.from_url(url)
    try:
        order = SqlOrderSystem(db).get_order(OrderId("#B0000005"))
        assert order is not None
        assert order.customer_id == "cust-bench-000001"
        assert [i.name for i in order.items] == ["Bookshelf", "Desk Lamp"]
        assert order.fulfillments[0].tracking_ids == ["1Z0000000000000005"]
        assert str(order.payments[0].amount) == "100.98"
        assert SqlOrderSystem(db).get_order(OrderId("#B0000099")) is None
    finally:
        db.dispose()


@pytest.mark.slow
def test_history_benchmark_runs_one_long_conversation_on_both_sides() -> None:
    result = history.run(quick=True)

    assert json.loads(json.dumps(result)) == result
    for side in ("threadline", "baseline"):
        row = result[side]
        assert all(_positive(row[k]) for k in ("early_turn_cpu_ms", "late_turn_cpu_ms", "checkpoint_bytes")), row
        assert row["transcript_bytes"] > 0
    assert result["history_flatness_ratio"] == result["threadline"]["flatness_ratio"]
    # LangGraph's defaults keep every checkpoint of a thread that keeps every message; ours keeps neither
    assert result["checkpoint_bytes_ratio"] < result["baseline"]["checkpoint_bytes_ratio"]

    result.update({"goals": goals({"checkpoint_bytes_ratio": result["checkpoint_bytes_ratio"]})})
    console = Console(record=True, width=140)
    for table in render_all({"history": result, "goals": result["goals"]}):
        console.print(table)
    assert "checkpoint ÷ transcript" in console.export_text()
