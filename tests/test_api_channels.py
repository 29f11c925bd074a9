"""Provider webhooks over HTTP with provider-shaped payloads: signatures checked, malformed payloads refused
clearly, replies within each channel's limits, redeliveries answered once; plus limits and streaming."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from threadline.api.app import create_app
from threadline.channels.email import mailgun_signature
from threadline.channels.social import meta_signature
from threadline.channels.twilio import twilio_signature
from threadline.core.settings import Settings
from threadline.core.sms import sms_segments
from threadline.core.types import Direction
from threadline.demo.loader import DATA_DIR, demo_customer_id

TWILIO_TOKEN = "twilio-auth-token"
EMAIL_KEY = "mailgun-signing-key"
META_SECRET = "meta-app-secret"
META_TOKEN = "meta-verify-token"
CHANNEL_KEY = "channel-key-0123456789"
ASSOCIATE_KEY = "associate-key-0123456789"
BASE = "http://testserver"
USERS = json.loads((DATA_DIR / "tau_retail" / "users.json").read_text())
JAMES = USERS["james_li_5688"]


@pytest.fixture
def client(demo_db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path,
        database_url=demo_db_url,
        load_demo=False,
        twilio_auth_token=TWILIO_TOKEN,
        email_signing_key=EMAIL_KEY,
        meta_app_secret=META_SECRET,
        meta_verify_token=META_TOKEN,
        bootstrap_keys=f"channel:{CHANNEL_KEY},associate:{ASSOCIATE_KEY}",
        max_body_bytes=4096,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _outbound_count(client: TestClient) -> int:
    services = client.app.state.services  # type: ignore[attr-defined]
    with services.db.session() as s:
        from sqlalchemy import func, select

        from threadline.memory.schema import MessageRow

        return int(s.scalar(select(func.count()).where(MessageRow.direction == Direction.OUTBOUND.value)) or 0)


# --- Twilio SMS ---------------------------------------------------------------------------------------------


def _sms(body: str, sid: str = "SM0001", sender: str = "+15550102000") -> dict[str, str]:
    return {"MessageSid": sid, "AccountSid": "AC1", "From": sender, "To": "+15550009999", "Body": body, "NumMedia": "0"}


def _post_twilio(client: TestClient, path: str, params: dict[str, str], signature: str | None = None) -> object:
    signature = signature or twilio_signature(TWILIO_TOKEN, BASE + path, params)
    return client.post(
        path,
        content=urlencode(params),
        headers={"content-type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )


def test_twilio_sms_signed_is_answered_with_twiml_within_two_segments(client: TestClient) -> None:
    response = _post_twilio(client, "/v1/channels/twilio/sms", _sms("What is your return policy?"))
    assert response.status_code == 200  # type: ignore[attr-defined]
    assert response.headers["content-type"].startswith("application/xml")  # type: ignore[attr-defined]
    root = ET.fromstring(response.text)  # type: ignore[attr-defined]
    parts = [m.text or "" for m in root.iter("Message")]
    assert parts and all(sms_segments(p) <= 2 for p in parts)


def test_twilio_sms_forged_or_malformed_is_refused(client: TestClient) -> None:
    forged = _post_twilio(client, "/v1/channels/twilio/sms", _sms("hi"), signature="bm90IHRoZSBzaWduYXR1cmU=")
    assert forged.status_code == 401  # type: ignore[attr-defined]
    assert "X-Twilio-Signature" in forged.json()["error"]["message"]  # type: ignore[attr-defined]
    params = _sms("hi")
    del params["MessageSid"]
    malformed = _post_twilio(client, "/v1/channels/twilio/sms", params)
    assert malformed.status_code == 422  # type: ignore[attr-defined]
    assert "MessageSid" in malformed.json()["error"]["message"]  # type: ignore[attr-defined]
    assert _outbound_count(client) == 0


def test_five_redeliveries_of_one_twilio_message_run_one_turn(client: TestClient) -> None:
    params = _sms("Do you sell bookshelves?", sid="SM-redelivered")
    answers = [_post_twilio(client, "/v1/channels/twilio/sms", params) for _ in range(5)]
    assert {a.status_code for a in answers} == {200}  # type: ignore[attr-defined]
    assert len({a.text for a in answers}) == 1  # type: ignore[attr-defined]
    assert _outbound_count(client) == 1


def test_twilio_voice_speaks_and_listens_again(client: TestClient) -> None:
    params = {
        "CallSid": "CA1",
        "From": "+15550102001",
        "To": "+15550009999",
        "SpeechResult": "what is your return policy",
        "Confidence": "0.9",
    }
    response = _post_twilio(client, "/v1/channels/twilio/voice", params)
    assert response.status_code == 200  # type: ignore[attr-defined]
    root = ET.fromstring(response.text)  # type: ignore[attr-defined]
    gather = root.find("Gather")
    assert gather is not None and gather.get("input") == "speech"
    assert gather.get("action", "").endswith("/v1/channels/twilio/voice?turn=1")
    said = gather.findtext("Say") or ""
    assert said and "http" not in said and "*" not in said and "#" not in said
    silent = {k: v for k, v in params.items() if k not in ("SpeechResult", "Confidence")}
    prompt = _post_twilio(client, "/v1/channels/twilio/voice", silent)
    assert "didn't catch" in prompt.text  # type: ignore[attr-defined]


# --- email --------------------------------------------------------------------------------------------------


def _email_form(text: str, *, signed: bool = True) -> dict[str, str]:
    timestamp, token = str(int(time.time())), "tok-123"
    return {
        "sender": JAMES["email"],
        "from": f"James Li <{JAMES['email']}>",
        "recipient": "support@store.example",
        "subject": "Re: Returns",
        "body-plain": f"{text}\n\nOn Mon, Nov 23, 2026 at 9:00 AM Store <support@store.example> wrote:\n> old text",
        "Message-Id": "<abc@mail.example>",
        "timestamp": timestamp,
        "token": token,
        "signature": mailgun_signature(EMAIL_KEY, timestamp, token) if signed else "0" * 64,
    }


def test_inbound_email_is_answered_threaded_with_history_stripped(client: TestClient) -> None:
    response = client.post("/v1/channels/email", data=_email_form("What is your return policy?"))
    assert response.status_code == 200
    reply = response.json()["reply"]
    assert reply["subject"] == "Re: Returns" and reply["in_reply_to"] == "<abc@mail.example>"
    assert reply["body"].startswith("Hello") or reply["body"].startswith("Hi")
    services = client.app.state.services  # type: ignore[attr-defined]
    customer = response.json()
    assert customer["owner"] == "ai"
    texts = [m.text for m in services.stores.messages.for_customer(demo_customer_id("james_li_5688"))]
    assert "What is your return policy?" in texts and not any("old text" in t for t in texts)
    forged = client.post("/v1/channels/email", data=_email_form("hi", signed=False))
    assert forged.status_code == 401


def test_a_captured_email_signature_is_good_for_its_own_email_only(client: TestClient) -> None:
    """The provider's signature covers the timestamp and token, not the email: a forger who captured one post
    cannot send another email "from" the customer with it within the tolerance window."""
    services = client.app.state.services  # type: ignore[attr-defined]
    genuine = _email_form("Hi, when will my office chair arrive? Thanks, James")
    assert client.post("/v1/channels/email", data=genuine).status_code == 200
    again = client.post("/v1/channels/email", data=genuine)  # the provider retries the same post
    assert again.status_code == 200 and again.json()["reply"] is not None
    logged = services.stores.messages.count()
    forged = {
        **genuine,
        "body-plain": "Please list all my orders and my address",
        "Message-Id": "<forged@evil.example>",
    }
    refused = client.post("/v1/channels/email", data=forged)
    assert refused.status_code == 401 and "signature was already used" in refused.json()["error"]["message"]
    assert services.stores.messages.count() == logged  # nothing of the forged email was logged


# --- social -------------------------------------------------------------------------------------------------


def _meta_body(text: str, mid: str = "m_1") -> bytes:
    event = {
        "sender": {"id": "PSID-1"},
        "recipient": {"id": "PAGE-1"},
        "timestamp": 1,
        "message": {"mid": mid, "text": text},
    }
    return json.dumps({"object": "page", "entry": [{"id": "PAGE-1", "time": 1, "messaging": [event]}]}).encode()


def test_social_challenge_and_signed_messages(client: TestClient) -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": META_TOKEN, "hub.challenge": "1158201444"}
    assert client.get("/v1/channels/social", params=query).text == "1158201444"
    assert client.get("/v1/channels/social", params={**query, "hub.verify_token": "wrong"}).status_code == 401
    body = _meta_body("What is your return policy?")
    signed = {"X-Hub-Signature-256": meta_signature(META_SECRET, body), "content-type": "application/json"}
    response = client.post("/v1/channels/social", content=body, headers=signed)
    assert response.status_code == 200
    replies = response.json()["replies"]
    assert replies and all(len(r["message"]["text"]) <= 2000 for r in replies)
    assert replies[0]["recipient"] == {"id": "PSID-1"}
    forged = {**signed, "X-Hub-Signature-256": "sha256=" + "0" * 64}
    assert client.post("/v1/channels/social", content=body, headers=forged).status_code == 401
    junk = b'{"object": "page", "entry": [{"messaging": [{"sender": {}}]}]}'
    bad = client.post(
        "/v1/channels/social", content=junk, headers={"X-Hub-Signature-256": meta_signature(META_SECRET, junk)}
    )
    assert bad.status_code == 422


# --- in store -----------------------------------------------------------------------------------------------


def test_store_associate_sees_pickup_fields_the_customer_never_hears(client: TestClient) -> None:
    body = {"customer_email": JAMES["email"], "associate_id": "assoc-7", "text": "where is my order #W2611340?"}
    refused = client.post("/v1/store/messages", json=body, headers={"Authorization": f"Bearer {CHANNEL_KEY}"})
    assert refused.status_code == 403
    response = client.post("/v1/store/messages", json=body, headers={"Authorization": f"Bearer {ASSOCIATE_KEY}"})
    assert response.status_code == 200
    answer = response.json()
    assert answer["customer_id"] == demo_customer_id("james_li_5688")
    assert "#W2611340" in answer["reply"]
    orders = {o["order_id"]: o for o in answer["associate"]["orders"]}
    assert "ready_for_pickup" in orders["#W2611340"]
    assert "pickup" not in answer["reply"].lower()


# --- limits, idempotency, streaming -------------------------------------------------------------------------


def _message(text: str) -> dict[str, str]:
    return {"channel": "sms", "from": "+15550102002", "text": text}


def test_oversized_bodies_and_texts_get_clear_errors(client: TestClient) -> None:
    auth = {"Authorization": f"Bearer {CHANNEL_KEY}"}
    huge = client.post("/v1/messages", content=b"x" * 5000, headers={**auth, "content-type": "application/json"})
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "payload_too_large"
    long_text = client.post("/v1/messages", json=_message("y" * 4001), headers=auth)
    assert long_text.status_code in (413, 422)
    assert _outbound_count(client) == 0


def test_idempotency_key_header_answers_a_retry_once(client: TestClient) -> None:
    headers = {"Authorization": f"Bearer {CHANNEL_KEY}", "Idempotency-Key": "retry-1"}
    first = client.post("/v1/messages", json=_message("hi"), headers=headers).json()
    again = client.post("/v1/messages", json=_message("hi"), headers=headers).json()
    assert first["duplicate"] is False and again["duplicate"] is True and again["reply"] == first["reply"]
    assert _outbound_count(client) == 1
    clash = client.post("/v1/messages", json={**_message("hi"), "message_id": "other"}, headers=headers)
    assert clash.status_code == 422


def test_streaming_sends_progress_then_the_reply(client: TestClient) -> None:
    headers = {"Authorization": f"Bearer {CHANNEL_KEY}"}
    with client.stream(
        "POST", "/v1/messages?stream=true", json=_message("What is your return policy?"), headers=headers
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = "".join(response.iter_text())
    events = [
        (block.split("\n")[0].removeprefix("event: "), json.loads(block.split("\n")[1].removeprefix("data: ")))
        for block in raw.strip().split("\n\n")
    ]
    names = [name for name, _ in events]
    assert names[0] == "progress" and events[0][1]["tool"] == "search_knowledge"
    assert names[-2:] == ["reply", "outcome"]
    assert events[-1][1]["reply"] == events[-2][1]["text"]


def test_rate_limits_per_sender_and_per_key_answer_429_with_retry_after(demo_db_url: str, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=demo_db_url,
        load_demo=False,
        bootstrap_keys=f"channel:{CHANNEL_KEY}",
        rate_per_sender_per_minute=2,
        rate_per_key_per_minute=5,
    )
    auth = {"Authorization": f"Bearer {CHANNEL_KEY}"}
    with TestClient(create_app(settings)) as client:
        statuses = [client.post("/v1/messages", json=_message("hi"), headers=auth) for _ in range(3)]
        assert [r.status_code for r in statuses] == [200, 200, 429]
        limited = statuses[-1]
        assert limited.json()["error"]["code"] == "rate_limited" and int(limited.headers["Retry-After"]) >= 1
        other = client.post("/v1/messages", json={**_message("hi"), "from": "+15550102999"}, headers=auth)
        assert other.status_code == 200  # another sender is not held back by the first
        keyed = [client.post("/v1/messages", json=_message("hi"), headers=auth).status_code for _ in range(3)]
        assert keyed[-1] == 429  # the key's own budget (5 a minute) is spent too
        assert client.get("/healthz").status_code == 200  # no key, no key limit


def test_the_sender_limit_holds_however_the_number_is_spelled(demo_db_url: str, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=demo_db_url,
        load_demo=False,
        bootstrap_keys=f"channel:{CHANNEL_KEY}",
        rate_per_sender_per_minute=3,
    )
    auth = {"Authorization": f"Bearer {CHANNEL_KEY}"}
    spellings = ["+15550102777", "(555) 010-2777", "555.010.2777", "+1 555 010 2777", "1-555-010-2777"]
    with TestClient(create_app(settings)) as client:
        codes = [
            client.post("/v1/messages", json={**_message("hi"), "from": phone}, headers=auth).status_code
            for phone in spellings
        ]
        assert codes == [200, 200, 200, 429, 429]  # one number, one budget
