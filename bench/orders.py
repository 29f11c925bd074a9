"""Order lookup at scale: `OrderSystem.get_order` over 100k orders in SQLite, beside a bare primary-key read.

`order_lookup_ratio` is our lookup's p99 over the bare read's, both measured in the same run on the same file:
what assembling a whole order (items, fulfilments, payments, validated records) costs over reading one row.

The store is filled with synthetic orders shaped like the demo store's (two items, one fulfilment, one
payment each) through SQLAlchemy Core in bulk, so 100k orders take seconds. Lookups draw random existing ids.
Each lookup is timed in wall-clock time and in the calling thread's CPU time: on a shared machine the wall
clock's tail measures the scheduler as much as the code, while CPU time is what the lookup itself costs.
The floor beside it is one `SELECT` by primary key on a plain `sqlite3` connection, returning the order row
alone: what any implementation pays before it assembles items, fulfilments and payments.
"""

from __future__ import annotations

import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.table import Table

QUICK_ORDERS = 5_000
FULL_ORDERS = 100_000
ORDERS_PER_CUSTOMER = 4
BATCH = 5_000
STATUSES = ("pending", "processed", "delivered", "cancelled", "return requested")
Log = Callable[[str], None]


def _rows(start: int, count: int) -> dict[str, list[dict[str, Any]]]:
    """`count` orders from number `start` on, with their customers, items, fulfilments and payments."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    rows: dict[str, list[dict[str, Any]]] = {"customers": [], "orders": [], "items": [], "fulfillments": []}
    rows["payments"] = []
    for n in range(start, start + count):
        order_id, customer_id = f"#B{n:07d}", f"cust-bench-{n // ORDERS_PER_CUSTOMER:06d}"
        if n % ORDERS_PER_CUSTOMER == 0:
            rows["customers"].append({"id": customer_id, "provisional": False})
        address = {"address1": f"{n} Main St", "city": "Springfield", "zip": f"{n % 100000:05d}", "country": "USA"}
        rows["orders"].append(
            {
                "id": order_id,
                "customer_id": customer_id,
                "status": STATUSES[n % len(STATUSES)],
                "address": address,
                "sequence": n,
                "placed_at": base + timedelta(minutes=n),
                "notes": None,
                "updated_at": base + timedelta(minutes=n),
            }
        )
        for position in range(2):
            rows["items"].append(
                {
                    "order_id": order_id,
                    "position": position,
                    "item_id": f"{n}{position}",
                    "product_id": f"p{n % 50}",
                    "name": "Desk Lamp" if position else "Bookshelf",
                    "price": Decimal("49.99") + position,
                    "options": {"color": "black"},
                }
            )
        rows["fulfillments"].append(
            {"order_id": order_id, "position": 0, "tracking_ids": [f"1Z{n:016d}"], "item_ids": [f"{n}0", f"{n}1"]}
        )
        rows["payments"].append(
            {
                "order_id": order_id,
                "position": 0,
                "transaction_type": "payment",
                "amount": Decimal("100.98"),
                "payment_method_id": f"credit_card_{n % 997}",
            }
        )
    return rows


def fill(url: str, orders: int, log: Log) -> None:
    """Migrate a fresh database at `url` and insert `orders` synthetic orders in batches."""
    from sqlalchemy import insert

    from threadline.memory import migrate
    from threadline.memory.db import Database
    from threadline.memory.schema import CustomerRow, FulfillmentRow, OrderItemRow, OrderRow, PaymentRow

    db = Database.from_url(url)
    try:
        migrate.upgrade(db)
        tables = {
            "customers": CustomerRow,
            "orders": OrderRow,
            "items": OrderItemRow,
            "fulfillments": FulfillmentRow,
            "payments": PaymentRow,
        }
        for start in range(0, orders, BATCH):
            rows = _rows(start, min(BATCH, orders - start))
            with db.engine.begin() as conn:
                for name, table in tables.items():
                    if rows[name]:
                        conn.execute(insert(table), rows[name])
            if (start + BATCH) % 25_000 == 0:
                log(f"{start + BATCH} orders written")
    finally:
        db.dispose()


def _percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return {
        "p50_ms": round(statistics.median(ms), 4),
        "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 4),
        "mean_ms": round(statistics.fmean(ms), 4),
    }


def _timed(lookup: Callable[[str], object], ids: list[str]) -> dict[str, Any]:
    wall, cpu = [], []
    for order_id in ids:
        start, start_cpu = time.perf_counter(), time.thread_time()
        found = lookup(order_id)
        wall.append(time.perf_counter() - start)
        cpu.append(time.thread_time() - start_cpu)
        if found is None:
            raise RuntimeError(f"order {order_id} not found")
    return {**_percentiles(wall), **{f"cpu_{k}": v for k, v in _percentiles(cpu).items()}}


def run(quick: bool = False, log: Log | None = None) -> dict[str, Any]:
    """Fill a fresh SQLite store, then time `get_order` and the bare primary-key read, interleaved in blocks."""
    from threadline.core.types import OrderId
    from threadline.memory.db import Database
    from threadline.memory.repositories.orders import SqlOrderSystem

    say = log or (lambda _line: None)
    count = QUICK_ORDERS if quick else FULL_ORDERS
    lookups = 1_000 if quick else 5_000
    with tempfile.TemporaryDirectory(prefix="threadline-bench-orders-") as tmp:
        path = Path(tmp) / "orders.db"
        url = f"sqlite:///{path}"
        say(f"writing {count} orders")
        fill_start = time.perf_counter()
        fill(url, count, say)
        fill_s = time.perf_counter() - fill_start
        db = Database.from_url(url)
        raw = sqlite3.connect(path, check_same_thread=False)
        try:
            orders = SqlOrderSystem(db)
            rng = random.Random(7)
            ids = [f"#B{rng.randrange(count):07d}" for _ in range(lookups)]

            def bare(order_id: str) -> object:
                return raw.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()

            def ours(order_id: str) -> object:
                return orders.get_order(OrderId(order_id))

            for warm in ids[:200]:  # statement caches, page cache
                ours(warm)
                bare(warm)
            say(f"{lookups} lookups each")
            halves = (ids[: lookups // 2], ids[lookups // 2 :])
            ours_first, bare_first = _timed(ours, halves[0]), _timed(bare, halves[0])
            bare_second, ours_second = _timed(bare, halves[1]), _timed(ours, halves[1])
            threadline = {k: max(ours_first[k], ours_second[k]) for k in ours_first}
            floor = {k: max(bare_first[k], bare_second[k]) for k in bare_first}
        finally:
            raw.close()
            db.dispose()
    return {
        "orders": count,
        "lookups": lookups,
        "fill_s": round(fill_s, 2),
        "get_order": threadline,
        "bare_primary_key": floor,
        "order_lookup_p99_ms": threadline["p99_ms"],
        "order_lookup_cpu_p99_ms": threadline["cpu_p99_ms"],
        "order_lookup_ratio": round(threadline["p99_ms"] / floor["p99_ms"], 2),
        "order_lookup_cpu_ratio": round(threadline["cpu_p99_ms"] / floor["cpu_p99_ms"], 2),
    }


def render(result: dict[str, Any]) -> Table:
    """The result as a table: one row per lookup path."""
    table = Table(
        "",
        "p50 ms",
        "p99 ms",
        "CPU p50 ms",
        "CPU p99 ms",
        title=f"Order lookup over {result['orders']} orders (SQLite, {result['lookups']} lookups each)",
        caption=(
            f"p99 ratio {result['order_lookup_ratio']:.1f} (goal ≤ 10) · "
            f"CPU p99 ratio {result['order_lookup_cpu_ratio']:.1f}"
        ),
    )
    for label, key in (("OrderSystem.get_order", "get_order"), ("bare SELECT by id", "bare_primary_key")):
        row = result[key]
        table.add_row(
            label,
            *(f"{row[k]:.3f}" for k in ("p50_ms", "p99_ms", "cpu_p50_ms", "cpu_p99_ms")),
        )
    return table


if __name__ == "__main__":  # pragma: no cover - `threadline bench --only orders` is the entry point
    import json

    print(json.dumps(run(quick=True, log=print), indent=2))
