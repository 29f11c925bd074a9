"""Engine and session factory for SQLite (WAL) and Postgres, built explicitly, never at import time."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, Executable, Row, Table, create_engine, event, text
from sqlalchemy import exc as sqlalchemy_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from threadline.core.errors import StoreUnavailableError

SQLITE_CACHE_KIB = 64 * 1024
SQLITE_MMAP_BYTES = 256 * 1024 * 1024


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    # Reads of a hot store come from memory: a 64 MiB page cache per connection and the file memory-mapped
    # (no read syscall per page). Both are per connection and cost nothing until pages are touched.
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    cursor.close()


_SQLITE_TRANSIENT = ("locked", "busy", "readonly", "disk i/o", "unable to open")


def is_transient(exc: BaseException) -> bool:
    """Whether a database error is the environment's and may pass (connection lost or refused, pool exhausted,
    server restarting or failing over, database read-only), as opposed to a bug or bad data."""
    original = getattr(exc, "orig", None)
    if isinstance(exc, SQLAlchemyError) and isinstance(original, BaseException):
        exc = original
    if isinstance(exc, sqlite3.OperationalError):  # also raised for bad SQL: only the environment's kinds pass
        return any(word in str(exc).lower() for word in _SQLITE_TRANSIENT)
    return isinstance(exc, _TRANSIENT) or _is_read_only(exc)


_TRANSIENT = (
    sqlalchemy_exc.OperationalError,  # without a driver error behind it: the pool's own
    sqlalchemy_exc.InterfaceError,
    sqlalchemy_exc.TimeoutError,
    sqlalchemy_exc.DisconnectionError,
    psycopg.OperationalError,  # connection lost or refused, the checkpointer's pool timing out
    psycopg.InterfaceError,
)


def _is_read_only(exc: BaseException) -> bool:
    """A write refused because the database is read-only (a standby after failover, a read-only switch)."""
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        return True
    return isinstance(exc, sqlite3.OperationalError) and "readonly" in str(exc).replace("-", "")


def _drop_read_only_connections(context: ExceptionContext) -> None:
    """A connection that found the database read-only stays read-only (Postgres applies the setting at connect):
    treat it as a lost connection, so the pool replaces it and its peers, and writes work again once the database
    does, with no restart."""
    if context.original_exception is not None and _is_read_only(context.original_exception):
        context.is_disconnect = True


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine for `url`; SQLite gets WAL, foreign keys and a busy timeout, Postgres a sized pool."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
    event.listen(engine, "handle_error", _drop_read_only_connections)
    return engine


class Database:
    """An engine plus its session factory; the one handle repositories share."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str, *, pool_size: int = 10) -> Database:
        """Build the engine for `url` and wrap it."""
        return cls(make_engine(url, pool_size=pool_size))

    @property
    def backend(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.engine.dialect.name

    def insert(self, table: Table) -> Any:
        """The dialect's INSERT into `table`, which has `on_conflict_do_update` / `on_conflict_do_nothing` (one
        statement where a read and a write would otherwise race)."""
        dialect = postgresql if self.backend == "postgresql" else sqlite
        return dialect.insert(table)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session inside one transaction: committed on success, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A Core connection inside one transaction, for writes of plain rows on a turn's path: an insert through
        the ORM (`Session.add` and flush, or an ORM-enabled `insert`) costs about three times as much CPU here
        (`bench/RESULTS.md`). Statements must name tables (`Row.__table__`), not ORM classes."""
        with self.engine.begin() as conn:
            yield conn

    def first(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Row[Any] | None:
        """The first row of a read on a Core connection, with no ORM session. A turn's hot reads are statements
        built once with bound parameters: a read built and loaded through the ORM costs about five times the CPU
        (`bench/RESULTS.md`). Rows have the columns as attributes, so records validate from them as from ORM rows."""
        with self.engine.connect() as conn:
            return conn.execute(statement, params or {}).first()

    def all(self, statement: Executable, params: Mapping[str, Any] | None = None) -> list[Row[Any]]:
        """Every row of a read on a Core connection (see `first`)."""
        with self.engine.connect() as conn:
            return list(conn.execute(statement, params or {}))

    def ping(self) -> None:
        """Raise `StoreUnavailableError` unless the database answers a trivial query."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            where = self.engine.url.render_as_string(hide_password=True)
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            raise StoreUnavailableError(f"database unreachable at {where}: {reason}") from exc

    def check_writable(self) -> None:
        """Raise `StoreUnavailableError` unless the database accepts writes now (readiness)."""
        try:
            with self.engine.connect() as conn:
                if self.backend == "postgresql":
                    read_only = conn.execute(text("SELECT current_setting('transaction_read_only')")).scalar()
                    if read_only == "on" or conn.execute(text("SELECT pg_is_in_recovery()")).scalar():
                        raise StoreUnavailableError("the database is read-only")
                else:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")  # takes the write lock, writes nothing
                    conn.exec_driver_sql("ROLLBACK")
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            raise StoreUnavailableError(f"the database cannot write: {reason}") from exc

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
