"""The HTTP API under load: real `threadline serve` processes on loopback, driven by an in-process client.

* `api_turns_per_s`: customer turns per second through `POST /v1/messages` on one uvicorn worker (offline model,
  SQLite, demo store), closed-loop with `CLIENTS` keep-alive connections over the demo customers, each customer
  signed in (a signed web identity) and owned by one connection, so no customer ever has two turns in flight.
  Beside it, `hello_world_rps`: a one-route FastAPI app served the same way and driven by the same client, in
  alternating blocks (ABBA) of the same run. Their ratio says what a turn costs over the cheapest request.
* `api_added_p99_ms`: what the framework adds to a turn with a slow model. A simulated OpenAI-compatible model
  (its own process, `slow_model_app`) answers every call after `MODEL_LATENCY_S` of asynchronous waiting, so
  it takes no CPU from the server under test; the API's capacity with it is measured
  closed-loop, then requests arrive open-loop (exponential inter-arrival times, fired on schedule whatever is in
  flight) at `LOAD_FRACTION` of that capacity. Added latency per turn = end-to-end latency - model calls x the
  mean model call time the model server measured; a turn that ends in an AI reply makes one model call per tool
  call plus the final one (the run checks that sum against the calls the model server counted).
* `turn_ms_sqlite` vs `turn_ms_postgres`: the turn benchmark's mix through `Conversations.handle` in this
  process (no HTTP, so only the database differs) on SQLite and on a fresh local Postgres database, ABBA.
* `cold_start_s` / `warm_start_s`: spawn of `threadline serve` to `GET /readyz` 200 on a fresh data dir, then
  again on the same one. The embedding cache (THREADLINE_CACHE_DIR) is shared between runs, so only a first run
  on a machine computes embeddings; the result says whether it was filled before the run.

The load client is `bench.load`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from fastapi import FastAPI
from langchain_core.messages import AIMessage
from psycopg import sql
from rich.table import Table

from threadline.agents.scripted_server import completion
from threadline.bench.load import (
    CHANNEL_KEY,
    IDENTITY_SECRET,
    Load,
    Traffic,
    closed_loop,
    describe,
    hello_requests,
    open_loop,
    percentiles_ms,
)
from threadline.bench.turns import BLOCK, ThreadlineRunner, Timings, demo_customers, machine, summarize
from threadline.core.settings import Settings
from threadline.core.tool_names import LOOKUP_ORDER, SEARCH_KNOWLEDGE
from threadline.product.loopback import free_port

CLIENTS = 16
ALL_CUSTOMERS = 10_000  # every demo customer with orders (438), spread over the connections
CAPACITY_CLIENTS = 64  # above the worker's 40 threads, so the probe finds the server's limit, not the client's
MODEL_LATENCY_S = 0.6
LOAD_FRACTION = 0.5
GOAL_TURNS_PER_S = 150
GOAL_ADDED_P99_MS = 100
UNLIMITED = str(10**9)  # the per-key and per-sender rate limits would otherwise answer 429 to the benchmark
READY_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 15.0
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"  # THREADLINE_BENCH_PG_DSN overrides it
REPO = Path(__file__).resolve().parents[1]
ORDER_ID = re.compile(r"#W\d{7}")


@dataclass(frozen=True)
class Sizes:
    """How long each phase runs."""

    block_s: float  # one closed-loop block; each side runs two, in ABBA order
    capacity_s: float
    open_loop_s: float
    db_turns: int


QUICK = Sizes(block_s=1.5, capacity_s=3.0, open_loop_s=4.0, db_turns=20)
FULL = Sizes(block_s=8.0, capacity_s=12.0, open_loop_s=25.0, db_turns=200)
Log = Callable[[str], None]


def hello_world_app() -> FastAPI:
    """The reference: FastAPI's hello world (`uvicorn --factory bench.api:hello_world_app`)."""
    app = FastAPI()

    @app.get("/")
    async def root() -> dict[str, str]:
        return {"message": "Hello World"}

    return app


# --- server processes -------------------------------------------------------------------------------------------


@dataclass
class Spawned:
    """A server process and how long it took to answer its readiness probe."""

    port: int
    process: subprocess.Popen[bytes]
    ready_s: float


@dataclass
class Processes:
    """Every server process the run started: pids and ports, for the report and the clean-up check."""

    pids: list[int] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)


