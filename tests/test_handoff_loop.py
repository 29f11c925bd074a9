"""The human-agent loop over HTTP: escalation, the queue, claim, agent replies on the customer's channel, release
with a note back to the AI, resolve, rating, the queue timeout, live updates, and who may use the endpoints."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from threadline.api.app import create_app
from threadline.conversations.desk import QUEUE_TIMEOUT_TEXT
from threadline.core.settings import Settings
from threadline.core.sms import sms_segments
from threadline.core.types import CustomerId, Direction, EpisodeStatus
from threadline.memory.schema import HandoffRow, MessageRow

AGENT_KEY = "agent-key-for-tests-00001"
ADMIN_KEY = "admin-key-for-tests-00001"
CHANNEL_KEY = "channel-key-for-tests-0001"
QA_KEY = "qa-key-for-tests-000000001"
PHONE = "+15557654321"


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


AGENT, SECOND_AGENT, CHANNEL, QA = _auth(AGENT_KEY), _auth(ADMIN_KEY), _auth(CHANNEL_KEY), _auth(QA_KEY)


def _client(demo_db_url: str, tmp_path: Path, **overrides: Any) -> TestClient:
    settings = Settings(
        data_dir=tmp_path,
        database_url=demo_db_url,
        load_demo=False,
        bootstrap_keys=f"agent:{AGENT_KEY},admin:{ADMIN_KEY},channel:{CHANNEL_KEY},qa:{QA_KEY}",
        **overrides,
    )
    return TestClient(create_app(settings))


@pytest.fixture
def client(demo_db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with _client(demo_db_url, tmp_path) as test_client:
        yield test_client


def _say(client: TestClient, text: str, channel: str = "sms", sender: str = PHONE) -> dict[str, Any]:
    response = client.post("/v1/messages", json={"channel": channel, "from": sender, "text": text}, headers=CHANNEL)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _escalate(client: TestClient, channel: str = "sms", sender: str = PHONE) -> tuple[str, str]:
    asked = _say(client, "I want to talk to a person", channel, sender)
    assert asked["owner"] == "queue" and asked["handoff_id"]
    return asked["customer_id"], asked["handoff_id"]


def _outbound(client: TestClient, customer_id: str) -> list[MessageRow]:
    services = client.app.state.services  # type: ignore[attr-defined]
    with services.db.session() as s:
        rows = list(
            s.scalars(
                select(MessageRow)
                .where(MessageRow.customer_id == customer_id, MessageRow.direction == Direction.OUTBOUND.value)
                .order_by(MessageRow.id)
            )
        )
        s.expunge_all()
        return rows


def _kinds(client: TestClient, handoff_id: str) -> list[str]:
    detail = client.get(f"/v1/handoffs/{handoff_id}", headers=AGENT)
    assert detail.status_code == 200
    return [e["kind"] for e in detail.json()["events"]]


def test_the_loop_from_queue_to_human_to_ai_with_the_agents_note(client: TestClient) -> None:
    customer_id, handoff_id = _escalate(client)
    queued = client.get("/v1/handoffs", params={"status": "queued"}, headers=AGENT)
    assert queued.status_code == 200
    listed = {h["id"]: h for h in queued.json()}
    assert listed[handoff_id]["owner"] == "queue" and listed[handoff_id]["channel"] == "sms"
    assert listed[handoff_id]["customer_id"] == customer_id and listed[handoff_id]["waiting_s"] >= 0
    assert client.get("/v1/handoffs", params={"channel": "email"}, headers=AGENT).json() == []

    waiting = _say(client, "hello? are you there?")  # the desk's one note, not the AI answering the case
    assert waiting["owner"] == "queue" and waiting["reply"].startswith("Thanks, I've added this to your case")
    assert sms_segments(waiting["reply"]) <= 2
    assert _kinds(client, handoff_id) == ["created", "customer_message"]

    sent_by_ai = len(_outbound(client, customer_id))
    claimed = client.post(f"/v1/handoffs/{handoff_id}/claim", headers=AGENT)
    assert claimed.status_code == 200
    assert (claimed.json()["owner"], claimed.json()["assigned_agent"]) == ("human", "bootstrap agent")
    assert client.post(f"/v1/handoffs/{handoff_id}/claim", headers=AGENT).status_code == 200  # one's own again
    taken = client.post(f"/v1/handoffs/{handoff_id}/claim", headers=SECOND_AGENT)
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "conflict"
    assert client.post(f"/v1/handoffs/{handoff_id}/reply", json={"text": "hi"}, headers=SECOND_AGENT).status_code == 409

    while_human = _say(client, "my order never arrived and I am upset")
    assert (while_human["owner"], while_human["reply"]) == ("human", None)
    long_text = "Hi, this is Sam from the support team. " + "I am looking into your order right now. " * 6
    replied = client.post(f"/v1/handoffs/{handoff_id}/reply", json={"text": long_text}, headers=AGENT)
    assert replied.status_code == 200, replied.text
    assert replied.json()["channel"] == "sms"
    assert sms_segments(replied.json()["text"]) <= 2
    outbound = _outbound(client, customer_id)
    assert len(outbound) == sent_by_ai + 1  # the AI said nothing while the case was queued or claimed
    assert outbound[-1].channel == "sms" and outbound[-1].meta["agent"] == "bootstrap agent"

    released = client.post(
        f"/v1/handoffs/{handoff_id}/release", json={"note": "Refund of order W123 issued."}, headers=AGENT
    )
    assert released.status_code == 200
    assert (released.json()["status"], released.json()["owner"]) == ("released", "ai")
    back = _say(client, "what is your return policy?")
    assert back["owner"] == "ai" and back["reply"]
    services = client.app.state.services  # type: ignore[attr-defined]
    thread = services.threads.values(customer_id)["messages"]
    notes = [str(m.content) for m in thread if m.type == "system"]
    assert any("Refund of order W123 issued." in note for note in notes)
    assert any(long_text.split(".")[0] in str(m.content) for m in thread if m.type == "ai")
    assert _kinds(client, handoff_id) == [
        "created",
        "customer_message",
        "claimed",
        "customer_message",
        "agent_reply",
        "released",
    ]
    assert client.post(f"/v1/handoffs/{handoff_id}/claim", headers=AGENT).status_code == 409  # closed


def test_resolve_closes_the_episode_and_rating_feeds_analytics(client: TestClient) -> None:
    customer_id, handoff_id = _escalate(client, "web", "visitor-handoff-1")
    assert client.post(f"/v1/handoffs/{handoff_id}/claim", headers=AGENT).status_code == 200
    resolved = client.post(f"/v1/handoffs/{handoff_id}/resolve", headers=AGENT)
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    services = client.app.state.services  # type: ignore[attr-defined]
    episodes = services.stores.episodes.recent(CustomerId(customer_id))
    assert episodes and episodes[0].status is EpisodeStatus.RESOLVED
    assert services.stores.episodes.current(CustomerId(customer_id)) is None

    rating = {"usefulness": 4, "missing": ["order_ids"], "wrong": ["sentiment"]}
    rated = client.post(f"/v1/handoffs/{handoff_id}/rate", json=rating, headers=AGENT)
    assert rated.status_code == 200 and rated.json()["rating"] == 4
    event = client.get(f"/v1/handoffs/{handoff_id}", headers=AGENT).json()["events"][-1]
    assert event["kind"] == "rated" and event["payload"] == rating
    analytics = services.stores.events.list("handoff_rated", CustomerId(customer_id))
    assert analytics and analytics[-1].payload["missing"] == ["order_ids"]
    bad = client.post(f"/v1/handoffs/{handoff_id}/rate", json={"usefulness": 6}, headers=AGENT)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_input"

    assert client.get("/v1/handoffs/ho_missing", headers=AGENT).status_code == 404
    assert client.post("/v1/handoffs/ho_missing/claim", headers=AGENT).json()["error"]["code"] == "not_found"


def test_a_case_queued_too_long_times_out_with_one_notice_and_can_still_be_claimed(client: TestClient) -> None:
    customer_id, handoff_id = _escalate(client)
    services = client.app.state.services  # type: ignore[attr-defined]
    with services.db.session() as s:
        row = s.get(HandoffRow, handoff_id)
        assert row is not None
        row.created_at = row.created_at - timedelta(hours=2)
    first = _say(client, "anyone?")
    assert (first["owner"], first["reply"]) == ("queue", QUEUE_TIMEOUT_TEXT)
    assert sms_segments(first["reply"]) <= 2
    second = _say(client, "still waiting")
    assert (second["owner"], second["reply"]) == ("queue", None)
    assert sum(1 for m in _outbound(client, customer_id) if m.meta.get("queue_timeout")) == 1
    listed = client.get("/v1/handoffs", params={"status": "timed_out"}, headers=AGENT).json()
    assert [h["id"] for h in listed] == [handoff_id] and listed[0]["owner"] == "queue"
    assert "timed_out" in _kinds(client, handoff_id)
    claimed = client.post(f"/v1/handoffs/{handoff_id}/claim", headers=AGENT)
    assert claimed.status_code == 200 and claimed.json()["owner"] == "human"


def test_listing_the_queue_times_out_overdue_cases_and_tells_their_customers(demo_db_url: str, tmp_path: Path) -> None:
    with _client(demo_db_url, tmp_path, queue_timeout_minutes=0.0001) as client:
        customer_id, handoff_id = _escalate(client, "web", "visitor-handoff-2")
        listed = client.get("/v1/handoffs", headers=AGENT).json()
        assert [h["status"] for h in listed if h["id"] == handoff_id] == ["timed_out"]
        notices = [m for m in _outbound(client, customer_id) if m.meta.get("queue_timeout")]
        assert len(notices) == 1 and notices[0].channel == "web"
        client.get("/v1/handoffs", headers=AGENT)
        assert sum(1 for m in _outbound(client, customer_id) if m.meta.get("queue_timeout")) == 1


def test_live_updates_by_polling_and_as_server_sent_events(client: TestClient) -> None:
    start = client.get("/v1/handoffs/events", params={"since": 0}, headers=AGENT)
    assert start.status_code == 200
    last = max([e["id"] for e in start.json()], default=0)
    _, handoff_id = _escalate(client, "web", "visitor-handoff-3")
    _say(client, "hello?", "web", "visitor-handoff-3")
    polled = client.get("/v1/handoffs/events", params={"since": last}, headers=AGENT).json()
    assert [(e["handoff_id"], e["kind"]) for e in polled] == [(handoff_id, "created"), (handoff_id, "customer_message")]
    assert polled[1]["payload"]["text"] == "hello?"

    headers = {**AGENT, "Accept": "text/event-stream", "Last-Event-ID": str(last)}
    with client.stream("GET", "/v1/handoffs/events", params={"stream_s": 0}, headers=headers) as streamed:
        assert streamed.status_code == 200
        assert streamed.headers["content-type"].startswith("text/event-stream")
        body = "".join(streamed.iter_text())
    frames = [f for f in body.split("\n\n") if f.startswith("id: ")]
    assert [f.splitlines()[1] for f in frames] == ["event: created", "event: customer_message"]
    assert json.loads(frames[0].splitlines()[2].removeprefix("data: "))["handoff_id"] == handoff_id


def test_the_packet_schema_and_who_may_use_the_endpoints(client: TestClient) -> None:
    for headers in (AGENT, QA, SECOND_AGENT):
        schema = client.get("/v1/handoffs/schema", headers=headers)
        assert schema.status_code == 200
        assert "stall" in schema.json()["properties"]
    _, handoff_id = _escalate(client, "web", "visitor-handoff-4")
    for method, path in [
        ("GET", "/v1/handoffs"),
        ("GET", f"/v1/handoffs/{handoff_id}"),
        ("POST", f"/v1/handoffs/{handoff_id}/claim"),
        ("GET", "/v1/handoffs/events"),
    ]:
        refused = client.request(method, path, headers=CHANNEL)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert client.get("/v1/handoffs/schema", headers=CHANNEL).status_code == 403
    assert client.post(f"/v1/handoffs/{handoff_id}/claim", headers=QA).status_code == 403
    assert client.get("/v1/handoffs").status_code == 401
    services = client.app.state.services  # type: ignore[attr-defined]
    with services.db.session() as s:
        assert s.scalar(select(func.count()).select_from(HandoffRow).where(HandoffRow.status == "queued")) >= 1


def test_emails_are_signed_with_the_store_name(demo_db_url: str, tmp_path: Path) -> None:
    sender = "maria.k@example.org"
    with _client(demo_db_url, tmp_path, store_name="Oakwood Home") as client:
        first = _say(client, "Hi there, how long does standard shipping usually take? Thanks, Maria", "email", sender)
        assert first["reply"].endswith("Best regards,\nOakwood Home")
        _, handoff_id = _escalate(client, "email", sender)
        assert client.post(f"/v1/handoffs/{handoff_id}/claim", headers=AGENT).status_code == 200
        text = "Hi Maria, Sam here - your parcel left our warehouse this morning."
        replied = client.post(f"/v1/handoffs/{handoff_id}/reply", json={"text": text}, headers=AGENT)
        assert replied.status_code == 200 and replied.json()["text"].endswith("Best regards,\nOakwood Home")
