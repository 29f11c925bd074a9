"""Email adapter: Mailgun signatures and freshness, parsing, quoted-history stripping and the threaded reply."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from threadline.channels import LIMITS
from threadline.channels.email import (
    InboundEmail,
    email_reply,
    greeting_name,
    mailgun_signature,
    parse_email,
    reply_subject,
    strip_quoted,
    verify_mailgun,
)
from threadline.core.errors import AuthenticationError, InvalidInputError, UsageError
from threadline.core.types import Channel

KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
NOW = datetime(2025, 1, 6, 18, 30, tzinfo=UTC)
TIMESTAMP = str(int(NOW.timestamp()) - 30)
TOKEN = "a8f2c6d1e0b94f7c9d3e5a1b2c4d6e8f0a1b3c5d7e9f1a2b3c"

GMAIL_BODY = """Thanks, that works. Can you also send it to 12 Elm St instead?

Jane

On Mon, Jan 6, 2025 at 10:02 AM Acme Customer Care <support@acme-shop.com>
wrote:

> Hi Jane,
>
> Your order #W2611340 has shipped.
>
> Best regards,
> Acme
"""

GMAIL_ONE_LINE_HEADER = """The blue one, please.

On Mon, Jan 6, 2025 at 10:02 AM Acme <support@acme-shop.com> wrote:
> Which color would you like?
"""

OUTLOOK_BODY = """Hi,

The chair arrived with a broken leg. I'd like a replacement please.

Thanks
Jane

________________________________
From: Acme Customer Care <support@acme-shop.com>
Sent: Monday, January 6, 2025 10:02 AM
To: Jane Doe <jane@example.com>
Subject: Your order has shipped

Hi Jane,

Your order #W2611340 has shipped.
"""

OUTLOOK_DESKTOP_BODY = """Please cancel order W2611340.

-----Original Message-----
From: Acme Customer Care [mailto:support@acme-shop.com]
Sent: Monday, January 6, 2025 10:02 AM
Subject: Order confirmation
"""

OUTLOOK_NO_RULE_BODY = """Is this still on sale?

From: Acme <news@acme-shop.com>
Date: Monday, 6 January 2025 at 10:02
To: Jane Doe <jane@example.com>
Subject: Winter sale

Everything 20% off.
"""

IPHONE_BODY = """Where is my package? It was due Friday.

Sent from my iPhone

> On Jan 6, 2025, at 10:02, Acme Customer Care <support@acme-shop.com> wrote:
>
> Your order has shipped.
"""

SIGNATURE_BODY = """Do you ship to Canada?

