"""Shared fixtures: backend-parametrized databases (SQLite and the local Postgres), demo data, embeddings."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

PG_ADMIN_DSN = os.environ.get("THREADLINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
RUN_ID = uuid.uuid4().hex[:8]


def pytest_configure(config: pytest.Config) -> None:
    # Tests never reach the network: no tracing, no hub downloads, no real model keys.
    os.environ["LANGSMITH_TRACING"] = "false"
    os.environ["LANGCHAIN_TRACING_V2"] = "false"
    os.environ["LANGSMITH_TEST_TRACKING"] = "false"
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.pop("OPENAI_API_KEY", None)
    for key in [k for k in os.environ if k.startswith("THREADLINE_") and k != "THREADLINE_TEST_PG_DSN"]:
        os.environ.pop(key)
    # Embeddings are deterministic: every test and every server process the tests start shares one cache.
    cache = (
        config.cache.mkdir("threadline-embeddings")
        if getattr(config, "cache", None)
        else Path(".threadline-test-cache")
    )
    os.environ["THREADLINE_CACHE_DIR"] = str(cache)


def _pg_url(name: str) -> str:
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}"


def _pg_exec(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


class PgDatabases:
    """Creates throwaway databases for this test run and drops them at the end."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def create(self, template: str | None = None) -> str:
        name = f"tl_{RUN_ID}_{len(self.created)}"
        _pg_exec(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        self.created.append(name)
        return name

    def drop_all(self) -> None:
        for name in reversed(self.created):
            _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg() -> Iterator[PgDatabases]:
    try:
        _pg_exec("SELECT 1")
    except psycopg.OperationalError as exc:  # pragma: no cover - the machine always runs Postgres
        pytest.fail(f"PostgreSQL at {PG_ADMIN_DSN} is required for the Postgres half of the suite: {exc}")
    dbs = PgDatabases()
    yield dbs
    dbs.drop_all()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Runs the test once on SQLite and once on Postgres."""
    return str(request.param)


class DatabaseFactory:
    """Fresh databases of one backend: empty, migrated, or a copy of a prepared template."""

    def __init__(self, backend: str, pg: PgDatabases, tmp: Path) -> None:
        self.backend, self.pg, self.tmp = backend, pg, tmp

    def empty_url(self) -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{self.tmp / f'{uuid.uuid4().hex[:8]}.db'}"
        return _pg_url(self.pg.create())

    def copy_url(self, template_url: str) -> str:
        if self.backend == "sqlite":
            target = self.tmp / f"{uuid.uuid4().hex[:8]}.db"
            shutil.copy(template_url.split("///", 1)[1], target)
            return f"sqlite:///{target}"
        return _pg_url(self.pg.create(template=template_url.rsplit("/", 1)[1]))


_templates: dict[tuple[str, str], str] = {}


def _template(kind: str, backend: str, pg: PgDatabases, tmp_root: Path) -> str:
    """A migrated (and, for `demo`, demo-loaded) database built once per run, to copy from."""
    from threadline.demo.loader import load_demo
    from threadline.memory import migrate
    from threadline.memory.db import Database
    from threadline.memory.stores import Stores

    key = (kind, backend)
    if key not in _templates:
        url = DatabaseFactory(backend, pg, tmp_root).empty_url()
        db = Database.from_url(url)
        migrate.upgrade(db)
        if kind == "demo":
            load_demo(Stores.over(db))
        db.dispose()
        _templates[key] = url
    return _templates[key]


@pytest.fixture
def db_factory(backend: str, pg: PgDatabases, tmp_path: Path) -> DatabaseFactory:
    return DatabaseFactory(backend, pg, tmp_path)


@pytest.fixture
def db_url(db_factory: DatabaseFactory, pg: PgDatabases, tmp_path_factory: pytest.TempPathFactory) -> str:
    """URL of a fresh, migrated, empty database on the current backend."""
    root = tmp_path_factory.getbasetemp() / "templates"
    root.mkdir(exist_ok=True)
    return db_factory.copy_url(_template("schema", db_factory.backend, pg, root))


@pytest.fixture
def demo_db_url(db_factory: DatabaseFactory, pg: PgDatabases, tmp_path_factory: pytest.TempPathFactory) -> str:
    """URL of a fresh database holding the demo store, on the current backend."""
    root = tmp_path_factory.getbasetemp() / "templates"
    root.mkdir(exist_ok=True)
    return db_factory.copy_url(_template("demo", db_factory.backend, pg, root))


@pytest.fixture
def db(db_url: str) -> Iterator[object]:
    from threadline.memory.db import Database

    database = Database.from_url(db_url)
    yield database
    database.dispose()


@pytest.fixture
def stores(db: object) -> object:
    from threadline.memory.stores import Stores

    return Stores.over(db)  # type: ignore[arg-type]


@pytest.fixture
def demo_stores(demo_db_url: str) -> Iterator[object]:
    from threadline.memory.db import Database
    from threadline.memory.stores import Stores

    database = Database.from_url(demo_db_url)
    yield Stores.over(database)
    database.dispose()


@pytest.fixture(scope="session")
def embeddings() -> object:
    """The local MiniLM model, loaded once for the whole run (the same instance the app factory uses)."""
    from threadline.core.settings import Settings
    from threadline.memory.embeddings import make_embeddings

    return make_embeddings(Settings(embeddings="local"))


@pytest.fixture(scope="session")
def scripted_server(embeddings: Any) -> Iterator[Any]:
    """The OpenAI-compatible scripted model server, reached over real HTTP."""
    from threadline.agents.models import shared_classifier
    from threadline.agents.scripted_server import ScriptedModelServer

    with ScriptedModelServer(classifier=shared_classifier(embeddings), api_key="test-key") as server:
        yield server


@pytest.fixture(params=["offline", "http"])
def settings(request: pytest.FixtureRequest, demo_db_url: str, tmp_path: Path) -> Any:
    """Settings over a fresh demo database, with the offline model and with the scripted HTTP model."""
    from threadline.core.settings import Settings

    base: dict[str, Any] = {"data_dir": tmp_path, "database_url": demo_db_url, "load_demo": False}
    if request.param == "http":
        server = request.getfixturevalue("scripted_server")
        base |= {"model": "openai:scripted-model", "openai_base_url": server.base_url, "openai_api_key": "test-key"}
    return Settings(**base)


@pytest.fixture
def services(settings: Any) -> Iterator[Any]:
    """The product's services opened from `settings`."""
    from threadline.product.services import open_services

    opened = open_services(settings)
    yield opened
    opened.close()
