"""The HTTP API under load: real `threadline serve` processes on loopback, driven by an in-process client, each
beside a baseline served and driven the same way in the same run.

* `api_turn_ratio` = `api_turns_per_s` ÷ `baseline_turns_per_s`: customer turns per second through
  `POST /v1/messages` on one uvicorn worker (offline model, SQLite, demo store), closed-loop with `CLIENTS`
  keep-alive connections over the demo customers, each customer signed in (a signed web identity) and owned by one
  connection, so no customer ever has two turns in flight; beside the minimal LangGraph tool loop served by FastAPI
  the same way (`bench.baseline_api`: one worker, the same uvicorn options, the same request bodies from the same
  client, the turn on the thread pool, a SQLite-checkpointed thread per customer). A FastAPI hello world
  (`hello_world_rps`) runs in the same blocks (A B C C B A), for what the cheapest request costs.
* `api_scaling_2w` = turns/s of `threadline serve --workers 2` ÷ `--workers 1`, both on one fresh Postgres database
  (SQLite serialises writers across processes), same client and traffic, alternating blocks. Each side reports
  the CPU it got: the client (this process), the server's processes, Postgres and the whole machine, in cores.
* `api_added_p99_ratio` = `api_added_p99_ms` ÷ `baseline_added_p99_ms`: what the framework adds to a turn with a
  slow model, beside what the minimal loop on a stock `ChatOpenAI` adds. A simulated OpenAI-compatible model (its
  own process, `slow_model_app`) answers every call after `MODEL_LATENCY_S` of asynchronous waiting, so it takes
  no CPU from the server under test; each server's capacity with it is measured closed-loop, then requests arrive
  open-loop (exponential inter-arrival times, fired on schedule whatever is in flight) at `LOAD_FRACTION` of that
  capacity. Added latency per turn = end-to-end latency - model calls x the mean model call time the model server
  measured; a turn that ends in an AI reply makes one model call per tool call plus the final one (the run checks
  that sum against the calls the model server counted).
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
from threadline.bench import baseline_api
from threadline.bench.cpu import CpuSample, CpuUse
from threadline.bench.load import (
    CHANNEL_KEY,
    IDENTITY_SECRET,
    Load,
    NextRequest,
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
SCALING_CLIENTS = 16
SCALING_STAGGER_S = 0.02  # between connections, so the workers share them (see `closed_loop`)
CAPACITY_CLIENTS = 64  # above the worker's 40 threads, so the probe finds the server's limit, not the client's
MODEL_LATENCY_S = 0.6
LOAD_FRACTION = 0.5
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
                ended = "still running" if process.returncode is None else f"exit code {process.returncode}"
                raise RuntimeError(f"{argv[0]} did not become ready on port {port} ({ended}):\n{tail}")
            time.sleep(0.05)
        yield Spawned(port, process, time.perf_counter() - start)
    finally:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def subprocess_env(cache_dir: Path) -> dict[str, str]:
    """The environment of a process the benchmarks start: offline, untraced, this source tree, the shared
    embedding cache, and never a THREADLINE_* setting of the caller's shell."""
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
    return subprocess_env(cache_dir) | {f"THREADLINE_{k}": v for k, v in settings.items()}


def threadline_argv(workers: int = 1) -> list[str]:
    """`threadline serve` (the console script next to this interpreter when installed)."""
    script = Path(sys.executable).with_name("threadline")
    head = [str(script)] if script.exists() else [sys.executable, "-c", "from cli.main import run; run()"]
    return [*head, "serve", "--port", "{port}", "--workers", str(workers)]


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


def baseline_argv() -> list[str]:
    """The minimal LangGraph tool loop behind FastAPI (`bench.baseline_api`), on uvicorn like `threadline serve`."""
    return _uvicorn_argv("threadline.bench.baseline_api:baseline_app")


def baseline_env(cache_dir: Path, directory: Path, model_url: str | None = None) -> dict[str, str]:
    """The baseline server's environment: its checkpoint directory, and the OpenAI-compatible model if any."""
    env = subprocess_env(cache_dir) | {baseline_api.DIR_VARIABLE: str(directory)}
    return env | ({baseline_api.MODEL_URL_VARIABLE: model_url} if model_url else {})


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


