"""Opening the product's services from settings: database, migrations, demo data, knowledge index."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from core.settings import Settings
from demo.loader import LoadReport, load_demo
from memory import migrate
from memory.db import Database
from memory.embeddings import make_embeddings
from memory.knowledge_index import KnowledgeIndex
from memory.stores import Stores

log = logging.getLogger("threadline")
Progress = Callable[[str, int, int], None]


@dataclass
class Services:
    """Everything a process needs to serve customers, built once at start-up."""

    settings: Settings
    db: Database
    stores: Stores
    index: KnowledgeIndex
    demo_report: LoadReport | None = None
    extras: dict[str, object] = field(default_factory=dict)

    def close(self) -> None:
        """Release pooled connections."""
        self.db.dispose()


def open_database(settings: Settings) -> Database:
    """Connect to the configured database and bring its schema to head."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database.from_url(settings.sqlalchemy_url, pool_size=settings.db_pool_size)
    db.ping()
    migrate.upgrade(db)
    return db


def open_services(settings: Settings, *, progress: Progress | None = None) -> Services:
    """Open the database, load the demo into an empty one when configured, and build the services."""
    db = open_database(settings)
    stores = Stores.over(db)
    report = None
    if settings.load_demo and stores.customers.count() == 0:
        log.info("empty database: loading the demo store")
        report = load_demo(stores, progress) if progress else load_demo(stores)
    index = KnowledgeIndex(make_embeddings(settings), settings.index_dir)
    index.sync(stores.knowledge)
    return Services(settings=settings, db=db, stores=stores, index=index, demo_report=report)
