"""Delivery end to end, on SQLite and Postgres, through the HTTP API with real provider clients talking to local
servers: an agent's SMS reply sent through the official Twilio client, its status callback, a 500 retried, five
500s dead and in front of agents; an email reply at a real SMTP server with threading headers; a webhook whose turn
outlasts its budget answered in time with the reply sent through the outbox; and `POST /v1/messages?async=true`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from tests.smtp_server import LocalSmtpServer
from threadline.api.app import create_app
from threadline.channels.email import mailgun_signature
from threadline.channels.local_providers import GraphApiServer, TwilioApiServer
from threadline.channels.social import meta_signature
from threadline.channels.twilio import twilio_signature
from threadline.core.settings import Settings
from threadline.core.types import Channel
from threadline.memory.schema import MessageRow

AGENT_KEY = "agent-key-for-delivery-0001"
CHANNEL_KEY = "channel-key-for-delivery-01"
AGENT = {"Authorization": f"Bearer {AGENT_KEY}"}
CHANNEL = {"Authorization": f"Bearer {CHANNEL_KEY}"}
BASE = "http://testserver"
TOKEN = TwilioApiServer.AUTH_TOKEN
EMAIL_KEY = "mailgun-signing-key-delivery"
STORE_NUMBER = "+15550009999"
PHONE = "+15557654001"
FAST_RETRIES = {"outbox_backoff_s": 0.05, "outbox_backoff_max_s": 0.1, "outbox_poll_s": 0.05, "outbox_max_attempts": 5}


def _settings(db_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=db_url,
        load_demo=False,
        bootstrap_keys=f"agent:{AGENT_KEY},channel:{CHANNEL_KEY}",
        public_url=BASE,
        twilio_auth_token=TOKEN,
        email_signing_key=EMAIL_KEY,
        **{**FAST_RETRIES, **overrides},
    )


def _twilio_settings(db_url: str, tmp_path: Path, api: TwilioApiServer, **overrides: Any) -> Settings:
    """Settings with the Twilio sender pointed at the local Messages API."""
    twilio = {"twilio_account_sid": api.account_sid, "twilio_from_number": STORE_NUMBER, "twilio_api_base_url": api.url}
    return _settings(db_url, tmp_path, **twilio, **overrides)


def wait_for(check: Callable[[], Any], *, timeout_s: float = 10.0, what: str = "the condition") -> Any:
    """Poll `check` until it returns something truthy (bounded: fails after `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def twilio_api() -> Iterator[TwilioApiServer]:
    with TwilioApiServer() as server:
        yield server


@pytest.fixture
def sms_client(demo_db_url: str, tmp_path: Path, twilio_api: TwilioApiServer) -> Iterator[TestClient]:
    with TestClient(create_app(_twilio_settings(demo_db_url, tmp_path, twilio_api))) as client:
        yield client


def _post_twilio(client: TestClient, path: str, params: dict[str, str]) -> Any:
    signature = twilio_signature(TOKEN, BASE + path, params)
    headers = {"content-type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
    return client.post(path, content=urlencode(params), headers=headers)


def _text(client: TestClient, body: str, sid: str, sender: str = PHONE) -> Any:
    params = {"MessageSid": sid, "AccountSid": "AC1", "From": sender, "To": STORE_NUMBER, "Body": body}
    return _post_twilio(client, "/v1/channels/twilio/sms", params)


def _claimed_case(client: TestClient, sid: str = "SMcustomer0001") -> str:
    """A customer texts asking for a person; an agent claims the case."""
    response = _text(client, "hi can i talk to a real person pls, its about my order", sid)
    assert response.status_code == 200, response.text
    queue = client.get("/v1/handoffs", params={"status": "queued"}, headers=AGENT).json()
    [case] = [c for c in queue if c["channel"] == "sms"]
    assert client.post(f"/v1/handoffs/{case['id']}/claim", headers=AGENT).status_code == 200
    return str(case["id"])


def _deliveries(client: TestClient, message_id: int) -> list[Any]:
    services = client.app.state.services  # type: ignore[attr-defined]
    return list(services.stores.outbox.for_messages([message_id]).get(message_id, []))


def test_an_agents_sms_reply_is_sent_through_twilio_and_a_status_callback_marks_it_delivered(
    sms_client: TestClient, twilio_api: TwilioApiServer
) -> None:
    case = _claimed_case(sms_client)
    text = "Hi, this is Sam from the store. Your sofa left our warehouse today; you'll get tracking by text."
    reply = sms_client.post(f"/v1/handoffs/{case}/reply", json={"text": text}, headers=AGENT)
    assert reply.status_code == 200, reply.text
    message_id = reply.json()["message_id"]
    [sent] = wait_for(lambda: twilio_api.messages, what="Twilio to receive the reply")
    assert sent["to"] == PHONE and sent["from"] == STORE_NUMBER and "Your sofa left our warehouse" in sent["body"]
    form = twilio_api.requests[-1].form
    assert form["StatusCallback"] == BASE + "/v1/channels/twilio/status"
    [delivery] = wait_for(lambda: [d for d in _deliveries(sms_client, message_id) if d.state == "sent"])
    assert delivery.provider_message_id == sent["sid"]

    status = {"MessageSid": sent["sid"], "MessageStatus": "delivered", "AccountSid": TwilioApiServer.ACCOUNT_SID}
    for reported in ("sent", "delivered", "sent"):  # the last `sent` arrives late
        callback = _post_twilio(sms_client, "/v1/channels/twilio/status", {**status, "MessageStatus": reported})
        assert callback.status_code == 200 and callback.json() == {"applied": True}
    [done] = _deliveries(sms_client, message_id)
    assert done.state == "delivered" and done.delivered_at is not None  # the late `sent` changed nothing
    forged = {"content-type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "forged"}
    refused = sms_client.post("/v1/channels/twilio/status", content=urlencode(status), headers=forged)
    assert refused.status_code == 401


def test_a_provider_500_is_retried_and_then_succeeds(sms_client: TestClient, twilio_api: TwilioApiServer) -> None:
    case = _claimed_case(sms_client, "SMcustomer0002")
    twilio_api.script(TwilioApiServer.error(500, 20500, "Internal Server Error"))
    reply = sms_client.post(f"/v1/handoffs/{case}/reply", json={"text": "Checking on it now!"}, headers=AGENT)
    message_id = reply.json()["message_id"]
    [delivery] = wait_for(lambda: [d for d in _deliveries(sms_client, message_id) if d.state == "sent"])
    assert delivery.attempts == 2 and [h["state"] for h in delivery.history] == ["queued", "retry", "sent"]
    posts = [r for r in twilio_api.requests if r.method == "POST"]
    assert len(posts) == 2 and posts[0].form["Body"] == posts[1].form["Body"]
    assert len(twilio_api.messages) == 1


def test_five_500s_make_it_dead_and_put_it_in_front_of_the_agent(
    sms_client: TestClient, twilio_api: TwilioApiServer
) -> None:
    case = _claimed_case(sms_client, "SMcustomer0003")
    twilio_api.script(*[TwilioApiServer.error(500, 20500, "Internal Server Error") for _ in range(5)])
    reply = sms_client.post(f"/v1/handoffs/{case}/reply", json={"text": "Sorry about that!"}, headers=AGENT)
    message_id = reply.json()["message_id"]
    [dead] = wait_for(lambda: [d for d in _deliveries(sms_client, message_id) if d.state == "dead"], timeout_s=15)
    assert dead.attempts == 5 and "500" in (dead.last_error or "")
    assert len([r for r in twilio_api.requests if r.method == "POST"]) == 5 and twilio_api.messages == []

    def failed_events() -> list[Any]:
        detail = sms_client.get(f"/v1/handoffs/{case}", headers=AGENT).json()
        return [e for e in detail["events"] if e["kind"] == "delivery_failed"]

    [event] = wait_for(failed_events, what="the case raised")  # right after the row is marked dead
    assert event["payload"]["state"] == "dead" and event["payload"]["message_id"] == message_id


def test_a_redelivered_sms_webhook_never_queues_a_second_message(
    demo_db_url: str, tmp_path: Path, twilio_api: TwilioApiServer
) -> None:
    """The first delivery's turn outlasts the budget (its reply goes through the outbox); Twilio's retry of the same
    message gets an empty answer and adds nothing to the outbox."""
    settings = _twilio_settings(demo_db_url, tmp_path, twilio_api, webhook_reply_budget_ms=0)
    with TestClient(create_app(settings)) as client:
        first = _text(client, "whats ur return policy?", "SMredelivered01")
        assert first.status_code == 200 and "<Message>" not in first.text
        [sent] = wait_for(lambda: twilio_api.messages, what="the late reply to go out")
        assert "return" in sent["body"].lower()
        again = _text(client, "whats ur return policy?", "SMredelivered01")
        assert again.status_code == 200 and "<Message>" not in again.text
        services = client.app.state.services  # type: ignore[attr-defined]
        time.sleep(0.3)
        assert len(twilio_api.messages) == 1 and len(services.stores.outbox.problems()) == 0


def test_a_webhook_whose_turn_outlasts_the_budget_answers_in_time_and_the_reply_follows(
    demo_db_url: str, tmp_path: Path, twilio_api: TwilioApiServer, embeddings: Any
) -> None:
    from threadline.agents.models import shared_classifier
    from threadline.agents.scripted_server import ScriptedModelServer

    with ScriptedModelServer(classifier=shared_classifier(embeddings), api_key="k", latency_s=1.5) as model:
        settings = _twilio_settings(
            demo_db_url,
            tmp_path,
            twilio_api,
            webhook_reply_budget_ms=300,
            model="openai:scripted-model",
            openai_base_url=model.base_url,
            openai_api_key="k",
        )
        with TestClient(create_app(settings)) as client:
            started = time.monotonic()
            response = _text(client, "hey do you ship to canada?", "SMslowturn0001")
            answered_in = time.monotonic() - started
            assert response.status_code == 200 and "<Message>" not in response.text, response.text
            assert answered_in < 1.2  # the budget (0.3 s) and some slack; the turn's two model calls take 3 s
            [sent] = wait_for(lambda: twilio_api.messages, timeout_s=20, what="the reply through the outbox")
            assert sent["to"] == PHONE and "ship" in sent["body"].lower(), sent["body"]


@pytest.fixture
def smtp() -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer() as server:
        yield server


def _email_post(**fields: str) -> dict[str, str]:
    timestamp, token = str(int(time.time())), fields.pop("token")
    return {
        "timestamp": timestamp,
        "token": token,
        "signature": mailgun_signature(EMAIL_KEY, timestamp, token),
        "recipient": "support@store.example",
        **fields,
    }


def test_an_agents_email_reply_arrives_threaded_under_the_customers_email(
    demo_db_url: str, tmp_path: Path, smtp: LocalSmtpServer
) -> None:
    settings = _settings(demo_db_url, tmp_path, smtp_url=smtp.url, email_from="Demo Store <support@store.example>")
    long_email = (
        "Hello,\n\nI ordered a sofa three weeks ago and the tracking page hasn't moved since last Tuesday. I've "
        "tried calling twice but nobody picks up. Honestly I'd like to speak with someone from your team, not a bot, "
        "because I need to know if it will arrive before my move on the 20th.\n\nThanks,\nMaria\n\n"
        "On Mon, Nov 30, 2026 at 9:12 AM Demo Store <support@store.example> wrote:\n> Thanks for your order!"
    )
    form = _email_post(
        token="tok-email-0001",
        **{
            "from": "Maria Lopez <maria.lopez@example.com>",
            "subject": "Re: Your order #W2378156",
            "body-plain": long_email,
            "Message-Id": "<CAF=maria-2@mail.example.com>",
            "References": "<order-confirmation-1@store.example> <CAF=maria-1@mail.example.com>",
        },
    )
    with TestClient(create_app(settings)) as client:
        answered = client.post("/v1/channels/email", data=form)
        assert answered.status_code == 200, answered.text
        queue = client.get("/v1/handoffs", params={"status": "queued"}, headers=AGENT).json()
        [case] = [c for c in queue if c["channel"] == "email"]
        assert client.post(f"/v1/handoffs/{case['id']}/claim", headers=AGENT).status_code == 200
        text = "I'm so sorry about the wait. I checked with the carrier: your sofa will arrive on the 17th."
        assert client.post(f"/v1/handoffs/{case['id']}/reply", json={"text": text}, headers=AGENT).status_code == 200
        wait_for(lambda: [m for m in smtp.messages if "carrier" in m.get_content()], what="the email at the server")
    [email] = [m for m in smtp.messages if "carrier" in m.get_content()]
    assert email["To"] == "maria.lopez@example.com" and "support@store.example" in email["From"]
    assert email["Subject"] == "Re: Your order #W2378156"
    assert email["In-Reply-To"] == "<CAF=maria-2@mail.example.com>"
    assert email["References"].split() == [
        "<order-confirmation-1@store.example>",
        "<CAF=maria-1@mail.example.com>",
        "<CAF=maria-2@mail.example.com>",
    ]
    assert email["Message-ID"].endswith("@store.example>")
    body = email.get_content()
    assert body.startswith("Hi Maria,") and "your sofa will arrive on the 17th" in body  # her name, from her From


def test_async_messages_answer_202_with_the_id_and_the_reply_is_read_later(demo_db_url: str, tmp_path: Path) -> None:
    with TestClient(create_app(_settings(demo_db_url, tmp_path))) as client:
        body = {"channel": "web", "from": "visitor-async-1", "text": "hi! what payment methods do u take?"}
        accepted = client.post("/v1/messages", params={"async": "true"}, json=body, headers=CHANNEL)
        assert accepted.status_code == 202, accepted.text
        message_id = accepted.json()["message_id"]
        assert accepted.json()["href"] == f"/v1/messages/{message_id}"

        def answered() -> dict[str, Any] | None:
            state: dict[str, Any] = client.get(f"/v1/messages/{message_id}", headers=CHANNEL).json()
            return state if state["status"] == "answered" else None

        state = wait_for(answered, what="the asynchronous turn")
        assert state["reply"] and "pay" in state["reply"].lower()
        again = client.post(
            "/v1/messages", params={"async": "true"}, json={**body, "message_id": "m-1"}, headers=CHANNEL
        )
        redelivered = client.post(
            "/v1/messages", params={"async": "true"}, json={**body, "message_id": "m-1"}, headers=CHANNEL
        )
        assert again.json()["message_id"] == redelivered.json()["message_id"]
        assert client.get("/v1/messages/999999", headers=CHANNEL).status_code == 404
        bad = client.post("/v1/messages", params={"async": "true"}, json={**body, "text": " "}, headers=CHANNEL)
        assert bad.status_code == 422


# --- WhatsApp ---------------------------------------------------------------------------------------------------

META_SECRET = "meta-app-secret-for-delivery"
META_VERIFY = "meta-verify-token-delivery"
WA_TOKEN = "whatsapp-access-token-0123"
WA_NUMBER_ID = "472918305561204"
WA_PHONE = "447700900123"
BSUID = "GB.19283746501928374650"


def _whatsapp_post(
    client: TestClient, *, messages: list[Any] | None = None, statuses: list[Any] | None = None, **contact: Any
) -> Any:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15557340012", "phone_number_id": WA_NUMBER_ID},
    }
    if messages is not None:
        value["contacts"] = [{"profile": {"name": "Priya Raman"}, **contact}]
        value["messages"] = messages
    if statuses is not None:
        value["statuses"] = statuses
    change = {"field": "messages", "value": value}
    raw = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "318204719563021", "changes": [change]}]})
    headers = {"X-Hub-Signature-256": meta_signature(META_SECRET, raw.encode()), "content-type": "application/json"}
    return client.post("/v1/channels/whatsapp", content=raw, headers=headers)


def _wa_text(text: str, wamid: str, *, at: datetime, phone: str | None = WA_PHONE) -> dict[str, Any]:
    message = {"id": wamid, "timestamp": str(int(at.timestamp())), "type": "text", "text": {"body": text}}
    return {**message, "from_user_id": BSUID, **({"from": phone} if phone else {})}


def test_a_whatsapp_conversation_from_challenge_to_template(demo_db_url: str, tmp_path: Path) -> None:
    with GraphApiServer(token=WA_TOKEN) as graph:
        settings = _settings(
            demo_db_url,
            tmp_path,
            meta_app_secret=META_SECRET,
            meta_verify_token=META_VERIFY,
            whatsapp_access_token=WA_TOKEN,
            whatsapp_phone_number_id=WA_NUMBER_ID,
            whatsapp_templates="agent_reply:support_followup:en_US",
            meta_graph_base_url=graph.url,
        )
        with TestClient(create_app(settings)) as client:
            challenge = {"hub.mode": "subscribe", "hub.verify_token": META_VERIFY, "hub.challenge": "1158201444"}
            assert client.get("/v1/channels/whatsapp", params=challenge).text == "1158201444"
            wrong = client.get("/v1/channels/whatsapp", params={**challenge, "hub.verify_token": "guess"})
            assert wrong.status_code == 401

            # The customer writes with their number and BSUID: the reply goes out as text through the Cloud API.
            now = datetime.now(UTC)
            first = _whatsapp_post(
                client,
                messages=[_wa_text("hiya!! whats ur return policy?", "wamid.in1", at=now)],
                wa_id=WA_PHONE,
                user_id=BSUID,
            )
            assert first.status_code == 200 and first.json()["queued"] == 1, first.text
            [sent] = wait_for(lambda: graph.sent, what="the WhatsApp reply")
            assert sent["to"] == WA_PHONE and sent["type"] == "text" and "return" in sent["text"]["body"].lower()
            services = client.app.state.services  # type: ignore[attr-defined]
            customer = services.stores.messages.find_by_provider_id(Channel.WHATSAPP, "wamid.in1").customer_id
            outbox = services.stores.outbox
            [delivery] = wait_for(lambda: [d for d in outbox.for_customer(customer) if d.state == "sent"])
            wamid = delivery.provider_message_id

            # Status reports arrive out of order in one post: read, then delivered, then sent.
            stamp = str(int(now.timestamp()))
            statuses = [
                {"id": wamid, "status": s, "timestamp": stamp, "recipient_id": WA_PHONE}
                for s in ("read", "delivered", "sent")
            ]
            applied = _whatsapp_post(client, statuses=statuses)
            assert applied.status_code == 200 and applied.json()["statuses"] == 3
            done = services.stores.outbox.get(delivery.id)
            assert done.state == "delivered" and done.read_at is not None

            # Later the number is withheld: the BSUID alone still finds the same customer.
            again = _whatsapp_post(
                client,
                messages=[_wa_text("ok and can i talk to a person about it?", "wamid.in2", at=now, phone=None)],
                user_id=BSUID,
            )
            assert again.status_code == 200, again.text
            latest = services.stores.messages.find_by_provider_id(Channel.WHATSAPP, "wamid.in2")
            assert latest.customer_id == customer and latest.sender == BSUID

            # A person answers 30 hours after the customer's last message: only the template may go out.
            stale = now - timedelta(hours=30)
            escalated = _whatsapp_post(
                client,
                messages=[_wa_text("i want a real person please", "wamid.in3", at=stale, phone=None)],
                user_id=BSUID,
            )
            assert escalated.status_code == 200
            case = services.stores.handoffs.open_for_customer(customer)
            assert case is not None
            with services.db.transaction() as conn:  # the customer's messages are all older than the window
                conn.execute(update(MessageRow).where(MessageRow.customer_id == customer).values(created_at=stale))
            assert client.post(f"/v1/handoffs/{case.id}/claim", headers=AGENT).status_code == 200
            text = "Hi Priya, it's Dana from the store - I can take care of that lamp return for you."
            assert client.post(f"/v1/handoffs/{case.id}/reply", json={"text": text}, headers=AGENT).status_code == 200
            template = wait_for(lambda: [m for m in graph.sent if m.get("type") == "template"], what="the template")
            [body] = template
            assert body["recipient"] == BSUID or body.get("to") == WA_PHONE
            assert body["template"]["name"] == "support_followup"
            assert body["template"]["language"] == {"code": "en_US"}
            [parameter] = body["template"]["components"][0]["parameters"]
            assert "lamp return" in parameter["text"]


def test_a_messenger_reply_goes_out_through_the_send_api(demo_db_url: str, tmp_path: Path) -> None:
    with GraphApiServer(token="page-token-0123") as graph:
        settings = _settings(
            demo_db_url,
            tmp_path,
            meta_app_secret=META_SECRET,
            meta_page_access_token="page-token-0123",
            meta_graph_base_url=graph.url,
        )
        event = {
            "sender": {"id": "6185472093817264"},
            "recipient": {"id": "104857201938475"},
            "timestamp": int(time.time() * 1000),
            "message": {"mid": "m_in_0001", "text": "hey!! do u take paypal?"},
        }
        raw = json.dumps({"object": "page", "entry": [{"id": "104857201938475", "messaging": [event]}]}).encode()
        headers = {"X-Hub-Signature-256": meta_signature(META_SECRET, raw), "content-type": "application/json"}
        with TestClient(create_app(settings)) as client:
            answer = client.post("/v1/channels/social", content=raw, headers=headers)
            assert answer.status_code == 200 and answer.json() == {"replies": [], "queued": 1, "pending": 0}
            [sent] = wait_for(lambda: graph.sent, what="the Send API call")
            again = client.post("/v1/channels/social", content=raw, headers=headers)  # Meta retries the post
            assert again.status_code == 200 and again.json()["replies"] == []
            time.sleep(0.2)
    assert sent["recipient"] == {"id": "6185472093817264"} and sent["messaging_type"] == "RESPONSE"
    assert "paypal" in sent["message"]["text"].lower() and len(graph.sent) == 1


def test_an_agents_reply_sent_twice_with_one_key_reaches_the_customer_once(
    sms_client: TestClient, twilio_api: TwilioApiServer
) -> None:
    case = _claimed_case(sms_client, "SMcustomer0009")
    keyed = {**AGENT, "Idempotency-Key": "draft-7f3a"}
    body = {"text": "Your refund went out this morning."}
    first = sms_client.post(f"/v1/handoffs/{case}/reply", json=body, headers=keyed)
    again = sms_client.post(f"/v1/handoffs/{case}/reply", json=body, headers=keyed)
    assert first.status_code == again.status_code == 200
    assert first.json()["message_id"] == again.json()["message_id"]
    wait_for(lambda: twilio_api.messages, what="the reply")
    time.sleep(0.3)
    assert len(twilio_api.messages) == 1
    other = sms_client.post(f"/v1/handoffs/{case}/reply", json=body, headers={**AGENT, "Idempotency-Key": "draft-8"})
    assert other.json()["message_id"] != first.json()["message_id"]
    assert sms_client.post(f"/v1/handoffs/{case}/resolve", headers=AGENT).status_code == 200
    late = sms_client.post(f"/v1/handoffs/{case}/reply", json=body, headers=keyed)  # a retry after the case closed
    assert late.status_code == 200 and late.json()["message_id"] == first.json()["message_id"]
