"""Apply and inspect Alembic migrations programmatically (start-up, `threadline db upgrade`, readiness)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from threadline.memory.db import Database

_MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK_KEY = 74_726_561_646  # arbitrary, stable: serialises concurrent upgrades across workers


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest revision shipped with this version of Threadline."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "migrations directory has no revisions"
    return head


def current_revision(db: Database) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def is_at_head(db: Database) -> bool:
    """Whether the database schema matches this version of Threadline."""
    return current_revision(db) == head_revision()


def upgrade(db: Database) -> str:
    """Bring the database to head; safe to call from several processes at once. Returns the revision."""
    with _exclusive(db) as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        conn.commit()
    return head_revision()


@contextmanager
def startup_lock(db: Database) -> Iterator[None]:
    """Held by one process at a time across workers (and hosts, on Postgres): for start-up work that must run once,
    such as loading the demo store into an empty database."""
    with _exclusive(db):
        yield


@contextmanager
def _exclusive(db: Database) -> Iterator[Connection]:
    """A connection held under a cross-process lock: a Postgres advisory lock, or a file lock beside SQLite
    (taken before connecting, since even switching a new SQLite file to WAL needs it to itself)."""
    if db.backend == "postgresql":
        with db.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            conn.commit()
            try:
                yield conn
            finally:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                conn.commit()
        return
    database = db.engine.url.database
    if not database or database == ":memory:":
        with db.engine.connect() as conn:
            yield conn
        return
    with open(f"{database}.migrate-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with db.engine.connect() as conn:
                yield conn
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