@dataclass(frozen=True)
class Side:
    """One server of a side-by-side comparison and the request streams (one per connection) that drive it."""

    port: int
    pid: int
    clients: list[NextRequest]
    is_turn: bool = True


async def side_by_side(sides: dict[str, Side], block_s: float, stagger_s: float = 0.0) -> dict[str, dict[str, Any]]:
    """Closed-loop blocks on each server in mirrored order (A B C C B A), after a short unrecorded warm-up of each;
    each side's load summary with the CPU it and everything else got."""
    for side in sides.values():
        await closed_loop(side.port, side.clients, block_s / 2, is_turn=side.is_turn, stagger_s=stagger_s)
    loads, cpu = {name: Load() for name in sides}, {name: CpuUse() for name in sides}
    for name in [*sides, *reversed(sides)]:
        side = sides[name]
        before = CpuSample.take()
        load = await closed_loop(side.port, side.clients, block_s, is_turn=side.is_turn, stagger_s=stagger_s)
        loads[name].merge(load)
        cpu[name].add(before, CpuSample.take(), side.pid)
    return {name: describe(loads[name]) | {"cpu_cores": cpu[name].cores(loads[name])} for name in sides}


def _model_stats(port: int) -> dict[str, float]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        raw = b""
        while chunk := s.recv(4096):
            raw += chunk
    stats: dict[str, float] = json.loads(raw.split(b"\r\n\r\n", 1)[1])
    return stats


def added_latency(port: int, model_port: int, traffic: Traffic, rate: float, seconds: float) -> dict[str, Any]:
    """Open-loop arrivals at `rate` for `seconds`; the added latency of each turn that ended in an AI reply."""
    before = _model_stats(model_port)
    load = asyncio.run(open_loop(port, traffic.requests(range(len(traffic.customers))), rate, seconds))
    after = _model_stats(model_port)
    calls = int(after["calls"] - before["calls"])
    call_s = (after["seconds"] - before["seconds"]) / max(1, calls)
    ai = [(e, n) for e, n in zip(load.latencies, load.model_calls, strict=True) if n >= 0]
    added = [elapsed - n * call_s for elapsed, n in ai]
    return {
        "arrival_rate_per_s": rate,
        "open_loop": describe(load),
        "max_send_lag_ms": load.max_send_lag_s * 1000,
        "model_call_mean_ms": call_s * 1000,
        "model_calls_counted": calls,
        "model_calls_inferred": sum(n for _, n in ai),
        "ai_turns": len(ai),
        "added_ms": percentiles_ms(added) | {"mean_ms": statistics.fmean(added) * 1000},
    }


def slow_model_load(port: int, model_port: int, traffic: Traffic, sizes: Sizes, say: Log) -> dict[str, Any]:
    """Capacity closed-loop, then open-loop arrivals at `LOAD_FRACTION` of it; added latency per AI turn."""
    say(f"slow model: capacity with {CAPACITY_CLIENTS} connections for {sizes.capacity_s:.0f} s")
    probe = traffic.spread(CAPACITY_CLIENTS)
    capacity = asyncio.run(closed_loop(port, probe, sizes.capacity_s, is_turn=True))
    rate = LOAD_FRACTION * len(capacity.latencies) / capacity.seconds
    say(f"slow model: open loop at {rate:.1f} turns/s for {sizes.open_loop_s:.0f} s")
    return {
        "model_server": "simulated OpenAI-compatible model (bench.api:slow_model_app), its own process",
        "model_latency_s": MODEL_LATENCY_S,
        "added_latency": "end-to-end - model calls x mean model call time measured inside the model server",
        "capacity_clients": CAPACITY_CLIENTS,
        "capacity": describe(capacity),
        "load_fraction": LOAD_FRACTION,
        **added_latency(port, model_port, traffic, rate, sizes.open_loop_s),
    }


def _pg_admin_dsn() -> str:
    return os.environ.get("THREADLINE_BENCH_PG_DSN", PG_ADMIN_DSN)


