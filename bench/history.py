"""Long conversations: does a turn cost the same at a customer's 1,000th message as at the 10th, and how much
checkpoint storage does the conversation leave behind?

One demo customer writes `FULL_MESSAGES` messages in a row (the turn mix of `bench.turns`, one message per
turn) through `Conversations.handle` on SQLite. Beside it, in the same run, the minimal LangGraph tool loop of
`bench.turns` (LangGraph's defaults: `MessagesState` keeps every message, the SQLite saver keeps every
checkpoint) answers the same number of messages on one thread, the two interleaved in blocks.

* `history_flatness_ratio`: median per-turn CPU time over the last `WINDOW` turns ÷ over turns 10..10+`WINDOW`
  (process CPU time, which counts the checkpoint writer's thread too and leaves out time spent waiting for a
  core on a shared machine).
* `checkpoint_bytes_ratio`: bytes of checkpoint storage for the thread (checkpoint and metadata blobs plus
  pending writes) ÷ bytes of transcript (every customer message and reply, UTF-8).
"""

from __future__ import annotations

import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from rich.table import Table

from threadline.bench.turns import BaselineRunner, ThreadlineRunner, _threadline_settings, demo_customers
from threadline.core.types import Channel, InboundMessage

# What one customer keeps writing about: consecutive messages differ, as in a real long relationship (the same
# question twice in a row is a stall the escalation policy hands to a person).
TOPICS = (
    "What is the status of order {order}?",
    "What is your policy on returning delivered items?",
    "hi",
    "where are my orders?",
    "How long does a refund take?",
    "thanks!",
    "Can you tell me about order {order}?",
    "Do you ship internationally?",
)
FULL_MESSAGES = 1_000
QUICK_MESSAGES = 120
EARLY = 10  # "the 10th message"
WINDOW = 20
BLOCK = 50
Log = Callable[[str], None]


def _checkpoint_bytes(path: Path, thread_id: str) -> int:
    """Checkpoint storage of one thread in a SQLite saver's tables."""
    with sqlite3.connect(path) as conn:
        (blobs,) = conn.execute(
            "SELECT COALESCE(SUM(LENGTH(checkpoint) + LENGTH(metadata)), 0) FROM checkpoints WHERE thread_id = ?",
            (thread_id,),
        ).fetchone()
        (writes,) = conn.execute(
            "SELECT COALESCE(SUM(LENGTH(value)), 0) FROM writes WHERE thread_id = ?", (thread_id,)
        ).fetchone()
    return int(blobs) + int(writes)


