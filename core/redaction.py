"""Redaction of personal data in free text: payment card numbers, email addresses and phone numbers.

Rules, not a model: a card number is a run of 13 to 19 digits (single spaces or dashes between groups allowed) with a
known brand prefix and a valid Luhn check digit; an email is the usual local@domain.tld shape; a phone number is
what `phonenumbers` finds in the text (valid numbers for the default region or in international form, plus
possible numbers of ten or more digits that stand on their own). Order ids (`#W1234567`), tracking numbers, prices,
dates, zips and SKUs stay as they are. Applied to logs (`RedactingFilter`), traces (`install_trace_redaction`),
exports (`redact_value`) and, when configured, the quoted customer text of handoff packets.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Collection, Iterable
from typing import Any
from urllib.parse import unquote

import phonenumbers

CARD = "[card]"
EMAIL = "[email]"
PHONE = "[phone]"
PLACEHOLDERS = {"card": CARD, "email": EMAIL, "phone": PHONE}
ALL_KINDS = frozenset(PLACEHOLDERS)

DEFAULT_REGION = "US"
"""Region for phone numbers written without a country code."""
CARD_DIGITS = range(13, 20)
MIN_LOOSE_PHONE_DIGITS = 10
"""A merely *possible* phone number counts only from this many digits (a NANP number with its area code)."""
MAX_TEXT_CHARS = 100_000
"""Longer strings are cut (and marked) before matching: redaction never becomes the slow part of a log call."""
TRUNCATED = " [truncated]"

_EMAIL_RE = re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b")
_DIGIT_RUN_RE = re.compile(r"(?<![\w#/.-])\d(?:[ -]?\d)+(?![\w/])")
# Issuer prefixes of the card brands in use and the lengths each issues.
_BRANDS: tuple[tuple[re.Pattern[str], frozenset[int]], ...] = (
    (re.compile(r"4"), frozenset({13, 16, 19})),  # Visa
    (re.compile(r"5[1-5]|2(?:22[1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)"), frozenset({16})),  # Mastercard
    (re.compile(r"3[47]"), frozenset({15})),  # American Express
    (re.compile(r"6(?:011|5|4[4-9])"), frozenset({16, 17, 18, 19})),  # Discover
    (re.compile(r"3(?:0[0-5]|[689])"), frozenset({14, 16})),  # Diners Club
    (re.compile(r"35(?:2[89]|[3-8]\d)"), frozenset({16, 17, 18, 19})),  # JCB
    (re.compile(r"62"), frozenset({16, 17, 18, 19})),  # UnionPay
    (re.compile(r"5[06-8]|6[37]"), frozenset({13, 14, 15, 16, 17, 18, 19})),  # Maestro
)
_NANP_RE = re.compile(r"^(?:\+?1[ .-]?)?\(?[2-9]\d{2}\)?[ .-]?\d{3}[ .-]?\d{4}$")
# A bare run of digits right after words like these, after another number in a list, or after a quantity ("3 of")
# is an item, order or tracking number, not a phone number.
_ID_CONTEXT_RE = re.compile(
    r"(?i)(?:\b(?:items?|products?|skus?|orders?|tracking|track|parcel|invoice|ref|ids?|upc|ean|model)"
    r"(?:[\W_]{0,3}(?:ids?|no|numbers?|#))?[\W_]{0,8}|\d[\"']?,\s?[\"']?|\b\d{1,3}\s?(?:of|x)\s)$"
)
_GLUED = re.compile(r"[\w#]")


def luhn_valid(digits: str) -> bool:
    """Whether the digit string passes the Luhn check (the check digit of every payment card number)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def is_card_number(candidate: str) -> bool:
    """Whether `candidate` (digits with optional single spaces or dashes) is a plausible payment card number."""
    digits = re.sub(r"[ -]", "", candidate)
    if not digits.isdigit() or len(digits) not in CARD_DIGITS:
        return False
    issued = any(prefix.match(digits) and len(digits) in lengths for prefix, lengths in _BRANDS)
    return issued and luhn_valid(digits)


def _cards(text: str) -> str:
    return _DIGIT_RUN_RE.sub(lambda m: CARD if is_card_number(m.group()) else m.group(), text)


def _standalone(text: str, start: int, end: int) -> bool:
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return not _GLUED.match(before) and not (after.isalnum() or after == "_")


def _phone_spans(text: str, region: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.POSSIBLE):
        if not _standalone(text, match.start, match.end):
            continue
        raw = match.raw_string
        if raw.isdigit() and _ID_CONTEXT_RE.search(text[max(0, match.start - 32) : match.start]):
            continue
        digits = sum(ch.isdigit() for ch in raw)
        loose = digits >= MIN_LOOSE_PHONE_DIGITS and (raw.startswith("+") or _NANP_RE.match(raw) is not None)
        if loose or phonenumbers.is_valid_number(match.number):
            spans.append((match.start, match.end))
    return spans


def _phones(text: str, region: str) -> str:
    if not any(ch.isdigit() for ch in text):
        return text
    spans = _phone_spans(text, region)
    for start, end in reversed(spans):
        text = text[:start] + PHONE + text[end:]
    return text


