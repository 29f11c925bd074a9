"""The database alone, opened from settings: what the administrative commands need, without the model stack
(`services.open_services` builds on it)."""

from __future__ import annotations

from threadline.core.settings import Settings
from threadline.memory import migrate
from threadline.memory.db import Database


def open_database(settings: Settings) -> Database:
    """Connect to the configured database and bring its schema to head."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database.from_url(settings.sqlalchemy_url, pool_size=settings.db_pool_size)
    db.ping()
    migrate.upgrade(db)
    return db
