"""Turns per second and per-turn latency of the support graph (offline model, SQLite), beside a minimal
LangGraph tool loop measured in the same process and run.

Both sides run in alternating blocks of turns (ABBA order), so machine noise lands on both. The ratio of mean
per-turn times is the number to watch: it says what Threadline's turn costs over the plainest LangGraph agent.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool, tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from rich.table import Table

from threadline.core.settings import Settings
from threadline.core.tool_names import LOOKUP_ORDER
from threadline.core.types import Channel, InboundMessage

QUICK_TURNS = 40
FULL_TURNS = 400
BLOCK = 10
CUSTOMERS = 8
POLICY_QUESTION = "What is your policy on returning delivered items?"
POLICY_PASSAGE = "Delivered items can be returned within 30 days for a refund to the original payment method."
# Five kinds over eight customers (coprime), so every customer gets every kind of message in turn.
MIX = ("order_status", "greeting", "policy", "order_status", "my_orders")

Log = Callable[[str], None]


@dataclass(frozen=True)
class DemoCustomer:
    """A demo store customer the benchmark writes as: their email and their own orders."""

    email: str
    order_ids: tuple[str, ...]


def demo_customers(count: int = CUSTOMERS) -> list[DemoCustomer]:
    """The first `count` demo users with orders, in file order (the same ones every run)."""
    from threadline.demo.loader import read_json

    users: dict[str, Any] = read_json("tau_retail", "users.json")
    picked = [
        DemoCustomer(email=user["email"], order_ids=tuple(user["orders"])) for user in users.values() if user["orders"]
    ]
    return picked[:count]


def _message(customers: Sequence[DemoCustomer], i: int) -> tuple[str, InboundMessage]:
    """The i-th turn of the mix: (kind, message)."""
    customer = customers[i % len(customers)]
    kind = MIX[(i + i // len(customers)) % len(MIX)]  # each customer's turns rotate through the mix
    if kind == "order_status":
        order_id = customer.order_ids[(i // len(customers)) % len(customer.order_ids)]
        text = f"What is the status of order {order_id}?"
    elif kind == "policy":
        text = POLICY_QUESTION
    elif kind == "greeting":
        text = "hi"
    else:
        text = "where are my orders?"
    return kind, InboundMessage(channel=Channel.WEB, sender=customer.email, text=text, vouched=True)


@dataclass
class Timings:
    """Per-turn wall-clock seconds, with the kind of each turn."""

    seconds: list[float] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    """Process CPU seconds per turn (every thread of the process): the cost without the machine's queueing."""

    def add(self, kind: str, seconds: float, cpu: float | None = None) -> None:
        self.kinds.append(kind)
        self.seconds.append(seconds)
        if cpu is not None:
            self.cpu.append(cpu)


class ThreadlineRunner:
    """The product's turn path: `TurnService.handle` over services opened from settings."""

    name = "threadline"

    def __init__(self, settings: Settings, customers: Sequence[DemoCustomer]) -> None:
        from threadline.product.services import open_services

        self.services = open_services(settings)
        self.customers = list(customers)
        self.count = 0
        """Turns taken so far."""

    def turn(self) -> tuple[str, float, float]:
        kind, message = _message(self.customers, self.count)
        self.count += 1
        start, start_cpu = time.perf_counter(), time.process_time()
        outcome = self.services.turns.handle(message)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        if outcome.reply is None or outcome.owner != "ai":
            raise RuntimeError(f"benchmark turn {message.text!r} got no AI reply (owner {outcome.owner})")
        return kind, elapsed, cpu

    def warm_up(self) -> None:
        for _ in range(2 * len(MIX)):
            self.turn()

    def close(self) -> None:
        self.services.close()


class ScriptedToolModel(BaseChatModel):
    """A deterministic chat model: a tool call on a turn's first step, a text reply once the tool answered."""

    @property
    def _llm_type(self) -> str:
        return "bench-scripted"

    def bind_tools(
        self, tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool], **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            reply = AIMessage(content=f"That order is {last.text}.")
        else:
            order_id = last.text.rsplit(" ", 1)[-1].rstrip("?")
            call = {"name": LOOKUP_ORDER, "args": {"order_id": order_id}, "id": f"call_{len(messages)}"}
            reply = AIMessage(content="", tool_calls=[{**call, "type": "tool_call"}])
        return ChatResult(generations=[ChatGeneration(message=reply)])


