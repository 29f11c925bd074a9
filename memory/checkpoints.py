"""Checkpointer factories: SQLite beside the domain store by default, Postgres on a pool when configured."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

_SETUP_LOCK_KEY = 74_726_561_647


def _try_lock(conn: Any) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s) AS locked", (_SETUP_LOCK_KEY,)).fetchone()
    return bool(row["locked"])


@contextmanager
def open_checkpointer(sqlalchemy_url: str, *, pool_size: int = 10) -> Iterator[BaseCheckpointSaver[str]]:
    """A ready checkpointer for the database at `sqlalchemy_url`, closed on exit."""
    if sqlalchemy_url.startswith("sqlite"):
        path = sqlalchemy_url.split("///", 1)[1]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        from langgraph.checkpoint.sqlite import SqliteSaver

        conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        saver = SqliteSaver(conn)
        saver.setup()
        try:
            yield saver
        finally:
            conn.close()
        return
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool

    dsn = sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)
    pool: ConnectionPool = ConnectionPool(
        dsn,
        min_size=1,
        max_size=pool_size,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=True,
    )
    try:
        saver_pg = PostgresSaver(pool)  # type: ignore[arg-type]
        # Workers start together; the saver's own migrations are not safe to run concurrently. Poll the lock
        # rather than block on it: a blocked statement holds a snapshot that CREATE INDEX CONCURRENTLY
        # (one of those migrations) would wait for, a deadlock.
        with pool.connection() as lock:
            while not _try_lock(lock):
                time.sleep(0.05)
            try:
                saver_pg.setup()
            finally:
                lock.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK_KEY,))
        yield saver_pg
    finally:
        pool.close()