def _get_status(port: int, path: str) -> int | None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            return int(s.recv(64).split(b" ", 2)[1])
    except (OSError, IndexError, ValueError):
        return None


@contextmanager
def spawn(argv: list[str], env: dict[str, str], log_path: Path, ready_path: str, seen: Processes) -> Iterator[Spawned]:
    """Run `argv` (with `{port}` filled in) until the block ends; yields once `ready_path` answers 200."""
    port = free_port()
    with log_path.open("ab") as log_file:
        start = time.perf_counter()
        process = subprocess.Popen(
            [a.replace("{port}", str(port)) for a in argv],
            env=env,
            cwd=log_path.parent,
            stdout=log_file,
            stderr=log_file,
        )
    seen.pids.append(process.pid)
    seen.ports.append(port)
    try:
        while _get_status(port, ready_path) != 200:
            if process.poll() is not None or time.perf_counter() - start > READY_TIMEOUT_S:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{argv[0]} did not become ready on port {port}:\n{tail}")
            time.sleep(0.05)
        yield Spawned(port, process, time.perf_counter() - start)
    finally:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _base_env(cache_dir: Path) -> dict[str, str]:
    # The servers get the benchmark's configuration only, never a THREADLINE_* setting of the caller's shell.
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
    return env | {
        "PYTHONPATH": str(REPO),
        "LANGSMITH_TRACING": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "THREADLINE_CACHE_DIR": str(cache_dir),
    }


def threadline_env(cache_dir: Path, data_dir: Path, **overrides: str) -> dict[str, str]:
    """The environment of a benchmark server: demo store, channel key, signed identities, no rate limits."""
    settings = {
        "DATA_DIR": str(data_dir),
        "LOAD_DEMO": "true",
        "MODEL": "offline",
        "LOG_LEVEL": "warning",
        "BOOTSTRAP_KEYS": f"channel:{CHANNEL_KEY}",
        "WEB_IDENTITY_SECRET": IDENTITY_SECRET,
        "RATE_PER_KEY_PER_MINUTE": UNLIMITED,
        "RATE_PER_SENDER_PER_MINUTE": UNLIMITED,
    } | overrides
    return _base_env(cache_dir) | {f"THREADLINE_{k}": v for k, v in settings.items()}


def threadline_argv() -> list[str]:
    """`threadline serve` on one worker (the console script next to this interpreter when installed)."""
    script = Path(sys.executable).with_name("threadline")
    head = [str(script)] if script.exists() else [sys.executable, "-c", "from cli.main import run; run()"]
    return [*head, "serve", "--port", "{port}", "--workers", "1"]


def slow_model_app() -> FastAPI:
    """A simulated slow model speaking the OpenAI chat-completions protocol: every call waits
    `THREADLINE_BENCH_MODEL_LATENCY_S` (asynchronously, so it costs no CPU and no thread) and then answers like a
    plain tool-calling agent: a question naming an order looks the order up, any other question searches the
    knowledge base, a tool result or small talk gets a text reply. `GET /stats` reports the calls and the time
    they spent inside the server."""
    latency = float(os.environ.get("THREADLINE_BENCH_MODEL_LATENCY_S", str(MODEL_LATENCY_S)))
    api = FastAPI()
    stats = {"calls": 0, "seconds": 0.0}

    @api.post("/v1/chat/completions")
    async def chat(body: dict[str, Any]) -> dict[str, Any]:
        start = time.perf_counter()
        await asyncio.sleep(latency)
        reply = _simulated_reply(body)
        stats["calls"] += 1
        stats["seconds"] += time.perf_counter() - start
        return completion(reply, str(body.get("model", "bench-model")))

    @api.get("/stats")
    async def read_stats() -> dict[str, float]:
        return dict(stats)

    return api


def _simulated_reply(body: dict[str, Any]) -> AIMessage:
    """What the simulated model says next (see `slow_model_app`)."""
    last = body["messages"][-1]
    tools = {tool["function"]["name"] for tool in body.get("tools") or []}
    if last["role"] == "tool":
        return AIMessage(content=f"Here is what I found: {str(last.get('content') or '')[:300]}")
    text = str(last.get("content") or "")
    call_id = f"call_{uuid.uuid4().hex[:8]}"
    if (order := ORDER_ID.search(text)) and LOOKUP_ORDER in tools:
        return AIMessage(content="", tool_calls=[{"name": LOOKUP_ORDER, "args": {"order_id": order[0]}, "id": call_id}])
    if "?" in text and SEARCH_KNOWLEDGE in tools:
        return AIMessage(content="", tool_calls=[{"name": SEARCH_KNOWLEDGE, "args": {"query": text}, "id": call_id}])
    return AIMessage(content="Happy to help. What can I do for you?")


