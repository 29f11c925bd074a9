"""API keys with roles: who reaches which endpoint, why a request is refused, keys stored hashed, bootstrap, CLI."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import Depends, Request
from fastapi.testclient import TestClient
from rich.console import Console
from sqlalchemy import text
from typer.testing import CliRunner

import threadline.api.auth
import threadline.cli.key_commands
from threadline.api.app import create_app
from threadline.api.auth import INVALID_KEY, MISSING_KEY, NOT_BEARER, require_roles
from threadline.cli.main import app as cli_app
from threadline.core.auth import Principal, Role, parse_bootstrap
from threadline.core.errors import ConfigurationError, ConflictError, NotFoundError
from threadline.core.settings import Settings
from threadline.demo.loader import demo_customer_id
from threadline.memory.db import Database
from threadline.memory.stores import Stores

KEYS = {
    Role.CHANNEL: "channel-key-for-tests-0001",
    Role.AGENT: "agent-key-for-tests-00001",
    Role.ADMIN: "admin-key-for-tests-00001",
    Role.QA: "qa-key-for-tests-0000001",
    Role.ASSOCIATE: "associate-key-for-tests-01",
}
BOOTSTRAP = ",".join(f"{role}:{key}" for role, key in KEYS.items())
JAMES_ID = demo_customer_id("james_li_5688")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _settings(database_url: str, data_dir: Path, **extra: Any) -> Settings:
    return Settings(data_dir=data_dir, database_url=database_url, load_demo=False, **extra)


@pytest.fixture
def client(demo_db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(demo_db_url, tmp_path, bootstrap_keys=BOOTSTRAP))) as test_client:
        yield test_client


def _stores(client: TestClient) -> Stores:
    stores = client.app.state.services.stores  # type: ignore[attr-defined]
    assert isinstance(stores, Stores)
    return stores


# --- the role matrix ------------------------------------------------------------------------------------------

OK, DENIED = "ok", 403
ENDPOINTS: dict[str, tuple[str, str, Any]] = {
    "post message": ("POST", "/v1/messages", {"channel": "web", "from": "visitor-auth-{role}", "text": "hi"}),
    "read customer": ("GET", f"/v1/customers/{JAMES_ID}", None),
    "read timeline": ("GET", f"/v1/customers/{JAMES_ID}/timeline", None),
    "link handle": ("POST", f"/v1/customers/{JAMES_ID}/identities", {"handle_type": "loyalty", "handle": "L-{role}"}),
    "create article": (
        "POST",
        "/v1/knowledge/articles",
        {"id": "faq-{role}", "kind": "faq", "title": "T", "body": "B"},
    ),
    "list drafts": ("GET", "/v1/knowledge/articles?status=draft", None),
    "search": ("GET", "/v1/knowledge/search?q=returns", None),
    "published articles": ("GET", "/v1/knowledge/articles", None),
}
MATRIX: dict[Role, dict[str, Any]] = {
    Role.CHANNEL: {"post message": OK, "read customer": DENIED, "read timeline": DENIED, "link handle": DENIED,
                   "create article": DENIED, "list drafts": DENIED},
    Role.AGENT: {"post message": DENIED, "read customer": OK, "read timeline": OK, "link handle": OK,
                 "create article": DENIED, "list drafts": DENIED},
    Role.ADMIN: {"post message": OK, "read customer": OK, "read timeline": OK, "link handle": OK,
                 "create article": OK, "list drafts": OK},
    Role.QA: {"post message": DENIED, "read customer": OK, "read timeline": OK, "link handle": DENIED,
              "create article": DENIED, "list drafts": DENIED},
    Role.ASSOCIATE: {"post message": DENIED, "read customer": DENIED, "read timeline": DENIED, "link handle": DENIED,
                     "create article": DENIED, "list drafts": DENIED},
}  # fmt: skip


def _call(client: TestClient, endpoint: str, role: Role | None, headers: dict[str, str]) -> Any:
    method, path, body = ENDPOINTS[endpoint]
    if body is not None:
        body = {k: v.format(role=role) if isinstance(v, str) else v for k, v in body.items()}
    return client.request(method, path, json=body, headers=headers)


def test_each_role_reaches_exactly_its_endpoints(client: TestClient) -> None:
    wrong = []
    for role, expected in MATRIX.items():
        for endpoint in ENDPOINTS:
            response = _call(client, endpoint, role, bearer(KEYS[role]))
            want = expected.get(endpoint, OK)  # search and published articles are open to every key
            got_ok = response.status_code in (200, 201)
            if (want == OK and not got_ok) or (want != OK and response.status_code != want):
                wrong.append((role.value, endpoint, response.status_code, response.text[:200]))
            if not got_ok:
                assert response.json()["error"]["code"] == "forbidden"
    assert wrong == []


def test_without_a_key_protected_endpoints_are_401_and_open_ones_answer(client: TestClient) -> None:
    for endpoint in ENDPOINTS:
        status = _call(client, endpoint, None, {}).status_code
        assert status == (200 if endpoint in ("search", "published articles") else 401), endpoint
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/docs").status_code == 200
    assert client.get("/openapi.json").status_code == 200


def test_refusals_say_why(client: TestClient) -> None:
    path = f"/v1/customers/{JAMES_ID}"

    def error(headers: dict[str, Any], method: str = "GET", url: str = path, **kw: Any) -> tuple[int, dict[str, str]]:
        response = client.request(method, url, headers=headers, **kw)
        return response.status_code, response.json()["error"]

    assert error({}) == (401, {"code": "unauthenticated", "message": MISSING_KEY})
    assert error({"Authorization": "Bearer   "}) == (401, {"code": "unauthenticated", "message": MISSING_KEY})
    assert error({"Authorization": "Basic dXNlcjpwYXNz"}) == (401, {"code": "unauthenticated", "message": NOT_BEARER})
    garbled = {"Authorization": b"Bearer tl_\xc3\xa9\xff\x01garbled"}
    assert error(garbled) == (401, {"code": "unauthenticated", "message": INVALID_KEY})
    assert error(bearer("tl_unknown-key-0000000000000")) == (401, {"code": "unauthenticated", "message": INVALID_KEY})
    assert MISSING_KEY == "an API key is required: send Authorization: Bearer <key>"
    assert INVALID_KEY == "the API key is not valid (unknown or revoked)"
    status, body = error(bearer(KEYS[Role.CHANNEL]))
    assert status == 403
    assert body["message"] == "a channel key cannot use this endpoint; it needs one of: agent, admin, qa"
    link = {"handle_type": "loyalty", "handle": "L-qa"}
    status, body = error(bearer(KEYS[Role.CHANNEL]), "POST", f"{path}/identities", json=link)
    assert body["message"] == "a channel key cannot use this endpoint; it needs one of: agent, admin"
    status, body = error(bearer(KEYS[Role.QA]), "POST", f"{path}/identities", json=link)
    assert body["message"] == "a qa key cannot use this endpoint; it needs one of: agent, admin"
    status, body = error(bearer(KEYS[Role.AGENT]), "POST", "/v1/knowledge/articles/faq-x/retire")
    assert body["message"] == "an agent key cannot use this endpoint; it needs one of: admin"
    status, body = error(bearer(KEYS[Role.AGENT]), "POST", "/v1/messages", json={"channel": "web"})
    assert (status, body["message"]) == (403, "an agent key cannot use this endpoint; it needs one of: channel, admin")


def test_a_body_that_is_not_json_is_checked_for_a_key_first_then_is_a_422_that_says_where(client: TestClient) -> None:
    broken = b'{"channel": "web", "from": "visitor-1", "text": "hi",}'
    json_type = {"Content-Type": "application/json"}
    for headers, status in [({}, 401), (bearer("tl_unknown-key-0000000000000"), 401), (bearer(KEYS[Role.AGENT]), 403)]:
        response = client.post("/v1/messages", content=broken, headers={**headers, **json_type})
        assert response.status_code == status, response.text
        assert "JSON" not in response.text  # an unknown caller learns nothing about the route's body
    response = client.post("/v1/messages", content=broken, headers={**bearer(KEYS[Role.CHANNEL]), **json_type})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert (
        error["message"] == "body: not valid JSON (Expecting property name enclosed in double quotes at character 53)"
    )
    # Routes without a key (the public knowledge search) still answer 422 for a bad query.
    assert client.get("/v1/knowledge/search").status_code == 422


def test_a_revoked_key_is_refused_once_the_cache_lapses(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    record, key = _stores(client).api_keys.create(Role.AGENT, "console", created_by="test")
    path = f"/v1/customers/{JAMES_ID}"
    monkeypatch.setattr(threadline.api.auth, "AUTH_CACHE_TTL_S", 60.0)
    assert client.get(path, headers=bearer(key)).status_code == 200
    _stores(client).api_keys.revoke(record.id)
    assert client.get(path, headers=bearer(key)).status_code == 200  # still cached in this process
    monkeypatch.setattr(threadline.api.auth, "AUTH_CACHE_TTL_S", 0.0)
    client.app.state.auth_cache = None  # type: ignore[attr-defined]  # as if the cached answer lapsed
    response = client.get(path, headers=bearer(key))
    assert response.status_code == 401
    assert response.json()["error"]["message"] == INVALID_KEY


def test_the_cache_ttl_is_at_most_five_seconds() -> None:
    assert 0 < threadline.api.auth.AUTH_CACHE_TTL_S <= 5


def test_the_principal_is_returned_and_kept_on_the_request(demo_db_url: str, tmp_path: Path) -> None:
    app = create_app(_settings(demo_db_url, tmp_path, bootstrap_keys=BOOTSTRAP))

    @app.get("/test/whoami")
    def whoami(request: Request, principal: Principal = Depends(require_roles(Role.QA))) -> dict[str, str]:  # noqa: B008
        assert request.state.principal == principal
        return {"key_id": principal.key_id, "name": principal.name, "role": principal.role.value}

    with TestClient(app) as test_client:
        me = test_client.get("/test/whoami", headers=bearer(KEYS[Role.QA])).json()
        assert me["role"] == "qa" and me["name"] == "bootstrap qa" and me["key_id"].startswith("key_")


def test_openapi_shows_the_bearer_scheme_and_the_refusals(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert client.get("/openapi.json").json() == spec  # described once, however often it is fetched
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": threadline.api.auth.bearer.model.description,
    }
    protected = {
        ("/v1/messages", "post"): ["channel", "admin"],
        ("/v1/customers/{customer_id}", "get"): ["agent", "admin", "qa"],
        ("/v1/customers/merges", "post"): ["agent", "admin"],
        ("/v1/knowledge/articles", "post"): ["admin"],
        ("/v1/knowledge/articles/{article_id}/retire", "post"): ["admin"],
    }
    for (path, method), roles in protected.items():
        operation = spec["paths"][path][method]
        assert operation["security"] == [{"ApiKey": roles}], path
        assert {"401", "403"} <= set(operation["responses"])
    assert "one of: agent, admin." in spec["paths"]["/v1/customers/merges"]["post"]["responses"]["403"]["description"]
    for path in ("/healthz", "/readyz", "/v1/knowledge/search"):
        assert "security" not in spec["paths"][path]["get"]
        assert "401" not in spec["paths"][path]["get"]["responses"]


# --- storage and bootstrap ------------------------------------------------------------------------------------


def test_keys_are_stored_hashed(client: TestClient) -> None:
    _record, generated = _stores(client).api_keys.create(Role.CHANNEL, "web widget", created_by="test")
    assert generated.startswith("tl_") and len(generated) > 40
    with _stores(client).db.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(text("SELECT * FROM api_keys"))]
    dump = repr(rows)
    for key in [*KEYS.values(), generated]:
        assert key not in dump
        assert hashlib.sha256(key.encode()).hexdigest() in {r["key_hash"] for r in rows}
    assert {r["prefix"] for r in rows if r["name"] == "web widget"} == {generated[:8]}
    assert all(len(r["prefix"]) <= 4 for r in rows if r["name"] != "web widget")


def test_bootstrap_is_idempotent_across_start_ups(demo_db_url: str, tmp_path: Path) -> None:
    settings = _settings(demo_db_url, tmp_path, bootstrap_keys=BOOTSTRAP, admin_api_key="legacy-admin")
    seen = []
    for _ in range(2):
        with TestClient(create_app(settings)) as test_client:
            seen.append({(k.id, k.name, k.role) for k in _stores(test_client).api_keys.list(include_revoked=True)})
            response = test_client.get(f"/v1/customers/{JAMES_ID}", headers=bearer("legacy-admin"))
            assert response.status_code == 200  # THREADLINE_ADMIN_API_KEY still acts as an admin key
    assert seen[0] == seen[1]
    assert len(seen[0]) == len(KEYS) + 1
    assert ("THREADLINE_ADMIN_API_KEY", Role.ADMIN) in {(name, role) for _id, name, role in seen[0]}


def test_a_changed_admin_api_key_revokes_the_old_one(demo_db_url: str, tmp_path: Path) -> None:
    with TestClient(create_app(_settings(demo_db_url, tmp_path, admin_api_key="old-admin-key"))) as old:
        assert old.get(f"/v1/customers/{JAMES_ID}", headers=bearer("old-admin-key")).status_code == 200
    with TestClient(create_app(_settings(demo_db_url, tmp_path, admin_api_key="new-admin-key"))) as new:
        assert new.get(f"/v1/customers/{JAMES_ID}", headers=bearer("new-admin-key")).status_code == 200
        assert new.get(f"/v1/customers/{JAMES_ID}", headers=bearer("old-admin-key")).status_code == 401


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("channel:short", "entry 1 (channel): the key is shorter than 16 characters"),
        ("channel:abcdefghijklmnopq,wizard:abcdefghijklmnopqr", "entry 2 has an unknown role 'wizard'"),
        ("agent:", "entry 1 (agent): the key is empty"),
        ("abcdefghijklmnopqrstu", "entry 1 is not 'role:key'"),
        ("agent:abcdefgh ijklmnopqrstu", "the key contains whitespace"),
        ("agent:abcdefghijklmnopqr,qa:abcdefghijklmnopqr", "the same key is also given as a agent key"),
    ],
)
def test_malformed_bootstrap_values_name_the_variable_and_never_echo_a_key(value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match="THREADLINE_BOOTSTRAP_KEYS") as caught:
        parse_bootstrap(value)
    assert message in caught.value.message
    assert "abcdefgh" not in caught.value.message


def test_bootstrap_values_are_parsed_leniently_where_it_is_safe() -> None:
    assert parse_bootstrap("") == []
    assert parse_bootstrap(" Channel : abcdefghijklmnop:q , , qa:abcdefghijklmnopqr,qa:abcdefghijklmnopqr,") == [
        (Role.CHANNEL, "abcdefghijklmnop:q"),
        (Role.QA, "abcdefghijklmnopqr"),
    ]


def test_a_malformed_bootstrap_value_stops_start_up(demo_db_url: str, tmp_path: Path) -> None:
    settings = _settings(demo_db_url, tmp_path, bootstrap_keys="channel:too-short")
    with pytest.raises(ConfigurationError, match="THREADLINE_BOOTSTRAP_KEYS"), TestClient(create_app(settings)):
        pass


def test_ensure_is_idempotent_refuses_another_role_and_revoke_needs_a_known_key(stores: Any) -> None:
    first = stores.api_keys.ensure(Role.QA, "qa-key-for-tests-0000001", name="qa", created_by="test")
    assert stores.api_keys.ensure(Role.QA, "qa-key-for-tests-0000001", name="qa", created_by="test") == first
    with pytest.raises(ConflictError, match="on file as a qa key"):
        stores.api_keys.ensure(Role.ADMIN, "qa-key-for-tests-0000001", name="admin", created_by="test")
    assert stores.api_keys.authenticate("qa-key-for-tests-0000001") == first
    assert stores.api_keys.authenticate("qa-key-for-tests-0000002") is None
    revoked = stores.api_keys.revoke(first.id)
    assert revoked.revoked_at is not None
    assert stores.api_keys.revoke(first.id).revoked_at == revoked.revoked_at
    assert stores.api_keys.authenticate("qa-key-for-tests-0000001") is None
    assert stores.api_keys.ensure(Role.QA, "qa-key-for-tests-0000001", name="qa", created_by="test") == revoked
    assert stores.api_keys.list() == []
    assert stores.api_keys.list(include_revoked=True) == [revoked]
    with pytest.raises(NotFoundError):
        stores.api_keys.revoke("key_missing")
    with pytest.raises(ConflictError):
        stores.api_keys.create(Role.QA, "again", created_by="test", key="qa-key-for-tests-0000001")


# --- the command line ---------------------------------------------------------------------------------------------


def test_keys_create_list_revoke_from_the_command_line(
    demo_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(threadline.cli.key_commands, "console", Console(width=200))
    monkeypatch.setattr(threadline.api.auth, "AUTH_CACHE_TTL_S", 0.0)
    runner = CliRunner()
    common = ["--database-url", demo_db_url, "--data-dir", str(tmp_path / "data")]
    created = runner.invoke(cli_app, ["keys", "create", "--role", "agent", "--name", "agent console", *common])
    assert created.exit_code == 0, created.output
    key = next(line for line in created.output.splitlines() if line.startswith("tl_"))
    assert "not shown again" in created.output
    bad_role = runner.invoke(cli_app, ["keys", "create", "--role", "wizard", "--name", "x", *common])
    assert bad_role.exit_code != 0

    db = Database.from_url(demo_db_url)
    (record,) = Stores.over(db).api_keys.list()
    db.dispose()
    assert (record.name, record.role, record.created_by) == ("agent console", Role.AGENT, "cli")
    listed = runner.invoke(cli_app, ["keys", "list", *common])
    assert listed.exit_code == 0, listed.output
    assert record.id in listed.output and "agent console" in listed.output and key[:8] in listed.output
    assert key not in listed.output

    with TestClient(create_app(_settings(demo_db_url, tmp_path / "data"))) as test_client:
        path = f"/v1/customers/{JAMES_ID}"
        assert test_client.get(path, headers=bearer(key)).status_code == 200
        revoked = runner.invoke(cli_app, ["keys", "revoke", record.id, *common])
        assert revoked.exit_code == 0, revoked.output
        assert f"revoked agent key {record.id}" in revoked.output
        response = test_client.get(path, headers=bearer(key))
        assert response.status_code == 401
        assert response.json()["error"]["message"] == INVALID_KEY

    still_listed = runner.invoke(cli_app, ["keys", "list", *common])
    db = Database.from_url(demo_db_url)
    (revoked_record,) = Stores.over(db).api_keys.list(include_revoked=True)
    db.dispose()
    assert revoked_record.revoked_at is not None
    cells = [c.strip() for c in still_listed.output.split(record.id, 1)[1].split("\n", 1)[0].split("│")]
    assert [c for c in cells if c][-1] == revoked_record.revoked_at.strftime("%Y-%m-%d %H:%M")
    active = runner.invoke(cli_app, ["keys", "list", "--active", *common])
    assert record.id not in active.output
    unknown = runner.invoke(cli_app, ["keys", "revoke", "key_missing", *common])
    assert isinstance(unknown.exception, NotFoundError)
