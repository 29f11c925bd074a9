"""Identity resolution and verification over the demo store, on SQLite and Postgres."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from threadline.core.errors import InvalidInputError
from threadline.core.types import Channel, Customer, HandleType, IdentityEventKind, VerificationLevel
from threadline.memory.identity import IdentityResolver, classify_handle, normalize_phone
from threadline.memory.merges import CustomerMerges
from threadline.memory.stores import Stores

USERS: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[1] / "demo" / "data" / "tau_retail" / "users.json").read_text(encoding="utf-8")
)
JAMES, NOAH = "james_li_5688", "noah_brown_6181"  # James owns #W2611340; Noah owns #W7678072
JAMES_ORDER, NOAH_ORDER = "#W2611340", "#W7678072"
PHONE = "(415) 555-0199"


def _resolver(stores: Stores) -> IdentityResolver:
    return IdentityResolver(stores.customers, stores.orders)


def _customer(stores: Stores, user_id: str) -> Customer:
    customer = stores.customers.get_by_external_id(user_id)
    assert customer is not None
    return customer


# --- normalize_phone / classify_handle ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("(415) 555-0199", "+14155550199"),
        ("415.555.0199", "+14155550199"),
        ("4155550199", "+14155550199"),
        ("1-415-555-0199", "+14155550199"),
        ("14155550199", "+14155550199"),
        ("+1 415 555 0199", "+14155550199"),
        ("  +44 20 7946 0958 ", "+442079460958"),
        ("+49 30 1234567", "+49301234567"),
        ("+12345678", "+12345678"),  # 8 digits: the shortest international number accepted
        ("+123456789012345", "+123456789012345"),  # 15 digits: the longest
    ],
)
def test_normalize_phone_gives_e164(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", "hello", "555-0199", "24155550199", "+1234567", "+1234567890123456", "415555019", "001 415 555 0199"],
)
def test_normalize_phone_rejects_what_is_not_a_phone_number(raw: str) -> None:
    with pytest.raises(InvalidInputError):
        normalize_phone(raw)


@pytest.mark.parametrize(
    ("channel", "raw", "expected"),
    [
        (Channel.WEB, " Noah.Brown7922@Example.com ", (HandleType.EMAIL, "noah.brown7922@example.com")),
        (Channel.WEB, "visitor-7f3a9c", (HandleType.VISITOR, "visitor-7f3a9c")),
        (Channel.WEB, "not@an-email", (HandleType.VISITOR, "not@an-email")),
        (Channel.STORE, "jane@example.com", (HandleType.EMAIL, "jane@example.com")),
        (Channel.STORE, "kiosk-12", (HandleType.VISITOR, "kiosk-12")),
        (Channel.EMAIL, "Jane.Doe@Example.COM", (HandleType.EMAIL, "jane.doe@example.com")),
        (Channel.SMS, "(415) 555-0199", (HandleType.PHONE, "+14155550199")),
        (Channel.VOICE, "+1 415 555 0199", (HandleType.PHONE, "+14155550199")),
        (Channel.SOCIAL, "@noah_b", (HandleType.SOCIAL, "@noah_b")),
    ],
)
def test_classify_handle_per_channel(channel: Channel, raw: str, expected: tuple[HandleType, str]) -> None:
    assert classify_handle(channel, raw) == expected


def test_classify_handle_caps_a_visitor_id_at_320_chars() -> None:
    handle_type, value = classify_handle(Channel.WEB, "v" * 1000)
    assert handle_type is HandleType.VISITOR
    assert value == "v" * 320


@pytest.mark.parametrize(
    ("channel", "raw"),
    [
        (Channel.EMAIL, "not-an-email"),
        (Channel.EMAIL, "two@@example.com"),
        (Channel.EMAIL, "no-dot@example"),
        (Channel.SMS, "hello"),
        (Channel.VOICE, "123"),
        (Channel.WEB, "   "),
        (Channel.SOCIAL, ""),
    ],
)
def test_classify_handle_rejects_bad_handles(channel: Channel, raw: str) -> None:
    with pytest.raises(InvalidInputError):
        classify_handle(channel, raw)


# --- resolve ------------------------------------------------------------------------------------------------


def test_unknown_phone_gets_a_provisional_anonymous_customer_once(demo_stores: Stores) -> None:
    resolver = _resolver(demo_stores)
    before = demo_stores.customers.count()
    first = resolver.resolve(Channel.SMS, PHONE)
    assert first.created is True
    assert first.customer.provisional is True
    assert first.level is VerificationLevel.ANONYMOUS
    assert (first.handle_type, first.handle) == (HandleType.PHONE, "+14155550199")
    again = resolver.resolve(Channel.SMS, "+1 415 555 0199")
    assert again.created is False
    assert again.customer.id == first.customer.id
    assert again.level is VerificationLevel.ANONYMOUS
    by_voice = resolver.resolve(Channel.VOICE, "415.555.0199")  # the same phone on another channel
    assert by_voice.customer.id == first.customer.id
    assert demo_stores.customers.count() == before + 1


def test_demo_email_resolves_to_the_customer_but_only_as_claimed(demo_stores: Stores) -> None:
    james = _customer(demo_stores, JAMES)
    found = _resolver(demo_stores).resolve(Channel.EMAIL, USERS[JAMES]["email"].upper())
    assert found.created is False
    assert found.customer.id == james.id
    assert found.customer.provisional is False
    assert found.level is VerificationLevel.CLAIMED  # an email sender can be spoofed
    on_web = _resolver(demo_stores).resolve(Channel.WEB, USERS[NOAH]["email"])
    assert on_web.customer.id == _customer(demo_stores, NOAH).id
    assert on_web.level is VerificationLevel.CLAIMED


def test_vouched_handle_is_strong(demo_stores: Stores) -> None:
    resolver = _resolver(demo_stores)
    known = resolver.resolve(Channel.EMAIL, USERS[JAMES]["email"], vouched=True)
    assert known.customer.id == _customer(demo_stores, JAMES).id
    assert known.level is VerificationLevel.STRONG
    new = resolver.resolve(Channel.SOCIAL, "@brand_new_fan", vouched=True)
    assert new.created is True
    assert new.level is VerificationLevel.STRONG

    # Strong lasts only while the channel proves it: a later unvouched message on the handle is at most verified.
    assert resolver.resolve(Channel.SOCIAL, "@brand_new_fan").level is VerificationLevel.VERIFIED


def test_vouched_handle_that_was_stored_claimed_is_claimed_again_when_unvouched(demo_stores: Stores) -> None:
    resolver = _resolver(demo_stores)
    email = USERS[JAMES]["email"]
    assert resolver.resolve(Channel.EMAIL, email, vouched=True).level is VerificationLevel.STRONG
    assert resolver.resolve(Channel.EMAIL, email).level is VerificationLevel.CLAIMED
    with pytest.raises(InvalidInputError):
        resolver.resolve(Channel.EMAIL, "not-an-email")


# --- verify -------------------------------------------------------------------------------------------------


def _facts_for(user_id: str) -> list[dict[str, str]]:
    user = USERS[user_id]
    name, zip_code, email = user["name"], user["address"]["zip"], user["email"]
    return [
        {"email": email},
        {"email": f"  {email.upper()} "},
        {"first_name": name["first_name"], "last_name": name["last_name"], "zip": zip_code},
        {"first_name": name["first_name"].lower(), "last_name": name["last_name"].upper(), "zip": zip_code},
        {"order_id": user["orders"][0], "email": email},
    ]


def test_verify_identifies_the_customer_from_each_kind_of_facts(demo_stores: Stores) -> None:
    resolver = _resolver(demo_stores)
    for user_id in (JAMES, NOAH):
        expected = _customer(demo_stores, user_id)
        for facts in _facts_for(user_id):
            found = resolver.verify(**facts)
            assert found is not None, facts
            assert found.id == expected.id, facts


def test_verify_rejects_wrong_or_mismatched_facts_and_provisional_customers(demo_stores: Stores) -> None:
    resolver = _resolver(demo_stores)
    james, noah = USERS[JAMES], USERS[NOAH]
    wrong: list[dict[str, str]] = [
        {},
        {"email": "james.li@example.com"},
        {"email": "nobody@example.com"},
        {"first_name": "James", "last_name": "Li", "zip": "99999"},
        {"first_name": "James", "last_name": "Li", "zip": noah["address"]["zip"]},
        {"first_name": "James", "zip": james["address"]["zip"]},  # no last name
        {"first_name": "Jim", "last_name": "Li", "zip": james["address"]["zip"]},
        {"order_id": JAMES_ORDER, "email": noah["email"]},  # another customer's email
        {"order_id": NOAH_ORDER, "email": james["email"]},
        {"order_id": "#W0000000", "email": james["email"]},  # no such order
        {"order_id": JAMES_ORDER},  # an order number alone proves nothing
    ]
    for facts in wrong:
        assert resolver.verify(**facts) is None, facts
    # a provisional customer is never the answer, even when the details match
    demo_stores.customers.create(
        provisional=True, email="ghost@example.com", first_name="G", last_name="H", zip="12345"
    )
    assert resolver.verify(email="ghost@example.com") is None
    assert resolver.verify(first_name="G", last_name="H", zip="12345") is None


# --- link_verified ------------------------------------------------------------------------------------------


def test_a_provisional_customers_phone_moves_only_with_an_audited_merge(demo_stores: Stores) -> None:
    resolver = _resolver(demo_stores)
    first = resolver.resolve(Channel.SMS, PHONE)
    assert first.created is True
    james = resolver.verify(email=USERS[JAMES]["email"])
    assert james is not None
    # Linking alone never takes a handle from another customer, provisional or not ...
    resolver.link_verified(james.id, first.handle_type, first.handle, VerificationLevel.VERIFIED, "conversation:sms")
    assert resolver.resolve(Channel.SMS, PHONE).customer.id == first.customer.id
    # ... the provisional customer joins James as a whole, through the audit trail.
    merge = CustomerMerges(demo_stores.db).merge(
        first.customer.id,
        james.id,
        actor="verification:sms",
        reason="verified in conversation",
        verified_handle=(first.handle_type, first.handle),
    )

    later = resolver.resolve(Channel.SMS, PHONE)
    assert later.created is False
    assert later.customer.id == james.id
    assert later.level is VerificationLevel.VERIFIED  # verified is not capped to the phone's "claimed"
    assert resolver.resolve(Channel.VOICE, "+14155550199").customer.id == james.id

    events = demo_stores.customers.identity_events(james.id)
    assert [e.kind for e in events if e.id == merge.event_id] == [IdentityEventKind.MERGE]
    event = next(e for e in events if e.id == merge.event_id)
    assert event.actor == "verification:sms"
    assert event.other_customer_id == first.customer.id
    moved = event.detail["moved"]["channel_identities"]
    assert [m["verification_level"] for m in moved] == ["anonymous"]  # what the phone was before, for the undo
    # the provisional customer's history shows the merge too, and it points at James
    assert any(e.id == merge.event_id for e in demo_stores.customers.identity_events(first.customer.id))
    merged_away = demo_stores.customers.get(first.customer.id)
    assert merged_away is not None and merged_away.merged_into == james.id
    phones = [i for i in demo_stores.customers.identities(james.id) if i.handle_type is HandleType.PHONE]
    assert [(i.handle_value, i.verification_level) for i in phones] == [("+14155550199", VerificationLevel.VERIFIED)]


def test_relinking_the_same_customer_is_a_verify_event(demo_stores: Stores) -> None:
    resolver = _resolver(demo_stores)
    james = _customer(demo_stores, JAMES)
    email = USERS[JAMES]["email"]
    resolver.link_verified(james.id, HandleType.EMAIL, email, VerificationLevel.VERIFIED, "conversation:email")
    assert resolver.resolve(Channel.EMAIL, email).level is VerificationLevel.VERIFIED
    last = demo_stores.customers.identity_events(james.id)[-1]
    assert last.kind is IdentityEventKind.VERIFY
    assert last.other_customer_id is None
    assert last.detail["previous"]["verification_level"] == "claimed"
