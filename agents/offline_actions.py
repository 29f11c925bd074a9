"""What the offline model reads from a customer who wants an order changed: which action, the cancellation
reason, which items, which option instead, where a refund goes. Pure text functions; `order_flow` turns them
into tool calls and questions."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from threadline.agents.slots import Slots

ActionWord = Literal["cancel", "return", "exchange", "address", "payment", "default_address"]

_CANCEL = re.compile(r"\bcancel+\w*\b", re.I)
_EXCHANGE = re.compile(
    r"\b(?:exchang\w*|swap\w*|(?:a |the )?(?:different|another|other|bigger|smaller) (?:size|colou?r|one)"
    r"|instead)\b",
    re.I,
)
_RETURN = re.compile(r"\b(?:return\w*|send (?:it|them|this|that|\w+) back|refund\w*)\b", re.I)
_REQUEST = re.compile(
    r"\b(?:i (?:want|wanna|would like|need|'?d like)|i'?d like|id like|please|pls|plz|can (?:you|u)|could (?:you|u)"
    r"|want to|wanna|like to|go ahead|just|need to|let'?s|how do i|help me)\b",
    re.I,
)
_POLICY = re.compile(r"\bpolic(?:y|ies)\b|\bhow (?:long|many days)\b|\bwhat(?:'s| is) the\b", re.I)
_ALL = re.compile(r"\b(?:all|everything|whole (?:order|thing)|entire order|both(?: of them)?|every item)\b", re.I)
_GIFT_CARD = re.compile(r"\bgift ?cards?\b", re.I)
_NO_LONGER = re.compile(
    r"\b(?:no longer|don'?t (?:need|want)|do not (?:need|want)|dont (?:need|want)|not needed|changed my mind"
    r"|not (?:gonna|going to) use|found (?:it )?(?:cheaper|elsewhere)|too late)\b",
    re.I,
)
_MISTAKE = re.compile(
    r"\b(?:mistake|accident\w*|by error|wrong (?:item|order|one)|ordered twice|duplicate|oops)\b", re.I
)
_CHANGE_ADDRESS = re.compile(
    r"\b(?:change|update|correct|fix)\b.{0,30}\baddress\b|\b(?:ship|send|deliver) (?:it|them|this|that|the order|"
    r"my order|the package)? ?to\b|\bnew address\b|\bwrong address\b",
    re.I,
)
_STREET = (
    r"street|st|avenue|ave|road|rd|lane|ln|drive|dr|boulevard|blvd|way|court|ct|place|pl|terrace|ter|parkway|pkwy"
    r"|circle|cir|highway|hwy"
)
_ADDRESS = re.compile(
    rf"(?P<address1>(?<![\w#])\d{{1,6}}[a-z]?\s+(?:[a-z0-9.'-]+\s+){{0,4}}?(?:{_STREET})\b\.?)\s*,?\s*"
    r"(?:(?P<address2>(?:apt|apartment|suite|ste|unit|#)\.?\s*[\w-]+)\s*,?\s*)?"
    r"(?P<city>[a-z][a-z .'-]*?)\s*,\s*(?P<state>[a-z]{2})\s*,?\s*(?P<zip>\d{5})(?:-\d{4})?"
    r"(?:\s*,?\s*(?P<country>usa|us|united states))?",
    re.I,
)
_PAYMENT = re.compile(
    r"\b(?:pay|paying|charge|bill)\b.{0,40}\b(?:gift ?card|paypal|credit card|card|visa|mastercard|amex)\b"
    r"|\b(?:change|switch|update)\b.{0,25}\bpayment\b",
    re.I,
)
_PAY_KIND = (("gift_card", re.compile(r"\bgift ?cards?\b", re.I)), ("paypal", re.compile(r"\bpaypal\b", re.I)),
             ("credit_card", re.compile(r"\b(?:credit card|card|visa|mastercard|amex)\b", re.I)))  # fmt: skip
_DEFAULT_ADDRESS = re.compile(
    r"\b(?:address on file|default address|(?:profile|account) address|address on my (?:profile|account)"
    r"|i(?:'?ve| have)? moved)\b",
    re.I,
)
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    ["the", "a", "an", "my", "of", "and", "or", "for", "to", "it", "in", "on", "with", "this", "that", "one"]
)


def wanted_action(text: str, slots: Slots, focus: str | None) -> ActionWord | None:
    """The order change a customer is asking for (not asking about): an action word, an order to act on (named,
    or the one in focus), and the form of a request rather than a question about the policy. A new address for the
    profile needs no order."""
    if _DEFAULT_ADDRESS.search(text) and parse_address(text) and not slots.order_ids:
        return "default_address"
    if not (slots.order_ids or focus):
        return None
    if _POLICY.search(text) and not slots.order_ids:
        return None
    kind: ActionWord | None = None
    if _CHANGE_ADDRESS.search(text) and parse_address(text):
        kind = "address"
    elif _PAYMENT.search(text) and pay_with(text):
        kind = "payment"
    elif _CANCEL.search(text):
        kind = "cancel"
    elif _EXCHANGE.search(text):
        kind = "exchange"
    elif _RETURN.search(text):
        kind = "return"
    if kind is None:
        return None
    return kind if kind in ("address", "payment") or slots.order_ids or _REQUEST.search(text) else None


def pay_with(text: str) -> str | None:
    """The kind of payment method a customer names ("my gift card", "paypal", "my visa")."""
    return next((kind for kind, pattern in _PAY_KIND if pattern.search(text)), None)


def cancel_reason(text: str) -> str | None:
    """The store's cancellation reason the customer gave, if they gave one."""
    if _MISTAKE.search(text):
        return "ordered by mistake"
    if _NO_LONGER.search(text):
        return "no longer needed"
    return None


