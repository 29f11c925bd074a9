"""Delivery state where agents and leads look: an agent's reply says where it went, a case lists its customer's
deliveries and (on WhatsApp) the 24-hour window, the queue puts cases whose messages failed first, the timeline
marks each outbound message with its delivery, and the analytics give the failure rate by channel. Outbox rows are
seeded through the outbox itself (enqueue, claim, mark), on SQLite and Postgres."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from threadline.api.app import create_app
from threadline.api.deliveries import NOTHING_APPLIES, overall_state, reply_delivery, whatsapp_window
from threadline.conversations.delivery import CaseRaiser
from threadline.core.delivery import Delivery, DeliveryState, NewDelivery, Purpose, SendReceipt
from threadline.core.handoff import PACKET_VERSION
from threadline.core.settings import Settings
from threadline.core.types import Channel, CustomerId, Direction, HandoffId
from threadline.memory.stores import Stores

AGENT_KEY = "agent-key-for-deliveries-01"
QA_KEY = "qa-key-for-deliveries-00001"
CHANNEL_KEY = "channel-key-for-deliveries1"
AGENT, QA, CHANNEL = ({"Authorization": f"Bearer {key}"} for key in (AGENT_KEY, QA_KEY, CHANNEL_KEY))
WORKER = "test-dispatcher"
LEASE = timedelta(seconds=60)
T0 = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)


def _client(demo_db_url: str, tmp_path: Path, **overrides: Any) -> TestClient:
    settings = Settings(
        data_dir=tmp_path,
        database_url=demo_db_url,
        load_demo=False,
        bootstrap_keys=f"agent:{AGENT_KEY},qa:{QA_KEY},channel:{CHANNEL_KEY}",
        business_timezone="UTC",
        **overrides,
    )
    return TestClient(create_app(settings))


@pytest.fixture
def twilio_client(demo_db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """SMS goes through Twilio; no dispatcher runs, so the test moves each delivery along itself."""
    overrides = {"twilio_account_sid": "AC" + "0" * 32, "twilio_auth_token": "token", "outbox_dispatch": False}
    with _client(demo_db_url, tmp_path, **overrides) as client:
        yield client


def _stores(client: TestClient) -> Stores:
    stores: Stores = client.app.state.services.stores  # type: ignore[attr-defined]
    return stores


def _escalate(client: TestClient, phone: str) -> tuple[str, str]:
    body = {"channel": "sms", "from": phone, "text": "I want to talk to a person"}
    asked = client.post("/v1/messages", json=body, headers=CHANNEL).json()
    assert asked["owner"] == "queue", asked
    return asked["customer_id"], asked["handoff_id"]


def _fail(stores: Stores, state: DeliveryState, error: str, *, now: datetime | None = None) -> list[Delivery]:
    """Claim what is due and fail it (`failed` or `dead`), as a dispatcher would."""
    at = now or datetime.now(UTC)
    claimed = stores.outbox.claim(WORKER, now=at, lease=LEASE, limit=50)
    return [d for c in claimed if (d := stores.outbox.mark_failed(c.id, WORKER, error, state=state, now=at))]


def test_a_reply_says_where_it_went_and_a_failed_one_puts_the_case_first(twilio_client: TestClient) -> None:
    client, stores = twilio_client, _stores(twilio_client)
    older_customer, older = _escalate(client, "+15550100161")
    customer, handoff = _escalate(client, "+15550100162")
    assert client.post(f"/v1/handoffs/{handoff}/claim", headers=AGENT).status_code == 200

    replied = client.post(f"/v1/handoffs/{handoff}/reply", json={"text": "Sam here, checking now."}, headers=AGENT)
    assert replied.status_code == 200, replied.text
    reply = replied.json()
    assert reply["delivery"] == "Queued for Twilio (SMS)"
    [queued] = reply["deliveries"]
    assert (queued["message_id"], queued["part"], queued["channel"], queued["provider"]) == (
        reply["message_id"],
        0,
        "sms",
        "twilio",
    )
    assert (queued["state"], queued["attempts"], queued["last_error"], queued["purpose"]) == (
        "queued",
        0,
        None,
        "agent_reply",
    )
    assert [h["state"] for h in queued["history"]] == ["queued"]
    assert "recipient" not in queued and "body" not in queued

    listed = client.get("/v1/handoffs", params={"status": ["queued", "claimed"]}, headers=AGENT).json()
    assert [h["id"] for h in listed] == [older, handoff]  # oldest first while nothing failed
    assert [h["delivery_problems"] for h in listed] == [0, 0]

    [failed] = _fail(stores, DeliveryState.FAILED, "400: The 'To' number is not a valid phone number")
    listed = client.get("/v1/handoffs", params={"status": ["queued", "claimed"]}, headers=AGENT).json()
    assert [(h["id"], h["delivery_problems"]) for h in listed] == [(handoff, 1), (older, 0)]
    assert client.get(f"/v1/handoffs/{handoff}", headers=AGENT).json()["delivery_problems"] == 1

    shown = client.get(f"/v1/handoffs/{handoff}/deliveries", headers=AGENT)
    assert shown.status_code == 200, shown.text
    assert shown.json()["window"] is None  # an SMS case
    [row] = shown.json()["deliveries"]
    assert (row["id"], row["state"], row["attempts"]) == (failed.id, "failed", 1)
    assert row["last_error"] == "400: The 'To' number is not a valid phone number"
    assert [h["state"] for h in row["history"]] == ["queued", "failed"]
    assert client.get("/v1/handoffs/ho_missing/deliveries", headers=AGENT).status_code == 404
    assert client.get(f"/v1/handoffs/{handoff}/deliveries", headers=CHANNEL).status_code == 403

    timeline = client.get(f"/v1/customers/{customer}/timeline", headers=AGENT).json()
    delivery = {e["ref"]: e["delivery"] for e in timeline if e["kind"] == "message" and e["direction"] == "outbound"}
    # The escalation notice rode the webhook's response: nothing was queued for it.
    assert delivery.pop(f"message:{reply['message_id']}") == "failed" and list(delivery.values()) == [None]
    assert all(e["delivery"] is None for e in timeline if e["ref"] != f"message:{reply['message_id']}")

    # A message that failed before the older case opened is not its problem; one the outbox raised on it is.
    new = NewDelivery(
        idempotency_key="older:0",
        message_id=None,
        customer_id=CustomerId(older_customer),
        channel=Channel.SMS,
        provider="twilio",
        recipient="+15550100161",
        body="Your order shipped.",
    )
    before = stores.handoffs.get(HandoffId(older))
    assert before is not None
    stores.outbox.enqueue(new, now=before.created_at - timedelta(hours=1))
    [stale] = _fail(stores, DeliveryState.DEAD, "503: Service Unavailable")
    assert client.get(f"/v1/handoffs/{older}", headers=AGENT).json()["delivery_problems"] == 0
    CaseRaiser(stores.handoffs, stores.customers)(stale)  # it died while the case was open: recorded on it
    listed = client.get("/v1/handoffs", params={"status": ["queued", "claimed"]}, headers=AGENT).json()
    assert [(h["id"], h["delivery_problems"]) for h in listed] == [(older, 1), (handoff, 1)]


def test_the_whatsapp_window_open_closed_and_without_a_template(demo_db_url: str, tmp_path: Path) -> None:
    with _client(demo_db_url, tmp_path) as client:
        stores, now = _stores(client), datetime.now(UTC)

        def whatsapp_case(last_wrote: datetime) -> str:
            customer = stores.customers.create(provisional=True).id
            stores.messages.append(customer, Channel.SMS, Direction.INBOUND, "hi", sender="+15550100163")
            stores.messages.append(
                customer, Channel.WHATSAPP, Direction.INBOUND, "hello", sender="15550100163", created_at=last_wrote
            )
            packet = {"channel": "whatsapp", "customer": {"id": customer}}
            return stores.handoffs.create(customer, packet=packet, packet_version=PACKET_VERSION, priority="normal").id

        def window(handoff: str) -> dict[str, Any]:
            shown = client.get(f"/v1/handoffs/{handoff}/deliveries", headers=AGENT)
            assert shown.status_code == 200, shown.text
            found: dict[str, Any] = shown.json()["window"]
            return found

        wrote = now - timedelta(hours=2)
        opened = window(whatsapp_case(wrote))
        assert (opened["open"], opened["template"], opened["applies"]) == (True, None, "free-form text")
        assert datetime.fromisoformat(opened["last_inbound_at"]) == wrote
        assert datetime.fromisoformat(opened["closes_at"]) == wrote + timedelta(hours=24)

        closed = window(whatsapp_case(now - timedelta(hours=25)))
        assert (closed["open"], closed["template"], closed["applies"]) == (False, None, NOTHING_APPLIES)

        # Without a WhatsApp sender, the reply is logged only: the agent is told so.
        _, handoff = _escalate(client, "+15550100164")
        assert client.post(f"/v1/handoffs/{handoff}/claim", headers=AGENT).status_code == 200
        reply = client.post(f"/v1/handoffs/{handoff}/reply", json={"text": "Hello"}, headers=AGENT).json()
        assert reply["deliveries"] == []
        assert reply["delivery"] == "Not sent: no SMS provider is configured; the customer sees it only on web chat"

    templates = "agent_reply:support_followup:en_US,queue_timeout:queue_update:en_US"
    with _client(demo_db_url, tmp_path, whatsapp_templates=templates) as client:
        stores = _stores(client)
        templated = window(whatsapp_case(now - timedelta(hours=30)))
        assert (templated["open"], templated["template"]) == (False, "support_followup")
        assert templated["applies"] == "template support_followup"
        still_open = window(whatsapp_case(now - timedelta(minutes=5)))
        assert (still_open["open"], still_open["applies"]) == (True, "free-form text")


def _delivery(state: DeliveryState, *, channel: Channel = Channel.SMS, part: int = 0, **rest: Any) -> Delivery:
    values: dict[str, Any] = {
        "id": part + 1,
        "idempotency_key": f"msg:7:{part}",
        "message_id": 7,
        "part": part,
        "customer_id": "cus_1",
        "channel": channel,
        "provider": {Channel.SMS: "twilio", Channel.EMAIL: "smtp", Channel.WHATSAPP: "whatsapp"}[channel],
        "purpose": Purpose.AGENT_REPLY,
        "recipient": "+15550100165",
        "body": "Hello",
        "state": state,
        "attempts": 1,
        "next_attempt_at": T0,
        "created_at": T0,
        "updated_at": T0,
    }
    return Delivery.model_validate(values | rest)


def test_the_reply_sentence_for_every_outcome() -> None:
    sms, email = Channel.SMS, Channel.EMAIL
    assert reply_delivery(Channel.WEB, None, [], now=T0) == "Shown in the customer's web chat"
    assert reply_delivery(email, None, [], now=T0) == (
        "Not sent: no email provider is configured; the customer sees it only on web chat"
    )
    assert reply_delivery(sms, "twilio", [], now=T0) == (
        "Not sent: the customer never wrote on SMS, so there is no address to send it to"
    )
    assert reply_delivery(sms, "twilio", [_delivery(DeliveryState.SENT)], now=T0) == "Sent through Twilio (SMS)"
    two = [_delivery(DeliveryState.SENT), _delivery(DeliveryState.QUEUED, part=1)]
    assert reply_delivery(sms, "twilio", two, now=T0) == "Queued for Twilio (SMS) in 2 parts"
    assert reply_delivery(email, "smtp", [_delivery(DeliveryState.DELIVERED, channel=email)], now=T0) == (
        "Delivered through SMTP (email)"
    )
    dead = _delivery(DeliveryState.DEAD, attempts=5, last_error="503: Service Unavailable")
    assert reply_delivery(sms, "twilio", [_delivery(DeliveryState.SENT, part=1), dead], now=T0) == (
        "Not sent through Twilio (SMS) after 5 attempts: 503: Service Unavailable"
    )
    failed = _delivery(DeliveryState.FAILED, last_error="400: not a valid phone number")
    assert reply_delivery(sms, "twilio", [failed], now=T0) == (
        "Not delivered: Twilio (SMS) refused it: 400: not a valid phone number"
    )

    def whatsapp(wrote: datetime, template: str | None = None, **rest: Any) -> Delivery:
        payload: dict[str, Any] = {"last_inbound_at": wrote.isoformat()}
        if template:
            payload["template"] = {"name": template, "language": "en_US"}
        return _delivery(rest.pop("state", DeliveryState.QUEUED), channel=Channel.WHATSAPP, payload=payload, **rest)

    wa = Channel.WHATSAPP
    inside = whatsapp(T0 - timedelta(hours=1), "support_followup")
    assert reply_delivery(wa, "whatsapp", [inside], now=T0) == "Queued for WhatsApp"
    outside = whatsapp(T0 - timedelta(hours=25), "support_followup")
    assert reply_delivery(wa, "whatsapp", [outside], now=T0) == (
        "Queued for WhatsApp as the template support_followup: the customer's 24-hour window closed"
    )
    assert reply_delivery(wa, "whatsapp", [whatsapp(T0 - timedelta(hours=25))], now=T0) == (
        "Not sent: the customer's 24-hour WhatsApp window closed and no template is configured"
    )
    read = whatsapp(T0 - timedelta(hours=1), state=DeliveryState.DELIVERED, read_at=T0)
    assert reply_delivery(wa, "whatsapp", [read], now=T0) == "Read by the customer: delivered through WhatsApp"


def test_a_messages_parts_add_up_to_the_worst_state() -> None:
    states = [DeliveryState.DELIVERED, DeliveryState.SENT, DeliveryState.QUEUED, DeliveryState.FAILED]
    parts = [_delivery(s, part=i) for i, s in enumerate(states)]
    assert overall_state(parts) == "failed"
    assert overall_state([*parts, _delivery(DeliveryState.DEAD, part=9)]) == "dead"
    assert overall_state(parts[:3]) == "queued"
    assert overall_state(parts[:2]) == "sent"
    assert overall_state([_delivery(DeliveryState.DELIVERED, read_at=T0)]) == "read"
    assert overall_state([]) is None
    closed = whatsapp_window(None, None, now=T0)
    assert (closed.open, closed.closes_at, closed.applies) == (False, None, NOTHING_APPLIES)


def test_the_delivery_failure_rate_by_channel(twilio_client: TestClient) -> None:
    client, stores = twilio_client, _stores(twilio_client)
    customer = CustomerId(stores.customers.create(provisional=True).id)
    plan = [  # (channel, created, outcome)
        (Channel.SMS, T0, DeliveryState.SENT),
        (Channel.SMS, T0 + timedelta(hours=1), DeliveryState.FAILED),
        (Channel.SMS, T0 + timedelta(hours=2), DeliveryState.DEAD),
        (Channel.SMS, T0 + timedelta(days=1), DeliveryState.QUEUED),
        (Channel.EMAIL, T0 + timedelta(days=1), DeliveryState.FAILED),
        (Channel.EMAIL, T0 + timedelta(days=2), DeliveryState.DELIVERED),
        (Channel.WHATSAPP, T0 + timedelta(days=5), DeliveryState.FAILED),  # after the range
        (Channel.SMS, T0 - timedelta(days=3), DeliveryState.DEAD),  # before it
    ]
    rows = []
    for index, (channel, created, _) in enumerate(plan):
        new = NewDelivery(
            idempotency_key=f"rate:{index}",
            message_id=None,
            customer_id=customer,
            channel=channel,
            provider={Channel.SMS: "twilio", Channel.EMAIL: "smtp", Channel.WHATSAPP: "whatsapp"}[channel],
            recipient="+15550100166",
            body="Hello",
        )
        rows.append(stores.outbox.enqueue(new, now=created)[0].id)
    later = T0 + timedelta(days=10)
    claimed = {d.id for d in stores.outbox.claim(WORKER, now=later, lease=LEASE, limit=50)}
    assert claimed == set(rows)
    for row, (_, _, outcome) in zip(rows, plan, strict=True):
        if outcome in (DeliveryState.FAILED, DeliveryState.DEAD):
            stores.outbox.mark_failed(row, WORKER, "refused", state=outcome, now=later)
        elif outcome is DeliveryState.QUEUED:
            stores.outbox.mark_retry(row, WORKER, "busy", at=later, now=later)
        else:
            receipt = SendReceipt(provider_message_id=f"SM{row}", delivered=outcome is DeliveryState.DELIVERED)
            stores.outbox.mark_sent(row, WORKER, receipt, now=later)

    window = {"from": date(2026, 3, 3).isoformat(), "to": date(2026, 3, 5).isoformat()}
    report = client.get("/v1/analytics/delivery", params=window, headers=QA)
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["filters"] == {"from": "2026-03-03", "to": "2026-03-05", "channel": None}
    assert body["by_channel"] == [
        {"channel": "email", "total": 2, "failed": 1, "dead": 0, "rate": 0.5},
        {"channel": "sms", "total": 4, "failed": 1, "dead": 1, "rate": 0.5},
    ]
    assert body["overall"] == {"channel": "all", "total": 6, "failed": 2, "dead": 1, "rate": 0.5}
    one_day = client.get("/v1/analytics/delivery", params={"from": "2026-03-03", "to": "2026-03-03"}, headers=QA)
    assert one_day.json()["by_channel"] == [
        {"channel": "sms", "total": 3, "failed": 1, "dead": 1, "rate": pytest.approx(2 / 3)}
    ]
    email = client.get("/v1/analytics/delivery", params={**window, "channel": "email"}, headers=QA).json()
    assert [r["channel"] for r in email["by_channel"]] == ["email"] and email["overall"]["total"] == 2
    empty = client.get("/v1/analytics/delivery", params={"from": "2026-01-01", "to": "2026-01-02"}, headers=QA)
    assert empty.json()["by_channel"] == [] and empty.json()["overall"]["rate"] is None
    backwards = client.get("/v1/analytics/delivery", params={"from": "2026-03-05", "to": "2026-03-01"}, headers=QA)
    assert backwards.status_code == 422
    assert client.get("/v1/analytics/delivery", headers=AGENT).status_code == 403