def redact(text: str, *, region: str = DEFAULT_REGION, kinds: Collection[str] = ALL_KINDS) -> str:
    """`text` with every card number, email address and phone number (of `kinds`) replaced by a placeholder."""
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS] + TRUNCATED
    if not text or not any(ch.isdigit() or ch == "@" for ch in text):
        return text
    if "email" in kinds:
        text = _EMAIL_RE.sub(EMAIL, text)
    if "card" in kinds:
        text = _cards(text)
    return _phones(text, region) if "phone" in kinds else text


def redact_value(value: Any, *, region: str = DEFAULT_REGION) -> Any:
    """A copy of a JSON-like value (dicts, lists, tuples, strings, scalars) with every string redacted; dict
    keys are redacted too (a key can quote a customer's words). Other objects pass through unchanged."""
    if isinstance(value, str):
        return redact(value, region=region)
    if isinstance(value, dict):
        return {
            (redact(k, region=region) if isinstance(k, str) else k): redact_value(v, region=region)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        items = [redact_value(v, region=region) for v in value]
        return items if isinstance(value, list) else tuple(items)
    return value


def count(text: str, *, region: str = DEFAULT_REGION) -> Counter[str]:
    """How many of each kind (`card`, `email`, `phone`) `redact` replaces in `text`."""
    redacted = redact(text, region=region)
    return Counter({kind: redacted.count(mark) - text.count(mark) for kind, mark in PLACEHOLDERS.items()})


_SECRET_PARAM = re.compile(
    r"(?i)([?&;](?:api[_-]?key|key|token|access[_-]?token|auth|secret|password|signature|sig)=)[^&;#\s\"']*"
)
_API_KEY = re.compile(r"\btl_[A-Za-z0-9_-]{16,}")
SECRET = "[redacted]"


def redact_logged(text: str) -> str:
    """Log text redacted as `redact` does, after URL-decoding (`james%40example.com` in a query string is an email
    address, `%2B1555…` a phone number), with credentials in query parameters and API keys masked."""
    if "%" in text:
        text = unquote(text)
    text = _API_KEY.sub(SECRET, _SECRET_PARAM.sub(rf"\1{SECRET}", text))
    return redact(text)


def _redacted_arg(arg: Any) -> Any:
    """A log argument with personal data redacted: strings are redacted; numbers stay numbers (a `%d` needs
    one) unless they read as a card or phone number; other objects become their redacted text."""
    if isinstance(arg, str):
        return redact_logged(arg)
    if isinstance(arg, bool | float) or arg is None:
        return arg
    if isinstance(arg, int):
        text = str(arg)
        return arg if redact(text) == text else redact(text)
    return redact_logged(str(arg))


def _keeps_shape(record: logging.LogRecord) -> bool:
    """Redact the message and each argument in place, when the result still formats."""
    assert isinstance(record.args, tuple)
    msg, args = redact(str(record.msg)), tuple(_redacted_arg(a) for a in record.args)  # msg is a format string
    try:
        _ = msg % args if args else msg
    except (TypeError, ValueError):
        return False
    record.msg, record.args = msg, args
    return True


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's rendered message (and its exception text) in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and isinstance(record.msg, str) and _keeps_shape(record):
            pass  # the arguments keep their shape: some formatters (uvicorn's access log) unpack them
        elif isinstance(record.args, dict):
            record.msg, record.args = redact(str(record.msg)), redact_value(record.args)
        else:
            try:
                message = record.getMessage()
            except Exception:  # a malformed record is logged as it is; redaction must never break logging
                return True
            record.msg, record.args = redact_logged(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_logged(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_logged(record.stack_info)
        return True


PRODUCT_LOGGERS = ("threadline", "memory", "uvicorn", "uvicorn.access", "uvicorn.error")
"""The logger trees the filter covers: the product's own and the server's access and error logs."""


def _covered(name: str, trees: tuple[str, ...]) -> bool:
    return any(name == tree or name.startswith(tree + ".") for tree in trees)


def install_log_redaction(trees: Iterable[str] = PRODUCT_LOGGERS) -> RedactingFilter:
    """Attach one `RedactingFilter` to every logger of the named trees that exists now (a logger's filters
    only see records logged on it, not its children's) and to their handlers and the root's (which see what
    propagates). Idempotent; call it at start-up, after the modules that create loggers are imported."""
    roots = tuple(trees)
    shared = RedactingFilter()
    names = [n for n in list(logging.root.manager.loggerDict) if _covered(n, roots)]
    loggers = [logging.getLogger(n) for n in dict.fromkeys([*roots, *names])]
    for target in [*loggers, *(h for lg in loggers for h in lg.handlers), *logging.root.handlers]:
        if not any(isinstance(f, RedactingFilter) for f in target.filters):
            target.addFilter(shared)
    return shared


def install_trace_redaction() -> bool:
    """Make LangSmith traces carry redacted inputs, outputs and errors: the process-wide tracing client gets
    `redact_value` as its anonymizer. Returns whether a client was configured (only when tracing is on)."""
    import os

    enabled = {os.environ.get(k, "").lower() for k in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2")}
    if not enabled & {"true", "1", "yes"}:
        return False
    import langsmith
    from langsmith import run_trees

    langsmith.configure(client=langsmith.Client(anonymizer=redact_value, hide_metadata=redact_value))
    return run_trees.get_cached_client() is not None
