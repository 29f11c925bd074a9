"""`/v1/customers…`: customer 360, the cross-channel timeline, handles on file, merges and their undo."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from threadline.api.app import create_app
from threadline.core.settings import Settings
from threadline.core.signing import sign_identity
from threadline.demo.loader import DATA_DIR, demo_customer_id

ADMIN_KEY = "admin-key-for-tests-00001"
CHANNEL_KEY = "channel-key-for-tests-0001"
SECRET = "site-secret"
USERS = json.loads((DATA_DIR / "tau_retail" / "users.json").read_text())
JAMES = USERS["james_li_5688"]
JAMES_ID = demo_customer_id("james_li_5688")
NOAH_ID = demo_customer_id("noah_brown_6181")
VISITOR = "visitor-api-1"


@pytest.fixture
def client(demo_db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path,
        database_url=demo_db_url,
        load_demo=False,
        bootstrap_keys=f"admin:{ADMIN_KEY},channel:{CHANNEL_KEY}",
        web_identity_secret=SECRET,
    )
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as test_client:
        yield test_client


def _sign_in_after_browsing(client: TestClient) -> str:
    asked = client.post("/v1/messages", json={"channel": "web", "from": VISITOR, "text": "what is your return policy?"})
    assert asked.status_code == 200
    signed = {
        "channel": "web",
        "from": JAMES["email"],
        "text": "where is my order #W2611340?",
        "identity_signature": sign_identity(SECRET, JAMES["email"]),
        "visitor_id": VISITOR,
    }
    after = client.post("/v1/messages", json=signed)
    assert after.status_code == 200 and after.json()["customer_id"] == JAMES_ID
    visitor: str = asked.json()["customer_id"]
    return visitor


def test_customer_360_shows_identities_orders_episodes_and_the_joined_visitor(client: TestClient) -> None:
    visitor = _sign_in_after_browsing(client)
    view = client.get(f"/v1/customers/{JAMES_ID}").json()
    assert view["customer"]["id"] == JAMES_ID
    handles = {(i["handle_type"], i["handle_value"], i["verification_level"]) for i in view["identities"]}
    assert ("visitor", VISITOR, "anonymous") in handles  # the visitor id came across, still proving nothing
    assert ("email", JAMES["email"], "claimed") in handles or ("email", JAMES["email"], "strong") in handles
    assert sorted(o["id"] for o in view["orders"]) == sorted(JAMES["orders"])  # most recent first
    assert float(view["lifetime_value"]) > 0
    assert view["episodes"] and visitor in view["merged_from"]
    assert client.get(f"/v1/customers/{visitor}").json()["merged_into"] == JAMES_ID


def test_the_timeline_has_every_message_across_channels_in_order(client: TestClient) -> None:
    _sign_in_after_browsing(client)
    client.post("/v1/customers/" + JAMES_ID + "/identities", json={"handle_type": "phone", "handle": "+15550107777"})
    texted = client.post("/v1/messages", json={"channel": "sms", "from": "+15550107777", "text": "hello"})
    assert texted.json()["customer_id"] == JAMES_ID
    entries = client.get(f"/v1/customers/{JAMES_ID}/timeline").json()
    messages = [(e["channel"], e["direction"], e["text"]) for e in entries if e["kind"] == "message"]
    inbound = [(channel, text) for channel, direction, text in messages if direction == "inbound"]
    assert inbound == [
        ("web", "what is your return policy?"),
        ("web", "where is my order #W2611340?"),
        ("sms", "hello"),
    ]
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
    kinds = {e["kind"] for e in entries}
    assert {"message", "identity", "event"} <= kinds
    merge = next(e for e in entries if e["kind"] == "identity" and e["detail"]["kind"] == "merge")
    assert merge["detail"]["reason"] == "signed in"
    assert len(client.get(f"/v1/customers/{JAMES_ID}/timeline", params={"limit": 2}).json()) == 2


def test_handles_on_file_and_lookup_where_email_beats_phone(client: TestClient) -> None:
    linked = client.post(
        f"/v1/customers/{NOAH_ID}/identities", json={"handle_type": "phone", "handle": "(555) 010-8888"}
    )
    assert linked.status_code == 201 and linked.json()["handle_value"] == "+15550108888"
    taken = client.post(f"/v1/customers/{JAMES_ID}/identities", json={"handle_type": "phone", "handle": "5550108888"})
    assert taken.status_code == 409 and "merge" in taken.json()["error"]["message"]
    strong = client.post(
        f"/v1/customers/{JAMES_ID}/identities", json={"handle_type": "loyalty", "handle": "L-1", "level": "strong"}
    )
    assert strong.status_code == 422
    found = client.get("/v1/customers", params={"phone": "+15550108888", "email": JAMES["email"]})
    assert found.json()["customer"]["id"] == JAMES_ID  # email beats phone
    assert client.get("/v1/customers", params={"phone": "+15550108888"}).json()["customer"]["id"] == NOAH_ID
    assert client.get("/v1/customers", params={"email": "nobody@example.com"}).status_code == 404
    assert client.get("/v1/customers").status_code == 422


def test_merge_and_undo_over_http(client: TestClient) -> None:
    stranger = client.post("/v1/messages", json={"channel": "sms", "from": "+15550106666", "text": "hi"}).json()
    merged = client.post(
        "/v1/customers/merges", json={"source": stranger["customer_id"], "target": JAMES_ID, "reason": "same person"}
    )
    assert merged.status_code == 201
    body = merged.json()
    assert body["moved"]["messages"] == 2 and body["moved"]["channel_identities"] == 1
    assert (
        client.post("/v1/messages", json={"channel": "sms", "from": "+15550106666", "text": "hi again"}).json()[
            "customer_id"
        ]
        == JAMES_ID
    )
    undone = client.post(f"/v1/customers/merges/{body['event_id']}/undo")
    assert undone.status_code == 200
    again = client.post(f"/v1/customers/merges/{body['event_id']}/undo")
    assert again.status_code == 409
    back = client.post("/v1/messages", json={"channel": "sms", "from": "+15550106666", "text": "still me"}).json()
    assert back["customer_id"] == stranger["customer_id"]
    refused = client.post("/v1/customers/merges", json={"source": NOAH_ID, "target": JAMES_ID, "reason": "oops"})
    assert refused.status_code == 409 and "external ids" in refused.json()["error"]["message"]
    assert client.post("/v1/customers/merges/999999/undo").status_code == 404


def test_customer_endpoints_need_an_agent_admin_or_qa_key(client: TestClient) -> None:
    anonymous = client.get(f"/v1/customers/{JAMES_ID}", headers={"Authorization": ""})
    wrong = client.get(f"/v1/customers/{JAMES_ID}/timeline", headers={"Authorization": "Bearer nope"})
    assert anonymous.status_code == 401 and wrong.status_code == 401
    channel = client.get(f"/v1/customers/{JAMES_ID}", headers={"Authorization": f"Bearer {CHANNEL_KEY}"})
    assert channel.status_code == 403 and channel.json()["error"]["code"] == "forbidden"
    assert client.get("/v1/customers/cus_missing").status_code == 404


def test_lifetime_value_is_the_same_in_the_packet_and_on_the_customer_page(client: TestClient) -> None:
    """Isabella has a pending order ($519.07), a delivered one ($1,391.92) and a cancelled one ($271.89); she is
    returning the delivered order's Smart Watch ($382.41). She has paid for and keeps $519.07 + $1,391.92 -
    $382.41 = $1,528.58: the cancelled order and the returned watch are refunded. The handoff packet and the
    customer page (which the console's "LTV" reads) say so alike."""
    from threadline.core.order_actions import ReturnItems

    isabella = USERS["isabella_sanchez_2068"]
    customer_id = demo_customer_id("isabella_sanchez_2068")
    services = client.app.state.services  # type: ignore[attr-defined]
    watch = ReturnItems(order_id="#W1713682", item_ids=["1007724142"], payment_method_id="paypal_8516781")
    returned = services.stores.orders.apply(watch, customer_id=customer_id, idempotency_key="r1", actor="agent:t")
    assert returned.outcome == "done"
    signed = {
        "channel": "web",
        "from": isabella["email"],
        "identity_signature": sign_identity(SECRET, isabella["email"]),
    }
    handed = client.post("/v1/messages", json=signed | {"text": "I want to talk to a person"}).json()
    assert handed["owner"] == "queue"
    packet = client.get(f"/v1/handoffs/{handed['handoff_id']}").json()["packet"]
    view = client.get(f"/v1/customers/{customer_id}").json()
    assert view["lifetime_value"] == "1528.58"
    assert packet["customer"]["lifetime_value"] == 1528.58
    assert packet["customer"]["order_count"] == len(view["orders"]) == 3
    assert packet["customer"]["tier"] == "vip"
