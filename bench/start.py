"""The first customer turn of a fresh installation beside the same turn once it has started before.

* `cold_first_turn_s`: `threadline chat --message "where is my order?" --json`, end to end (process start,
  imports, model load, start-up, the turn, exit), on a fresh data directory and a fresh, empty embedding cache
  (THREADLINE_DATA_DIR and THREADLINE_CACHE_DIR in a new temporary directory): it migrates the database, loads
  the demo store, builds the knowledge index and the offline model's example matrices. What keeps it short is the
  vectors shipped with the package (`memory.shipped_vectors`): without them it embedded about 5,000 texts first.
* `warm_turn_s`: the same command a second time on the same directories; it still starts a process, imports,
  loads the model and opens the services.
* `cold_start_ratio`: their ratio (medians over the pairs; each pair runs cold then warm back to back, so a
  busy spell lands on both). `cold_vectors_computed` counts the vectors the cold run wrote to the empty cache
  (texts it embedded with the model: nothing of start-up when the shipped vectors cover it; long-term memory
  embeds the customer's words only when a search first meets them).
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.table import Table

from threadline.bench.api import subprocess_env
from threadline.bench.turns import machine

Log = Callable[[str], None]
MESSAGE = "where is my order?"
FULL_PAIRS, QUICK_PAIRS = 3, 1
TIMEOUT_S = 900


def chat_argv() -> list[str]:
    """One message through the command line, printed as JSON."""
    return [sys.executable, "-m", "threadline.cli.main", "chat", "--message", MESSAGE, "--json"]


def chat_env(data_dir: Path, cache_dir: Path) -> dict[str, str]:
    """The demo configuration on these directories; no THREADLINE_* setting of the caller's shell."""
    return subprocess_env(cache_dir) | {
        "THREADLINE_DATA_DIR": str(data_dir),
        "THREADLINE_LOAD_DEMO": "true",
        "THREADLINE_MODEL": "offline",
        "THREADLINE_LOG_LEVEL": "warning",
    }


def timed_chat(data_dir: Path, cache_dir: Path) -> float:
    """Seconds from spawning the command to its exit; fails unless it answered."""
    started = time.perf_counter()
    done = subprocess.run(
        chat_argv(), env=chat_env(data_dir, cache_dir), capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"threadline chat failed ({done.returncode}): {done.stderr[-2000:]}")
    if not json.loads(done.stdout).get("reply"):
        raise RuntimeError(f"threadline chat gave no reply: {done.stdout[:500]}")
    return elapsed


def cached_vectors(cache_dir: Path) -> int:
    """Vectors in the embedding cache file (0 when there is none)."""
    path = cache_dir / "embeddings.sqlite"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM vectors").fetchone()[0])


def run(quick: bool, *, log: Log | None = None) -> dict[str, Any]:
    """Cold then warm, `QUICK_PAIRS` or `FULL_PAIRS` times, each pair on new directories."""
    say = log or (lambda _line: None)
    pairs: list[dict[str, float]] = []
    load_before = os.getloadavg()
    for number in range(1, (QUICK_PAIRS if quick else FULL_PAIRS) + 1):
        with tempfile.TemporaryDirectory(prefix="threadline-start-") as tmp:
            data, cache = Path(tmp) / "data", Path(tmp) / "cache"
            cold = timed_chat(data, cache)
            computed = cached_vectors(cache)
            warm = timed_chat(data, cache)
        pairs.append({"cold_s": round(cold, 3), "warm_s": round(warm, 3), "cold_vectors_computed": computed})
        say(f"pair {number}: cold {cold:.1f} s, warm {warm:.1f} s, {computed} vectors computed cold")
    cold_s = statistics.median(p["cold_s"] for p in pairs)
    warm_s = statistics.median(p["warm_s"] for p in pairs)
    return {
        "cold_first_turn_s": round(cold_s, 3),
        "warm_turn_s": round(warm_s, 3),
        "cold_start_ratio": round(cold_s / warm_s, 3),
        "cold_vectors_computed": max(int(p["cold_vectors_computed"]) for p in pairs),
        "pairs": pairs,
        "command": f'threadline chat --message "{MESSAGE}" --json',
        "machine": machine() | {"load_average_before": list(load_before), "load_average_after": list(os.getloadavg())},
    }


def render(result: dict[str, Any]) -> Table:
    """The result as a table: the medians, then each pair."""
    table = Table(
        "",
        "cold (s)",
        "warm (s)",
        "cold / warm",
        title=f"First turn on a fresh installation: {result['command']}",
        caption=f"{result['cold_vectors_computed']} vectors computed on a cold run · load average "
        f"{result['machine']['load_average_before'][0]:.1f} → {result['machine']['load_average_after'][0]:.1f}",
    )
    table.add_row(
        "median",
        f"{result['cold_first_turn_s']:.2f}",
        f"{result['warm_turn_s']:.2f}",
        f"{result['cold_start_ratio']:.2f}",
    )
    for number, pair in enumerate(result["pairs"], start=1):
        table.add_row(
            f"pair {number}", f"{pair['cold_s']:.2f}", f"{pair['warm_s']:.2f}", f"{pair['cold_s'] / pair['warm_s']:.2f}"
        )
    return table
