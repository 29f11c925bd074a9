"""The database alone, opened from settings: what the administrative commands need, without the model stack
(`services.open_services` builds on it)."""

from __future__ import annotations

from collections.abc import Callable

from threadline.core.settings import Settings
from threadline.memory import migrate
from threadline.memory.db import Database


def open_database(settings: Settings, *, progress: Callable[[str], None] | None = None) -> Database:
    """Connect to the configured database and bring its schema to head; `progress` hears of a pending migration
    before it runs."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database.from_url(settings.sqlalchemy_url, pool_size=settings.db_pool_size)
    db.ping()
    if progress is not None and (current := migrate.current_revision(db)) != (head := migrate.head_revision()):
        progress(f"migrating the database from {f'revision {current}' if current else 'empty'} to revision {head}")
    migrate.upgrade(db)
    return db
