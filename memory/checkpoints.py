"""Checkpointer factories: SQLite beside the domain store by default, Postgres on a pool when configured.

Checkpoints are read back with strict msgpack deserialization (only an allow-list of types is ever rebuilt, so a
tampered checkpoint row cannot make the process import and call arbitrary code) and, when a key is configured,
are encrypted at rest with AES (EAX mode: tampering is detected). Checkpoints written before a key was set still
load; they are rewritten encrypted as the conversation goes on.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

_SETUP_LOCK_KEY = 74_726_561_647
_SQLITE_SETUP_TIMEOUT_S = 30.0
ALLOWED_MSGPACK_TYPES: tuple[tuple[str, str], ...] = ()
"""Types of our own that graph state may hold, beyond langgraph's built-in safe list (messages, datetimes,
decimals, sets…). The support graph's state is messages and plain JSON values, so none are needed today."""


class _Sealed:
    """A string channel value the Postgres saver must store as an (encrypted) blob rather than inline."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class _SealingSerializer(SerializerProtocol):
    """Serializes a `_Sealed` value as its plain string (so it loads back as a `str`); all else as `inner` does."""

    def __init__(self, inner: SerializerProtocol) -> None:
        self.inner = inner

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        return self.inner.dumps_typed(obj.text if isinstance(obj, _Sealed) else obj)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        return self.inner.loads_typed(data)


def _sealed_postgres_saver() -> type[Any]:
    """PostgresSaver keeps primitive channel values (strings: the running summary, the last reply) inline in the
    `checkpoints` JSONB, outside the serializer, so encryption would never see them. This subclass stores every
    string channel as a blob, through the (encrypting) serializer, at its current version."""
    from langgraph.checkpoint.postgres import PostgresSaver

    class SealedPostgresSaver(PostgresSaver):
        def put(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
            values = checkpoint["channel_values"]
            strings = {k for k, v in values.items() if isinstance(v, str)}
            if not strings:
                return super().put(config, checkpoint, metadata, new_versions)
            sealed = {k: _Sealed(v) if k in strings else v for k, v in values.items()}
            versions = {**{k: checkpoint["channel_versions"][k] for k in strings}, **new_versions}
            patched = checkpoint.copy()
            patched["channel_values"] = sealed
            return super().put(config, patched, metadata, versions)

    return SealedPostgresSaver


def make_serializer(key: bytes | None = None) -> SerializerProtocol:
    """The checkpoint serializer: strict msgpack (an allow-list, never arbitrary imports), AES-encrypted when
    `key` (16, 24 or 32 bytes) is given."""
    strict = JsonPlusSerializer(allowed_msgpack_modules=ALLOWED_MSGPACK_TYPES or None)
    if key is None:
        return strict
    from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

    return _SealingSerializer(EncryptedSerializer.from_pycryptodome_aes(serde=strict, key=key))


def _set_up_sqlite(conn: sqlite3.Connection, saver: Any) -> None:
    """WAL mode and the saver's tables. Workers starting together on a fresh file race for the lock that
    switching the journal mode and creating tables take; SQLite answers "database is locked" at once to some of
    those upgrades (without waiting out the busy timeout, to avoid a deadlock), so retry for a while."""
    deadline = time.monotonic() + _SQLITE_SETUP_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            saver.setup()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _discard_if_read_only(conn: Any) -> None:
    """On return to the pool: a connection opened while the database was read-only (a standby, a read-only switch)
    stays read-only, so it is dropped rather than reused; once the database writes again, new connections do too.
    Postgres reports both settings with every connection, so this costs no round trip."""
    for setting in ("default_transaction_read_only", "in_hot_standby"):
        if conn.info.parameter_status(setting) == b"on":
            raise ConnectionError(f"{setting} is on: the connection is discarded")


def _try_lock(conn: Any) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s) AS locked", (_SETUP_LOCK_KEY,)).fetchone()
    return bool(row["locked"])


@contextmanager
def open_checkpointer(
    sqlalchemy_url: str, *, pool_size: int = 10, key: bytes | None = None
) -> Iterator[BaseCheckpointSaver[str]]:
    """A ready checkpointer for the database at `sqlalchemy_url`, closed on exit; `key` encrypts checkpoints."""
    serde = make_serializer(key)
    if sqlalchemy_url.startswith("sqlite"):
        path = sqlalchemy_url.split("///", 1)[1]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        from langgraph.checkpoint.sqlite import SqliteSaver

        conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
        saver = SqliteSaver(conn, serde=serde)
        _set_up_sqlite(conn, saver)
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
        reset=_discard_if_read_only,
        open=True,
    )
    try:
        saver_type = _sealed_postgres_saver() if key is not None else PostgresSaver
        saver_pg = saver_type(pool, serde=serde)  # type: ignore[arg-type]
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
