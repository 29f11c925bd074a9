"""Slot extraction from one customer message: order ids, emails, zip codes, a person's name and phone numbers."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeAlias

from pydantic import BaseModel, ConfigDict, Field

from threadline.tools.orders import normalize_order_id

__all__ = ["Slots", "extract_slots", "normalize_order_id"]

# Spans found by one extractor are blanked before the next runs, so an order id is never read as a zip or phone.
_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_ORDER_W = re.compile(r"(?<![A-Za-z0-9])#?\s?W\s?(\d{7})(?!\d)", re.IGNORECASE)
_ORDER_HASH = re.compile(r"(?<![\w#])#(\d{7})(?!\d)")
_ORDER_KEYWORD = re.compile(
    r"\b(?:order|purchase)s?(?:\s+(?:number|no\.?|num|id))?\s*(?:is\s+)?[:#]?\s*(\d{7})(?!\d)", re.IGNORECASE
)
_ORDER_MORE = re.compile(r"\s*(?:,|&|\band\b|\bor\b)\s*#?(?:W\s?)?(\d{7})(?!\d)", re.IGNORECASE)
_PHONE_INTL = re.compile(r"(?<![\w+])\+(?!1\b|1[\s.(-]*\d)(\d[\d\s.()-]{6,18}\d)(?![\w])")
_PHONE_US = re.compile(r"(?<![\w+])(?:\+?1[\s.-]?)?\(?([2-9]\d{2})\)?[\s.-]?(\d{3})[\s.-]?(\d{4})(?!\w|-\d)")
_ZIP = re.compile(r"(?<![\w$#.,-])(\d{5})(?:-\d{4})?(?!\d|[.,]\d|\w|%|\s*(?:dollars|usd|bucks|points|items)\b)", re.I)
_ID_CONTEXT = re.compile(
    r"(?:order|purchase|invoice|tracking|item|ticket|case|ref(?:erence)?|account|card|sku)s?"
    r"(?:\s+(?:number|no\.?|num|id))?\s*[:#]?\s*$",
    re.IGNORECASE,
)
_NAME_TOKEN = r"[A-Za-z][A-Za-z'’-]*"
_NAME_STRONG = re.compile(
    rf"\b(?:my\s+(?:full\s+)?name\s+is|name\s*:|name\s+is|the\s+name\s+on\s+the\s+\w+\s+is)\s+"
    rf"({_NAME_TOKEN}(?:\s+{_NAME_TOKEN}){{0,2}})",
    re.IGNORECASE,
)
_NAME_WEAK = re.compile(
    r"\b(?:[Tt]his\s+is|I'm|I’m|I\s+am|[Ii]t's|[Ii]t’s)\s+([A-Z][a-z'’-]+(?:\s+[A-Z][a-z'’-]+){1,2})\b"
)
_NAME_FIRST_LAST = re.compile(
    rf"\bfirst\s+name\s*(?:is|:)?\s*({_NAME_TOKEN}).{{0,15}}?\blast\s+name\s*(?:is|:)?\s*({_NAME_TOKEN})",
    re.IGNORECASE,
)
_NAME_ZIP_LINE = re.compile(
    rf"(?<![\w'’-])({_NAME_TOKEN})\s+({_NAME_TOKEN})\s*[,;-]?\s*(?:zip(?:\s*code)?\s*(?:is)?\s*:?\s*)?(\d{{5}})"
    r"(?![\w-])",
    re.IGNORECASE,
)
"""A name and a zip code side by side, anywhere ("sorry typo!! Noah Brown 80279"); both words must be names."""
_SPOKEN_EMAIL = re.compile(
    r"\b([a-z0-9]+(?:\s+(?:dot|underscore|dash)\s+[a-z0-9]+|\s+(?:zero|one|two|three|four|five|six|seven|eight|nine|\d+))*)"
    r"\s+at\s+([a-z0-9-]+(?:\s+dot\s+[a-z0-9-]+)+)\b",
    re.IGNORECASE,
)
_SPOKEN_SYMBOLS = {"dot": ".", "underscore": "_", "dash": "-"}
_DIGITS = {
    w: str(n) for n, w in enumerate(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
}


def written_emails(text: str) -> str:
    """Emails spelled out the way callers say them ("john dot smith at example dot com") written as addresses."""

    def write(match: re.Match[str]) -> str:
        words = re.split(r"\s+", f"{match.group(1)} at {match.group(2)}")
        words = [_DIGITS.get(w.lower(), w) for w in words]
        return "".join("@" if w.lower() == "at" else _SPOKEN_SYMBOLS.get(w.lower(), w) for w in words)

    if " at " not in text.lower() or " dot " not in text.lower():
        return text
    return _SPOKEN_EMAIL.sub(write, text)


_Value: TypeAlias = Callable[[re.Match[str]], str]
_Reject: TypeAlias = Callable[[str, re.Match[str]], bool]
_NOT_NAME_WORDS = """a am an and are at back but by calling code email for from going happy here hi hello i im typo oops
    i'm in is it just live looking my no not number of on or order phone please postal really so sorry still sure
    thanks the this to trying under very with writing yes your zip"""
_NOT_NAME = frozenset(_NOT_NAME_WORDS.split())


class Slots(BaseModel):
    """What one message says about orders and identity; every list is de-duplicated in order of appearance."""

    model_config = ConfigDict(frozen=True)

    order_ids: list[str] = Field(default_factory=list)
    emails: list[str] = Field(default_factory=list)
    zip_codes: list[str] = Field(default_factory=list)
    name: str | None = None
    phones: list[str] = Field(default_factory=list)

    @property
    def first_name(self) -> str | None:
        """First token of the name, if any."""
        return self.name.split()[0] if self.name else None

    @property
    def last_name(self) -> str | None:
        """Last token of a name of two or more tokens."""
        parts = self.name.split() if self.name else []
        return parts[-1] if len(parts) > 1 else None

    @property
    def is_empty(self) -> bool:
        """Whether nothing at all was found."""
        return not (self.order_ids or self.emails or self.zip_codes or self.name or self.phones)


_SPOKEN_DIGIT_RUN = re.compile(
    r"\b(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)(?:[\s,-]+(?:zero|oh|one|two|three|four|five|six|"
    r"seven|eight|nine)){2,}\b",
    re.IGNORECASE,
)


def written_digits(text: str) -> str:
    """Three or more digits said one by one ("zip code seven five two seven seven", "oh" for zero) written as a
    number, the way callers give zip codes and order numbers."""

    def write(match: re.Match[str]) -> str:
        words = re.split(r"[\s,-]+", match.group(0).lower())
        return "".join("0" if w == "oh" else _DIGITS[w] for w in words)

    return _SPOKEN_DIGIT_RUN.sub(write, text)


def extract_slots(text: str) -> Slots:
    """All slots in `text`; order ids become `#W` + 7 digits, emails lower case, phones E.164; emails and digits
    spelled out the way callers say them are read as written."""
    text = written_digits(written_emails(text))
    buf = [text]
    emails = _take(buf, _EMAIL, lambda m: m.group(0).lower().rstrip("."))
    order_ids = _order_ids(buf)
    phones = _phones(buf)
    zips = _take(buf, _ZIP, lambda m: m.group(1), reject=_after_id_keyword)
    return Slots(order_ids=order_ids, emails=emails, zip_codes=zips, name=_person_name(text), phones=phones)


def _take(buf: list[str], pattern: re.Pattern[str], value: _Value, reject: _Reject | None = None) -> list[str]:
    """Values of every match of `pattern` in buf[0], blanking the matched spans."""
    found: list[str] = []
    for match in pattern.finditer(buf[0]):
        if reject is not None and reject(buf[0], match):
            continue
        _blank(buf, match.start(), match.end())
        if (item := value(match)) and item not in found:
            found.append(item)
    return found


def _blank(buf: list[str], start: int, end: int) -> None:
    """Replace buf[0][start:end] with spaces, keeping offsets."""
    buf[0] = buf[0][:start] + " " * (end - start) + buf[0][end:]


def _order_ids(buf: list[str]) -> list[str]:
    """Order ids written as W-ids, #-ids or after the word "order", including lists like "orders 1234567 and …"."""
    found = _take(buf, _ORDER_W, lambda m: f"#W{m.group(1)}")
    found += [i for i in _take(buf, _ORDER_HASH, lambda m: f"#W{m.group(1)}") if i not in found]
    for match in list(_ORDER_KEYWORD.finditer(buf[0])):
        ids, end = [match.group(1)], match.end()
        while more := _ORDER_MORE.match(buf[0], end):
            ids.append(more.group(1))
            end = more.end()
        _blank(buf, match.start(), end)
        found += [f"#W{d}" for d in ids if f"#W{d}" not in found]
    return found