def refund_to(text: str) -> str:
    """Where a refund or a price difference goes: a gift card when the customer says so, else the original."""
    return "gift_card" if _GIFT_CARD.search(text) else "original"


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and (len(w) > 1 or w.isdigit())}


def pick_items(text: str, items: Sequence[dict[str, Any]]) -> list[str] | None:
    """The ids of the order's items the customer named ("the chair", "both", "everything"); the only item of a
    one-item order; None when it is not clear which."""
    if not items:
        return None
    if _ALL.search(text):
        return [str(i["item_id"]) for i in items]
    said = _words(text)
    named = [str(i["item_id"]) for i in items if _words(str(i["name"])) & said]
    if named:
        return named
    return [str(items[0]["item_id"])] if len(items) == 1 else None


def pick_alternative(text: str, item: dict[str, Any]) -> str | None:
    """The in-stock option of the item's product the customer asked for: the alternative sharing the most of the
    option values they named ("size 9", "black"), when one stands out; never one that changes an option they said
    to keep ("size 10, same color": a size 10 only in another colour is asked about, not picked). The summary read
    back before their yes lists every change."""
    said = text.lower()
    scored = []
    for choice in item.get("alternatives", []):
        changed = [str(v) for k, v in choice["options"].items() if item["options"].get(k) != v]
        wanted = sum(1 for value in changed if re.search(rf"(?<!\w){re.escape(value.lower())}(?!\w)", said))
        kept = len(choice["options"]) - len(changed)
        keeps = [k for k, v in choice["options"].items() if item["options"].get(k) != v and _kept(said, k)]
        if wanted and not keeps:
            scored.append((wanted, -(len(changed) - wanted), kept, str(choice["item_id"])))
    if not scored:
        return None
    scored.sort(reverse=True)
    if len(scored) > 1 and scored[0][:3] == scored[1][:3]:
        return None
    return scored[0][3]


def _kept(said: str, option: str) -> bool:
    """Whether the customer said to keep an option as it is ("same color", "same colour as before")."""
    name = re.escape(option.lower()).replace("color", "colou?r")
    return re.search(rf"\b(?:same|keep(?: the)?(?: same)?) {name}\b", said) is not None


def parse_address(text: str) -> dict[str, str] | None:
    """A US postal address written in one line ("12 Oak St, Apt 4, Springfield, IL 62704"), as the order system
    stores it; None when there is none."""
    found = _ADDRESS.search(text)
    if found is None:
        return None
    street = " ".join(found["address1"].split())
    return {
        "address1": street.title(),
        "address2": " ".join((found["address2"] or "").split()).title(),
        "city": " ".join(found["city"].split()).title(),
        "state": found["state"].upper(),
        "country": "USA",
        "zip": found["zip"],
    }
