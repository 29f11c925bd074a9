"""Long-term memory: LangGraph's `BaseStore` over the domain database, namespaced by customer.

Items live in the `memory_items` table on SQLite and Postgres alike, so a customer's memories move with
their other rows when customers are merged and unmerged. Semantic search embeds each item's indexed text
once and ranks a namespace's items by cosine similarity; a customer's memory is small (tens of items), so
scanning their namespace is cheaper than any index, and no database extension is needed.

An item indexed on the store's own fields is embedded when a search with a query first meets it, not when it
is written: a turn writes its episode record every time, and a search (`recall_context`) is rare, so embedding
at write time (several milliseconds of CPU per turn) mostly bought vectors no search read. The vector is the
same either way, and it is stored once computed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings
from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    validate_op_namespace,
)
from langgraph.store.base.embed import get_text_at_path, tokenize_path
from sqlalchemy import Connection, Row, and_, bindparam, delete, func, or_, select, true, update
from sqlalchemy.exc import SQLAlchemyError

from threadline.memory.db import Database
from threadline.memory.schema import NAMESPACE_SEP, MemoryItemRow, table, utcnow

log = logging.getLogger(__name__)

SEP = NAMESPACE_SEP

DEFAULT_FIELDS = ("text",)


def _join(namespace: Sequence[str]) -> str:
    return SEP.join(namespace)


def _under(prefix: Sequence[str]) -> Any:
    """Items in `prefix` or below it (every item for an empty prefix). The LIKE narrows the scan; the exact
    substring test keeps the match case-sensitive where LIKE is not (SQLite)."""
    if not prefix:
        return true()
    joined, namespace = _join(prefix), _ITEMS.c.namespace
    below = and_(
        namespace.startswith(joined + SEP, autoescape=True),
        func.substr(namespace, 1, len(joined) + 1) == joined + SEP,
    )
    return or_(namespace == joined, below)


def _matches(value: Any, condition: Any) -> bool:
    if isinstance(condition, dict) and condition and all(str(k).startswith("$") for k in condition):
        ops = {"$eq": value == condition.get("$eq"), "$ne": value != condition.get("$ne")}
        for op, expected in condition.items():
            if op in ops:
                if not ops[op]:
                    return False
            elif op == "$in":
                if value not in expected:
                    return False
            else:
                try:
                    ok = {"$gt": value > expected, "$gte": value >= expected}.get(op)
                    ok = ok if ok is not None else {"$lt": value < expected, "$lte": value <= expected}[op]
                except (TypeError, KeyError):
                    return False
                if not ok:
                    return False
        return True
    return bool(value == condition)


def _namespace_matches(namespace: tuple[str, ...], conditions: Sequence[MatchCondition]) -> bool:
    for condition in conditions:
        path = tuple(condition.path)
        part = namespace[: len(path)] if condition.match_type == "prefix" else namespace[-len(path) :]
        if len(part) != len(path) or any(p != "*" and p != n for p, n in zip(path, part, strict=True)):
            return False
    return True


_ITEMS = table(MemoryItemRow)
_GET = select(_ITEMS).where(_ITEMS.c.namespace == bindparam("namespace"), _ITEMS.c.key == bindparam("key"))
_DELETE = delete(_ITEMS).where(_ITEMS.c.namespace == bindparam("namespace"), _ITEMS.c.key == bindparam("key"))
PENDING = b""
"""The embedding of an item indexed on the store's fields and not embedded yet (NULL: an item not indexed)."""
_EMBEDDED = (
    update(_ITEMS)
    .where(_ITEMS.c.id == bindparam("item"), _ITEMS.c.updated_at == bindparam("written"), _ITEMS.c.embedding == PENDING)
    .values(embedding=bindparam("vector"))
)
"""Store a deferred embedding, unless the item was written again meanwhile."""


