"""Meta senders over real HTTP: the Send API and the WhatsApp Cloud API played by a local Graph API server."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.deliveries import claimed
from threadline.channels.local_providers import GraphApiServer, Reply, graph_error
from threadline.channels.senders.meta import (
    TEMPLATE_PARAMETER_MAX_CHARS,
    MessengerSender,
    Template,
    WhatsAppSender,
    messenger_messaging,
    messenger_sender,
    parse_templates,
    template_parameter,
    whatsapp_recipient,
    whatsapp_sender,
    whatsapp_window_open,
)
from threadline.core.delivery import (
    Delivery,
    PermanentSendError,
    Purpose,
    SendError,
    TransientSendError,
)
from threadline.core.errors import ConfigurationError
from threadline.core.settings import Settings
from threadline.core.types import Channel
from threadline.product.loopback import free_port

NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
PAGE_TOKEN = "EAAGm0PX4ZCpsBAPageToken123"
WA_TOKEN = "EAAJbWhatsAppToken456"
PHONE_NUMBER_ID = "106540352242922"
PSID = "7483920156473829"
BSUID = "US.13491208655302741918"
PARENT_BSUID = "US.ENT.11815799212886844830"
WAMID = "wamid.HBgLMTU1NTEyMzQ1NjcVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"
SUPPORT_FOLLOWUP = Template(name="support_followup", language="en_US")


def _clock() -> datetime:
    return NOW


def _ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).isoformat()


def _delivery(
    *,
    provider: str = "messenger",
    recipient: str = PSID,
    body: str = "Your refund for order #W2611340 was issued today.",
    purpose: Purpose = Purpose.REPLY,
    **payload: Any,
) -> Delivery:
    return claimed(
        channel=Channel.WHATSAPP if provider == "whatsapp" else Channel.SOCIAL,
        provider=provider,
        purpose=purpose,
        recipient=recipient,
        body=body,
        payload=payload,
        now=NOW,
    )


def _wa_delivery(recipient: str = "+15551234567", **kwargs: Any) -> Delivery:
    return _delivery(provider="whatsapp", recipient=recipient, **kwargs)


@pytest.fixture
def graph() -> Iterator[GraphApiServer]:
    with GraphApiServer() as server:
        yield server


@pytest.fixture
def messenger(graph: GraphApiServer) -> Iterator[MessengerSender]:
    with MessengerSender(PAGE_TOKEN, base_url=graph.url, timeout_s=2, clock=_clock) as sender:
        yield sender


@pytest.fixture
def whatsapp(graph: GraphApiServer) -> Iterator[WhatsAppSender]:
    templates = {Purpose.QUEUE_TIMEOUT: Template(name="queue_update", language="en_US")}
    with WhatsAppSender(
        WA_TOKEN, PHONE_NUMBER_ID, templates=templates, base_url=graph.url, timeout_s=2, clock=_clock
    ) as sender:
        yield sender


SEND_API_OK = Reply(200, {"recipient_id": PSID, "message_id": "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM"})
MESSAGE_ID = re.compile(r"^m_[0-9a-f]{32}$")
GRAPH_WAMID = re.compile(r"^wamid\.[A-Za-z0-9_-]{40}$")


# --- Messenger ----------------------------------------------------------------------------------------------


def test_messenger_replies_as_a_response_within_24_hours(graph: GraphApiServer, messenger: MessengerSender) -> None:
    receipt = messenger.send(_delivery(last_inbound_at=_ago(hours=23, minutes=59)))

    assert MESSAGE_ID.match(receipt.provider_message_id)
    assert not receipt.delivered
    [request] = graph.requests
    assert request.path == "/v23.0/me/messages"
    assert request.query == {"access_token": [PAGE_TOKEN]}
    assert request.header("Content-Type") == "application/json"
    assert request.json() == {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {"text": "Your refund for order #W2611340 was issued today."},
    }
    assert graph.sent == [request.json()]


def test_messenger_tags_an_agent_reply_after_24_hours_as_human_agent(
    graph: GraphApiServer, messenger: MessengerSender
) -> None:
    messenger.send(_delivery(purpose=Purpose.AGENT_REPLY, last_inbound_at=_ago(days=3)))

    [request] = graph.requests
    assert request.json() == {
        "recipient": {"id": PSID},
        "messaging_type": "MESSAGE_TAG",
        "tag": "HUMAN_AGENT",
        "message": {"text": "Your refund for order #W2611340 was issued today."},
    }


def test_messenger_accepts_a_zulu_timestamp(graph: GraphApiServer, messenger: MessengerSender) -> None:
    messenger.send(_delivery(last_inbound_at="2026-07-01T09:30:00Z"))
    assert graph.requests[0].json()["messaging_type"] == "RESPONSE"


def test_messenger_refuses_an_agent_reply_after_7_days_without_calling_meta(
    graph: GraphApiServer, messenger: MessengerSender
) -> None:
    with pytest.raises(PermanentSendError, match="more than 7 days ago"):
        messenger.send(_delivery(purpose=Purpose.AGENT_REPLY, last_inbound_at=_ago(days=7)))
    assert graph.requests == []


@pytest.mark.parametrize("purpose", [Purpose.REPLY, Purpose.QUEUE_TIMEOUT])
def test_messenger_refuses_anything_but_an_agent_reply_after_24_hours(
    graph: GraphApiServer, messenger: MessengerSender, purpose: Purpose
) -> None:
    with pytest.raises(PermanentSendError, match=r"window is closed.*only a person's reply") as caught:
        messenger.send(_delivery(purpose=purpose, last_inbound_at=_ago(hours=25)))
    assert purpose.value in caught.value.message
    assert not caught.value.transient
    assert graph.requests == []


def test_messenger_refuses_when_the_last_message_time_is_unknown_or_unreadable(
    graph: GraphApiServer, messenger: MessengerSender
) -> None:
    with pytest.raises(PermanentSendError, match="last message time is unknown"):
        messenger.send(_delivery(purpose=Purpose.AGENT_REPLY))
    with pytest.raises(PermanentSendError, match="last_inbound_at is not an ISO-8601 time"):
        messenger.send(_delivery(last_inbound_at="yesterday"))
    assert graph.requests == []


def test_messenger_messaging_boundaries() -> None:
    reply, agent = Purpose.REPLY, Purpose.AGENT_REPLY
    just_inside = NOW - timedelta(hours=24) + timedelta(microseconds=1)
    response = {"messaging_type": "RESPONSE"}
    human_agent = {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
    assert messenger_messaging(reply, just_inside, NOW) == response
    assert messenger_messaging(reply, NOW - timedelta(hours=24), NOW) is None
    assert messenger_messaging(agent, NOW - timedelta(hours=24), NOW) == human_agent
    assert messenger_messaging(agent, NOW - timedelta(days=7) + timedelta(seconds=1), NOW) == human_agent
    assert messenger_messaging(agent, NOW - timedelta(days=7), NOW) is None
    assert messenger_messaging(agent, None, NOW) is None
    assert messenger_messaging(reply, NOW + timedelta(seconds=5), NOW) == response  # clocks a little apart


# --- WhatsApp -----------------------------------------------------------------------------------------------


def test_whatsapp_sends_text_to_a_phone_number_inside_the_window(
    graph: GraphApiServer, whatsapp: WhatsAppSender
) -> None:
    receipt = whatsapp.send(_wa_delivery(last_inbound_at=_ago(hours=2)))

    assert GRAPH_WAMID.match(receipt.provider_message_id)
    [request] = graph.requests
    assert request.path == f"/v23.0/{PHONE_NUMBER_ID}/messages"
    assert request.query == {}
    assert request.header("Authorization") == f"Bearer {WA_TOKEN}"
    assert request.json() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "15551234567",
        "type": "text",
        "text": {"body": "Your refund for order #W2611340 was issued today.", "preview_url": False},
    }
    assert graph.sent == [request.json()]


@pytest.mark.parametrize("bsuid", [BSUID, PARENT_BSUID])
def test_whatsapp_sends_to_a_business_scoped_user_id_in_recipient(
    graph: GraphApiServer, whatsapp: WhatsAppSender, bsuid: str
) -> None:
    receipt = whatsapp.send(_wa_delivery(recipient=bsuid, last_inbound_at=_ago(minutes=5)))

    assert GRAPH_WAMID.match(receipt.provider_message_id)
    [body] = graph.sent
    assert body["recipient"] == bsuid
    assert "to" not in body  # Meta prefers `to` when both are present
    assert body["type"] == "text"


def test_whatsapp_sends_the_template_outside_the_window(graph: GraphApiServer, whatsapp: WhatsAppSender) -> None:
    graph.script(
        Reply(200, {"messaging_product": "whatsapp", "contacts": [{"input": "15551234567", "wa_id": "15551234567"}],
                    "messages": [{"id": WAMID}]})
    )  # fmt: skip
    text = "Hi Dana,\n\nyour replacement ships Monday.\tTracking:    1Z999AA10123456784"
    receipt = whatsapp.send(
        _wa_delivery(
            body=text,
            purpose=Purpose.AGENT_REPLY,
            last_inbound_at=_ago(hours=24),
            template=SUPPORT_FOLLOWUP.as_payload(),
        )
    )

    assert receipt.provider_message_id == WAMID
    assert graph.requests[0].json() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "15551234567",
        "type": "template",
        "template": {
            "name": "support_followup",
            "language": {"code": "en_US"},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Hi Dana, your replacement ships Monday. Tracking: 1Z999AA10123456784"}
                    ],
                }
            ],
        },
    }


def test_whatsapp_falls_back_to_the_configured_template_when_the_payload_names_none(
    graph: GraphApiServer, whatsapp: WhatsAppSender
) -> None:
    whatsapp.send(_wa_delivery(recipient=BSUID, purpose=Purpose.QUEUE_TIMEOUT))  # no last_inbound_at: closed

    [body] = graph.sent
    assert body["recipient"] == BSUID
    assert body["template"]["name"] == "queue_update"
    assert body["template"]["language"] == {"code": "en_US"}


def test_whatsapp_clips_a_long_reply_to_the_template_parameter_limit(
    graph: GraphApiServer, whatsapp: WhatsAppSender
) -> None:
    long_text = " ".join(f"word{i}" for i in range(600))
    whatsapp.send(_wa_delivery(body=long_text, last_inbound_at=_ago(days=2), template=SUPPORT_FOLLOWUP.as_payload()))

    parameter = graph.sent[0]["template"]["components"][0]["parameters"][0]["text"]
    assert len(parameter) <= TEMPLATE_PARAMETER_MAX_CHARS
    assert parameter.endswith("...")
    assert long_text.startswith(parameter.removesuffix("..."))


def test_whatsapp_without_a_template_for_the_purpose_refuses_without_calling_meta(
    graph: GraphApiServer, whatsapp: WhatsAppSender
) -> None:
    with pytest.raises(PermanentSendError) as caught:
        whatsapp.send(_wa_delivery(purpose=Purpose.AGENT_REPLY, last_inbound_at=_ago(hours=30)))
    assert caught.value.message == (
        "outside WhatsApp's 24-hour window and no template is configured for agent_reply: "
        "set THREADLINE_WHATSAPP_TEMPLATES"
    )
    assert graph.requests == []


def test_whatsapp_refuses_a_bad_recipient_or_template_without_calling_meta(
    graph: GraphApiServer, whatsapp: WhatsAppSender
) -> None:
    with pytest.raises(PermanentSendError, match="neither a phone number nor"):
        whatsapp.send(_wa_delivery(recipient="dana@example.com", last_inbound_at=_ago(hours=1)))
    with pytest.raises(PermanentSendError, match=r"payload\.template must be"):
        whatsapp.send(_wa_delivery(last_inbound_at=_ago(days=1, hours=1), template={"name": "Support Followup"}))
    assert graph.requests == []


def test_whatsapp_window_open_boundaries() -> None:
    assert whatsapp_window_open(None, NOW) is False
    assert whatsapp_window_open(NOW - timedelta(hours=24) + timedelta(microseconds=1), NOW) is True
    assert whatsapp_window_open(NOW - timedelta(hours=24), NOW) is False
    assert whatsapp_window_open(NOW - timedelta(days=3), NOW) is False
    assert whatsapp_window_open(NOW + timedelta(seconds=3), NOW) is True
    naive = datetime(2026, 7, 1, 0, 0)  # read as UTC
    assert whatsapp_window_open(naive, NOW) is True
    assert whatsapp_window_open(naive - timedelta(hours=12), NOW) is False


def test_whatsapp_recipient_field() -> None:
    assert whatsapp_recipient("+15551234567") == {"to": "15551234567"}
    assert whatsapp_recipient("447700900123") == {"to": "447700900123"}
    assert whatsapp_recipient(BSUID) == {"recipient": BSUID}
    assert whatsapp_recipient(PARENT_BSUID) == {"recipient": PARENT_BSUID}
    for bad in ["", "+0123", "us.1349", "US.", "+1555-123-4567x"]:
        with pytest.raises(PermanentSendError):
            whatsapp_recipient(bad)


def test_template_parameter_is_one_line() -> None:
    assert template_parameter("  a\n\nb\t c      d ") == "a b c d"
    assert template_parameter("x" * 5000) == "x" * (TEMPLATE_PARAMETER_MAX_CHARS - 3) + "..."


# --- templates setting --------------------------------------------------------------------------------------


def test_parse_templates() -> None:
    setting = " agent_reply:support_followup:en_US , queue_timeout:queue_update:pt_BR,reply:answer_followup:en ,"
    assert parse_templates(setting) == {
        Purpose.AGENT_REPLY: Template(name="support_followup", language="en_US"),
        Purpose.QUEUE_TIMEOUT: Template(name="queue_update", language="pt_BR"),
        Purpose.REPLY: Template(name="answer_followup", language="en"),
    }
    assert parse_templates("") == {}


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ("agent_reply:support_followup", "is not purpose:template_name:language"),
        ("agent_reply:support_followup:en_US:extra", "is not purpose:template_name:language"),
        ("agent_reply::en_US", "is not purpose:template_name:language"),
        ("refund:refund_notice:en_US", "unknown purpose 'refund'.*agent_reply"),
        ("agent_reply:Support Followup:en_US", "lowercase letters, digits and underscores"),
        ("agent_reply:support_followup:english", "language code"),
        ("agent_reply:a:en,agent_reply:b:en", "agent_reply has more than one template"),
    ],
)
def test_parse_templates_names_the_bad_entry(setting: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=f"THREADLINE_WHATSAPP_TEMPLATES: .*{problem}"):
        parse_templates(setting)


# --- errors -------------------------------------------------------------------------------------------------

MESSENGER_ERRORS = [
    pytest.param(
        Reply(400, graph_error(10, "(#10) This message is sent outside of allowed window.", subcode=2018278)),
        PermanentSendError,
        "Messenger's messaging window is closed: .*code 10/2018278.*outside of allowed window",
        id="outside-window",
    ),
    pytest.param(
        Reply(400, graph_error(100, "(#100) No matching user found", subcode=2018001)),
        PermanentSendError,
        "recipient cannot be messaged.*No matching user found",
        id="no-user",
    ),
    pytest.param(
        Reply(400, graph_error(551, "(#551) This person isn't available right now.")),
        PermanentSendError,
        "recipient cannot be messaged.*code 551",
        id="unavailable",
    ),
    pytest.param(
        Reply(401, graph_error(190, "Error validating access token: Session has expired.", subcode=463)),
        PermanentSendError,
        "access token is expired or revoked, set a valid THREADLINE_META_PAGE_ACCESS_TOKEN: .*code 190/463",
        id="token-expired",
    ),
    pytest.param(
        Reply(400, graph_error(613, "(#613) Calls to this api have exceeded the rate limit.")),
        TransientSendError,
        "code 613",
        id="rate-limit-613",
    ),
    pytest.param(
        Reply(400, graph_error(4, "(#4) Application request limit reached")),
        TransientSendError,
        "code 4",
        id="app-limit-4",
    ),
    pytest.param(
        Reply(500, graph_error(1200, "Temporary send message failure. Please try again later")),
        TransientSendError,
        "HTTP 500, code 1200",
        id="temporary-1200",
    ),
    pytest.param(
        Reply(400, graph_error(200, "(#200) Requires pages_messaging permission to manage the object")),
        PermanentSendError,
        r"code 200.*pages_messaging",
        id="permission",
    ),
    pytest.param(
        Reply(502, "<html><body>Bad Gateway</body></html>"),
        TransientSendError,
        "HTTP 502 without a Graph API error: <html><body>Bad Gateway",
        id="gateway-html",
    ),
    pytest.param(
        Reply(404, "Not Found"),
        PermanentSendError,
        "HTTP 404 without a Graph API error",
        id="not-found-text",
    ),
]


@pytest.mark.parametrize(("reply", "error", "message"), MESSENGER_ERRORS)
def test_messenger_error_mapping(
    graph: GraphApiServer, messenger: MessengerSender, reply: Reply, error: type[SendError], message: str
) -> None:
    graph.script(reply)
    with pytest.raises(SendError, match=message) as caught:
        messenger.send(_delivery(last_inbound_at=_ago(hours=1)))
    assert type(caught.value) is error
    assert caught.value.status == reply.status
    assert PAGE_TOKEN not in caught.value.message


WHATSAPP_ERRORS = [
    pytest.param(
        Reply(400, graph_error(131047, "(#131047) Re-engagement message",
                               error_data={"messaging_product": "whatsapp",
                                           "details": "Message failed to send because more than 24 hours have passed "
                                           "since the customer last replied to this number."})),
        PermanentSendError,
        "24-hour customer-service window is closed: .*code 131047.*Re-engagement message.*more than 24 hours",
        id="re-engagement",
    ),
    pytest.param(
        Reply(400, graph_error(131026, "(#131026) Message Undeliverable")),
        PermanentSendError,
        "recipient cannot be messaged.*131026",
        id="undeliverable",
    ),
    pytest.param(
        Reply(400, graph_error(131030, "(#131030) Recipient phone number not in allowed list")),
        PermanentSendError,
        "recipient cannot be messaged.*not in allowed list",
        id="not-allowed",
    ),
    pytest.param(
        Reply(400, graph_error(100, "(#100) Invalid parameter", type_="OAuthException")),
        PermanentSendError,
        "recipient cannot be messaged.*Invalid parameter",
        id="invalid-parameter",
    ),
    pytest.param(
        Reply(400, graph_error(131062, "(#131062) Business-scoped User ID recipients are not supported")),
        PermanentSendError,
        "code 131062",
        id="bsuid-unsupported",
    ),
    pytest.param(
        Reply(401, graph_error(190, "Error validating access token: Session has expired.")),
        PermanentSendError,
        "set a valid THREADLINE_WHATSAPP_ACCESS_TOKEN",
        id="token-expired",
    ),
    *[
        pytest.param(Reply(400, graph_error(code, f"(#{code}) rate limit hit")), TransientSendError, f"code {code}",
                     id=f"throttled-{code}")
        for code in (130429, 131048, 131056, 80007, 17, 32)
    ],
    pytest.param(
        Reply(500, graph_error(131000, "(#131000) Something went wrong")),
        TransientSendError,
        "HTTP 500, code 131000",
        id="server-error",
    ),
    pytest.param(
        Reply(503, graph_error(133004, "(#133004) Server temporarily unavailable")),
        TransientSendError,
        "code 133004",
        id="temporarily-unavailable",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("reply", "error", "message"), WHATSAPP_ERRORS)
def test_whatsapp_error_mapping(
    graph: GraphApiServer, whatsapp: WhatsAppSender, reply: Reply, error: type[SendError], message: str
) -> None:
    graph.script(reply)
    with pytest.raises(SendError, match=message) as caught:
        whatsapp.send(_wa_delivery(last_inbound_at=_ago(hours=1)))
    assert type(caught.value) is error
    assert "fbtrace_id AbCdEf123456" in caught.value.message
    assert WA_TOKEN not in caught.value.message


@pytest.mark.parametrize(
    ("headers", "retry_after_s"),
    [({"Retry-After": "7"}, 7.0), ({"Retry-After": "soon"}, None), ({}, None)],
)
def test_429_is_transient_with_retry_after(
    graph: GraphApiServer, whatsapp: WhatsAppSender, headers: dict[str, str], retry_after_s: float | None
) -> None:
    graph.script(Reply(429, graph_error(130429, "(#130429) Rate limit hit"), headers=headers))
    with pytest.raises(TransientSendError) as caught:
        whatsapp.send(_wa_delivery(last_inbound_at=_ago(hours=1)))
    assert caught.value.status == 429
    assert caught.value.retry_after_s == retry_after_s


def test_retry_after_as_an_http_date(graph: GraphApiServer, messenger: MessengerSender) -> None:
    later = datetime.now(UTC) + timedelta(seconds=120)
    graph.script(Reply(429, "slow down", headers={"Retry-After": later.strftime("%a, %d %b %Y %H:%M:%S GMT")}))
    with pytest.raises(TransientSendError) as caught:
        messenger.send(_delivery(last_inbound_at=_ago(hours=1)))
    assert caught.value.retry_after_s is not None
    assert 100 < caught.value.retry_after_s <= 120


def test_the_token_never_appears_in_an_error(graph: GraphApiServer, messenger: MessengerSender) -> None:
    graph.script(Reply(400, graph_error(100, f"Invalid OAuth access token - Cannot parse access token {PAGE_TOKEN}")))
    with pytest.raises(PermanentSendError) as caught:
        messenger.send(_delivery(last_inbound_at=_ago(hours=1)))
    assert PAGE_TOKEN not in caught.value.message
    assert PAGE_TOKEN not in str(caught.value)
    assert "[token]" in caught.value.message


@pytest.mark.parametrize(
    ("reply", "field"),
    [
        (Reply(200, "<html>ok</html>"), "message_id"),
        (Reply(200, {"recipient_id": PSID}), "message_id"),
        (Reply(200, {"recipient_id": PSID, "message_id": ""}), "message_id"),
    ],
)
def test_messenger_success_without_a_message_id_is_not_retried(
    graph: GraphApiServer, messenger: MessengerSender, reply: Reply, field: str
) -> None:
    graph.script(reply)
    with pytest.raises(PermanentSendError, match=f"accepted the request \\(HTTP 200\\) but its answer has no {field}"):
        messenger.send(_delivery(last_inbound_at=_ago(hours=1)))


@pytest.mark.parametrize(
    "body", [{"messaging_product": "whatsapp", "messages": []}, {"messages": [{"status": "accepted"}]}, [1, 2]]
)
def test_whatsapp_success_without_a_wamid_is_not_retried(
    graph: GraphApiServer, whatsapp: WhatsAppSender, body: Any
) -> None:
    graph.script(Reply(200, body))
    with pytest.raises(PermanentSendError, match=r"may have been sent.*messages|has no messages\[0\]\.id"):
        whatsapp.send(_wa_delivery(last_inbound_at=_ago(hours=1)))


# --- the network --------------------------------------------------------------------------------------------


def test_a_timeout_is_transient(graph: GraphApiServer) -> None:
    graph.script(Reply(200, {"messages": [{"id": WAMID}]}, delay_s=1.0))
    with WhatsAppSender(WA_TOKEN, PHONE_NUMBER_ID, base_url=graph.url, timeout_s=0.2, clock=_clock) as sender:
        started = time.monotonic()
        with pytest.raises(TransientSendError, match=r"did not answer within 0\.2 s"):
            sender.send(_wa_delivery(last_inbound_at=_ago(hours=1)))
    assert time.monotonic() - started < 0.9
    assert len(graph.requests) == 1


def test_a_closed_port_is_transient() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with MessengerSender(PAGE_TOKEN, base_url=url, timeout_s=1, clock=_clock) as messenger:
        with pytest.raises(TransientSendError, match="could not reach Meta's Send API") as caught:
            messenger.send(_delivery(last_inbound_at=_ago(hours=1)))
        assert PAGE_TOKEN not in caught.value.message
    with (
        WhatsAppSender(WA_TOKEN, PHONE_NUMBER_ID, base_url=url, timeout_s=1, clock=_clock) as whatsapp,
        pytest.raises(TransientSendError, match="could not reach the WhatsApp Cloud API"),
    ):
        whatsapp.send(_wa_delivery(last_inbound_at=_ago(hours=1)))


def test_one_sender_serves_many_deliveries_over_its_pool(graph: GraphApiServer, messenger: MessengerSender) -> None:
    graph.script(SEND_API_OK, Reply(500, graph_error(2, "An unexpected error has occurred.")))
    first = messenger.send(_delivery(last_inbound_at=_ago(hours=1)))
    with pytest.raises(TransientSendError):
        messenger.send(_delivery(last_inbound_at=_ago(hours=1)))
    third = messenger.send(_delivery(last_inbound_at=_ago(hours=1)))

    assert first.provider_message_id == "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM"  # scripted replies come first
    assert MESSAGE_ID.match(third.provider_message_id)  # then the server answers as Meta would
    assert len(graph.requests) == 3
    assert len(graph.sent) == 1


def test_whatsapp_token_rides_in_the_bearer_header_and_a_revoked_one_is_refused() -> None:
    revoked = "EAAJbRevokedToken789"
    with GraphApiServer(token=WA_TOKEN) as graph:
        with WhatsAppSender(WA_TOKEN, PHONE_NUMBER_ID, base_url=graph.url, timeout_s=2, clock=_clock) as sender:
            sender.send(_wa_delivery(last_inbound_at=_ago(hours=1)))
        with (
            WhatsAppSender(revoked, PHONE_NUMBER_ID, base_url=graph.url, timeout_s=2, clock=_clock) as sender,
            pytest.raises(PermanentSendError, match=r"THREADLINE_WHATSAPP_ACCESS_TOKEN.*HTTP 401, code 190"),
        ):
            sender.send(_wa_delivery(last_inbound_at=_ago(hours=1)))
        assert len(graph.sent) == 1
        assert [request.bearer_token for request in graph.requests] == [WA_TOKEN, revoked]


def test_messenger_token_rides_in_the_query_and_a_revoked_one_is_refused() -> None:
    revoked = "EAAGm0RevokedToken789"
    with GraphApiServer(token=PAGE_TOKEN) as graph:
        with MessengerSender(PAGE_TOKEN, base_url=graph.url, timeout_s=2, clock=_clock) as sender:
            sender.send(_delivery(last_inbound_at=_ago(hours=1)))
        with (
            MessengerSender(revoked, base_url=graph.url, timeout_s=2, clock=_clock) as sender,
            pytest.raises(PermanentSendError, match="set a valid THREADLINE_META_PAGE_ACCESS_TOKEN") as caught,
        ):
            sender.send(_delivery(last_inbound_at=_ago(hours=1)))
        assert revoked not in caught.value.message
        assert [request.query["access_token"] for request in graph.requests] == [[PAGE_TOKEN], [revoked]]
        assert len(graph.sent) == 1


def test_whatsapp_text_over_meta_limit_is_refused_for_good(graph: GraphApiServer, whatsapp: WhatsAppSender) -> None:
    with pytest.raises(PermanentSendError, match=r"code 100.*must be at most 4096 characters"):
        whatsapp.send(_wa_delivery(body="x" * 4097, last_inbound_at=_ago(hours=1)))
    assert graph.sent == []


# --- from settings ------------------------------------------------------------------------------------------


def test_senders_from_settings(graph: GraphApiServer) -> None:
    assert messenger_sender(Settings()) is None
    assert whatsapp_sender(Settings()) is None

    settings = Settings(
        meta_page_access_token=PAGE_TOKEN,
        meta_graph_base_url=graph.url,
        meta_graph_version="v24.0",
        whatsapp_access_token=WA_TOKEN,
        whatsapp_phone_number_id=PHONE_NUMBER_ID,
        whatsapp_templates="agent_reply:support_followup:en_US",
    )
    messenger = messenger_sender(settings, clock=_clock)
    whatsapp = whatsapp_sender(settings, clock=_clock)
    assert messenger is not None and whatsapp is not None
    with messenger, whatsapp:
        messenger.send(_delivery(last_inbound_at=_ago(hours=1)))
        whatsapp.send(_wa_delivery(purpose=Purpose.AGENT_REPLY, last_inbound_at=_ago(days=2)))
    assert [request.path for request in graph.requests] == ["/v24.0/me/messages", f"/v24.0/{PHONE_NUMBER_ID}/messages"]
    assert graph.sent[1]["template"]["name"] == "support_followup"


def test_whatsapp_settings_must_be_complete_and_valid() -> None:
    with pytest.raises(ConfigurationError, match="need both"):
        whatsapp_sender(Settings(whatsapp_access_token=WA_TOKEN))
    with pytest.raises(ConfigurationError, match="need both"):
        whatsapp_sender(Settings(whatsapp_phone_number_id=PHONE_NUMBER_ID))
    with pytest.raises(ConfigurationError, match="THREADLINE_WHATSAPP_TEMPLATES"):
        whatsapp_sender(Settings(whatsapp_templates="agent_reply:support_followup"))
    with pytest.raises(ConfigurationError, match="numeric id"):
        WhatsAppSender(WA_TOKEN, "my-number")