--\x20
Jane Doe
Head of Procurement, Example Corp
+1 415 555 0123
"""

INLINE_BODY = """> Which order is this about?
It's W2611340.
> And the item?
The office chair.
"""


def _signed(form: dict[str, str], timestamp: str = TIMESTAMP, token: str = TOKEN, key: str = KEY) -> dict[str, str]:
    return {**form, "timestamp": timestamp, "token": token, "signature": mailgun_signature(key, timestamp, token)}


def _form(**overrides: str) -> dict[str, str]:
    form = {
        "recipient": "support@acme-shop.com",
        "sender": "jane@example.com",
        "from": "Jane Doe <jane@example.com>",
        "subject": "Re: Your order has shipped",
        "body-plain": GMAIL_BODY,
        "Message-Id": "<CAF=abc123@mail.gmail.com>",
        "In-Reply-To": "<20250106100200.1@acme-shop.com>",
        "References": "<20250105090000.1@acme-shop.com> <20250106100200.1@acme-shop.com>",
    }
    form.update(overrides)
    return _signed(form)


def _clock() -> datetime:
    return NOW


# --- signatures ---------------------------------------------------------------------------------------------


def test_valid_signature_passes() -> None:
    verify_mailgun(KEY, _form(), clock=_clock)


def test_signature_is_hex_hmac_sha256_of_timestamp_and_token() -> None:
    # Computed independently: printf '%s' 1700000000tok | openssl dgst -sha256 -hmac key
    expected = "034f80794eb775260bdd55684adc5dd7e94045a10ad8ba1e5c65df9d037d0790"
    assert mailgun_signature("key", "1700000000", "tok") == expected


@pytest.mark.parametrize(
    "form",
    [
        {**_form(), "signature": mailgun_signature("another-key", TIMESTAMP, TOKEN)},
        {**_form(), "token": TOKEN + "0"},
        {**_form(), "timestamp": str(int(TIMESTAMP) + 1)},
        {**_form(), "signature": "0" * 64},
    ],
    ids=["other-key", "other-token", "other-timestamp", "zeros"],
)
def test_forged_signature_is_refused(form: dict[str, str]) -> None:
    with pytest.raises(AuthenticationError, match="signature does not match"):
        verify_mailgun(KEY, form, clock=_clock)


@pytest.mark.parametrize("field", ["timestamp", "token", "signature"])
def test_missing_signature_field_is_refused(field: str) -> None:
    form = {k: v for k, v in _form().items() if k != field}
    with pytest.raises(AuthenticationError, match=field):
        verify_mailgun(KEY, form, clock=_clock)


def test_stale_timestamp_is_refused_even_when_signed() -> None:
    stale = str(int((NOW - timedelta(minutes=16)).timestamp()))
    with pytest.raises(AuthenticationError, match="960 s old, beyond the 900 s tolerance"):
        verify_mailgun(KEY, _signed(_form(), timestamp=stale), clock=_clock)
    verify_mailgun(KEY, _signed(_form(), timestamp=stale), clock=_clock, tolerance=timedelta(minutes=20))


def test_timestamp_from_the_future_is_refused() -> None:
    future = str(int((NOW + timedelta(hours=1)).timestamp()))
    with pytest.raises(AuthenticationError, match="in the future"):
        verify_mailgun(KEY, _signed(_form(), timestamp=future), clock=_clock)


def test_default_clock_is_the_real_time() -> None:
    with pytest.raises(AuthenticationError, match="old"):
        verify_mailgun(KEY, _form())  # signed for 2025-01-06
    fresh = str(int(datetime.now(UTC).timestamp()))
    verify_mailgun(KEY, _signed(_form(), timestamp=fresh))


def test_signed_but_malformed_timestamp_is_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="timestamp"):
        verify_mailgun(KEY, _signed(_form(), timestamp="yesterday"), clock=_clock)


def test_no_signing_key_configured_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="signing key"):
        verify_mailgun("", _form(), clock=_clock)


# --- parsing ------------------------------------------------------------------------------------------------


def test_parse_reads_a_mailgun_post() -> None:
    email = parse_email(_form())
    assert email.sender == "jane@example.com"
    assert email.sender_name == "Jane Doe"
    assert email.recipient == "support@acme-shop.com"
    assert email.subject == "Re: Your order has shipped"
    assert email.text == "Thanks, that works. Can you also send it to 12 Elm St instead?\n\nJane"
    assert email.message_id == "<CAF=abc123@mail.gmail.com>"
    assert email.in_reply_to == "<20250106100200.1@acme-shop.com>"
    assert email.references == ("<20250105090000.1@acme-shop.com>", "<20250106100200.1@acme-shop.com>")
    assert not email.automated
    inbound = email.to_inbound()
    assert inbound.channel is Channel.EMAIL
    assert inbound.sender == "jane@example.com"
    assert inbound.provider_message_id == "<CAF=abc123@mail.gmail.com>"
    assert inbound.metadata["subject"] == "Re: Your order has shipped"


def test_parse_prefers_stripped_text() -> None:
    email = parse_email(_form(**{"stripped-text": "Just the new part."}))
    assert email.text == "Just the new part."


def test_parse_falls_back_to_the_envelope_sender() -> None:
    email = parse_email(_form(**{"from": "undisclosed-recipients:;"}))
    assert email.sender == "jane@example.com"


def test_parse_decodes_an_encoded_display_name() -> None:
    email = parse_email(_form(**{"from": "=?utf-8?q?Ren=C3=A9e_Dupont?= <renee@example.fr>"}))
    assert email.sender == "renee@example.fr"
    assert email.sender_name == "Renée Dupont"


@pytest.mark.parametrize("field", ["Message-Id", "body-plain"])
def test_parse_names_a_missing_field(field: str) -> None:
    form = {k: v for k, v in _form().items() if k != field}
    with pytest.raises(InvalidInputError, match=f"^{field} is missing"):
        parse_email(form)


def test_parse_refuses_a_message_without_a_sender() -> None:
    form = {k: v for k, v in _form().items() if k not in ("from", "sender")}
    with pytest.raises(InvalidInputError, match=r"^from is missing"):
        parse_email(form)
    with pytest.raises(InvalidInputError, match=r"^from has no email address"):
        parse_email({**form, "from": "Jane Doe"})


def test_parse_finds_threading_headers_in_message_headers() -> None:
    form = {k: v for k, v in _form().items() if k not in ("Message-Id", "In-Reply-To", "References")}
    form["message-headers"] = '[["Message-ID", "<x1@mail.example.com>"], ["In-Reply-To", "<p@acme-shop.com>"]]'
    email = parse_email(form)
    assert email.message_id == "<x1@mail.example.com>"
    assert email.in_reply_to == "<p@acme-shop.com>"


@pytest.mark.parametrize(
    "overrides",
    [
        {"Auto-Submitted": "auto-replied"},
        {"message-headers": '[["Auto-Submitted", "auto-generated"]]'},
        {"message-headers": '[["Precedence", "bulk"]]'},
        {"from": "Mail Delivery Subsystem <MAILER-DAEMON@mx.example.com>"},
    ],
)
def test_parse_flags_automated_mail(overrides: dict[str, str]) -> None:
    assert parse_email(_form(**overrides)).automated
    assert parse_email(_form(**overrides)).to_inbound().metadata["automated"] is True


def test_parse_cuts_an_over_long_body_and_says_so() -> None:
    email = parse_email(_form(**{"body-plain": "I have a question. " * 400}))
    assert len(email.text) <= LIMITS[Channel.EMAIL].max_inbound_chars
    assert email.truncated


def test_subject_cannot_inject_headers() -> None:
    email = parse_email(_form(subject="Hello\r\nBcc: victim@example.com"))
    assert "\n" not in email.subject
    assert "\r" not in email_reply(email, "Hi", store_name="Acme").subject


# --- quoted history -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (GMAIL_BODY, "Thanks, that works. Can you also send it to 12 Elm St instead?\n\nJane"),
        (GMAIL_ONE_LINE_HEADER, "The blue one, please."),
        (OUTLOOK_BODY, "Hi,\n\nThe chair arrived with a broken leg. I'd like a replacement please.\n\nThanks\nJane"),
        (OUTLOOK_DESKTOP_BODY, "Please cancel order W2611340."),
        (OUTLOOK_NO_RULE_BODY, "Is this still on sale?"),
        (IPHONE_BODY, "Where is my package? It was due Friday."),
        (SIGNATURE_BODY, "Do you ship to Canada?"),
        (INLINE_BODY, "It's W2611340.\nThe office chair."),
        (GMAIL_BODY.replace("\n", "\r\n"), "Thanks, that works. Can you also send it to 12 Elm St instead?\n\nJane"),
    ],
    ids=[
        "gmail",
        "gmail-one-line",
        "outlook",
        "outlook-original",
        "outlook-no-rule",
        "iphone",
        "sig",
        "inline",
        "crlf",
    ],
)
def test_strip_quoted_keeps_only_the_new_text(body: str, expected: str) -> None:
    assert strip_quoted(body) == expected


def test_strip_quoted_leaves_ordinary_text_alone() -> None:
    body = (
        "On Monday I ordered two lamps.\n"
        "From: the warehouse, I think, it shipped late.\n"
        "The box said -- fragile -- on it.\n"
        "I wrote to you before."
    )
    assert strip_quoted(body) == body


# --- replies ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Your order has shipped", "Re: Your order has shipped"),
        ("Re: Your order has shipped", "Re: Your order has shipped"),
        ("RE: Your order has shipped", "Re: Your order has shipped"),
        ("Re: RE: re:Your order has shipped", "Re: Your order has shipped"),
        ("AW: Ihre Bestellung", "Re: Ihre Bestellung"),
        ("Re[2]: Your order", "Re: Your order"),
        ("Fwd: Receipt", "Re: Fwd: Receipt"),
        ("Regarding my order", "Re: Regarding my order"),
        ("", "Re: your message"),
    ],
)
def test_reply_subject_has_exactly_one_re(subject: str, expected: str) -> None:
    assert reply_subject(subject) == expected
    assert reply_subject(reply_subject(subject)) == expected


def test_email_reply_threads_under_the_customer_message() -> None:
    email = parse_email(_form())
    reply = email_reply(email, "Done: it will go to 12 Elm St.", store_name="Acme Outfitters")
    assert reply.to == "jane@example.com"
    assert reply.subject == "Re: Your order has shipped"
    assert reply.in_reply_to == "<CAF=abc123@mail.gmail.com>"
    assert reply.references == (
        "<20250105090000.1@acme-shop.com>",
        "<20250106100200.1@acme-shop.com>",
        "<CAF=abc123@mail.gmail.com>",
    )
    assert reply.body == "Hi Jane,\n\nDone: it will go to 12 Elm St.\n\nBest regards,\nAcme Outfitters"
    headers = reply.headers()
    assert headers["In-Reply-To"] == "<CAF=abc123@mail.gmail.com>"
    assert headers["References"].endswith("<CAF=abc123@mail.gmail.com>")


def test_email_reply_without_a_name_says_hello() -> None:
    email = parse_email(_form(**{"from": "jane@example.com"}))
    reply = email_reply(email, "Yes, we do.", store_name="Acme")
    assert reply.body.startswith("Hello,\n\nYes, we do.")
    assert reply.body.endswith("Best regards,\nAcme")
    assert email_reply(email, "Yes.", store_name="Acme", name="Janet").body.startswith("Hi Janet,")


def test_email_reply_keeps_references_bounded() -> None:
    ids = " ".join(f"<m{i}@acme-shop.com>" for i in range(40))
    email = InboundEmail(
        message_id="<new@example.com>", sender="jane@example.com", text="Hi", references=tuple(ids.split())
    )
    reply = email_reply(email, "Hello", store_name="Acme")
    assert len(reply.references) == 20
    assert reply.references[0] == "<m0@acme-shop.com>"
    assert reply.references[-1] == "<new@example.com>"


@pytest.mark.parametrize(
    ("display", "expected"),
    [("Jane Doe", "Jane"), ("Doe, Jane", "Jane"), ('"JANE DOE"', "Jane"), ("jane@example.com", None), ("", None)],
)
def test_greeting_name(display: str, expected: str | None) -> None:
    assert greeting_name(display) == expected
