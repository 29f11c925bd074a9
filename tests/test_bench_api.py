"""The API benchmark runs end to end against real server processes, reports well-formed numbers (never
wall-clock limits) and leaves no server behind."""

from __future__ import annotations

import json
import math
import os
import socket
from typing import Any

import pytest
from rich.console import Console

from threadline.bench.api import render, run

HEADLINES = (
    "api_turns_per_s",
    "hello_world_rps",
    "api_added_p99_ms",
    "turn_ms_sqlite",
    "turn_ms_postgres",
    "cold_start_s",
    "warm_start_s",
)


def _positive(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


def _ordered(summary: dict[str, Any]) -> bool:
    return bool(0 < summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"] <= summary["max_ms"])


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_quick_run_reports_every_figure_and_stops_its_servers() -> None:
    result = run(quick=True)

    assert json.loads(json.dumps(result)) == result
    for key in HEADLINES:
        assert _positive(result[key]), (key, result[key])
    throughput = result["throughput"]
    assert throughput["clients"] >= 1
    for side in ("turns", "hello_world"):
        assert throughput[side]["requests"] >= 2 and _ordered(throughput[side]), side
    assert set(throughput["turns"]["responses"]) == {"owner ai"}  # every turn answered by the AI, none refused
    assert set(throughput["hello_world"]["responses"]) == {"ok"}

    slow = result["slow_model"]
    assert _ordered(slow["capacity"]) and _ordered(slow["open_loop"])
    assert slow["arrival_rate_per_s"] == pytest.approx(slow["load_fraction"] * slow["capacity"]["per_s"])
    assert slow["added_ms"]["p50_ms"] <= slow["added_ms"]["p99_ms"] == result["api_added_p99_ms"]
    assert slow["model_call_mean_ms"] >= slow["model_latency_s"] * 1000  # the model server slept as told
    assert slow["model_calls_counted"] == slow["model_calls_inferred"]  # the attribution of model time holds

    for backend in ("sqlite", "postgres"):
        assert _ordered(result["databases"][backend]), backend

    servers = result["servers"]
    assert len(servers["pids"]) == len(servers["ports"]) == 5  # cold, warm, hello world, simulated model, slow
    assert all(_gone(pid) for pid in servers["pids"])
    assert not any(_listening(port) for port in servers["ports"])

    console = Console(record=True, width=140)
    console.print(render(result))
    assert "turns/s" in console.export_text()