def _phones(buf: list[str]) -> list[str]:
    """International numbers written with `+` and US numbers of 10 digits (optionally with a leading 1), E.164."""
    found: list[tuple[int, str]] = []
    for pattern, value in ((_PHONE_INTL, _intl_phone), (_PHONE_US, _us_phone)):
        for match in pattern.finditer(buf[0]):
            if not _after_id_keyword(buf[0], match) and (phone := value(match)):
                found.append((match.start(), phone))
                _blank(buf, match.start(), match.end())
    return list(dict.fromkeys(phone for _, phone in sorted(found)))


def _us_phone(match: re.Match[str]) -> str:
    """E.164 form of a US number."""
    return "+1" + "".join(match.groups())


def _intl_phone(match: re.Match[str]) -> str:
    """E.164 form of a `+`-prefixed number, or "" when it has not 8 to 15 digits."""
    digits = re.sub(r"\D", "", match.group(1))
    return f"+{digits}" if 8 <= len(digits) <= 15 else ""


def _after_id_keyword(text: str, match: re.Match[str]) -> bool:
    """Whether the number follows a word like "order", "invoice" or "tracking number"."""
    return _ID_CONTEXT.search(text[max(0, match.start() - 30) : match.start()]) is not None


def _person_name(text: str) -> str | None:
    """A name introduced by "my name is", "this is"/"I'm" (capitalized), "first name … last name", or "X Y, 12345"."""
    for pattern, source in ((_NAME_STRONG, text), (_NAME_WEAK, text)):
        for match in pattern.finditer(source):
            if name := _clean_name(match.group(1).split()):
                return name
    if first_last := _NAME_FIRST_LAST.search(text):
        return _clean_name([first_last.group(1), first_last.group(2)])
    for line in _NAME_ZIP_LINE.finditer(text):
        if name := _clean_name([line.group(1), line.group(2)], strict=True):
            return name
    return None