def hello_argv() -> list[str]:
    """The hello-world app on uvicorn with the options `threadline serve` uses."""
    return _uvicorn_argv("threadline.bench.api:hello_world_app")


def slow_model_argv() -> list[str]:
    """The simulated slow model on uvicorn, in its own process (its event loop never waits for the client's)."""
    return _uvicorn_argv("threadline.bench.api:slow_model_app")


def _uvicorn_argv(factory_path: str) -> list[str]:
    factory = ["-m", "uvicorn", "--factory", factory_path]
    return [
        sys.executable,
        *factory,
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--workers",
        "1",
        "--log-level",
        "warning",
    ]


# --- the phases -------------------------------------------------------------------------------------------------


async def side_by_side(turn_port: int, hello_port: int, traffic: Traffic, block_s: float) -> dict[str, Load]:
    """Closed-loop blocks on both servers in ABBA order, after a short unrecorded warm-up of each."""
    turns = traffic.spread(CLIENTS)
    hello = [hello_requests() for _ in range(CLIENTS)]
    sides = {"turns": (turn_port, turns, True), "hello_world": (hello_port, hello, False)}
    for port, clients, is_turn in sides.values():
        await closed_loop(port, clients, block_s / 2, is_turn=is_turn)
    loads = {name: Load() for name in sides}
    for name in ("turns", "hello_world", "hello_world", "turns"):
        port, clients, is_turn = sides[name]
        loads[name].merge(await closed_loop(port, clients, block_s, is_turn=is_turn))
    return loads


def _model_stats(port: int) -> dict[str, float]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        raw = b""
        while chunk := s.recv(4096):
            raw += chunk
    stats: dict[str, float] = json.loads(raw.split(b"\r\n\r\n", 1)[1])
    return stats


def slow_model_load(port: int, model_port: int, traffic: Traffic, sizes: Sizes, say: Log) -> dict[str, Any]:
    """Capacity closed-loop, then open-loop arrivals at `LOAD_FRACTION` of it; added latency per AI turn."""
    say(f"slow model: capacity with {CAPACITY_CLIENTS} connections for {sizes.capacity_s:.0f} s")
    probe = traffic.spread(CAPACITY_CLIENTS)
    capacity = asyncio.run(closed_loop(port, probe, sizes.capacity_s, is_turn=True))
    rate = LOAD_FRACTION * len(capacity.latencies) / capacity.seconds
    say(f"slow model: open loop at {rate:.1f} turns/s for {sizes.open_loop_s:.0f} s")
    before = _model_stats(model_port)
    load = asyncio.run(open_loop(port, traffic.requests(range(len(traffic.customers))), rate, sizes.open_loop_s))
    after = _model_stats(model_port)
    calls = int(after["calls"] - before["calls"])
    call_s = (after["seconds"] - before["seconds"]) / max(1, calls)
    ai = [(e, n) for e, n in zip(load.latencies, load.model_calls, strict=True) if n >= 0]
    added = [elapsed - n * call_s for elapsed, n in ai]
    return {
        "model_server": "simulated OpenAI-compatible model (bench.api:slow_model_app), its own process",
        "model_latency_s": MODEL_LATENCY_S,
        "added_latency": "end-to-end - model calls x mean model call time measured inside the model server",
        "capacity_clients": CAPACITY_CLIENTS,
        "capacity": describe(capacity),
        "load_fraction": LOAD_FRACTION,
        "arrival_rate_per_s": rate,
        "open_loop": describe(load),
        "max_send_lag_ms": load.max_send_lag_s * 1000,
        "model_call_mean_ms": call_s * 1000,
        "model_calls_counted": calls,
        "model_calls_inferred": sum(n for _, n in ai),
        "ai_turns": len(ai),
        "added_ms": percentiles_ms(added) | {"mean_ms": statistics.fmean(added) * 1000},
    }


def _pg_admin_dsn() -> str:
    return os.environ.get("THREADLINE_BENCH_PG_DSN", PG_ADMIN_DSN)


