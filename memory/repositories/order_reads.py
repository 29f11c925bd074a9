"""Whole orders read in one statement: the database assembles each order, with its items, fulfilments and payments,
into one JSON document, and pydantic-core validates it in one call.

Reading an order as four Core statements (the order row, then each child table) cost about 30 times a bare
primary-key read of the order row (`bench/orders.py`): nine tenths of it was SQLAlchemy's work per statement
(compiled-cache lookup, the expanding `IN` rendered on every call, result processing), not the database's. The
statement here is plain SQL per dialect, executed on the pooled driver connection; the database does the joins
and the JSON in about four primary-key reads' time.

Amounts are integer cents in every table (`schema.Money`) and come out as exact decimal strings ("49.99",
"-0.05"); timestamps come out in UTC with an explicit offset, as `schema.UTCDateTime` reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import TypeAdapter
from sqlalchemy import Connection

from threadline.core.types import Order
from threadline.memory.db import Database

Dialect = Literal["sqlite", "postgresql"]
_ORDERS: TypeAdapter[list[Order]] = TypeAdapter(list[Order])

# (JSON key, column) per child table, in the order the records declare them.
_CHILDREN: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "items": (
        "order_items",
        (("item_id", "text"), ("product_id", "text"), ("name", "text"), ("price", "money"), ("options", "json")),
    ),
    "fulfillments": ("fulfillments", (("tracking_ids", "json"), ("item_ids", "json"))),
    "payments": ("payments", (("transaction_type", "text"), ("amount", "money"), ("payment_method_id", "text"))),
}
_HEAD = (
    ("id", "text"),
    ("customer_id", "text"),
    ("status", "text"),
    ("address", "json"),
    ("placed_at", "time"),
    ("notes", "text"),
    ("cancel_reason", "text"),
    ("request", "json"),
)


def _value(dialect: Dialect, alias: str, column: str, kind: str) -> str:
    ref = f"{alias}.{column}"
    if kind == "money":
        if dialect == "sqlite":
            return f"printf('%s%d.%02d', CASE WHEN {ref} < 0 THEN '-' ELSE '' END, abs({ref}) / 100, abs({ref}) % 100)"
        return f"round({ref}::numeric / 100, 2)::text"
    if kind == "json":
        return f"json({ref})" if dialect == "sqlite" else ref
    if kind == "time":  # stored in UTC; SQLite keeps it without a zone
        if dialect == "sqlite":
            return f"CASE WHEN {ref} IS NULL THEN NULL ELSE {ref} || '+00:00' END"
        return f"""to_char({ref} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || '+00:00'"""
    return ref


def _object(dialect: Dialect, alias: str, fields: Sequence[tuple[str, str]], extra: Sequence[str] = ()) -> str:
    pairs = [f"'{name}', {_value(dialect, alias, name, kind)}" for name, kind in fields]
    function = "json_object" if dialect == "sqlite" else "json_build_object"
    return f"{function}({', '.join([*pairs, *extra])})"


def _children(dialect: Dialect, key: str) -> str:
    table, fields = _CHILDREN[key]
    element = _object(dialect, "c", fields)
    if dialect == "sqlite":  # SQLite before 3.44 has no ORDER BY inside an aggregate: order a subquery
        rows = f"(SELECT * FROM {table} c WHERE c.order_id = o.id ORDER BY c.position) c"
        return f"'{key}', json((SELECT json_group_array({element}) FROM {rows}))"
    ordered = f"json_agg({element} ORDER BY c.position)"
    return f"'{key}', COALESCE((SELECT {ordered} FROM {table} c WHERE c.order_id = o.id), '[]'::json)"


def order_sql(dialect: Dialect, by: Literal["id", "customer"], *, lock: bool = False) -> str:
    """The statement reading whole orders as JSON text, one row per order: by id (one positional parameter), or a
    customer's most recent first (customer id, limit). `lock` takes the order row's write lock (Postgres)."""
    document = _object(dialect, "o", _HEAD, [_children(dialect, key) for key in _CHILDREN])
    if dialect == "postgresql":
        document += "::text"
    mark = "?" if dialect == "sqlite" else "%s"
    where = f"o.id = {mark}" if by == "id" else f"o.customer_id = {mark} ORDER BY o.sequence DESC, o.id LIMIT {mark}"
    locking = " FOR UPDATE OF o" if lock and dialect == "postgresql" else ""
    return f"SELECT {document} FROM orders o WHERE {where}{locking}"


class OrderReads:
    """Whole orders by id or by customer, each read one statement on a pooled driver connection."""

    def __init__(self, db: Database) -> None:
        self._db = db
        dialect: Dialect = "sqlite" if db.backend == "sqlite" else "postgresql"
        self._by_id = order_sql(dialect, "id")
        self._by_customer = order_sql(dialect, "customer")
        self._locked = order_sql(dialect, "id", lock=True)

    def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[Order]:
        conn = self._db.engine.raw_connection()
        try:
            cursor = conn.cursor()
            try:
                cursor.execute(sql, params)
                documents = [row[0] for row in cursor.fetchall()]
            finally:
                cursor.close()
        finally:
            conn.close()  # back to the pool, which rolls back the read's transaction
        return _validate(documents)

    def get(self, order_id: str) -> Order | None:
        """The order, or None."""
        found = self._fetch(self._by_id, (order_id,))
        return found[0] if found else None

    def for_customer(self, customer_id: str, limit: int) -> list[Order]:
        """The customer's orders, most recent first."""
        return self._fetch(self._by_customer, (customer_id, limit))

    def locked(self, conn: Connection, order_id: str) -> Order | None:
        """The order read in the caller's transaction, its row locked on Postgres (SQLite's writer holds the
        database's write lock already)."""
        found = _validate([row[0] for row in conn.exec_driver_sql(self._locked, (order_id,))])
        return found[0] if found else None


def _validate(documents: list[str]) -> list[Order]:
    if not documents:
        return []
    if len(documents) == 1:
        return [Order.model_validate_json(documents[0])]
    return _ORDERS.validate_json(f"[{','.join(documents)}]")