def _clean_name(tokens: list[str], strict: bool = False) -> str | None:
    """Leading tokens up to the first non-name word, capitalized; None if none (or, when strict, any) is a word."""
    kept: list[str] = []
    for token in tokens:
        if token.lower().strip("'’") in _NOT_NAME:
            if strict:
                return None
            break
        kept.append(token[:1].upper() + token[1:] if token.islower() else token)
    return " ".join(kept) or None


_IDENTITY_WORDS = re.compile(
    r"\b(?:my name is|name'?s|this is|it'?s|i'?m|im|my email is|email(?: address)?(?: is)?|zip(?:\s*code)?(?: is)?"
    r"|zipcode|postal code)\b",
    re.IGNORECASE,
)


def beyond_identity(text: str) -> str:
    """What a message says besides the customer's identity ("anya@example.com - where's my kettle?" → "where's my
    kettle?"): emails (written or spoken), the name and zip code taken out; "" when nothing else is left."""
    text = written_digits(written_emails(text))
    slots = extract_slots(text)
    for value in [*slots.emails, *slots.zip_codes, *(slots.name.split() if slots.name else [])]:
        text = re.sub(rf"(?<![\w@.]){re.escape(value)}(?![\w@])", " ", text, flags=re.IGNORECASE)
    text = _IDENTITY_WORDS.sub(" ", text)
    words = re.findall(r"[\w'#?]+", text)
    content = [w for w in words if w.lower().strip("?") not in _FILLER_WORDS]
    return " ".join(words) if len(words) >= 2 and content else ""


_FILLER_WORDS = frozenset(
    "and my is the a an hi hello hey thanks thank you please pls ok okay yes sure so here again".split()  # noqa: SIM905
)