def _pg_exec(statement: sql.Composed) -> None:
    with psycopg.connect(_pg_admin_dsn(), autocommit=True) as conn:
        conn.execute(statement)


def compare_databases(tmp: Path, cache: Path, n_turns: int, say: Log) -> dict[str, Any]:
    """The turn mix through `Conversations.handle` on SQLite and on a fresh Postgres database, ABBA blocks."""
    name = f"threadline_bench_{uuid.uuid4().hex[:8]}"
    base = _pg_admin_dsn().rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    customers = demo_customers()
    _pg_exec(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with ExitStack() as stack:
            runners: dict[str, ThreadlineRunner] = {}
            for backend, url in (("sqlite", None), ("postgres", f"{base}/{name}")):
                say(f"databases: opening services on {backend} (demo store)")
                settings = Settings(
                    data_dir=tmp / backend, database_url=url, load_demo=True, model="offline", cache_dir=cache
                )
                runners[backend] = ThreadlineRunner(settings, customers)
                stack.callback(runners[backend].close)
                runners[backend].warm_up()
            timings = {backend: Timings() for backend in runners}
            done, block = 0, 0
            while done < n_turns:
                size = min(BLOCK, n_turns - done)
                for backend in ("sqlite", "postgres") if block % 2 == 0 else ("postgres", "sqlite"):
                    for _ in range(size):
                        timings[backend].add(*runners[backend].turn())
                done, block = done + size, block + 1
    finally:
        _pg_exec(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    return {"path": "Conversations.handle in process", **{b: summarize(t) for b, t in timings.items()}}


def cache_dir() -> Path:
    """The embedding cache shared by every run: THREADLINE_CACHE_DIR, else the user's cache directory."""
    configured = os.environ.get("THREADLINE_CACHE_DIR")
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return Path(configured) if configured else root / "threadline" / "bench"


def starts_and_throughput(
    tmp: Path, cache: Path, traffic: Traffic, sizes: Sizes, seen: Processes, say: Log
) -> dict[str, Any]:
    """Cold and warm start of `threadline serve`, then turns beside hello world on the warm server."""
    data = tmp / "data"
    data.mkdir()
    cache_filled = cache.is_dir() and any(cache.iterdir())
    say(f"cold start of threadline serve (embedding cache {'filled' if cache_filled else 'empty'}: {cache})")
    with spawn(threadline_argv(), threadline_env(cache, data), tmp / "cold.log", "/readyz", seen) as cold:
        pass
    say(f"cold start {cold.ready_s:.1f} s; warm start on the same data dir")
    with (
        spawn(threadline_argv(), threadline_env(cache, data), tmp / "warm.log", "/readyz", seen) as warm,
        spawn(hello_argv(), _base_env(cache), tmp / "hello.log", "/", seen) as hello,
    ):
        say(f"warm start {warm.ready_s:.1f} s; turns and hello world, {CLIENTS} connections, ABBA blocks")
        loads = asyncio.run(side_by_side(warm.port, hello.port, traffic, sizes.block_s))
    return {
        "cold_start_s": cold.ready_s,
        "warm_start_s": warm.ready_s,
        "embedding_cache": "filled before this run" if cache_filled else "empty before this run (cold start filled it)",
        "cache_dir": str(cache),
        "clients": CLIENTS,
        "block_s": sizes.block_s,
        "turns": describe(loads["turns"]),
        "hello_world": describe(loads["hello_world"]),
    }


def slow_model_phase(
    tmp: Path, cache: Path, traffic: Traffic, sizes: Sizes, seen: Processes, say: Log
) -> dict[str, Any]:
    """The server on the simulated model with `MODEL_LATENCY_S` per call (same data dir, so a warm start)."""
    say("slow model: starting the simulated model")
    model_env = _base_env(cache) | {"THREADLINE_BENCH_MODEL_LATENCY_S": str(MODEL_LATENCY_S)}
    with spawn(slow_model_argv(), model_env, tmp / "model.log", "/stats", seen) as model:
        env = threadline_env(
            cache,
            tmp / "data",
            MODEL="openai:bench-model",
            OPENAI_BASE_URL=f"http://127.0.0.1:{model.port}/v1",
            OPENAI_API_KEY="bench-model-key",
        )
        with spawn(threadline_argv(), env, tmp / "slow.log", "/readyz", seen) as server:
            return slow_model_load(server.port, model.port, traffic, sizes, say)


def run(quick: bool, *, log: Log | None = None) -> dict[str, Any]:
    """Every API measurement in one run; one JSON-able dict with the headline figures at its top level."""
    os.environ.setdefault("LANGSMITH_TRACING", "false")
    say = log or (lambda _message: None)
    sizes = QUICK if quick else FULL
    cache, seen = cache_dir(), Processes()
    cache.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="threadline-bench-api-") as tmp_name:
        tmp = Path(tmp_name)
        traffic = Traffic(demo_customers(ALL_CUSTOMERS))  # one conversation per customer across both servers
        http = starts_and_throughput(tmp, cache, traffic, sizes, seen, say)
        slow = slow_model_phase(tmp, cache, traffic, sizes, seen, say)
        say(f"databases: {sizes.db_turns} turns each on SQLite and Postgres, in process")
        databases = compare_databases(tmp, cache, sizes.db_turns, say)
    turns, hello = http.pop("turns"), http.pop("hello_world")
    return {
        "quick": quick,
        "api_turns_per_s": turns["per_s"],
        "hello_world_rps": hello["per_s"],
        "api_added_p99_ms": slow["added_ms"]["p99_ms"],
        "turn_ms_sqlite": databases["sqlite"]["mean_ms"],
        "turn_ms_postgres": databases["postgres"]["mean_ms"],
        "cold_start_s": http.pop("cold_start_s"),
        "warm_start_s": http.pop("warm_start_s"),
        "goals": {"api_turns_per_s": GOAL_TURNS_PER_S, "api_added_p99_ms": GOAL_ADDED_P99_MS},
        "throughput": {**http, "turns": turns, "hello_world": hello, "blocks": "ABBA, after a warm-up of each"},
        "slow_model": slow,
        "databases": databases,
        "servers": {"pids": seen.pids, "ports": seen.ports},
        "machine": machine() | {"load_average_before": list(load_before), "load_average_after": list(os.getloadavg())},
    }


def render(result: dict[str, Any]) -> Table:
    """The result as a rich table: one row per figure, with what it was measured beside."""
    put, slow, dbs = result["throughput"], result["slow_model"], result["databases"]
    table = Table(
        "",
        "value",
        "measured with",
        title=f"HTTP API, one uvicorn worker{' (quick)' if result['quick'] else ''}",
        caption=(
            f"{result['machine']['cpu_count']} CPUs · load average {result['machine']['load_average_before'][0]:.1f}"
            f" → {result['machine']['load_average_after'][0]:.1f} · embedding cache {put['embedding_cache']}"
        ),
    )
    turns = put["turns"]
    table.add_row(
        "turns/s (goal ≥ 150)",
        f"{result['api_turns_per_s']:.1f}",
        f"{put['clients']} connections, offline model, SQLite · "
        f"p50 {turns['p50_ms']:.0f} · p99 {turns['p99_ms']:.0f} ms",
    )
    table.add_row(
        "hello world requests/s",
        f"{result['hello_world_rps']:.0f}",
        f"same client, ABBA blocks; {result['hello_world_rps'] / result['api_turns_per_s']:.0f}× the turns/s",
    )
    added = slow["added_ms"]
    table.add_row(
        "added latency p99 ms (goal ≤ 100)",
        f"{result['api_added_p99_ms']:.0f}",
        f"{slow['model_latency_s'] * 1000:.0f} ms model, open loop {slow['arrival_rate_per_s']:.1f}/s = "
        f"{slow['load_fraction']:.0%} of {slow['capacity']['per_s']:.1f}/s; p50 {added['p50_ms']:.0f} · "
        f"p95 {added['p95_ms']:.0f} ms",
    )
    table.add_row(
        "turn ms SQLite / Postgres",
        f"{result['turn_ms_sqlite']:.1f} / {result['turn_ms_postgres']:.1f}",
        f"{dbs['sqlite']['turns']} turns each, {dbs['path']}; p99 {dbs['sqlite']['p99_ms']:.0f} / "
        f"{dbs['postgres']['p99_ms']:.0f} ms",
    )
    table.add_row(
        "cold / warm start s", f"{result['cold_start_s']:.1f} / {result['warm_start_s']:.1f}", "spawn → /readyz 200"
    )
    return table
