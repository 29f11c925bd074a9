"""`POST /v1/messages`: the same turn as the CLI, with clear errors for bad input and one answer per message."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from threadline.api.app import create_app
from threadline.core.settings import Settings
from threadline.core.signing import sign_identity

SECRET = "site-secret"
JAMES = "james.li4495@example.com"
CHANNEL_KEY = "channel-key-for-tests-0001"
KEYS = f"channel:{CHANNEL_KEY}"
AUTH = {"Authorization": f"Bearer {CHANNEL_KEY}"}


@pytest.fixture
def client(demo_db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path, database_url=demo_db_url, load_demo=False, web_identity_secret=SECRET, bootstrap_keys=KEYS
    )
    with TestClient(create_app(settings), headers=AUTH) as test_client:
        yield test_client


def test_a_turn_over_http(client: TestClient) -> None:
    response = client.post(
        "/v1/messages", json={"channel": "sms", "from": "+15550100300", "text": "where is my order #W2611340?"}
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"customer_id", "reply", "tools", "owner", "handoff_id", "duplicate", "folded"}
    assert body["tools"] == [{"name": "lookup_order", "args": {"order_id": "#W2611340"}}]
    assert body["owner"] == "ai"
    assert body["handoff_id"] is None
    assert "357962501027" not in body["reply"]


def test_a_redelivered_message_is_answered_once(client: TestClient) -> None:
    payload = {"channel": "sms", "from": "+15550100301", "text": "hi", "message_id": "SM-dup-1"}
    first = client.post("/v1/messages", json=payload).json()
    again = client.post("/v1/messages", json=payload).json()
    assert again["duplicate"] is True
    assert {k: v for k, v in again.items() if k != "duplicate"} == {k: v for k, v in first.items() if k != "duplicate"}
    services = client.app.state.services  # type: ignore[attr-defined]
    assert services.stores.messages.count(first["customer_id"]) == 2  # one inbound, one reply


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"channel": "sms", "text": "hi"}, "from"),
        ({"channel": "fax", "from": "+15550100302", "text": "hi"}, "channel"),
        ({"channel": "sms", "from": "+15550100302", "text": ""}, "text"),
        ({"channel": "sms", "from": "+15550100302", "text": "x" * 4001}, "text"),
        ({"channel": "sms", "from": "+15550100302", "text": "hi", "admin": True}, "admin"),
    ],
)
def test_bad_payloads_get_a_clear_422_and_nothing_is_stored(
    client: TestClient, payload: dict[str, object], field: str
) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    before = services.stores.messages.count()
    response = client.post("/v1/messages", json=payload)
    assert response.status_code == 422
    assert field in response.text
    assert services.stores.messages.count() == before


def test_a_sender_that_is_not_a_phone_number_on_sms_is_rejected(client: TestClient) -> None:
    response = client.post("/v1/messages", json={"channel": "sms", "from": "not-a-number", "text": "hi"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"


def test_a_signed_identity_is_strong_and_sees_its_orders(client: TestClient) -> None:
    body = {"channel": "web", "from": JAMES, "text": "where is my order #W2611340?"}
    signed = client.post("/v1/messages", json={**body, "identity_signature": sign_identity(SECRET, JAMES)}).json()
    assert "357962501027" in signed["reply"]
    unsigned = client.post("/v1/messages", json={**body, "text": "where is my order #W2611340 now?"}).json()
    assert "357962501027" not in unsigned["reply"]


def test_a_forged_signature_is_refused_and_nothing_is_stored(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    before = services.stores.messages.count()
    forged = sign_identity("guessed-secret", JAMES)
    body = {"channel": "web", "from": JAMES, "text": "where is my order #W2611340?", "identity_signature": forged}
    response = client.post("/v1/messages", json=body)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
    assert services.stores.messages.count() == before


def test_a_caller_cannot_simply_declare_the_sender_verified(client: TestClient) -> None:
    body = {"channel": "web", "from": JAMES, "text": "where is my order #W2611340?", "verified": True}
    assert client.post("/v1/messages", json=body).status_code == 422


def test_signatures_are_refused_when_no_secret_is_configured(demo_db_url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=demo_db_url, load_demo=False, bootstrap_keys=KEYS)
    with TestClient(create_app(settings), headers=AUTH) as unsigned_site:
        body = {"channel": "web", "from": JAMES, "text": "hi", "identity_signature": sign_identity(SECRET, JAMES)}
        response = unsigned_site.post("/v1/messages", json=body)
    assert response.status_code == 400
    assert "THREADLINE_WEB_IDENTITY_SECRET" in response.json()["error"]["message"]


def test_a_nul_character_anywhere_is_refused_before_anything_is_written(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    customers, messages = services.stores.customers.count(), services.stores.messages.count()
    message = {"channel": "sms", "from": "+15550106000", "text": "hi there"}
    event = {"events": [{"type": "page_view", "handle": {"type": "phone", "value": "+15550106000"}}]}
    refused = [
        client.post("/v1/messages", json={**message, "text": "where is my order\u0000 #W2611340"}, headers=AUTH),
        client.post("/v1/messages", json={**message, "from": "+1555010\u00006000"}, headers=AUTH),
        client.post("/v1/messages", json={**message, "message_id": "SM\u00001"}, headers=AUTH),
        client.post("/v1/events", json={**event, "events": [{**event["events"][0], "properties": {"url": "/\u0000"}}]}),
        client.get("/v1/knowledge/search", params={"q": "returns\u0000"}),
        client.post("/v1/channels/twilio/sms", data={"From": "+15550106000", "Body": "hi\u0000", "MessageSid": "SM9"}),
    ]
    for response in refused:
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "invalid_input" and "NUL" in response.json()["error"]["message"]
    assert (services.stores.customers.count(), services.stores.messages.count()) == (customers, messages)
    # A backslash followed by "u0000" is text, not a NUL: it goes through.
    literal = client.post("/v1/messages", json={**message, "text": "my code is \\u0000 ok?"}, headers=AUTH)
    assert literal.status_code == 200, literal.text


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+00:00", "2999-12-31T00:00:00+00:00"])
def test_an_implausible_received_at_is_refused(client: TestClient, when: str) -> None:
    body = {"channel": "sms", "from": "+15550106001", "text": "hi", "received_at": when}
    refused = client.post("/v1/messages", json=body, headers=AUTH)
    assert refused.status_code == 422 and "received_at" in refused.json()["error"]["message"]
