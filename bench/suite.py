"""Every benchmark in one run: the turn benchmark and the knowledge-index benchmark."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Literal

from rich.table import Table

Only = Literal["all", "turns", "knowledge"]


def run_all(quick: bool, *, only: Only = "all", log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """One JSON-able object: the turn benchmark's keys at the top, the knowledge benchmark under `knowledge`."""
    os.environ.setdefault("LANGSMITH_TRACING", "false")
    result: dict[str, Any] = {}
    if only in ("all", "turns"):
        from bench.turns import run as run_turns

        result.update(run_turns(quick, log=log))
    if only in ("all", "knowledge"):
        from bench.knowledge import run as run_knowledge

        result["knowledge"] = run_knowledge(quick=quick, log=log)
    return result


def render_all(result: dict[str, Any]) -> list[Table]:
    """A table per benchmark present in `result`."""
    from bench.knowledge import render as render_knowledge
    from bench.turns import render as render_turns

    tables = [render_turns(result)] if "turn_cost_ratio" in result else []
    if "knowledge" in result:
        tables.append(render_knowledge(result["knowledge"]))
    return tables
