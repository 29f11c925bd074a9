"""Twilio sender: the official client against a local Messages API over real HTTP (fields, auth, receipt, every
failure mapping, a refused connection, a timeout), and status callbacks."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from tests.deliveries import claimed
from threadline.channels.local_providers import Reply, TwilioApiServer
from threadline.channels.senders.twilio import TwilioSender, TwilioStatus, parse_status, retry_after_s
from threadline.core.delivery import (
    Delivery,
    DeliveryState,
    PermanentSendError,
    Sender,
    TransientSendError,
)
from threadline.core.errors import InvalidInputError, UsageError
from threadline.core.types import Channel
from threadline.product.loopback import free_port

CUSTOMER_NUMBER = "+14155550123"
OUR_NUMBER = "+18005550100"
OTHER_NUMBER = "+18005550199"
SERVICE_SID = "MG" + "fedcba9876543210" * 2
CALLBACK = "https://support.example-shop.com/twilio/status"
MESSAGES_PATH = f"/2010-04-01/Accounts/{TwilioApiServer.ACCOUNT_SID}/Messages.json"
SID = re.compile(r"^SM[0-9a-f]{32}$")


@pytest.fixture
def api() -> Iterator[TwilioApiServer]:
    with TwilioApiServer() as server:
        yield server


def make_sender(api: TwilioApiServer, **overrides: Any) -> TwilioSender:
    options: dict[str, Any] = {
        "account_sid": api.account_sid,
        "auth_token": api.auth_token,
        "from_number": OUR_NUMBER,
        "base_url": api.url,
        "status_callback_url": CALLBACK,
        "timeout_s": 2.0,
    }
    options.update(overrides)
    return TwilioSender(**options)


def delivery(*, recipient: str = CUSTOMER_NUMBER, body: str = "Your order shipped today.", **payload: Any) -> Delivery:
    return claimed(channel=Channel.SMS, provider="twilio", recipient=recipient, body=body, payload=payload)


# --- what goes out ------------------------------------------------------------------------------------------


def test_send_creates_the_message_from_the_number_the_customer_wrote_to(api: TwilioApiServer) -> None:
    sender: Sender = make_sender(api)
    receipt = sender.send(delivery(**{"from": OTHER_NUMBER}))

    [request] = api.requests
    assert (request.method, request.path) == ("POST", MESSAGES_PATH)
    assert request.basic_auth == (api.account_sid, api.auth_token)
    assert request.header("Content-Type") == "application/x-www-form-urlencoded"
    assert request.form == {
        "To": CUSTOMER_NUMBER,
        "From": OTHER_NUMBER,
        "Body": "Your order shipped today.",
        "StatusCallback": CALLBACK,
    }
    assert SID.match(receipt.provider_message_id)
    assert receipt.provider_message_id == api.messages[0]["sid"]
    assert receipt.delivered is False


def test_send_uses_the_configured_number_when_the_delivery_names_none(api: TwilioApiServer) -> None:
    make_sender(api, status_callback_url=None, messaging_service_sid=SERVICE_SID).send(delivery(body="Olá! ✓"))
    assert api.requests[0].form == {"To": CUSTOMER_NUMBER, "From": OUR_NUMBER, "Body": "Olá! ✓"}


def test_send_through_a_messaging_service_when_no_number_is_known(api: TwilioApiServer) -> None:
    receipt = make_sender(api, from_number=None, messaging_service_sid=SERVICE_SID).send(delivery())
    form = api.requests[0].form
    assert form["MessagingServiceSid"] == SERVICE_SID
    assert "From" not in form
    assert api.messages[0]["status"] == "accepted"
    assert receipt.provider_message_id == api.messages[0]["sid"]


def test_no_number_and_no_service_is_refused_before_any_request(api: TwilioApiServer) -> None:
    with pytest.raises(PermanentSendError, match="no number to send from"):
        make_sender(api, from_number=None).send(delivery())
    with pytest.raises(PermanentSendError, match="not a phone number"):
        make_sender(api).send(delivery().model_copy(update={"payload": {"from": 18005550100}}))
    assert api.requests == []


def test_twilio_edge_and_region_in_the_environment_do_not_move_the_base_url(
    api: TwilioApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")
    make_sender(api).send(delivery())
    assert len(api.requests) == 1


def test_the_client_logs_nothing_at_info(api: TwilioApiServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        make_sender(api).send(delivery(body="secret tracking code 7731"))
    assert not [record for record in caplog.records if record.name.startswith(("twilio", "threadline"))]


def test_construction_refuses_a_sender_that_cannot_work() -> None:
    with pytest.raises(UsageError, match="account SID"):
        TwilioSender(account_sid=" ", auth_token="token")
    with pytest.raises(UsageError, match="base URL"):
        TwilioSender(account_sid="AC1", auth_token="token", base_url="api.twilio.com")
    with pytest.raises(UsageError, match="timeout"):
        TwilioSender(account_sid="AC1", auth_token="token", timeout_s=0)


# --- failures -----------------------------------------------------------------------------------------------


def test_a_server_error_is_transient_and_the_next_attempt_goes_through(api: TwilioApiServer) -> None:
    api.script(TwilioApiServer.error(500, 20500, "Internal Server Error"))
    sender = make_sender(api)
    with pytest.raises(TransientSendError) as failed:
        sender.send(delivery())
    assert failed.value.status == 500
    assert failed.value.retry_after_s is None
    assert "20500" in failed.value.message

    receipt = sender.send(delivery())
    assert receipt.provider_message_id == api.messages[0]["sid"]
    assert api.requests[0].form == api.requests[1].form


def test_a_gateway_error_page_is_transient(api: TwilioApiServer) -> None:
    api.script(Reply(503, "<html><body>Service Unavailable</body></html>"))
    with pytest.raises(TransientSendError) as failed:
        make_sender(api).send(delivery())
    assert failed.value.status == 503


@pytest.mark.parametrize(
    ("header", "expected"),
    [({"Retry-After": "7"}, 7.0), ({"retry-after": "1.5"}, 1.5), ({}, None)],
)
def test_too_many_requests_is_transient_with_retry_after(
    api: TwilioApiServer, header: dict[str, str], expected: float | None
) -> None:
    api.script(TwilioApiServer.error(429, 20429, "Too Many Requests", header))
    with pytest.raises(TransientSendError) as failed:
        make_sender(api).send(delivery())
    assert failed.value.status == 429
    assert failed.value.retry_after_s == expected
    assert "20429" in failed.value.message


def test_retry_after_as_an_http_date() -> None:
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert retry_after_s(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert retry_after_s(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0.0
    assert retry_after_s("soon", now=now) is None
    assert retry_after_s("nan") is None
    assert retry_after_s(None) is None


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (21211, "Invalid 'To' Phone Number: +1555"),
        (21610, "Attempt to send to unsubscribed recipient"),
        (21408, "Permission to send an SMS has not been enabled for the region indicated by the 'To' number"),
    ],
)
def test_a_refusal_is_permanent_with_twilios_code_and_message(api: TwilioApiServer, code: int, message: str) -> None:
    api.script(TwilioApiServer.error(400, code, message))
    with pytest.raises(PermanentSendError) as failed:
        make_sender(api).send(delivery())
    assert failed.value.status == 400
    assert failed.value.message == f"Twilio answered HTTP 400, error {code}: {message}"
    assert failed.value.transient is False


def test_an_invalid_recipient_is_refused_by_the_api(api: TwilioApiServer) -> None:
    with pytest.raises(PermanentSendError, match="error 21211: Invalid 'To' Phone Number: 555-0123"):
        make_sender(api).send(delivery(recipient="555-0123"))


def test_bad_credentials_are_permanent(api: TwilioApiServer) -> None:
    with pytest.raises(PermanentSendError, match="HTTP 401, error 20003: Authenticate"):
        make_sender(api, auth_token="wrong-token").send(delivery())
    assert api.requests[0].basic_auth == (api.account_sid, "wrong-token")


def test_a_problem_details_refusal_is_permanent(api: TwilioApiServer) -> None:
    problem = {
        "type": "https://www.twilio.com/docs/errors/21211",
        "title": "Invalid 'To' Phone Number",
        "status": 400,
        "code": 21211,
        "detail": "The number +1555 is not valid.",
    }
    api.script(Reply(400, problem))
    with pytest.raises(PermanentSendError) as failed:
        make_sender(api).send(delivery())
    assert failed.value.message == (
        "Twilio answered HTTP 400, error 21211: Invalid 'To' Phone Number: The number +1555 is not valid."
    )


def test_a_refused_connection_is_transient() -> None:
    sender = TwilioSender(account_sid="AC1", auth_token="token", from_number=OUR_NUMBER,
                          base_url=f"http://127.0.0.1:{free_port()}", timeout_s=1.0)  # fmt: skip
    started = time.monotonic()
    with pytest.raises(TransientSendError, match="could not connect"):
        sender.send(delivery())
    assert time.monotonic() - started < 1.0


def test_a_slow_answer_times_out_as_transient(api: TwilioApiServer) -> None:
    api.script(Reply(201, {"sid": "SM" + "0" * 32}, delay_s=0.3))
    started = time.monotonic()
    with pytest.raises(TransientSendError, match="timed out"):
        make_sender(api, timeout_s=0.1).send(delivery())
    assert time.monotonic() - started < 0.3
    assert len(api.requests) == 1  # the client did not retry by itself


@pytest.mark.parametrize(
    "reply",
    [
        Reply(201, "Created"),
        Reply(201, ["SM" + "0" * 32]),
        Reply(201, {"status": "queued", "to": CUSTOMER_NUMBER}),
        Reply(200, {"sid": "not-a-sid"}),
    ],
    ids=["text", "list", "no-sid", "bad-sid"],
)
def test_a_success_answer_without_a_message_is_a_clear_permanent_error(api: TwilioApiServer, reply: Reply) -> None:
    api.script(reply)
    with pytest.raises(PermanentSendError, match="the message may have gone out") as failed:
        make_sender(api).send(delivery())
    assert failed.value.status == reply.status
    assert len(api.requests) == 1


# --- status callbacks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "state", "read"),
    [
        ("accepted", DeliveryState.SENT, False),
        ("scheduled", DeliveryState.SENT, False),
        ("queued", DeliveryState.SENT, False),
        ("sending", DeliveryState.SENT, False),
        ("sent", DeliveryState.SENT, False),
        ("partially_delivered", DeliveryState.SENT, False),
        ("delivered", DeliveryState.DELIVERED, False),
        ("read", DeliveryState.DELIVERED, True),
        ("undelivered", DeliveryState.FAILED, False),
        ("failed", DeliveryState.FAILED, False),
        ("canceled", DeliveryState.FAILED, False),
    ],
)
def test_each_status_maps_to_a_delivery_state(status: str, state: DeliveryState, read: bool) -> None:
    parsed = parse_status({"MessageSid": "SM" + "a" * 32, "MessageStatus": status, "SmsStatus": status})
    assert parsed == TwilioStatus(message_sid="SM" + "a" * 32, status=status, state=state, read=read, detail=None)


@pytest.mark.parametrize(
    ("extra", "detail"),
    [
        ({"ErrorCode": "30003", "ErrorMessage": "Unreachable destination handset"},
         "30003: Unreachable destination handset"),
        ({"ErrorCode": "30007"}, "30007"),
        ({"ErrorMessage": "Carrier violation"}, "Carrier violation"),
        ({"ErrorCode": " ", "ErrorMessage": ""}, None),
    ],
)  # fmt: skip
def test_an_undelivered_status_carries_twilios_error(extra: dict[str, str], detail: str | None) -> None:
    parsed = parse_status({"MessageSid": "SM1", "MessageStatus": "undelivered", **extra})
    assert (parsed.state, parsed.detail) == (DeliveryState.FAILED, detail)


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"MessageStatus": "delivered"}, "MessageSid is missing"),
        ({"MessageSid": " ", "MessageStatus": "delivered"}, "MessageSid is missing"),
        ({"MessageSid": "SM1"}, "MessageStatus is missing"),
        ({"MessageSid": "SM1", "MessageStatus": "lost"}, "not a Twilio message status: 'lost'"),
        ({"MessageSid": "SM1", "MessageStatus": "received"}, "inbound message"),
        ({"MessageSid": "SM" + "1" * 300, "MessageStatus": "sent"}, "MessageSid is longer"),
    ],
)
def test_a_status_callback_without_what_it_needs_is_invalid(params: dict[str, str], problem: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(problem)):
        parse_status(params)


def test_a_status_is_read_case_insensitively_and_is_frozen() -> None:
    parsed = parse_status({"MessageSid": " SM1 ", "MessageStatus": "Delivered"})
    assert (parsed.message_sid, parsed.status, parsed.state) == ("SM1", "delivered", DeliveryState.DELIVERED)
    with pytest.raises(ValueError, match="frozen"):
        parsed.read = True  # type: ignore[misc]