def build_baseline_graph(
    statuses: dict[str, str], checkpointer: SqliteSaver, model: BaseChatModel | None = None
) -> CompiledStateGraph[MessagesState, None, MessagesState, MessagesState]:
    """The documented minimal agent: model node, prebuilt ToolNode, `tools_condition`, a SQLite checkpointer.

    The model is the scripted one unless `model` is given (the HTTP benchmark passes a `ChatOpenAI`); a given model
    also gets a `search_knowledge` tool answering one fixed passage, so an OpenAI-compatible model has the two
    tools a plain support agent offers."""

    @tool
    def lookup_order(order_id: str) -> str:
        """The status of an order."""
        return statuses.get(order_id, "unknown")

    @tool
    def search_knowledge(query: str) -> str:
        """Help-center passages answering a question."""
        return POLICY_PASSAGE

    tools: list[BaseTool] = [lookup_order] if model is None else [lookup_order, search_knowledge]
    bound = (model or ScriptedToolModel()).bind_tools(tools)

    def call_model(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [bound.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition)
    graph.add_edge("tools", "model")
    return graph.compile(checkpointer=checkpointer)


class BaselineRunner:
    """A minimal LangGraph tool loop on the stock SQLite saver: each turn is model → tools → model."""

    name = "baseline"

    def __init__(self, tmp_dir: Path, customers: Sequence[DemoCustomer]) -> None:
        from threadline.demo.loader import read_json

        orders: dict[str, Any] = read_json("tau_retail", "orders.json")
        self._customers = list(customers)
        statuses = {oid: orders[oid]["status"] for c in self._customers for oid in c.order_ids if oid in orders}
        tmp_dir.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(tmp_dir / "baseline.sqlite", check_same_thread=False)
        # Like for like with our checkpointer: SqliteSaver.setup() turns WAL on; synchronous=NORMAL drops the
        # fsync per commit (SQLite's default FULL adds ~20 ms per turn here, which would measure the disk).
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self.saver = SqliteSaver(self._conn)
        self.graph = build_baseline_graph(statuses, self.saver)
        self._i = 0

    def turn(self) -> tuple[str, float, float]:
        index = self._i % len(self._customers)
        customer = self._customers[index]
        order_id = customer.order_ids[(self._i // len(self._customers)) % len(customer.order_ids)]
        self._i += 1
        config: RunnableConfig = {"configurable": {"thread_id": f"customer-{index}"}}
        turn: MessagesState = {"messages": [HumanMessage(content=f"What is the status of order {order_id}?")]}
        start, start_cpu = time.perf_counter(), time.process_time()
        state = self.graph.invoke(turn, config)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        last = state["messages"][-1]
        if not isinstance(last, AIMessage) or last.tool_calls or not last.text:
            raise RuntimeError("baseline turn did not end in a text reply")
        return "order_status", elapsed, cpu

    def warm_up(self) -> None:
        for _ in range(2 * len(MIX)):
            self.turn()

    def close(self) -> None:
        self._conn.close()


def summarize(timings: Timings) -> dict[str, Any]:
    """Turns per second (over the time spent in turns) and latency percentiles in milliseconds."""
    seconds = timings.seconds
    if len(seconds) < 2:
        raise ValueError("need at least two turns to summarize")
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    by_kind: defaultdict[str, list[float]] = defaultdict(list)
    for kind, value in zip(timings.kinds, seconds, strict=True):
        by_kind[kind].append(value)
    return {
        "turns": len(seconds),
        "turns_per_s": len(seconds) / sum(seconds),
        "mean_ms": statistics.fmean(seconds) * 1000,
        "p50_ms": cuts[49] * 1000,
        "p95_ms": cuts[94] * 1000,
        "p99_ms": cuts[98] * 1000,
        "max_ms": max(seconds) * 1000,
        # Drift over the run: threads grow, so a cost that scales with history shows up here.
        "first_quarter_mean_ms": statistics.fmean(seconds[: max(1, len(seconds) // 4)]) * 1000,
        "last_quarter_mean_ms": statistics.fmean(seconds[-max(1, len(seconds) // 4) :]) * 1000,
        "by_kind_mean_ms": {kind: statistics.fmean(values) * 1000 for kind, values in sorted(by_kind.items())},
        **({"cpu_mean_ms": statistics.fmean(timings.cpu) * 1000} if timings.cpu else {}),
    }


def _measure(runner: ThreadlineRunner | BaselineRunner, n_turns: int) -> Timings:
    runner.warm_up()
    timings = Timings()
    for _ in range(n_turns):
        timings.add(*runner.turn())
    return timings


def _threadline_settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, database_url=None, load_demo=True, model="offline", embeddings="local")


def measure_threadline(n_turns: int, settings: Settings | None = None) -> dict[str, Any]:
    """Open services (SQLite, offline model, demo store; a fresh temp data dir unless `settings` say otherwise),
    warm up, run `n_turns` turns of the mix and summarize them."""
    with tempfile.TemporaryDirectory(prefix="threadline-bench-") as tmp:
        runner = ThreadlineRunner(settings or _threadline_settings(Path(tmp)), demo_customers())
        try:
            return summarize(_measure(runner, n_turns))
        finally:
            runner.close()


def measure_baseline(n_turns: int, tmp_dir: Path) -> dict[str, Any]:
    """Warm up and run `n_turns` turns of the minimal tool loop with its checkpoints in `tmp_dir`."""
    runner = BaselineRunner(tmp_dir, demo_customers())
    try:
        return summarize(_measure(runner, n_turns))
    finally:
        runner.close()


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:  # pragma: no cover - both are dependencies
        return "unknown"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "langgraph": _version("langgraph"),
        "langgraph_checkpoint_sqlite": _version("langgraph-checkpoint-sqlite"),
    }


def run(quick: bool, *, log: Log | None = None) -> dict[str, Any]:
    """Measure both sides in alternating blocks; one JSON-able dict with both summaries and the cost ratio."""
    os.environ.setdefault("LANGSMITH_TRACING", "false")
    say = log or (lambda _message: None)
    n_turns = QUICK_TURNS if quick else FULL_TURNS
    customers = demo_customers()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="threadline-bench-")))
        say("opening Threadline services (fresh SQLite database, demo store, knowledge index, offline model)")
        ours = ThreadlineRunner(_threadline_settings(tmp / "threadline"), customers)
        stack.callback(ours.close)
        base = BaselineRunner(tmp / "baseline", customers)
        stack.callback(base.close)
        say("warming up")
        ours.warm_up()
        base.warm_up()
        timings = {ours.name: Timings(), base.name: Timings()}
        done, block = 0, 0
        while done < n_turns:
            size = min(BLOCK, n_turns - done)
            pair: tuple[ThreadlineRunner | BaselineRunner, ...] = (ours, base) if block % 2 == 0 else (base, ours)
            for runner in pair:
                for _ in range(size):
                    timings[runner.name].add(*runner.turn())
            done += size
            block += 1
            if done % 100 == 0 or done == n_turns:
                say(f"{done}/{n_turns} turns each")
    threadline, baseline = summarize(timings[ours.name]), summarize(timings[base.name])
    threadline["threads"] = baseline["threads"] = len(customers)
    threadline["setup"] = {
        "path": "Conversations.handle (identity, message log, support graph, reply log)",
        "model": "offline",
        "checkpointer": "SqliteSaver, WAL, synchronous=NORMAL",
        "durability": "sync",
    }
    baseline["setup"] = {
        "path": "StateGraph(MessagesState): model → ToolNode → model, tools_condition",
        "model": "scripted BaseChatModel",
        "checkpointer": "SqliteSaver, WAL, synchronous=NORMAL",
        "durability": "async (default)",
    }
    return {
        "quick": quick,
        "block_size": BLOCK,
        "threadline": threadline,
        "baseline": baseline,
        "turn_cost_ratio": threadline["mean_ms"] / baseline["mean_ms"],
        # the same ratio in process CPU time: on a shared machine, what each turn costs without the queueing
        "turn_cost_cpu_ratio": threadline["cpu_mean_ms"] / baseline["cpu_mean_ms"],
        "machine": machine(),
    }


def render(result: dict[str, Any]) -> Table:
    """The result as a rich table: one row per metric, one column per side."""
    ours, base = result["threadline"], result["baseline"]
    table = Table(
        "",
        "Threadline",
        "LangGraph tool loop",
        title=f"Turns on SQLite ({ours['turns']} each{', quick' if result['quick'] else ''})",
        caption=(
            f"turn cost ratio {result['turn_cost_ratio']:.2f}× (mean per-turn time, ours ÷ baseline; "
            f"{result['turn_cost_cpu_ratio']:.2f}× in CPU time) · "
            f"{result['machine']['cpu_count']} CPUs · Python {result['machine']['python']} · "
            f"langgraph {result['machine']['langgraph']}"
        ),
    )
    table.add_row("turns/s", f"{ours['turns_per_s']:.1f}", f"{base['turns_per_s']:.1f}")
    table.add_row("CPU ms per turn", f"{ours['cpu_mean_ms']:.1f}", f"{base['cpu_mean_ms']:.1f}")
    for key in ("mean_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms"):
        table.add_row(key.replace("_ms", " ms"), f"{ours[key]:.1f}", f"{base[key]:.1f}")
    table.add_row(
        "mean ms, first → last quarter",
        f"{ours['first_quarter_mean_ms']:.1f} → {ours['last_quarter_mean_ms']:.1f}",
        f"{base['first_quarter_mean_ms']:.1f} → {base['last_quarter_mean_ms']:.1f}",
    )
    for kind, value in ours["by_kind_mean_ms"].items():
        table.add_row(f"  {kind} mean ms", f"{value:.1f}", "")
    return table