def _pg_exec(statement: sql.Composed) -> None:
    with psycopg.connect(_pg_admin_dsn(), autocommit=True) as conn:
        conn.execute(statement)


@contextmanager
def fresh_database() -> Iterator[str]:
    """A throw-away database on the local Postgres server (its SQLAlchemy URL), dropped on exit."""
    name = f"threadline_bench_{uuid.uuid4().hex[:8]}"
    base = _pg_admin_dsn().rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    _pg_exec(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{base}/{name}"
    finally:
        _pg_exec(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def compare_databases(tmp: Path, cache: Path, n_turns: int, say: Log) -> dict[str, Any]:
    """The turn mix through `Conversations.handle` on SQLite and on a fresh Postgres database, ABBA blocks."""
    customers = demo_customers()
    with fresh_database() as pg_url, ExitStack() as stack:
        runners: dict[str, ThreadlineRunner] = {}
        for backend, url in (("sqlite", None), ("postgres", pg_url)):
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
    return {"path": "Conversations.handle in process", **{b: summarize(t) for b, t in timings.items()}}


def cache_dir() -> Path:
    """The embedding cache shared by every run: THREADLINE_CACHE_DIR, else the user's cache directory."""
    configured = os.environ.get("THREADLINE_CACHE_DIR")
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return Path(configured) if configured else root / "threadline" / "bench"


def starts_and_throughput(
    tmp: Path, cache: Path, traffic: Traffic, sizes: Sizes, seen: Processes, say: Log
) -> dict[str, Any]:
    """Cold and warm start of `threadline serve`, then turns beside the baseline loop and hello world."""
    data = tmp / "data"
    data.mkdir()
    cache_filled = cache.is_dir() and any(cache.iterdir())
    say(f"cold start of threadline serve (embedding cache {'filled' if cache_filled else 'empty'}: {cache})")
    with spawn(threadline_argv(), threadline_env(cache, data), tmp / "cold.log", "/readyz", seen) as cold:
        pass
    say(f"cold start {cold.ready_s:.1f} s; warm start on the same data dir")
    with (
        spawn(threadline_argv(), threadline_env(cache, data), tmp / "warm.log", "/readyz", seen) as warm,
        spawn(baseline_argv(), baseline_env(cache, tmp / "baseline"), tmp / "baseline.log", "/readyz", seen) as base,
        spawn(hello_argv(), subprocess_env(cache), tmp / "hello.log", "/", seen) as hello,
    ):
        say(f"warm start {warm.ready_s:.1f} s; turns, baseline turns and hello world, {CLIENTS} connections each")
        sides = {
            "turns": Side(warm.port, warm.process.pid, traffic.spread(CLIENTS)),
            "baseline": Side(base.port, base.process.pid, traffic.spread(CLIENTS)),
            "hello_world": Side(hello.port, hello.process.pid, [hello_requests() for _ in range(CLIENTS)], False),
        }
        loads = asyncio.run(side_by_side(sides, sizes.block_s))
    return {
        "cold_start_s": cold.ready_s,
        "warm_start_s": warm.ready_s,
        "embedding_cache": "filled before this run" if cache_filled else "empty before this run (cold start filled it)",
        "cache_dir": str(cache),
        "clients": CLIENTS,
        "block_s": sizes.block_s,
        "blocks": "turns, baseline, hello world, then the same in reverse, after a warm-up of each",
        "baseline_setup": {
            "app": "bench.baseline_api:baseline_app (FastAPI, sync endpoint on the thread pool)",
            "graph": "StateGraph(MessagesState): model → ToolNode → model, tools_condition; scripted model",
            "checkpointer": "SqliteSaver, one connection, WAL, synchronous=NORMAL; a thread per customer",
            "checks": "the request body only (no API key, signature or rate limit)",
        },
        **loads,
    }


def scaling_phase(tmp: Path, cache: Path, traffic: Traffic, sizes: Sizes, seen: Processes, say: Log) -> dict[str, Any]:
    """`threadline serve` with one and with two workers on one fresh Postgres database, alternating blocks."""
    with fresh_database() as url:
        env = threadline_env(cache, tmp / "data", DATABASE_URL=url)
        say("scaling: one and two workers on a fresh Postgres database")
        with (
            spawn(threadline_argv(1), env, tmp / "pg1.log", "/readyz", seen) as one,
            spawn(threadline_argv(2), env, tmp / "pg2.log", "/readyz", seen) as two,
        ):
            say(f"scaling: {SCALING_CLIENTS} connections, blocks of {sizes.block_s:.0f} s")
            sides = {
                "1_worker": Side(one.port, one.process.pid, traffic.spread(SCALING_CLIENTS)),
                "2_workers": Side(two.port, two.process.pid, traffic.spread(SCALING_CLIENTS)),
            }
            loads = asyncio.run(side_by_side(sides, sizes.block_s, stagger_s=SCALING_STAGGER_S))
    return {
        "database": "Postgres (fresh database)",
        "connect_stagger_s": SCALING_STAGGER_S,
        "clients": SCALING_CLIENTS,
        "block_s": sizes.block_s,
        **loads,
    }


def slow_model_phase(
    tmp: Path, cache: Path, traffic: Traffic, sizes: Sizes, seen: Processes, say: Log
) -> dict[str, Any]:
    """Ours (same data dir, so a warm start) and the baseline loop on a stock `ChatOpenAI`, one after the other,
    on one simulated model with `MODEL_LATENCY_S` per call."""
    say("slow model: starting the simulated model")
    model_env = subprocess_env(cache) | {"THREADLINE_BENCH_MODEL_LATENCY_S": str(MODEL_LATENCY_S)}
    with spawn(slow_model_argv(), model_env, tmp / "model.log", "/stats", seen) as model:
        url = f"http://127.0.0.1:{model.port}/v1"
        env = threadline_env(
            cache, tmp / "data", MODEL="openai:bench-model", OPENAI_BASE_URL=url, OPENAI_API_KEY="bench-model-key"
        )
        with spawn(threadline_argv(), env, tmp / "slow.log", "/readyz", seen) as server:
            ours = slow_model_load(server.port, model.port, traffic, sizes, say)
        base_env = baseline_env(cache, tmp / "baseline-slow", url)
        with spawn(baseline_argv(), base_env, tmp / "baseline-slow.log", "/readyz", seen) as base:
            say("slow model: the baseline loop on ChatOpenAI")
            baseline = slow_model_load(base.port, model.port, traffic, sizes, say)
            rate = ours["arrival_rate_per_s"]
            say(f"slow model: the baseline loop at our arrival rate, {rate:.1f} turns/s")
            baseline["at_our_rate"] = added_latency(base.port, model.port, traffic, rate, sizes.open_loop_s)
    return {"turns": ours, "baseline": baseline | {"model": "stock ChatOpenAI (langchain-openai)"}}


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
        traffic = Traffic(demo_customers(ALL_CUSTOMERS))  # one conversation per customer across every server
        http = starts_and_throughput(tmp, cache, traffic, sizes, seen, say)
        scaling = scaling_phase(tmp, cache, traffic, sizes, seen, say)
        slow = slow_model_phase(tmp, cache, traffic, sizes, seen, say)
        say(f"databases: {sizes.db_turns} turns each on SQLite and Postgres, in process")
        databases = compare_databases(tmp, cache, sizes.db_turns, say)
    turns, baseline, hello = http["turns"], http["baseline"], http["hello_world"]
    one, two = scaling["1_worker"]["per_s"], scaling["2_workers"]["per_s"]
    ours_added, base_added = slow["turns"]["added_ms"]["p99_ms"], slow["baseline"]["added_ms"]["p99_ms"]
    return {
        "quick": quick,
        "api_turn_ratio": turns["per_s"] / baseline["per_s"],
        "api_turns_per_s": turns["per_s"],
        "baseline_turns_per_s": baseline["per_s"],
        "hello_world_rps": hello["per_s"],
        "api_scaling_2w": two / one,
        "api_turns_per_s_pg_1w": one,
        "api_turns_per_s_pg_2w": two,
        "api_added_p99_ratio": ours_added / base_added,
        "api_added_p99_ms": ours_added,
        "baseline_added_p99_ms": base_added,
        # the loop at the arrival rate ours ran at (ours' capacity with a slow model is the lower one)
        "baseline_added_p99_ms_at_our_rate": slow["baseline"]["at_our_rate"]["added_ms"]["p99_ms"],
        "turn_ms_sqlite": databases["sqlite"]["mean_ms"],
        "turn_ms_postgres": databases["postgres"]["mean_ms"],
        "cold_start_s": http.pop("cold_start_s"),
        "warm_start_s": http.pop("warm_start_s"),
        "throughput": http,
        "scaling": scaling,
        "slow_model": slow,
        "databases": databases,
        "servers": {"pids": seen.pids, "ports": seen.ports},
        "machine": machine() | {"load_average_before": list(load_before), "load_average_after": list(os.getloadavg())},
    }


def _cpu(side: dict[str, Any]) -> str:
    cores = side["cpu_cores"]
    return (
        f"CPU cores: server {cores['server']:.2f}, client {cores['client']:.2f}, Postgres {cores['postgres']:.2f}, "
        f"machine {cores['machine']:.2f}"
    )


def render(result: dict[str, Any]) -> Table:
    """The result as a rich table: one row per figure, with what it was measured beside."""
    put, scaling, slow, dbs = result["throughput"], result["scaling"], result["slow_model"], result["databases"]
    table = Table(
        "",
        "value",
        "measured with",
        title=f"HTTP API beside a minimal LangGraph loop served the same way{' (quick)' if result['quick'] else ''}",
        caption=(
            f"{result['machine']['cpu_count']} CPUs · load average {result['machine']['load_average_before'][0]:.1f}"
            f" → {result['machine']['load_average_after'][0]:.1f} · embedding cache {put['embedding_cache']}"
        ),
    )
    turns, base = put["turns"], put["baseline"]
    table.add_row(
        "turn ratio, ours ÷ baseline (goal ≥ 0.7)",
        f"{result['api_turn_ratio']:.2f}",
        f"{result['api_turns_per_s']:.1f} vs {result['baseline_turns_per_s']:.1f} turns/s, one worker, SQLite, "
        f"{put['clients']} connections · p99 {turns['p99_ms']:.0f} vs {base['p99_ms']:.0f} ms · {_cpu(turns)}",
    )
    table.add_row(
        "hello world requests/s",
        f"{result['hello_world_rps']:.0f}",
        f"same client, same blocks; {result['hello_world_rps'] / result['api_turns_per_s']:.0f}× our turns/s",
    )
    two = scaling["2_workers"]
    table.add_row(
        "scaling, 2 workers ÷ 1 (goal ≥ 1.6)",
        f"{result['api_scaling_2w']:.2f}",
        f"{result['api_turns_per_s_pg_2w']:.1f} vs {result['api_turns_per_s_pg_1w']:.1f} turns/s on Postgres, "
        f"{scaling['clients']} connections · 2 workers: {_cpu(two)}, "
        f"per process {two['cpu_cores']['server_processes']}",
    )
    ours_slow, base_slow = slow["turns"], slow["baseline"]
    table.add_row(
        "added p99 ratio, ours ÷ baseline (goal ≤ 1.5)",
        f"{result['api_added_p99_ratio']:.2f}",
        f"{result['api_added_p99_ms']:.0f} vs {result['baseline_added_p99_ms']:.0f} ms; "
        f"{ours_slow['model_latency_s'] * 1000:.0f} ms model, open loop at {ours_slow['load_fraction']:.0%} of "
        f"capacity ({ours_slow['capacity']['per_s']:.1f} vs {base_slow['capacity']['per_s']:.1f}/s); "
        f"added p50 {ours_slow['added_ms']['p50_ms']:.0f} vs {base_slow['added_ms']['p50_ms']:.0f} ms; "
        f"the loop at our rate: p99 {result['baseline_added_p99_ms_at_our_rate']:.0f} ms",
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
