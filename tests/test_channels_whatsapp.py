"""WhatsApp adapter: signed Cloud API posts parsed into customer messages, unsupported media and delivery statuses,
the subscription challenge, the 24-hour window, and how the resolver classifies the senders it produces."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from threadline.channels import LIMITS
from threadline.channels.senders.meta import CUSTOMER_SERVICE_WINDOW as WINDOW
from threadline.channels.senders.meta import whatsapp_window_open as window_open
from threadline.channels.social import meta_signature, verify_meta, verify_subscription
from threadline.channels.whatsapp import (
    WhatsAppMessage,
    WhatsAppStatus,
    WhatsAppUnsupported,
    parse_webhook,
)
from threadline.core.delivery import DeliveryState
from threadline.core.errors import AuthenticationError, InvalidInputError
from threadline.core.types import Channel, HandleType
from threadline.memory.identity import classify_handle

APP_SECRET = "3b9e61c0d4a7f25e8c1b6a9d0e7f4c21"
WABA_ID = "318204719563021"
PHONE_NUMBER_ID = "472918305561204"
DISPLAY_NUMBER = "15557340012"
WA_ID = "447700900123"
PHONE = "+447700900123"
BSUID = "GB.19283746501928374650"
SENT = 1767260730  # 2026-01-01 09:45:30 UTC
SENT_AT = datetime(2026, 1, 1, 9, 45, 30, tzinfo=UTC)
WAMID = "wamid.HBgMNDQ3NzAwOTAwMTIzFQIAEhgUM0FCNzE5RDA4QzE2NjZGRTQyMDEA"
OUR_WAMID = "wamid.HBgMNDQ3NzAwOTAwMTIzFQIAERgSQzU0NkI4RTFEMjg0QTBGQjg3AA=="


def _contact(*, wa_id: str | None = WA_ID, user_id: str | None = BSUID, name: str = "Priya Raman") -> dict[str, Any]:
    contact: dict[str, Any] = {"profile": {"name": name}}
    if wa_id is not None:
        contact["wa_id"] = wa_id
    if user_id is not None:
        contact["user_id"] = user_id
    return contact


def _message(
    kind: str, content: Any, *, sender: str | None = WA_ID, bsuid: str | None = BSUID, wamid: str = WAMID, **extra: Any
) -> dict[str, Any]:
    message: dict[str, Any] = {"id": wamid, "timestamp": str(SENT), "type": kind, kind: content, **extra}
    if sender is not None:
        message["from"] = sender
    if bsuid is not None:
        message["from_user_id"] = bsuid
    return message


def _value(
    *, messages: list[dict[str, Any]] | None = None, statuses: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": PHONE_NUMBER_ID},
        **extra,
    }
    if messages is not None:
        value.setdefault("contacts", [_contact()])
        value["messages"] = messages
    if statuses is not None:
        value["statuses"] = statuses
    return value


def _body(*values: dict[str, Any], obj: str = "whatsapp_business_account", field: str = "messages") -> bytes:
    changes = [{"value": value, "field": field} for value in values]
    return json.dumps({"object": obj, "entry": [{"id": WABA_ID, "changes": changes}]}).encode()


def _signed(body: bytes) -> list[Any]:
    """Parse a post the way the route does: check the signature on the raw bytes first."""
    verify_meta(APP_SECRET, body, meta_signature(APP_SECRET, body))
    return list(parse_webhook(body))


def _status(wamid: str, status: str, at: int, **extra: Any) -> dict[str, Any]:
    return {"id": wamid, "status": status, "timestamp": str(at), "recipient_id": WA_ID, **extra}


# --- signatures and subscription ----------------------------------------------------------------------------


def test_a_post_signed_by_another_app_is_refused() -> None:
    body = _body(_value(messages=[_message("text", {"body": "hi"})]))
    with pytest.raises(AuthenticationError, match="does not match"):
        verify_meta(APP_SECRET, body, meta_signature("someone-else", body))


def test_the_subscription_challenge_is_echoed() -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": "wa-verify-7f2c", "hub.challenge": "883104562"}
    assert verify_subscription(query, "wa-verify-7f2c") == "883104562"
    with pytest.raises(AuthenticationError):
        verify_subscription({**query, "hub.verify_token": "guess"}, "wa-verify-7f2c")


# --- customer messages --------------------------------------------------------------------------------------


def test_a_text_message_with_phone_and_bsuid() -> None:
    [message] = _signed(_body(_value(messages=[_message("text", {"body": "  Where is my order #W4418207?  "})])))
    assert message == WhatsAppMessage(
        wamid=WAMID,
        phone=PHONE,
        bsuid=BSUID,
        wa_id=WA_ID,
        profile_name="Priya Raman",
        phone_number_id=PHONE_NUMBER_ID,
        sent_at=SENT_AT,
        text="Where is my order #W4418207?",
        kind="text",
    )
    inbound = message.to_inbound()
    assert inbound.channel is Channel.WHATSAPP
    assert inbound.sender == PHONE
    assert inbound.text == "Where is my order #W4418207?"
    assert inbound.provider_message_id == WAMID
    assert inbound.received_at == SENT_AT
    assert inbound.metadata == {
        "provider": "whatsapp",
        "phone_number_id": PHONE_NUMBER_ID,
        "bsuid": BSUID,
        "wa_id": WA_ID,
        "profile_name": "Priya Raman",
        "kind": "text",
        "reply_id": None,
        "context_id": None,
    }


def test_a_message_from_a_user_whose_phone_is_withheld_comes_from_the_bsuid() -> None:
    contact = _contact(wa_id=None, name="P.")
    contact["profile"]["username"] = "@priya.r"
    body = _body(_value(contacts=[contact], messages=[_message("text", {"body": "Hello?"}, sender=None)]))
    [message] = _signed(body)
    assert isinstance(message, WhatsAppMessage)
    assert (message.phone, message.bsuid, message.wa_id) == (None, BSUID, None)
    inbound = message.to_inbound()
    assert inbound.sender == BSUID
    assert classify_handle(Channel.WHATSAPP, inbound.sender) == (HandleType.WHATSAPP, BSUID)


def test_the_sender_ids_may_come_from_the_contact_alone() -> None:
    # Older payloads (and some partner relays) carry the ids only on the contact entry.
    body = _body(_value(messages=[_message("text", {"body": "hi"}, sender=None, bsuid=None)]))
    [message] = parse_webhook(body)
    assert isinstance(message, WhatsAppMessage)
    assert (message.phone, message.bsuid) == (PHONE, BSUID)


def test_each_message_takes_its_own_sender_s_contact() -> None:
    other_wa, other_bsuid = "14155550199", "US.5550199000111222333"
    value = _value(
        contacts=[_contact(), _contact(wa_id=other_wa, user_id=other_bsuid, name="Sam Ortiz")],
        messages=[
            _message("text", {"body": "first"}, sender=other_wa, bsuid=None),
            _message("text", {"body": "second"}, sender=None, bsuid=BSUID, wamid="wamid.second"),
        ],
    )
    first, second = parse_webhook(_body(value))
    assert isinstance(first, WhatsAppMessage)
    assert isinstance(second, WhatsAppMessage)
    assert (first.phone, first.bsuid, first.profile_name) == ("+14155550199", other_bsuid, "Sam Ortiz")
    assert (second.phone, second.bsuid, second.profile_name) == (PHONE, BSUID, "Priya Raman")


def test_a_template_quick_reply_button() -> None:
    message_body = _message(
        "button",
        {"payload": "TRACK_ORDER_W4418207", "text": "Track my order"},
        context={"from": DISPLAY_NUMBER, "id": OUR_WAMID},
    )
    [message] = _signed(_body(_value(messages=[message_body])))
    assert isinstance(message, WhatsAppMessage)
    assert (message.kind, message.text, message.reply_id, message.context_id) == (
        "button",
        "Track my order",
        "TRACK_ORDER_W4418207",
        OUR_WAMID,
    )
    metadata = message.to_inbound().metadata
    assert (metadata["kind"], metadata["reply_id"], metadata["context_id"]) == (
        "button",
        "TRACK_ORDER_W4418207",
        OUR_WAMID,
    )


@pytest.mark.parametrize(
    ("interactive", "text", "reply_id"),
    [
        (
            {"type": "button_reply", "button_reply": {"id": "return-start", "title": "Start a return"}},
            "Start a return",
            "return-start",
        ),
        (
            {
                "type": "list_reply",
                "list_reply": {"id": "size-m", "title": "Medium", "description": "Chest 96-101 cm"},
            },
            "Medium",
            "size-m",
        ),
    ],
    ids=["button_reply", "list_reply"],
)
def test_an_interactive_reply(interactive: dict[str, Any], text: str, reply_id: str) -> None:
    body = _body(
        _value(messages=[_message("interactive", interactive, context={"from": DISPLAY_NUMBER, "id": OUR_WAMID})])
    )
    [message] = _signed(body)
    assert isinstance(message, WhatsAppMessage)
    assert (message.kind, message.text, message.reply_id, message.context_id) == (
        "interactive",
        text,
        reply_id,
        OUR_WAMID,
    )
    assert message.to_inbound().text == text


def test_a_reply_to_one_of_our_messages_keeps_its_context() -> None:
    body = _body(
        _value(messages=[_message("text", {"body": "Yes please"}, context={"from": DISPLAY_NUMBER, "id": OUR_WAMID})])
    )
    [message] = parse_webhook(body)
    assert isinstance(message, WhatsAppMessage)
    assert message.context_id == OUR_WAMID


def test_an_image_without_text_is_unsupported() -> None:
    image = {
        "mime_type": "image/jpeg",
        "sha256": "Xk3u2nq6ZJQ0Lq1b9y4T7o5Kk0m8r2pV1c6d9e0f1a2=",
        "id": "1290384756610293",
    }
    [event] = _signed(_body(_value(messages=[_message("image", image)])))
    assert event == WhatsAppUnsupported(
        wamid=WAMID, phone=PHONE, bsuid=BSUID, phone_number_id=PHONE_NUMBER_ID, type="image", sent_at=SENT_AT
    )
    assert not hasattr(event, "to_inbound")


def test_unsupported_media_keeps_its_caption_and_type() -> None:
    value = _value(
        messages=[
            _message("image", {"id": "1", "mime_type": "image/jpeg", "caption": " The box arrived crushed "}),
            _message("location", {"latitude": 51.5072, "longitude": -0.1276}, wamid="wamid.loc"),
            _message("sticker", {"id": "2", "mime_type": "image/webp", "animated": False}, wamid="wamid.st"),
            _message("unsupported", {}, wamid="wamid.un", errors=[{"code": 131051, "title": "Message type unknown"}]),
            {**_message("interactive", {"type": "nfm_reply", "nfm_reply": {"response_json": "{}"}}), "id": "wamid.nfm"},
        ]
    )
    events = [event for event in parse_webhook(_body(value)) if isinstance(event, WhatsAppUnsupported)]
    assert [(event.type, event.caption) for event in events] == [
        ("image", "The box arrived crushed"),
        ("location", None),
        ("sticker", None),
        ("unsupported", None),
        ("interactive", None),
    ]


def test_reactions_system_notices_and_group_messages_are_skipped() -> None:
    value = _value(
        messages=[
            _message("reaction", {"message_id": OUR_WAMID, "emoji": "\U0001f44d"}, wamid="wamid.r"),
            _message("system", {"body": "User changed number", "type": "user_changed_number"}, wamid="wamid.s"),
            _message("text", {"body": "hi all"}, wamid="wamid.g", group_id="Y2FwaV9ncm91cDox"),
            _message("text", {"body": "   "}, wamid="wamid.blank"),
            _message("text", {"body": "Still there?"}),
        ]
    )
    assert [event.wamid for event in parse_webhook(_body(value))] == [WAMID]


def test_an_over_long_text_is_cut_and_flagged() -> None:
    [message] = parse_webhook(_body(_value(messages=[_message("text", {"body": "My parcel is late. " * 400})])))
    assert isinstance(message, WhatsAppMessage)
    assert len(message.text) <= LIMITS[Channel.WHATSAPP].max_inbound_chars
    assert message.truncated
    assert message.to_inbound().metadata["truncated"] is True


def test_other_webhook_fields_are_ignored() -> None:
    template_review = {"event": "APPROVED", "message_template_id": 5550001, "message_template_name": "order_update"}
    body = _body(template_review, field="message_template_status_update")
    assert parse_webhook(body) == []


# --- statuses -----------------------------------------------------------------------------------------------


def test_statuses_out_of_order_keep_the_post_s_order() -> None:
    failure = {
        "code": 131047,
        "title": "Re-engagement message",
        "message": "Re-engagement message",
        "error_data": {"details": "More than 24 hours have passed since the recipient last replied to this number."},
        "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
    }
    statuses = [
        _status(OUR_WAMID, "read", SENT + 30),
        _status(OUR_WAMID, "delivered", SENT + 20),
        _status(OUR_WAMID, "sent", SENT + 10, pricing={"billable": True, "category": "service"}),
        {
            **_status("wamid.other", "failed", SENT + 5, errors=[failure]),
            "recipient_id": None,
            "recipient_user_id": BSUID,
        },
    ]
    events = _signed(_body(_value(statuses=statuses)))
    assert events == [
        WhatsAppStatus(
            wamid=OUR_WAMID,
            state=DeliveryState.DELIVERED,
            read=True,
            at=SENT_AT + timedelta(seconds=30),
            recipient=WA_ID,
        ),
        WhatsAppStatus(
            wamid=OUR_WAMID, state=DeliveryState.DELIVERED, at=SENT_AT + timedelta(seconds=20), recipient=WA_ID
        ),
        WhatsAppStatus(wamid=OUR_WAMID, state=DeliveryState.SENT, at=SENT_AT + timedelta(seconds=10), recipient=WA_ID),
        WhatsAppStatus(
            wamid="wamid.other",
            state=DeliveryState.FAILED,
            at=SENT_AT + timedelta(seconds=5),
            recipient=BSUID,
            detail="131047 Re-engagement message: More than 24 hours have passed since the recipient last replied "
            "to this number.",
        ),
    ]


def test_a_failure_without_details_still_says_what_failed() -> None:
    errors = [{"code": 131026, "title": "Message undeliverable"}]
    [status] = parse_webhook(_body(_value(statuses=[_status(OUR_WAMID, "failed", SENT, errors=errors)])))
    assert isinstance(status, WhatsAppStatus)
    assert status.detail == "131026 Message undeliverable"
    [bare] = parse_webhook(_body(_value(statuses=[_status(OUR_WAMID, "failed", SENT)])))
    assert isinstance(bare, WhatsAppStatus)
    assert (bare.state, bare.detail) == (DeliveryState.FAILED, None)


def test_unknown_statuses_are_skipped() -> None:
    statuses = [
        _status(OUR_WAMID, "deleted", SENT),
        _status(OUR_WAMID, "warning", SENT),
        _status(OUR_WAMID, "sent", SENT),
    ]
    assert parse_webhook(_body(_value(statuses=statuses))) == [
        WhatsAppStatus(wamid=OUR_WAMID, state=DeliveryState.SENT, at=SENT_AT, recipient=WA_ID)
    ]


def test_messages_and_statuses_in_one_post() -> None:
    first = _value(statuses=[_status(OUR_WAMID, "delivered", SENT)])
    second = _value(messages=[_message("text", {"body": "Thanks!"})], statuses=[_status(OUR_WAMID, "read", SENT + 1)])
    events = parse_webhook(_body(first, second))
    assert [type(event).__name__ for event in events] == ["WhatsAppStatus", "WhatsAppMessage", "WhatsAppStatus"]


# --- refused posts ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "^body: "),
        (json.dumps({"object": "page", "entry": []}).encode(), "^object: Input should be 'whatsapp_business_account'"),
        (json.dumps({"object": "whatsapp_business_account"}).encode(), "^entry: Field required"),
        (
            _body({**_value(messages=[_message("text", {"body": "hi"})]), "metadata": {"display_phone_number": "1"}}),
            r"^entry\[0\]\.changes\[0\]\.value\.metadata\.phone_number_id: Field required",
        ),
        (
            _body(_value(messages=[{k: v for k, v in _message("text", {"body": "hi"}).items() if k != "id"}])),
            r"^entry\[0\]\.changes\[0\]\.value\.messages\[0\]\.id: Field required",
        ),
        (
            _body(_value(messages=[_message("text", {"body": "hi"}), _message("text", {"body": "x"}, wamid="")])),
            r"^entry\[0\]\.changes\[0\]\.value\.messages\[1\]\.id: ",
        ),
        (
            _body(_value(statuses=[{k: v for k, v in _status(OUR_WAMID, "sent", SENT).items() if k != "id"}])),
            r"^entry\[0\]\.changes\[0\]\.value\.statuses\[0\]\.id: Field required",
        ),
        (
            _body(
                _value(
                    contacts=[_contact(wa_id=None, user_id=None)],
                    messages=[_message("text", {"body": "hi"}, sender=None, bsuid=None)],
                )
            ),
            r"^entry\[0\]\.changes\[0\]\.value\.messages\[0\]: the sender has neither a phone number \(from\)",
        ),
        (
            _body(_value(messages=[_message("text", {"body": "hi"}, sender="not-a-number")])),
            r"^entry\[0\]\.changes\[0\]\.value\.messages\[0\]\.from: String should match pattern",
        ),
    ],
    ids=[
        "not-json",
        "not-object",
        "object",
        "entry",
        "phone_number_id",
        "wamid",
        "empty-wamid",
        "status-id",
        "no-sender",
        "bad-from",
    ],
)
def test_a_malformed_post_names_the_field(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_webhook(body)


def test_a_hand_made_message_without_a_sender_cannot_become_inbound() -> None:
    message = WhatsAppMessage(wamid=WAMID, phone=None, bsuid=None, phone_number_id=PHONE_NUMBER_ID, text="hi")
    with pytest.raises(InvalidInputError, match="neither a phone number nor a BSUID"):
        message.to_inbound()


# --- the window and the resolver ----------------------------------------------------------------------------


def test_the_customer_service_window_lasts_24_hours() -> None:
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert timedelta(hours=24) == WINDOW
    assert window_open(now - timedelta(hours=23, minutes=59), now)
    assert not window_open(now - timedelta(hours=24), now)
    assert not window_open(None, now)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+15551234567", (HandleType.PHONE, "+15551234567")),
        ("15551234567", (HandleType.PHONE, "+15551234567")),  # a North American wa_id reads as E.164 even bare
        (PHONE, (HandleType.PHONE, PHONE)),
        (BSUID, (HandleType.WHATSAPP, BSUID)),
        ("US.ENT.11815799212886844830", (HandleType.WHATSAPP, "US.ENT.11815799212886844830")),
    ],
)
def test_the_resolver_classifies_whatsapp_senders(raw: str, expected: tuple[HandleType, str]) -> None:
    assert classify_handle(Channel.WHATSAPP, raw) == expected


def test_the_adapter_adds_the_plus_a_bare_international_wa_id_needs() -> None:
    # Without the "+", a non-North-American wa_id is not recognisable as a phone number.
    with pytest.raises(InvalidInputError, match="not a phone number"):
        classify_handle(Channel.WHATSAPP, WA_ID)
    [message] = parse_webhook(_body(_value(messages=[_message("text", {"body": "hi"})])))
    assert isinstance(message, WhatsAppMessage)
    assert classify_handle(Channel.WHATSAPP, message.to_inbound().sender) == (HandleType.PHONE, PHONE)
