"""Deterministic grounding: every checkable claim in a reply must come from a tool result of the same turn.

Claims are order ids, tracking numbers, statuses, prices, dates and policy statements (sentences that state a
rule). An order id the customer typed in the same turn may be echoed. A policy statement is supported when most
of its content words appear in one tool result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ORDER_ID = re.compile(r"#W\d{7}\b")
TRACKING = re.compile(r"(?<!\d)(?<!\d\.)\d{10,14}(?!\d)(?!\.\d)")
STATUS = re.compile(r"\b(pending|processed|delivered|cancell?ed|shipped|in transit|returned|exchanged)\b", re.I)
PRICE = re.compile(r"\$\s?(\d[\d,]*(?:\.\d{1,2})?)")
ISO_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
MONTHS = re.findall(r"\w+", "january february march april may june july august september october november december")
NAMED_DATE = re.compile(rf"\b({'|'.join(m.title() for m in MONTHS)}) (\d{{1,2}})(?:, (\d{{4}}))?\b")
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
POLICY_CUE = re.compile(
    r"\b(?:can only|must|only if|within \d+|eligible|not allowed|cannot be|can't be|free shipping"
    r"|\d+ ?(?:business )?days?|percent|discount|promo\w*|delay\w*)\b|\d+ ?%",
    re.I,
)
SENTENCE = re.compile(r"(?<=[.!?])\s+")
CITATION = re.compile(r"\(Source: [^)]*\)")
STOP = frozenset(
    re.findall(
        r"[\w']+",
        """a an the and or of to in on for is are be been was were it its this that with as at by from your you our we
    can only if not no any all should their they them which who what when how will would may might must has have had
    do does did so such than then there these those into out up about after before over under also per each""",
    )
)
POLICY_SUPPORT = 0.6


@dataclass(frozen=True)
class Claim:
    """One checkable statement in a reply and whether a tool result supports it."""

    kind: str
    text: str
    supported: bool


def _numbers(text: str) -> set[float]:
    values = set()
    for raw in NUMBER.findall(text):
        try:
            values.add(round(float(raw.replace(",", "")), 2))
        except ValueError:
            continue
    return values


def _content_words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9']+", text.lower()) if w not in STOP and len(w) > 2]


def _policy_supported(sentence: str, results: list[str]) -> bool:
    words = _content_words(sentence)
    if not words:
        return True
    best = max((sum(w in set(_content_words(r)) for w in words) / len(words) for r in results), default=0.0)
    return best >= POLICY_SUPPORT


def claims(reply: str, results: list[str], customer_text: str = "") -> list[Claim]:
    """Every checkable claim in `reply`, each marked supported or not by `results` (tool outputs of the turn)."""
    evidence = "\n".join(results)
    lowered = evidence.lower()
    found: list[Claim] = []
    for order_id in sorted(set(ORDER_ID.findall(reply))):
        found.append(Claim("order_id", order_id, order_id in evidence or order_id in customer_text))
    for tracking in sorted(set(TRACKING.findall(reply))):
        found.append(Claim("tracking_number", tracking, tracking in evidence or tracking in customer_text))
    for status in sorted({s.lower() for s in STATUS.findall(reply)}):
        word = r"cancell?ed" if status.startswith("cancel") else re.escape(status)
        found.append(Claim("status", status, re.search(rf"\b{word}\b", lowered) is not None))
    numbers = _numbers(evidence)
    for price in sorted(set(PRICE.findall(reply))):
        found.append(Claim("price", f"${price}", round(float(price.replace(",", "")), 2) in numbers))
    for iso in sorted(set(ISO_DATE.findall(reply))):
        found.append(Claim("date", iso, iso in evidence))
    for month, day, year in NAMED_DATE.findall(reply):
        suffix = f"-{MONTHS.index(month.lower()) + 1:02d}-{int(day):02d}"
        text = f"{month} {day}" + (f", {year}" if year else "")
        ok = (f"{year}{suffix}" if year else suffix) in evidence or text in evidence
        found.append(Claim("date", text, ok))
    for sentence in SENTENCE.split(CITATION.sub("", reply)):
        if POLICY_CUE.search(sentence):
            found.append(Claim("policy", sentence.strip(), _policy_supported(sentence, results)))
    return found


def unsupported(reply: str | None, results: list[str], customer_text: str = "") -> list[Claim]:
    """The claims of a reply that no tool result of the turn supports."""
    if not reply:
        return []
    return [c for c in claims(reply, results, customer_text) if not c.supported]


def facts(reply: str | None) -> frozenset[str]:
    """The comparable facts a reply states (ids, tracking numbers, statuses, prices, dates, cited titles)."""
    if not reply:
        return frozenset()
    found = set(ORDER_ID.findall(reply)) | set(TRACKING.findall(reply)) | set(ISO_DATE.findall(reply))
    found |= {s.lower().replace("canceled", "cancelled") for s in STATUS.findall(reply)}
    found |= {f"${p}" for p in PRICE.findall(reply)}
    found |= {m.group(0) for m in CITATION.finditer(reply)}
    return frozenset(found)
