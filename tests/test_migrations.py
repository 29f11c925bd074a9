import threading

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from tests.conftest import DatabaseFactory
from threadline.memory import migrate
from threadline.memory.db import Database
from threadline.memory.schema import Base


def test_upgrade_creates_every_table_and_matches_the_models(db_factory: DatabaseFactory) -> None:
    db = Database.from_url(db_factory.empty_url())
    assert migrate.current_revision(db) is None
    assert not migrate.is_at_head(db)
    assert migrate.upgrade(db) == migrate.head_revision()
    assert migrate.is_at_head(db)
    assert set(Base.metadata.tables) <= set(inspect(db.engine).get_table_names())
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    db.dispose()


def test_upgrade_is_idempotent_and_safe_from_concurrent_workers(db_factory: DatabaseFactory) -> None:
    url = db_factory.empty_url()
    errors: list[BaseException] = []

    def worker() -> None:
        db = Database.from_url(url)
        try:
            migrate.upgrade(db)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    db = Database.from_url(url)
    migrate.upgrade(db)
    assert migrate.is_at_head(db)
    db.dispose()


def test_upgrading_from_the_first_revision_keeps_the_data(db_factory: DatabaseFactory) -> None:
    from alembic import command
    from sqlalchemy import text

    db = Database.from_url(db_factory.empty_url())
    config = migrate.alembic_config()
    with db.engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.commit()
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO customers (id, provisional, created_at) VALUES ('c1', false, '2026-01-01')"))
        conn.execute(
            text(
                "INSERT INTO episodes (id, customer_id, status, channels, open_items, started_at, updated_at) "
                "VALUES ('e1', 'c1', 'open', '[]', '[]', '2026-01-01', '2026-01-01')"
            )
        )
    migrate.upgrade(db)
    from threadline.memory.repositories.episodes import SqlEpisodeRepository

    episode = SqlEpisodeRepository(db).get("e1")  # type: ignore[arg-type]
    assert episode is not None
    assert (episode.citations, episode.notices) == ([], [])
    db.dispose()
