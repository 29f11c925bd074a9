"""The HTTP API under generated input: schemathesis reads the OpenAPI schema and sends cases to the app in process
(ASGI, no network), authenticated with a key each operation admits. No case may get a server error (5xx).

Then every guarded operation is called without a key, with an unknown key and with a key of every role it does
not admit: each must be a 401 or 403. Provider webhooks with a forged signature or a malformed payload get a
clear 4xx (the channels' own tests cover each provider's signature scheme; these sweep all of them).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from pydantic import SecretStr

from threadline.api.app import create_app
from threadline.channels.social import meta_signature
from threadline.core.auth import Role
from threadline.core.settings import Settings

pytestmark = pytest.mark.slow

KEYS = {role: f"{role.value}-fuzz-key-0000000001" for role in Role}
BOOTSTRAP = ",".join(f"{role.value}:{key}" for role, key in KEYS.items())
EXAMPLES = 40
"""Generated cases per operation (about 40 operations)."""
MIN_CASES = 1000
SERVER_ERRORS: list[str] = []
CASES: Counter[str] = Counter()


def guard(operation: dict[str, Any]) -> list[str]:
    """The roles the schema says an operation admits (none: a public operation)."""
    return [role for requirement in operation.get("security") or [] for role in requirement.get("ApiKey", [])]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, pg: Any) -> FastAPI:
    """The app over a fresh demo database (SQLite), with one bootstrap key per role; generous rate limits."""
    from tests.conftest import DatabaseFactory, _template

    root = tmp_path_factory.mktemp("fuzz")
    templates = tmp_path_factory.getbasetemp() / "templates"
    templates.mkdir(exist_ok=True)
    url = DatabaseFactory("sqlite", pg, root).copy_url(_template("demo", "sqlite", pg, templates))
    return create_app(
        Settings(
            data_dir=root,
            database_url=url,
            load_demo=False,
            bootstrap_keys=SecretStr(BOOTSTRAP),
            rate_per_key_per_minute=1_000_000,
            rate_per_sender_per_minute=1_000_000,
            twilio_auth_token=SecretStr("twilio-token"),
            email_signing_key=SecretStr("email-key"),
            meta_app_secret=SecretStr("meta-secret"),
            meta_verify_token=SecretStr("meta-verify"),
        )
    )


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def send(client: TestClient, case: Any) -> int:
    """One generated case through the in-process app, with a key of a role the operation admits."""
    roles = guard(case.operation.definition.raw)
    headers = {"Authorization": f"Bearer {KEYS[Role(roles[0])]}"} if roles else {}
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
    path = re.sub(r"^https?://[^/]+", "", kwargs.pop("url"))
    sent = {k: v for k, v in kwargs.items() if v is not None}
    response = client.request(kwargs.pop("method"), path, **{k: v for k, v in sent.items() if k != "method"})
    CASES[case.operation.label] += 1
    if response.status_code >= 500:
        request = {k: sent[k] for k in ("params", "json", "data") if k in sent}  # what to replay
        failure = f"{case.operation.label} -> {response.status_code}: {response.text[:300]}"
        SERVER_ERRORS.append(f"{failure} {request!r:.600}")
    return response.status_code


def test_no_generated_request_gets_a_server_error(client: TestClient) -> None:
    spec = schemathesis.openapi.from_dict(client.app.openapi())  # type: ignore[attr-defined]
    for result in spec.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid operation raises here

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: Any) -> None:
            send(client, case)

        fuzz()
    assert SERVER_ERRORS == [], "\n".join(SERVER_ERRORS)


def test_the_fuzzing_ran_at_least_a_thousand_cases_without_a_server_error(capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(
            f"\n[fuzz] {sum(CASES.values())} generated cases over {len(CASES)} operations; "
            f"server errors {len(SERVER_ERRORS)}: {SERVER_ERRORS[:5]}"
        )
    assert sum(CASES.values()) >= MIN_CASES
    assert SERVER_ERRORS == []


def _call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> int:
    concrete = re.sub(r"\{[^}]+\}", "x1", path)
    body: dict[str, Any] | None = {} if method in ("post", "put", "patch") else None
    return client.request(method.upper(), concrete, headers=headers, json=body).status_code


def test_no_guarded_operation_answers_without_a_key_of_an_admitted_role(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = client.app.openapi()  # type: ignore[attr-defined]
    outcomes: Counter[str] = Counter()
    bypasses: list[str] = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            admitted = guard(operation)
            if not admitted:
                continue
            attempts = {"no key": {}, "unknown key": {"Authorization": "Bearer not-a-key-at-all-0000000"}}
            attempts |= {
                f"{role.value} key": {"Authorization": f"Bearer {key}"}
                for role, key in KEYS.items()
                if role.value not in admitted
            }
            for label, headers in attempts.items():
                status = _call(client, method, path, headers)
                outcomes[f"{status}"] += 1
                if status not in (401, 403):
                    bypasses.append(f"{method.upper()} {path} with {label} -> {status}")
    with capsys.disabled():
        print(f"\n[auth] refused calls by status {dict(outcomes)}; bypasses {len(bypasses)}: {bypasses[:5]}")
    assert bypasses == []
    assert sum(outcomes.values()) > 100


WEBHOOKS: list[tuple[str, dict[str, Any]]] = [
    ("/v1/channels/twilio/sms", {"data": {"From": "+15550106666", "Body": "hi", "MessageSid": "SM1"}}),
    ("/v1/channels/twilio/voice", {"data": {"From": "+15550106666", "SpeechResult": "hi", "CallSid": "CA1"}}),
    ("/v1/channels/email", {"data": {"sender": "a@example.com", "body-plain": "hi", "timestamp": "1", "token": "t"}}),
    ("/v1/channels/social", {"content": b'{"object": "page", "entry": []}'}),
]
MALFORMED: list[dict[str, Any]] = [
    {"content": b"\xff\xfe not even text"},
    {"content": b'{"object": "page", "entry": [{"messaging": [{"sender": {}}]}]}'},
    {"content": b"[1, 2, 3]"},
    {"data": {"unexpected": "x" * 5000}},
    {"content": b"{" * 2000},
]


def test_forged_signatures_and_malformed_provider_payloads_are_clear_client_errors(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    statuses: Counter[int] = Counter()
    unclear: list[str] = []
    unsigned: dict[str, str] = {}
    forged = {
        "X-Twilio-Signature": "Zm9yZ2Vk",
        "X-Hub-Signature-256": "sha256=" + "0" * 64,
        "content-type": "application/x-www-form-urlencoded",
    }
    for path, request in WEBHOOKS:
        for kwargs in [request, *MALFORMED]:
            for headers in (unsigned, forged):
                send = dict(kwargs)
                extra = dict(headers)
                if "content" in send:
                    extra["content-type"] = "application/json"
                response = client.post(path, headers=extra, **send)
                statuses[response.status_code] += 1
                error = (
                    response.json().get("error", {})
                    if response.headers.get("content-type", "").startswith("application/json")
                    else {}
                )
                if not 400 <= response.status_code < 500 or not error.get("code"):
                    unclear.append(f"{path} {'forged' if headers else 'unsigned'} -> {response.status_code}")
    with capsys.disabled():
        print(f"\n[webhooks] forged/malformed provider requests by status {dict(statuses)}; unclear {unclear[:5]}")
    assert unclear == []


def test_validly_signed_but_malformed_social_payloads_are_422_naming_the_problem(client: TestClient) -> None:
    statuses: Counter[int] = Counter()
    for request in MALFORMED:
        body = request.get("content") or b"unexpected=" + b"x" * 5000
        signature = meta_signature("meta-secret", body)
        response = client.post(
            "/v1/channels/social",
            content=body,
            headers={"X-Hub-Signature-256": signature, "content-type": "application/json"},
        )
        statuses[response.status_code] += 1
        assert response.status_code in (400, 422), response.text
        assert response.json()["error"]["code"]
    assert statuses
