"""`POST /v1/events` (commerce events keyed by any handle) and `GET /v1/analytics…` over real turns: the turn
service logs its events on the turn clock (`received_at`, admin keys only), the handoff desk logs the human side,
and the analytics read them back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from threadline.api.app import create_app
from threadline.core.settings import Settings
from threadline.core.types import EventType
from threadline.demo.loader import DATA_DIR, demo_customer_id

ADMIN_KEY = "admin-key-for-events-0001"
CHANNEL_KEY = "channel-key-for-events-01"
AGENT_KEY = "agent-key-for-events-0001"
QA_KEY = "qa-key-for-events-00000001"
USERS = json.loads((DATA_DIR / "tau_retail" / "users.json").read_text())
JAMES = USERS["james_li_5688"]
MONDAY = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday, within business hours (09:00-18:00 UTC)

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def keyed(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def client(demo_db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path,
        database_url=demo_db_url,
        load_demo=False,
        bootstrap_keys=f"admin:{ADMIN_KEY},channel:{CHANNEL_KEY},agent:{AGENT_KEY},qa:{QA_KEY}",
    )
    with TestClient(create_app(settings), headers=keyed(ADMIN_KEY)) as test_client:
        yield test_client


def event(kind: str, handle_type: str, value: str, when: datetime, **properties: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "handle": {"type": handle_type, "value": value},
        "occurred_at": when.isoformat(),
        "properties": properties,
    }


def test_commerce_events_resolve_any_handle_to_a_customer(client: TestClient) -> None:
    batch = [
        event("page_view", "email", JAMES["email"].upper(), MONDAY, utm_source="newsletter", url="/boots"),
        event("page_view", "visitor", "v-events-1", MONDAY, referrer="https://www.google.com/search"),
        event("add_to_cart", "visitor", "v-events-1", MONDAY + timedelta(minutes=2), sku="boot-1", amount=80),
        event("purchase_in_store", "phone", "(555) 010-0177", MONDAY + timedelta(hours=3), amount=80, store_id="s1"),
    ]
    posted = client.post("/v1/events", json={"events": batch}, headers=keyed(CHANNEL_KEY))
    assert posted.status_code == 200, posted.text
    logged = posted.json()["events"]
    assert posted.json()["accepted"] == 4
    assert logged[0]["customer_id"] == demo_customer_id("james_li_5688")  # a known email, any case
    assert logged[1]["customer_id"] == logged[2]["customer_id"] != logged[0]["customer_id"]  # one new visitor
    assert [e["channel"] for e in logged] == ["web", "web", "web", "store"]
    assert logged[3]["occurred_at"].startswith("2026-03-02T13:00")
    again = client.post("/v1/events", json={"events": [event("store_visit", "phone", "+15550100177", MONDAY)]})
    assert again.json()["events"][0]["customer_id"] == logged[3]["customer_id"]  # the normalised phone


def test_events_are_checked_and_keyed(client: TestClient) -> None:
    refused = client.post(
        "/v1/events", json={"events": [event("page_view", "visitor", "v", MONDAY)]}, headers=keyed(AGENT_KEY)
    )
    assert refused.status_code == 403
    assert client.post("/v1/events", json={"events": [event("refund", "visitor", "v", MONDAY)]}).status_code == 422
    negative = client.post("/v1/events", json={"events": [event("purchase_online", "visitor", "v", MONDAY, amount=-5)]})
    assert (negative.status_code, negative.json()["error"]["code"]) == (422, "invalid_input")
    assert client.post("/v1/events", json={"events": []}).status_code == 422
    assert client.get("/v1/analytics/summary", headers=keyed(CHANNEL_KEY)).status_code == 403
    assert client.get("/v1/analytics/summary", headers=keyed(QA_KEY)).status_code == 200
    backwards = client.get("/v1/analytics/metrics", params={"from": "2026-03-05", "to": "2026-03-01"})
    assert backwards.status_code == 422


def test_a_batch_with_one_bad_event_logs_nothing(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    before = (len(services.stores.events.list()), services.stores.customers.count())
    good = [event("page_view", "visitor", "v-atomic-1", MONDAY), event("add_to_cart", "visitor", "v-atomic-2", MONDAY)]
    bad_events = [
        event("purchase_online", "visitor", "v-atomic-3", MONDAY, amount=float("nan")),  # NaN made revenue null
        event("purchase_online", "visitor", "v-atomic-3", MONDAY, amount=float("inf")),
        event("page_view", "visitor", "v-atomic-3", MONDAY, scroll=float("nan")),
        event("page_view", "phone", "call me maybe", MONDAY),  # not a phone number
        {**event("page_view", "visitor", "v-atomic-3", MONDAY), "occurred_at": "0001-01-01T00:00:00+00:00"},
        {**event("page_view", "visitor", "v-atomic-3", MONDAY), "occurred_at": "2999-01-01T00:00:00+00:00"},
    ]
    for bad in bad_events:
        raw = json.dumps({"events": [*good, bad]})  # NaN and Infinity as JavaScript clients send them
        refused = client.post("/v1/events", content=raw, headers={"content-type": "application/json"})
        assert (refused.status_code, refused.json()["error"]["code"]) == (422, "invalid_input"), refused.text
    assert (len(services.stores.events.list()), services.stores.customers.count()) == before
    summary = client.get("/v1/analytics/summary")
    assert summary.status_code == 200 and "NaN" not in summary.text


def _say(client: TestClient, sender: str, text: str, when: datetime, channel: str = "sms") -> dict[str, Any]:
    body = {"channel": channel, "from": sender, "text": text, "received_at": when.isoformat()}
    said = client.post("/v1/messages", json=body)
    assert said.status_code == 200, said.text
    reply: dict[str, Any] = said.json()
    return reply


def test_real_turns_on_a_simulated_clock_feed_the_analytics(client: TestClient) -> None:
    late = {"channel": "sms", "from": "+15550100150", "text": "hi", "received_at": MONDAY.isoformat()}
    assert client.post("/v1/messages", json=late, headers=keyed(CHANNEL_KEY)).status_code == 403  # admin only

    answered = _say(client, "+15550100150", "what is your return policy?", MONDAY)
    assert answered["owner"] == "ai"
    escalated = _say(client, "+15550100151", "I want to talk to a person", MONDAY + timedelta(hours=10))  # 20:00
    assert escalated["owner"] == "queue"
    handoff = escalated["handoff_id"]
    agent = keyed(AGENT_KEY)
    assert client.post(f"/v1/handoffs/{handoff}/claim", headers=agent).status_code == 200
    assert client.post(f"/v1/handoffs/{handoff}/resolve", headers=agent).status_code == 200
    rated = client.post(f"/v1/handoffs/{handoff}/rate", json={"usefulness": 5, "missing": ["goal"]}, headers=agent)
    assert rated.status_code == 200, rated.text
    purchase = event("purchase_online", "phone", "+15550100150", MONDAY + timedelta(days=1), amount=42.5)
    assert client.post("/v1/events", json={"events": [purchase]}).status_code == 200

    window = {"from": "2026-03-02", "to": "2026-03-03"}
    metrics = client.get("/v1/analytics/metrics", params=window)
    assert metrics.status_code == 200, metrics.text
    overall = metrics.json()["overall"]
    # Two SMS conversations, both with the AI: one answered from the knowledge base, one handed off (and resolved).
    assert (overall["conversations"], overall["ai_conversations"], overall["escalated"]) == (2, 2, 1)
    assert overall["escalation_reasons"] == {"customer_requested_human": 1}
    assert (overall["contained"], overall["containment"], overall["conversation_resolution"]) == (1, 0.5, 1.0)
    assert (overall["rated_handoffs"], overall["mean_usefulness"], overall["mean_facts_reasked"]) == (1, 5.0, 1.0)
    assert overall["citations"] >= 1 and overall["knowledge_searches"] >= 1
    by_hours = metrics.json()["by_hours"]
    assert (by_hours["business"]["containment"], by_hours["after_hours"]["escalation_rate"]) == (1.0, 1.0)
    credit = client.get("/v1/analytics/attribution", params=window).json()
    assert (credit["purchases"], credit["attributed_purchases"], credit["attributed_revenue"]) == (1, 1, 42.5)
    assert credit["by_channel"]["sms"]["last_touch"] == {"purchases": 1.0, "revenue": 42.5}
    paths = client.get("/v1/analytics/journeys", params=window).json()
    assert {"path": ["AI chat (sms)", "purchase online"], "count": 1} in paths["top_paths_to_purchase"]
    assert {"path": ["AI chat (sms)", "escalation"], "count": 1} in paths["top_paths_to_escalation"]
    logged = client.get("/v1/analytics/summary", params={**window, "channel": "web"}).json()
    assert logged["headline"]["conversations"] == 0
    assert {str(t) for t in EventType} >= {"handoff_claimed", "handoff_resolved", "handoff_rated", "handoff_timed_out"}
