"""Social adapter: Meta webhook signatures on raw bytes, the subscription challenge, parsing and Send API bodies."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threadline.channels import LIMITS
from threadline.channels.social import (
    Attachment,
    SocialAttachments,
    SocialMessage,
    meta_signature,
    parse_webhook,
    send_api_bodies,
    split_text,
    verify_meta,
    verify_subscription,
)
from threadline.core.errors import AuthenticationError, InvalidInputError, UsageError
from threadline.core.types import Channel

APP_SECRET = "6f1c2a9e8b7d4c3f2e1a0b9c8d7e6f5a"
PAGE_ID = "102938475610293"
PSID = "7483920156473829"


def _event(**message: Any) -> dict[str, Any]:
    return {
        "sender": {"id": PSID},
        "recipient": {"id": PAGE_ID},
        "timestamp": 1736186520123,
        "message": {"mid": "m_AbC123", **message},
    }


def _body(*events: dict[str, Any], obj: str = "page") -> bytes:
    payload = {"object": obj, "entry": [{"id": PAGE_ID, "time": 1736186520500, "messaging": list(events)}]}
    return json.dumps(payload).encode()


TEXT_BODY = _body(_event(text="Hi, where is my order #W2611340?"))


# --- signatures ---------------------------------------------------------------------------------------------


def test_signature_is_sha256_hmac_of_the_raw_body() -> None:
    expected = hmac.new(APP_SECRET.encode(), TEXT_BODY, hashlib.sha256).hexdigest()
    assert meta_signature(APP_SECRET, TEXT_BODY) == f"sha256={expected}"


def test_valid_signature_passes() -> None:
    verify_meta(APP_SECRET, TEXT_BODY, meta_signature(APP_SECRET, TEXT_BODY))
    verify_meta(APP_SECRET, TEXT_BODY, meta_signature(APP_SECRET, TEXT_BODY).upper().replace("SHA256", "sha256"))


@pytest.mark.parametrize(
    "signature",
    [
        meta_signature("another-secret", TEXT_BODY),
        meta_signature(APP_SECRET, TEXT_BODY.replace(b"W2611340", b"W0000000")),
        # Same JSON, different bytes: the signature covers the body as sent, not its parsed value.
        meta_signature(APP_SECRET, json.dumps(json.loads(TEXT_BODY), indent=2).encode()),
    ],
    ids=["other-secret", "tampered-body", "reserialized"],
)
def test_forged_signature_is_refused(signature: str) -> None:
    with pytest.raises(AuthenticationError, match="X-Hub-Signature-256 header does not match the request body"):
        verify_meta(APP_SECRET, TEXT_BODY, signature)


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        (None, "header is missing"),
        ("", "header is missing"),
        (hmac.new(APP_SECRET.encode(), TEXT_BODY, hashlib.sha256).hexdigest(), "not of the form"),
        ("sha1=" + hmac.new(APP_SECRET.encode(), TEXT_BODY, hashlib.sha1).hexdigest(), "not of the form"),
        ("sha256=", "not of the form"),
        ("sha256=zz€", "does not match"),
    ],
)
def test_missing_or_malformed_signature_is_refused(signature: str | None, message: str) -> None:
    with pytest.raises(AuthenticationError, match=message):
        verify_meta(APP_SECRET, TEXT_BODY, signature)


def test_no_app_secret_configured_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="app secret"):
        verify_meta("", TEXT_BODY, "sha256=00")


# --- subscription -------------------------------------------------------------------------------------------


def test_subscription_challenge_is_echoed_for_the_right_token() -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": "threadline-verify", "hub.challenge": "1158201444"}
    assert verify_subscription(query, "threadline-verify") == "1158201444"


@pytest.mark.parametrize(
    ("query", "error", "message"),
    [
        ({"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"}, AuthenticationError, "token"),
        ({"hub.mode": "subscribe", "hub.challenge": "1"}, AuthenticationError, "hub.verify_token"),
        ({"hub.mode": "unsubscribe", "hub.verify_token": "tok", "hub.challenge": "1"}, InvalidInputError, "hub.mode"),
        ({"hub.verify_token": "tok", "hub.challenge": "1"}, InvalidInputError, "hub.mode is missing"),
        ({"hub.mode": "subscribe", "hub.verify_token": "tok"}, InvalidInputError, "hub.challenge is missing"),
    ],
)
def test_subscription_is_refused(query: dict[str, str], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        verify_subscription(query, "tok")


# --- parsing ------------------------------------------------------------------------------------------------


def test_parse_reads_a_messenger_text_message() -> None:
    [message] = parse_webhook(TEXT_BODY)
    assert message == SocialMessage(
        platform="messenger",
        sender_id=PSID,
        recipient_id=PAGE_ID,
        mid="m_AbC123",
        text="Hi, where is my order #W2611340?",
        sent_at=datetime(2025, 1, 6, 18, 2, 0, 123000, tzinfo=UTC),
    )
    inbound = message.to_inbound()
    assert inbound.channel is Channel.SOCIAL
    assert inbound.sender == PSID
    assert inbound.provider_message_id == "m_AbC123"
    assert inbound.metadata["page_id"] == PAGE_ID


def test_parse_reads_instagram() -> None:
    [message] = parse_webhook(_body(_event(text="hello"), obj="instagram"))
    assert isinstance(message, SocialMessage)
    assert message.platform == "instagram"


def test_parse_skips_echoes_deliveries_reads_and_deletions() -> None:
    delivery = {"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "delivery": {"mids": ["m_1"], "watermark": 1}}
    read = {"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "timestamp": 1736186520999, "read": {"watermark": 1}}
    echo = {**_event(text="Our own reply", is_echo=True, app_id=1517776481860111), "sender": {"id": PAGE_ID}}
    deleted = _event(is_deleted=True)
    wanted = _event(text="Still there?")
    assert [m.mid for m in parse_webhook(_body(delivery, read, echo, deleted, wanted))] == ["m_AbC123"]


def test_parse_reports_attachments_only_as_a_non_text_event() -> None:
    image = {"type": "image", "payload": {"url": "https://scontent.xx.fbcdn.net/v/photo.jpg"}}
    [event] = parse_webhook(_body(_event(attachments=[image])))
    assert event == SocialAttachments(
        platform="messenger",
        sender_id=PSID,
        recipient_id=PAGE_ID,
        mid="m_AbC123",
        sent_at=datetime(2025, 1, 6, 18, 2, 0, 123000, tzinfo=UTC),
        attachments=(Attachment(type="image", url="https://scontent.xx.fbcdn.net/v/photo.jpg"),),
    )
    assert not hasattr(event, "to_inbound")


def test_parse_keeps_attachments_and_quick_replies_of_a_text_message() -> None:
    [message] = parse_webhook(
        _body(_event(text="Yes", quick_reply={"payload": "CONFIRM_RETURN"}, attachments=[{"type": "location"}]))
    )
    assert isinstance(message, SocialMessage)
    assert message.quick_reply_payload == "CONFIRM_RETURN"
    assert message.attachments == (Attachment(type="location"),)
    assert message.to_inbound().metadata["quick_reply_payload"] == "CONFIRM_RETURN"


def test_parse_handles_several_entries_and_numeric_ids() -> None:
    payload = {
        "object": "page",
        "entry": [
            {"id": PAGE_ID, "messaging": [{**_event(text="one"), "sender": {"id": 123}}]},
            {"id": PAGE_ID, "messaging": [_event(text="two")]},
        ],
    }
    messages = parse_webhook(json.dumps(payload))
    assert [m.text for m in messages if isinstance(m, SocialMessage)] == ["one", "two"]
    assert messages[0].sender_id == "123"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not JSON"),
        (b"[]", "body: "),
        (json.dumps({"object": "whatsapp_business_account", "entry": []}).encode(), "^object: "),
        (json.dumps({"object": "page"}).encode(), "^entry: Field required"),
        (
            _body({"recipient": {"id": PAGE_ID}, "message": {"mid": "m_1", "text": "hi"}}),
            r"entry\[0\].messaging\[0\].sender",
        ),
        (
            _body({**_event(text="hi"), "message": {"text": "hi"}}),
            r"^entry\[0\].messaging\[0\].message.mid: Field required",
        ),
        (_body(_event(text="ok"), {**_event(text="hi"), "sender": {"id": ""}}), r"entry\[0\].messaging\[1\].sender.id"),
    ],
    ids=["not-json", "not-object", "object", "entry", "sender", "mid", "empty-id"],
)
def test_parse_names_the_malformed_field(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_webhook(body)


def test_parse_cuts_an_over_long_text_and_says_so() -> None:
    [message] = parse_webhook(_body(_event(text="Help me please. " * 600)))
    assert isinstance(message, SocialMessage)
    assert len(message.text) <= LIMITS[Channel.SOCIAL].max_inbound_chars
    assert message.truncated


# --- replies ------------------------------------------------------------------------------------------------


def test_send_api_body_shape() -> None:
    assert send_api_bodies(PSID, "Your order shipped today.") == [
        {"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {"text": "Your order shipped today."}}
    ]
    assert send_api_bodies(PSID, "  ") == []


def test_long_reply_is_split_on_sentences_within_2000_characters() -> None:
    sentences = [f"Step {i}: check the box, keep the receipt and print the label we sent you." for i in range(60)]
    reply = " ".join(sentences)
    assert len(reply) > 4000
    bodies = send_api_bodies(PSID, reply)
    texts = [body["message"]["text"] for body in bodies]
    assert len(texts) == 3
    assert all(len(text) <= 2000 for text in texts)
    assert all(text.endswith(".") for text in texts)
    assert all(text.startswith("Step ") for text in texts)
    assert " ".join(texts) == reply


def test_split_keeps_paragraph_breaks() -> None:
    reply = ("First paragraph sentence. " * 30).strip() + "\n\n" + ("Second paragraph sentence. " * 30).strip()
    parts = split_text(reply, 1000, max_parts=5)
    assert len(parts) == 2
    assert all(len(part) <= 1000 for part in parts)
    assert "sentence.\n\nSecond paragraph" in parts[0]
    assert " ".join(parts) == reply


def test_reply_beyond_the_allowed_messages_is_shortened() -> None:
    parts = split_text("word " * 2000, max_parts=2)
    assert len(parts) == 2
    assert parts[-1].endswith("...")
    assert all(len(part) <= 2000 for part in parts)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=5000), st.integers(min_value=1, max_value=3))
def test_split_always_respects_the_messenger_limit(text: str, max_parts: int) -> None:
    parts = split_text(text, max_parts=max_parts)
    assert len(parts) <= max_parts
    assert all(0 < len(part) <= 2000 for part in parts)
