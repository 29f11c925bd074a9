"""Slot extraction: order ids, emails, zip codes, names and phones, with the negatives that must stay empty."""

from __future__ import annotations

from typing import Any

import pytest

from threadline.agents.slots import Slots, beyond_identity, extract_slots, normalize_order_id, written_digits

CASES: list[tuple[str, dict[str, Any]]] = [
    # order ids in every spelling become #W + 7 digits
    ("where is my order #W2611340?", {"order_ids": ["#W2611340"]}),
    ("W2611340", {"order_ids": ["#W2611340"]}),
    ("#w2611340 please", {"order_ids": ["#W2611340"]}),
    ("order 2611340", {"order_ids": ["#W2611340"]}),
    ("my order number is 2611340", {"order_ids": ["#W2611340"]}),
    ("order #2611340 hasn't arrived", {"order_ids": ["#W2611340"]}),
    ("orders 2611340 and 4817420", {"order_ids": ["#W2611340", "#W4817420"]}),
    ("#W2611340 and #W4817420, also #W2611340", {"order_ids": ["#W2611340", "#W4817420"]}),
    # emails are lower-cased, trailing punctuation dropped
    ("my email is Noah.Brown7922@Example.com.", {"emails": ["noah.brown7922@example.com"]}),
    ("noah.brown7922@example.com", {"emails": ["noah.brown7922@example.com"]}),
    # names and zips
    ("Noah Brown, 80279", {"name": "Noah Brown", "zip_codes": ["80279"]}),
    ("noah brown 80279", {"name": "Noah Brown", "zip_codes": ["80279"]}),
    (
        "My name is Yusuf Rossi and my zip code is 19122",
        {"name": "Yusuf Rossi", "zip_codes": ["19122"]},
    ),
    ("my name is mia garcia", {"name": "Mia Garcia"}),
    ("This is Fatima Johnson, zip 78712", {"name": "Fatima Johnson", "zip_codes": ["78712"]}),
    ("I'm Ethan Sanchez", {"name": "Ethan Sanchez"}),
    ("first name Sofia last name Kovacs", {"name": "Sofia Kovacs"}),
    ("my zip is 10001-1234", {"zip_codes": ["10001"]}),
    # phones in E.164
    ("call me at (415) 555-0199", {"phones": ["+14155550199"]}),
    ("415.555.0199", {"phones": ["+14155550199"]}),
    ("+1 415 555 0199", {"phones": ["+14155550199"]}),
    ("1-800-555-0199", {"phones": ["+18005550199"]}),
    ("4155550199", {"phones": ["+14155550199"]}),
    ("+44 20 7946 0958", {"phones": ["+442079460958"]}),
    # everything at once
    (
        "I'm Noah Brown, noah@example.com, 415-555-0199, zip 80279, order W2611340",
        {
            "name": "Noah Brown",
            "emails": ["noah@example.com"],
            "phones": ["+14155550199"],
            "zip_codes": ["80279"],
            "order_ids": ["#W2611340"],
        },
    ),
]

NEGATIVES: list[tuple[str, dict[str, Any]]] = [
    # order ids are never read as zips or phones
    ("#W2611340", {"zip_codes": [], "phones": []}),
    ("order 2611340", {"zip_codes": [], "phones": []}),
    # a 10-digit number after "order" or "tracking number" is not a phone
    ("order 3707955617", {"phones": [], "order_ids": []}),
    ("tracking number 5551234567", {"phones": []}),
    # wrong digit counts are not order ids
    ("order 123456", {"order_ids": []}),
    ("order 12345678", {"order_ids": []}),
    ("W12345678", {"order_ids": []}),
    ("row2611340", {"order_ids": []}),
    # 5-digit runs that are not zips: money, decimals, longer numbers, email local parts, item counts
    ("I paid $12345 for it", {"zip_codes": []}),
    ("it cost 12345.50", {"zip_codes": []}),
    ("12345 dollars", {"zip_codes": []}),
    ("123456", {"zip_codes": []}),
    ("noah.79221@example.com", {"zip_codes": [], "emails": ["noah.79221@example.com"]}),
    ("invoice 80279", {"zip_codes": []}),
    # 7-digit numbers without context, and short numbers, are neither phones nor ids
    ("2611340", {"order_ids": [], "phones": []}),
    ("555-0199", {"phones": []}),
    ("123-456-7890", {"phones": []}),
    # sentences that look like introductions but are not names
    ("this is ridiculous", {"name": None}),
    ("I'm Very Upset", {"name": None}),
    ("I am looking for my order", {"name": None}),
    ("my zip 80279", {"name": None, "zip_codes": ["80279"]}),
    ("zip code 85004", {"name": None}),
    ("hello", {"name": None, "emails": [], "zip_codes": []}),
]


@pytest.mark.parametrize(("text", "expected"), CASES + NEGATIVES, ids=[c[0] for c in CASES + NEGATIVES])
def test_extract_slots(text: str, expected: dict[str, Any]) -> None:
    slots = extract_slots(text)
    for field, value in expected.items():
        assert getattr(slots, field) == value, field


def test_empty_text_has_no_slots() -> None:
    assert extract_slots("").is_empty
    assert extract_slots("where is my stuff?") == Slots()


def test_name_parts() -> None:
    slots = extract_slots("my name is Mia Garcia")
    assert (slots.first_name, slots.last_name) == ("Mia", "Garcia")
    assert extract_slots("my name is Mia").last_name is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("W2611340", "#W2611340"),
        ("#w2611340", "#W2611340"),
        ("2611340", "#W2611340"),
        ("#W 2611340", "#W2611340"),
        ("W261134", None),
        ("order", None),
        ("#W26113400", None),
    ],
)
def test_normalize_order_id(raw: str, expected: str | None) -> None:
    assert normalize_order_id(raw) == expected


@pytest.mark.parametrize(
    ("spoken", "slot", "value"),
    [
        ("it's ivan santos zip code seven five two seven seven", "zip_codes", ["75277"]),
        ("my zip is oh two one three nine", "zip_codes", ["02139"]),
        ("order number w two six one one three four oh", "order_ids", ["#W2611340"]),
    ],
)
def test_digits_said_one_by_one_are_read_as_written(spoken: str, slot: str, value: list[str]) -> None:
    assert getattr(extract_slots(spoken), slot) == value
    assert written_digits("i have one or two questions") == "i have one or two questions"  # not a run of three


@pytest.mark.parametrize(
    ("text", "rest"),
    [
        ("anya.garcia2061@example.com - where's my kettle?", "where's my kettle?"),
        ("Aarav Anderson, zip 19031. can i change the shipping address", "can i change the shipping address"),
        ("it's john dot smith at example dot com, did my lamp ship?", "did my lamp ship?"),
        ("my name is noah brown and my zip is 80279", ""),
        ("Noah Brown 80279", ""),
        ("noah.brown@example.com thanks", ""),
    ],
)
def test_what_a_message_says_beyond_the_identity_in_it(text: str, rest: str) -> None:
    assert beyond_identity(text) == rest
