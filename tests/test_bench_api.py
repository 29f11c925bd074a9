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
    for side in ("turns", "baseline", "hello_world"):
        assert throughput[side]["requests"] >= 2 and _ordered(throughput[side]), side
        cores = throughput[side]["cpu_cores"]
        assert cores["client"] > 0 and 0 < cores["server"] <= cores["machine"], (side, cores)
    assert set(throughput["turns"]["responses"]) == {"owner ai"}  # every turn answered by the AI, none refused
    assert set(throughput["baseline"]["responses"]) == {"owner ai"}
    assert set(throughput["hello_world"]["responses"]) == {"ok"}
    assert result["api_turn_ratio"] == result["api_turns_per_s"] / result["baseline_turns_per_s"]

    scaling = result["scaling"]
    assert set(scaling["1_worker"]["responses"]) == set(scaling["2_workers"]["responses"]) == {"owner ai"}
    assert len(scaling["1_worker"]["cpu_cores"]["server_processes"]) == 1
    assert len(scaling["2_workers"]["cpu_cores"]["server_processes"]) >= 3  # uvicorn's supervisor and two workers
    assert result["api_scaling_2w"] == result["api_turns_per_s_pg_2w"] / result["api_turns_per_s_pg_1w"]

    for name, slow in result["slow_model"].items():
        assert _ordered(slow["capacity"]) and _ordered(slow["open_loop"]), name
        assert slow["arrival_rate_per_s"] == pytest.approx(slow["load_fraction"] * slow["capacity"]["per_s"])
        assert slow["added_ms"]["p50_ms"] <= slow["added_ms"]["p99_ms"]
        assert slow["model_call_mean_ms"] >= slow["model_latency_s"] * 1000  # the model server slept as told
        assert slow["model_calls_counted"] == slow["model_calls_inferred"]  # the attribution of model time holds
    assert result["slow_model"]["turns"]["added_ms"]["p99_ms"] == result["api_added_p99_ms"]
    assert result["slow_model"]["baseline"]["added_ms"]["p99_ms"] == result["baseline_added_p99_ms"]
    at_our_rate = result["slow_model"]["baseline"]["at_our_rate"]
    assert at_our_rate["arrival_rate_per_s"] == result["slow_model"]["turns"]["arrival_rate_per_s"]
    assert at_our_rate["model_calls_counted"] == at_our_rate["model_calls_inferred"]

    for backend in ("sqlite", "postgres"):
        assert _ordered(result["databases"][backend]), backend

    servers = result["servers"]
    # cold, warm, baseline, hello world; one and two workers on Postgres; simulated model, ours and baseline on it
    assert len(servers["pids"]) == len(servers["ports"]) == 9
    assert all(_gone(pid) for pid in servers["pids"])
    assert not any(_listening(port) for port in servers["ports"])

    console = Console(record=True, width=140)
    console.print(render(result))
    assert "turn ratio" in console.export_text()
