"""The HTTP skeleton: liveness, readiness with its checks, the error shape, the OpenAPI description."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text

from tests.conftest import PG_ADMIN_DSN
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
        "checks": {"database": "ok", "database_writable": "ok", "migrations": "ok", "knowledge_index": "ok"},
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


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_a_read_only_database_answers_503_and_the_service_recovers_by_itself(demo_db_url: str, tmp_path: Path) -> None:
    """The database goes read-only for a while (as a failover does), then writable again: messages get 503 with
    Retry-After meanwhile, /readyz says why, and once the database writes again so does the service, with no
    restart; every message accepted is answered exactly once."""
    name = demo_db_url.rsplit("/", 1)[1]
    key = "channel-key-for-tests-0001"
    settings = Settings(data_dir=tmp_path, database_url=demo_db_url, load_demo=False, bootstrap_keys=f"channel:{key}")
    auth = {"Authorization": f"Bearer {key}"}

    def send(n: int) -> Any:
        body = {"channel": "sms", "from": "+15550104444", "text": f"hi, is my parcel coming today? ({n})"}
        return client.post("/v1/messages", json={**body, "message_id": f"SM-ro-{n}"}, headers=auth)

    with TestClient(create_app(settings)) as client:
        assert send(0).status_code == 200
        _pg_admin(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        _pg_admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        during = [send(n) for n in range(1, 4)]
        assert [r.status_code for r in during] == [503, 503, 503]
        assert during[0].json()["error"]["code"] == "store_unavailable" and during[0].headers["Retry-After"]
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["database_writable"] != "ok"
        _pg_admin(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        after = [send(n).status_code for n in range(4, 12)]
        # It recovers by itself: the first tries may each meet one stale pooled connection (503, retry), then all pass.
        first_ok = after.index(200)
        assert first_ok <= 4 and set(after[first_ok:]) == {200}, after
        assert client.get("/readyz").status_code == 200
        redelivered = [send(n) for n in range(1, 4)]  # the provider retries what got a 503
        assert all(r.status_code == 200 for r in redelivered)
        services = client.app.state.services  # type: ignore[attr-defined]
        with services.db.engine.connect() as conn:
            rows = conn.execute(text("SELECT provider_message_id, handled FROM messages WHERE sender = '+15550104444'"))
            inbound = {r[0]: r[1] for r in rows if r[0]}
        answered_ok = (
            {"SM-ro-0"}
            | {f"SM-ro-{n}" for n in range(1, 4)}
            | {f"SM-ro-{n}" for n in range(4, 12) if after[n - 4] == 200}
        )
        assert answered_ok <= set(inbound)
        assert all(inbound.values())  # every message accepted was answered (or folded into an answer)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_read_only_sqlite_file_answers_503_releases_its_leases_and_recovers(demo_db_url: str, tmp_path: Path) -> None:
    """SQLite goes read-only for a while (every connection refuses writes with SQLITE_READONLY, as when the file or
    its disk turns read-only): messages get 503, /readyz says the database cannot write, no turn lease is left
    behind, and once the file is writable again the service answers with no restart."""
    key = "channel-key-for-tests-0001"
    settings = Settings(data_dir=tmp_path, database_url=demo_db_url, load_demo=False, bootstrap_keys=f"channel:{key}")
    auth = {"Authorization": f"Bearer {key}"}
    read_only = False

    def send(n: int) -> Any:
        body = {"channel": "sms", "from": "+15550104445", "text": f"hiya, wheres my order?? ({n})"}
        return client.post("/v1/messages", json={**body, "message_id": f"SM-sro-{n}"}, headers=auth)

    with TestClient(create_app(settings)) as client:
        services = client.app.state.services  # type: ignore[attr-defined]

        def pragma(dbapi_connection: Any, *_: Any) -> None:
            dbapi_connection.execute(f"PRAGMA query_only = {int(read_only)}")

        event.listen(services.db.engine, "checkout", pragma)
        checkpoints = services.checkpointer.conn  # the checkpointer's own connection to the same file
        assert send(0).status_code == 200
        read_only = True
        checkpoints.execute("PRAGMA query_only = 1")
        during = [send(n) for n in range(1, 4)]
        assert [r.status_code for r in during] == [503, 503, 503], [r.text for r in during]
        assert during[0].json()["error"]["code"] == "store_unavailable" and during[0].headers["Retry-After"]
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "readonly" in ready.json()["checks"]["database_writable"]
        read_only = False
        checkpoints.execute("PRAGMA query_only = 0")
        assert client.get("/readyz").status_code == 200
        with services.db.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM turn_leases")).scalar() == 0  # none stranded
        assert [send(n).status_code for n in range(4, 8)] == [200] * 4
        assert all(send(n).status_code == 200 for n in range(1, 4))  # the provider retries what got a 503
        with services.db.engine.connect() as conn:
            rows = conn.execute(text("SELECT provider_message_id, handled FROM messages WHERE sender = '+15550104445'"))
            inbound = {r[0]: r[1] for r in rows if r[0]}
        assert set(inbound) == {f"SM-sro-{n}" for n in range(8)} and all(inbound.values())


def _pg_admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]