class SqlStore(BaseStore):
    """`BaseStore` over the domain database, with semantic search when given embeddings."""

    supports_ttl = False

    def __init__(self, db: Database, embeddings: Embeddings | None = None, fields: Sequence[str] = DEFAULT_FIELDS):
        self._db = db
        self._embeddings = embeddings
        self._fields = tuple(fields)
        insert = db.insert(_ITEMS)
        changed = {name: insert.excluded[name] for name in ("value", "embedding", "updated_at")}
        # Built once: a turn's writes compute no statement or cache key.
        self._upsert = insert.on_conflict_do_update(index_elements=[_ITEMS.c.namespace, _ITEMS.c.key], set_=changed)

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        for op in ops:  # labels with dots would read back as another namespace
            validate_op_namespace(op)
        embedded = self._embed_puts([op for op in ops if isinstance(op, PutOp)])
        # One Core transaction for the whole batch: no ORM session (a read through a session costs several times
        # the CPU of the same statement on a connection) and one commit.
        results: list[Result] = []
        computed: list[dict[str, Any]] = []
        with self._db.transaction() as conn:
            for op in ops:
                if isinstance(op, GetOp):
                    results.append(self._get(conn, op))
                elif isinstance(op, PutOp):
                    self._put(conn, op, embedded.get(id(op)))
                    results.append(None)
                elif isinstance(op, SearchOp):
                    results.append(self._search(conn, op, computed))
                elif isinstance(op, ListNamespacesOp):
                    results.append(self._list_namespaces(conn, op))
                else:  # pragma: no cover - BaseStore defines no other operation
                    raise TypeError(f"unknown store operation {type(op).__name__}")
        self._keep(computed)
        return results

    def _keep(self, computed: list[dict[str, Any]]) -> None:
        """Store the vectors a search computed, after the batch's own transaction and best-effort: a search stays a
        read (a locked SQLite file or a read-only database fails only this write; the next search computes them
        again)."""
        if not computed:
            return
        try:
            with self._db.transaction() as conn:
                conn.execute(_EMBEDDED, computed)
        except SQLAlchemyError as exc:
            log.warning("long-term memory: %s computed vectors not stored (%s)", len(computed), type(exc).__name__)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return await asyncio.to_thread(self.batch, list(ops))

    # -- operations ---------------------------------------------------------------------------------------

    def _get(self, s: Connection, op: GetOp) -> Item | None:
        row = s.execute(_GET, {"namespace": _join(op.namespace), "key": op.key}).first()
        return self._item(row) if row else None

    def _put(self, s: Connection, op: PutOp, embedding: bytes | None) -> None:
        """One statement per write: a delete, or an insert that updates the item when the key exists."""
        namespace = _join(op.namespace)
        if op.value is None:
            s.execute(_DELETE, {"namespace": namespace, "key": op.key})
            return
        now = utcnow()
        row = {"namespace": namespace, "key": op.key, "created_at": now, "updated_at": now}
        s.execute(self._upsert, {**row, "value": dict(op.value), "embedding": embedding})

    def _search(self, s: Connection, op: SearchOp, computed: list[dict[str, Any]]) -> list[SearchItem]:
        rows = [
            row
            for row in s.execute(select(_ITEMS).where(_under(op.namespace_prefix)).order_by(_ITEMS.c.updated_at.desc()))
            if all(_matches(row.value.get(k), c) for k, c in (op.filter or {}).items())
        ]
        scores: list[float | None] = [None] * len(rows)
        if op.query and self._embeddings is not None and rows:
            query = np.asarray(self._embeddings.embed_query(op.query), dtype=np.float32)
            query /= np.linalg.norm(query) or 1.0
            embedded = self._embed_pending([row for row in rows if row.embedding == PENDING], computed)
            for i, row in enumerate(rows):
                stored = embedded.get(row.id, row.embedding)
                if stored:
                    vector = np.frombuffer(stored, dtype=np.float32)
                    scores[i] = float(vector @ query / (np.linalg.norm(vector) or 1.0))
            order = sorted(range(len(rows)), key=lambda i: (scores[i] is None, -(scores[i] or 0.0)))
            rows, scores = [rows[i] for i in order], [scores[i] for i in order]
        window = slice(op.offset, op.offset + op.limit)
        return [self._item(row, score) for row, score in zip(rows[window], scores[window], strict=True)]

    def _list_namespaces(self, s: Connection, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        found: set[tuple[str, ...]] = set()
        for joined in s.scalars(select(_ITEMS.c.namespace).distinct()):
            namespace = tuple(joined.split(SEP))
            if _namespace_matches(namespace, op.match_conditions or ()):
                found.add(namespace[: op.max_depth] if op.max_depth else namespace)
        return sorted(found)[op.offset : op.offset + op.limit]

    # -- helpers ------------------------------------------------------------------------------------------

    @staticmethod
    def _item(row: Row[Any], score: float | None = None) -> SearchItem:
        namespace = tuple(row.namespace.split(SEP))
        created: datetime = row.created_at
        return SearchItem(namespace, row.key, row.value, created, row.updated_at, score=score)

    def _embed_puts(self, puts: list[PutOp]) -> dict[int, bytes]:
        """The embedding column of each put: `PENDING` for text on the store's own fields (embedded when first
        searched), the vector for text on other fields (one call for all); none for an item with no text (or
        index=False)."""
        if self._embeddings is None:
            return {}
        found: dict[int, bytes] = {}
        texts: dict[int, str] = {}
        for op in puts:
            if op.value is None or op.index is False:
                continue
            fields = self._fields if op.index is None else tuple(op.index)
            text = _indexed_text(op.value, fields)
            if text and fields == self._fields:
                found[id(op)] = PENDING
            elif text:
                texts[id(op)] = text
        if texts:
            vectors = self._embeddings.embed_documents(list(texts.values()))
            found |= {key: np.asarray(v, dtype=np.float32).tobytes() for key, v in zip(texts, vectors, strict=True)}
        return found

    def _embed_pending(self, rows: list[Row[Any]], computed: list[dict[str, Any]]) -> dict[int, bytes]:
        """Embed items written `PENDING` (one call for all), by item id; the vectors to store go to `computed`."""
        if not rows or self._embeddings is None:
            return {}
        vectors = self._embeddings.embed_documents([_indexed_text(row.value, self._fields) for row in rows])
        embedded = {row.id: np.asarray(v, dtype=np.float32).tobytes() for row, v in zip(rows, vectors, strict=True)}
        computed.extend({"item": row.id, "written": row.updated_at, "vector": embedded[row.id]} for row in rows)
        return embedded


def _indexed_text(value: Mapping[str, Any], fields: Sequence[str]) -> str:
    """The text an item is embedded by: its values at `fields`, one per line."""
    return "\n".join(t for f in fields for t in get_text_at_path(value, tokenize_path(f)) if t)
