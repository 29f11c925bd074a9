"""What the adapters share: form fields that must be there, validation errors that name the field, and text cut
to fit a provider's limit at sentence (then word, then character) boundaries."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from threadline.core.errors import InvalidInputError

Fits = Callable[[str], bool]
"""Whether a piece of text fits one outbound message."""

ModelT = TypeVar("ModelT", bound=BaseModel)
Clock = Callable[[], datetime]
"""The current time, timezone-aware; a parameter so tests can fix it."""

ELLIPSIS = "..."  # three dots, not "…": keeps an SMS in GSM-7, where "…" would force UCS-2 and halve its capacity
_BOUNDARY = re.compile(r"(?<=[.!?])\s+|\s*\n\s*")  # after a sentence, or at a line break
_SPACE = re.compile(r"\s+")
_LAST_WORD = re.compile(r"\s*\S+\s*$")
_TRAILING_PUNCTUATION = " \t\n,;:-"


def utcnow() -> datetime:
    """The current UTC time."""
    return datetime.now(UTC)


def required(form: Mapping[str, str], name: str, *, max_length: int | None = None) -> str:
    """The stripped value of a field that must be present and not blank."""
    value = form.get(name)
    if value is None or not str(value).strip():
        raise InvalidInputError(f"{name} is missing")
    value = str(value).strip()
    if max_length is not None and len(value) > max_length:
        raise InvalidInputError(f"{name} is longer than {max_length} characters")
    return value


def optional(form: Mapping[str, str], name: str) -> str | None:
    """The stripped value of a field, or None when it is absent or blank."""
    value = form.get(name)
    if value is None or not str(value).strip():
        return None
    return str(value).strip()


def invalid_input(exc: ValidationError) -> InvalidInputError:
    """A pydantic validation failure as an InvalidInputError naming each field by its path (`entry[0].id`)."""
    problems = []
    for error in exc.errors():
        path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]).lstrip(".")
        problems.append(f"{path or 'body'}: {error['msg']}")
    return InvalidInputError("; ".join(problems))


def validated_json(model: type[ModelT], body: str | bytes | Mapping[str, Any], *, what: str) -> ModelT:
    """`body` (raw JSON, or already decoded) as `model`; a body that is not JSON, or not of that shape, is an
    `InvalidInputError` naming `what` or each wrong field."""
    try:
        if isinstance(body, str | bytes):
            return model.model_validate_json(body)
        return model.model_validate(body)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise InvalidInputError(f"{what} is not JSON") from exc
        raise invalid_input(exc) from exc


def clip(text: str, limit: int) -> tuple[str, bool]:
    """`text` cut to at most `limit` characters (at a word boundary when one is near), and whether it was cut."""
    if len(text) <= limit:
        return text, False
    cut = text[:limit]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(), True


def _separator(whitespace: str) -> str:
    """A run of whitespace reduced to what matters: a paragraph break, a line break or a space."""
    newlines = whitespace.count("\n")
    return "\n\n" if newlines >= 2 else "\n" if newlines else " "


def _pieces(text: str, pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    """`text` cut where `pattern` matches; each piece with the separator that preceded it."""
    pieces: list[tuple[str, str]] = []
    separator, position = "", 0
    for match in pattern.finditer(text):
        if match.start() > position:
            pieces.append((separator, text[position : match.start()]))
        separator, position = _separator(match.group()), match.end()
    if position < len(text):
        pieces.append((separator, text[position:]))
    return pieces


def _longest_fitting_prefix(text: str, fits: Fits) -> int:
    """The length of the longest prefix of `text` that fits (at least one character)."""
    low, high = 1, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if fits(text[:middle]):
            low = middle
        else:
            high = middle - 1
    return low


def _tokens(text: str, fits: Fits) -> Iterator[tuple[str, str]]:
    """Pieces that each fit alone: whole sentences, else the words of a long sentence, else runs of characters."""
    for separator, sentence in _pieces(text, _BOUNDARY):
        if fits(sentence):
            yield separator, sentence
            continue
        for index, (word_separator, word) in enumerate(_pieces(sentence, _SPACE)):
            before = separator if index == 0 else word_separator
            if fits(word):
                yield before, word
                continue
            rest = word
            while rest:
                size = _longest_fitting_prefix(rest, fits)
                yield before, rest[:size]
                rest, before = rest[size:], ""


def _shorten_to_end(text: str, fits: Fits) -> str:
    """The last kept part when the reply was cut: it ends on a sentence, or on a word followed by an ellipsis."""
    if text.rstrip().endswith((".", "!", "?")):
        return text.rstrip()
    candidate = text.rstrip(_TRAILING_PUNCTUATION)
    while candidate and not fits(candidate + ELLIPSIS):
        shorter = _LAST_WORD.sub("", candidate)
        candidate = (shorter if shorter else candidate[:-1]).rstrip(_TRAILING_PUNCTUATION)
    return candidate + ELLIPSIS


def split_to_fit(text: str, fits: Fits, *, max_parts: int) -> list[str]:
    """`text` split into at most `max_parts` messages that each fit, cut at sentence boundaries where possible
    (then words, then characters); when more would be needed the rest is dropped and the last part says so."""
    if max_parts < 1:
        raise ValueError("max_parts must be at least 1")
    text = text.strip()
    if not text:
        return []
    parts: list[str] = []
    current = ""
    for separator, piece in _tokens(text, fits):
        candidate = f"{current}{separator}{piece}" if current else piece
        if fits(candidate):
            current = candidate
        else:
            parts.append(current)
            current = piece
    if current:
        parts.append(current)
    if len(parts) > max_parts:
        parts = parts[:max_parts]
        parts[-1] = _shorten_to_end(parts[-1], fits)
    return parts