class _OneCustomer:
    """Our turn path with every message from one customer."""

    def __init__(self, data_dir: Path) -> None:
        self.runner = ThreadlineRunner(_threadline_settings(data_dir), demo_customers(1))
        self.transcript_bytes = 0
        self.db_path = data_dir / "threadline.db"

    def turn(self) -> float:
        customer = self.runner.customers[0]
        i = self.runner.count
        self.runner.count += 1
        text = TOPICS[i % len(TOPICS)].format(order=customer.order_ids[(i // len(TOPICS)) % len(customer.order_ids)])
        message = InboundMessage(channel=Channel.WEB, sender=customer.email, text=text, vouched=True)
        start = time.process_time()
        outcome = self.runner.services.turns.handle(message)
        spent = time.process_time() - start
        if outcome.reply is None or outcome.owner != "ai":
            raise RuntimeError(f"message {i} {text!r} got no AI reply (owner {outcome.owner})")
        return spent

    def account(self) -> tuple[int, str]:
        """(transcript bytes, thread id) read back from the message log: one customer wrote everything."""
        with sqlite3.connect(self.db_path) as conn:
            rows = conn.execute(
                "SELECT customer_id, SUM(LENGTH(CAST(text AS BLOB))) FROM messages GROUP BY customer_id"
            ).fetchall()
        if len(rows) != 1:
            raise RuntimeError(f"expected one customer's messages, found {len(rows)}")
        customer_id, total = rows[0]
        return int(total), str(customer_id)


class _Baseline:
    """LangGraph's minimal tool loop with its defaults, every message on one thread."""

    def __init__(self, tmp: Path) -> None:
        self.runner = BaselineRunner(tmp, demo_customers(1))
        self.db_path = tmp / "baseline.sqlite"

    def turn(self) -> float:
        start = time.process_time()
        self.runner.turn()
        return time.process_time() - start

    def account(self) -> tuple[int, str]:
        latest = self.runner.saver.get_tuple({"configurable": {"thread_id": "customer-0"}})
        said = latest.checkpoint["channel_values"]["messages"] if latest else []
        total = sum(len(m.text.encode()) for m in said if isinstance(m, HumanMessage | AIMessage))
        return total, "customer-0"


def _window(seconds: list[float], start: int) -> float:
    return statistics.median(seconds[start : start + WINDOW]) * 1000


def run(quick: bool = False, log: Log | None = None) -> dict[str, Any]:
    """Both sides, interleaved in blocks of `BLOCK` messages; flatness and storage ratios for each."""
    say = log or (lambda _line: None)
    messages = QUICK_MESSAGES if quick else FULL_MESSAGES
    result: dict[str, Any] = {"messages": messages, "window": WINDOW}
    with tempfile.TemporaryDirectory(prefix="threadline-bench-history-") as tmp:
        ours, base = _OneCustomer(Path(tmp) / "threadline"), _Baseline(Path(tmp) / "baseline")
        try:
            times: dict[str, list[float]] = {"threadline": [], "baseline": []}
            while len(times["threadline"]) < messages:
                size = min(BLOCK, messages - len(times["threadline"]))
                for name, side in (("threadline", ours), ("baseline", base)):
                    times[name].extend(side.turn() for _ in range(size))
                say(f"{len(times['threadline'])}/{messages} messages each")
            for name, side in (("threadline", ours), ("baseline", base)):
                transcript, thread = side.account()
                stored = _checkpoint_bytes(side.db_path, thread)
                early, late = _window(times[name], EARLY - 1), _window(times[name], messages - WINDOW)
                result[name] = {
                    "early_turn_cpu_ms": round(early, 3),
                    "late_turn_cpu_ms": round(late, 3),
                    "flatness_ratio": round(late / early, 3),
                    "checkpoint_bytes": stored,
                    "transcript_bytes": transcript,
                    "checkpoint_bytes_ratio": round(stored / max(1, transcript), 2),
                }
        finally:
            ours.runner.close()
            base.runner.close()
    result["history_flatness_ratio"] = result["threadline"]["flatness_ratio"]
    result["checkpoint_bytes_ratio"] = result["threadline"]["checkpoint_bytes_ratio"]
    return result


def render(result: dict[str, Any]) -> Table:
    """The result as a table: one column per side."""
    ours, base = result["threadline"], result["baseline"]
    table = Table("", "Threadline", "LangGraph defaults", title=f"One customer, {result['messages']} messages (SQLite)")
    table.add_row(
        f"CPU ms per turn, message {EARLY}", f"{ours['early_turn_cpu_ms']:.2f}", f"{base['early_turn_cpu_ms']:.2f}"
    )
    table.add_row(
        f"CPU ms per turn, message {result['messages']}",
        f"{ours['late_turn_cpu_ms']:.2f}",
        f"{base['late_turn_cpu_ms']:.2f}",
    )
    table.add_row("flatness (late ÷ early)", f"{ours['flatness_ratio']:.2f}", f"{base['flatness_ratio']:.2f}")
    table.add_row("checkpoint bytes", f"{ours['checkpoint_bytes']:,}", f"{base['checkpoint_bytes']:,}")
    table.add_row("transcript bytes", f"{ours['transcript_bytes']:,}", f"{base['transcript_bytes']:,}")
    table.add_row(
        "checkpoint ÷ transcript", f"{ours['checkpoint_bytes_ratio']:.1f}", f"{base['checkpoint_bytes_ratio']:.1f}"
    )
    return table
