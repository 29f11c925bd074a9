"""Every benchmark in one run, and the headline figures the performance goals are stated in.

Each benchmark measures its side-by-side comparison within itself (ours beside a baseline, interleaved), so
the ratios hold on a shared, noisy machine. The headline keys sit at the top of the result; each benchmark's
detail sits under its own name.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Literal

from rich.table import Table

Only = Literal["all", "turns", "history", "api", "knowledge", "orders", "start", "delivery"]
PARTS: tuple[Only, ...] = ("turns", "history", "api", "knowledge", "orders", "start", "delivery")
GOALS: dict[str, tuple[str, float]] = {
    "turn_cost_ratio": ("<=", 1.5),
    "history_flatness_ratio": ("<=", 1.3),
    "checkpoint_bytes_ratio": ("<=", 20.0),
    "api_turn_ratio": (">=", 0.7),
    "api_scaling_2w": (">=", 1.6),
    "api_added_p99_ratio": ("<=", 1.5),
    "kb_p99_ms_100k": ("<=", 1.0),
    "kb_recall10_100k": (">=", 0.95),
    "order_lookup_ratio": ("<=", 10.0),
    "cold_start_ratio": ("<=", 2.0),
    "webhook_budget_ratio": ("<=", 1.5),
    "late_replies_delivered": (">=", 1.0),
}
"""The stated goal of each headline figure: (comparison, bound). Absolute times and rates move with the machine,
so the HTTP API's goals are ratios to a minimal LangGraph loop served the same way (`bench.api`); its turns/s and
added p99 in milliseconds are reported beside them, without a goal."""
API_HEADLINES = (
    "api_turn_ratio",
    "api_turns_per_s",
    "baseline_turns_per_s",
    "hello_world_rps",
    "api_scaling_2w",
    "api_turns_per_s_pg_1w",
    "api_turns_per_s_pg_2w",
    "api_added_p99_ratio",
    "api_added_p99_ms",
    "baseline_added_p99_ms",
    "baseline_added_p99_ms_at_our_rate",
    "cold_start_s",
    "warm_start_s",
)


def _headline(result: dict[str, Any]) -> dict[str, Any]:
    """The goal figures lifted to the top (those whose benchmark ran), plus CPU-time twins where the wall clock
    of a shared machine adds its own queueing to a sub-millisecond figure."""
    top: dict[str, Any] = {}
    if "history" in result:
        top["history_flatness_ratio"] = result["history"]["history_flatness_ratio"]
        top["checkpoint_bytes_ratio"] = result["history"]["checkpoint_bytes_ratio"]
    if "api" in result:
        for key in API_HEADLINES:
            if key in result["api"]:
                top[key] = result["api"][key]
    if "knowledge" in result:
        knowledge = result["knowledge"]
        suffix = "100k" if knowledge["largest"] == 100_000 else str(knowledge["largest"])
        top[f"kb_p99_ms_{suffix}"] = knowledge["search_p99_ms"]
        top[f"kb_cpu_p99_ms_{suffix}"] = knowledge["search_cpu_p99_ms"]
        top[f"kb_recall10_{suffix}"] = knowledge["recall10"]
    if "orders" in result:
        top["order_lookup_p99_ms"] = result["orders"]["order_lookup_p99_ms"]
        top["order_lookup_cpu_p99_ms"] = result["orders"]["order_lookup_cpu_p99_ms"]
        top["order_lookup_ratio"] = result["orders"]["order_lookup_ratio"]
        top["order_lookup_cpu_ratio"] = result["orders"]["order_lookup_cpu_ratio"]
        top["order_lookup_orders"] = result["orders"]["orders"]
    if "start" in result:
        for key in ("cold_first_turn_s", "warm_turn_s", "cold_start_ratio"):
            top[key] = result["start"][key]
    if "delivery" in result:
        for key in ("webhook_budget_ratio", "webhook_sync_p99_s", "late_replies_delivered"):
            top[key] = result["delivery"][key]
    return top


def goals(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """For each goal whose figure was measured: the figure, the bound and whether it is met."""
    met: dict[str, dict[str, Any]] = {}
    for key, (op, bound) in GOALS.items():
        if key in result:
            value = float(result[key])
            met[key] = {
                "value": value,
                "goal": f"{op} {bound:g}",
                "met": value <= bound if op == "<=" else value >= bound,
            }
    return met


def run_all(quick: bool, *, only: Only = "all", log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """One JSON-able object: the turn benchmark's keys and the headline figures at the top, each other
    benchmark under its name, and `goals` saying which goal each measured figure meets."""
    os.environ.setdefault("LANGSMITH_TRACING", "false")
    say = log or (lambda _line: None)
    result: dict[str, Any] = {"quick": quick}
    for part in PARTS:
        if only not in ("all", part):
            continue
        say(f"— {part}")
        if part == "turns":
            from threadline.bench.turns import run as run_turns

            result.update(run_turns(quick, log=log))
        elif part == "history":
            from threadline.bench.history import run as run_history

            result["history"] = run_history(quick, log=log)
        elif part == "api":
            from threadline.bench.api import run as run_api

            result["api"] = run_api(quick, log=log)
        elif part == "knowledge":
            from threadline.bench.knowledge import run as run_knowledge

            result["knowledge"] = run_knowledge(quick=quick, log=log)
        elif part == "orders":
            from threadline.bench.orders import run as run_orders

            result["orders"] = run_orders(quick, log=log)
        elif part == "start":
            from threadline.bench.start import run as run_start

            result["start"] = run_start(quick, log=log)
        else:
            from threadline.bench.delivery import run as run_delivery

            result["delivery"] = run_delivery(quick, log=log)
    result.update(_headline(result))
    result["goals"] = goals(result)
    return result


def render_all(result: dict[str, Any]) -> list[Table]:
    """A table per benchmark present in `result`, then the goals."""
    from threadline.bench import history, knowledge, orders, turns

    tables = [turns.render(result)] if "turn_cost_ratio" in result else []
    if "history" in result:
        tables.append(history.render(result["history"]))
    if "api" in result:
        from threadline.bench import api

        tables.append(api.render(result["api"]))
    if "knowledge" in result:
        tables.append(knowledge.render(result["knowledge"]))
    if "orders" in result:
        tables.append(orders.render(result["orders"]))
    if "start" in result:
        from threadline.bench import start

        tables.append(start.render(result["start"]))
    if "delivery" in result:
        from threadline.bench import delivery

        tables.append(delivery.render(result["delivery"]))
    summary = Table("figure", "measured", "goal", "met", title="Goals")
    for key, row in result["goals"].items():
        summary.add_row(key, f"{row['value']:.3f}", row["goal"], "yes" if row["met"] else "no")
    tables.append(summary)
    return tables
