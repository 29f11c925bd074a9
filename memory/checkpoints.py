"""Checkpointer factories: SQLite beside the domain store by default, Postgres on a pool when configured."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver


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
        saver_pg.setup()
        yield saver_pg
    finally:
        pool.close()
