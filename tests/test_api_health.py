"""The HTTP skeleton: liveness, readiness with its checks, the error shape, the OpenAPI description."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from threadline.api.app import create_app
from threadline.core.settings import Settings


@pytest.fixture
def client(demo_db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, database_url=demo_db_url, load_demo=False)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_healthz_and_readyz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.json()
    assert ready.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "knowledge_index": "ok"},
    }


def test_readyz_reports_a_schema_behind_head(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    with services.db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'older'"))
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["status"] == "not ready"
    assert ready.json()["checks"]["migrations"] != "ok"


def test_openapi_is_published(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/healthz", "/readyz"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 200


def test_creating_the_app_builds_nothing(tmp_path: Path) -> None:
    create_app(Settings(data_dir=tmp_path / "untouched"))
    assert not (tmp_path / "untouched").exists()
