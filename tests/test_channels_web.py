"""Web widget adapter: plain visitors, signed identities (core.signing), forged ones, malformed bodies; and the
per-channel limits table."""

from __future__ import annotations

import json
from typing import Any

import pytest

from threadline.channels import LIMITS
from threadline.channels.web import WebMessage, parse_web
from threadline.core.errors import AuthenticationError, ConfigurationError, InvalidInputError
from threadline.core.signing import sign_identity
from threadline.core.types import Channel

SECRET = "site-secret-9d8c7b6a5f4e3d2c"
VISITOR = "v_4f2a9c1e-7b3d-4e8a-9f10-2c3d4e5f6a7b"
CUSTOMER = "jane@example.com"


def _body(**fields: Any) -> dict[str, Any]:
    return {"visitor_id": VISITOR, "text": "Can I return an opened item?", **fields}


def test_plain_visitor() -> None:
    message = parse_web(_body(message_id="w-1"), secret=SECRET)
    assert message == WebMessage(visitor_id=VISITOR, text="Can I return an opened item?", message_id="w-1")
    assert not message.signed_in
    inbound = message.to_inbound()
    assert inbound.channel is Channel.WEB
    assert inbound.sender == VISITOR
    assert inbound.vouched is False
    assert inbound.provider_message_id == "w-1"


def test_plain_visitor_needs_no_secret() -> None:
    assert parse_web(_body(), secret=None).sender == VISITOR


def test_valid_signature_gives_a_strong_identity() -> None:
    message = parse_web(_body(customer_id=CUSTOMER, signature=sign_identity(SECRET, CUSTOMER)), secret=SECRET)
    assert message.signed_in
    inbound = message.to_inbound()
    assert inbound.sender == CUSTOMER
    assert inbound.vouched is True
    assert inbound.metadata["visitor_id"] == VISITOR


def test_signature_is_case_and_space_tolerant_like_core_signing() -> None:
    signature = " " + sign_identity(SECRET, CUSTOMER).upper() + " "
    assert parse_web(_body(customer_id=CUSTOMER, signature=signature), secret=SECRET).signed_in


@pytest.mark.parametrize(
    ("customer_id", "signature"),
    [
        (CUSTOMER, sign_identity("another-site", CUSTOMER)),
        (CUSTOMER, sign_identity(SECRET, "someone-else@example.com")),
        ("someone-else@example.com", sign_identity(SECRET, CUSTOMER)),
        (CUSTOMER, "0" * 64),
        (CUSTOMER, "é" * 64),
    ],
    ids=["other-secret", "other-customer", "swapped-customer", "zeros", "non-ascii"],
)
def test_forged_signature_is_refused(customer_id: str, signature: str) -> None:
    with pytest.raises(AuthenticationError, match="signature does not match the customer_id"):
        parse_web(_body(customer_id=customer_id, signature=signature), secret=SECRET)


def test_signature_without_a_configured_secret_is_refused_not_ignored() -> None:
    with pytest.raises(ConfigurationError, match="no web identity secret"):
        parse_web(_body(customer_id=CUSTOMER, signature=sign_identity(SECRET, CUSTOMER)), secret=None)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"customer_id": CUSTOMER}, "^signature is missing"),
        ({"signature": sign_identity(SECRET, CUSTOMER)}, "^customer_id is missing"),
        ({"customer_id": "   ", "signature": "ab"}, "^customer_id is missing"),
    ],
)
def test_customer_id_and_signature_come_together(fields: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_web(_body(**fields), secret=SECRET)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"text": "hello"}, "^visitor_id: Field required"),
        ({"visitor_id": VISITOR}, "^text: Field required"),
        ({"visitor_id": "", "text": "hello"}, "^visitor_id: "),
        ({"visitor_id": "  ", "text": "hello"}, "^visitor_id is empty"),
        ({"visitor_id": VISITOR, "text": "   "}, "^text is empty"),
        ({"visitor_id": VISITOR, "text": "hi", "sender": "x"}, "^sender: Extra inputs"),
        ({"visitor_id": VISITOR, "text": "hi", "message_id": "x" * 300}, "^message_id: "),
        ({"visitor_id": VISITOR, "text": 42}, "^text: "),
    ],
)
def test_malformed_body_names_the_field(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_web(body, secret=SECRET)


def test_raw_json_body() -> None:
    raw = json.dumps(_body(customer_id=CUSTOMER, signature=sign_identity(SECRET, CUSTOMER))).encode()
    assert parse_web(raw, secret=SECRET).sender == CUSTOMER
    assert parse_web(raw.decode(), secret=SECRET).sender == CUSTOMER
    with pytest.raises(InvalidInputError, match="not JSON"):
        parse_web(b"{visitor_id:", secret=SECRET)


def test_over_long_text_is_cut_and_flagged() -> None:
    message = parse_web(_body(text="Please help. " * 1000), secret=SECRET)
    assert len(message.text) <= LIMITS[Channel.WEB].max_inbound_chars
    assert message.truncated
    assert message.to_inbound().metadata["truncated"] is True


# --- the limits table ---------------------------------------------------------------------------------------


def test_every_channel_has_limits() -> None:
    assert set(LIMITS) == set(Channel)
    assert all(limits.max_inbound_chars > 0 and limits.max_reply_messages >= 1 for limits in LIMITS.values())
    assert LIMITS[Channel.SMS].max_reply_segments == 2
    assert LIMITS[Channel.SOCIAL].max_reply_chars == 2000


def test_inbound_limits_fit_what_the_conversation_service_accepts() -> None:
    # api.conversation refuses text over MAX_TEXT_CHARS (4,000); channels may not import api.
    assert all(limits.max_inbound_chars <= 4000 for limits in LIMITS.values())
