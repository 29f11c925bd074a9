"""The separate questions in one customer message ("what's your return policy and do you ship to canada?", a long
email with three questions in it), so each can be answered in turn."""

from __future__ import annotations

import re

_QUESTION_START = (
    r"(?:what|what's|whats|how|when|where|why|which|who|do|does|did|can|could|is|are|will|would|should|may|"
    r"any\s+chance|tell\s+me|i(?:'d| would)\s+(?:like|love)\s+to\s+know|i(?:'m| am)\s+wondering|wondering)"
)
_SENTENCES = re.compile(r"(?<=[?!.])\s+|\n+")
_JOINER = r"(?:and\s+also|and|also|plus|oh\s+and|btw)"
_JOINED = re.compile(
    rf"\s*(?:,|;)?\s+{_JOINER}\s*,?\s+(?={_QUESTION_START}\b)|\s*[,;]\s+(?={_QUESTION_START}\b)",
    re.I,
)
_ASKS = re.compile(
    rf"^\s*(?:(?:hi|hey|hello|ok|okay|so|um+|uh+|also|and|oh|btw|one more thing|(?:\d+|two|three|a few|few|a couple"
    rf"(?: of)?) (?:things|questions|qs)|quick question)\s*[,!.:-]?\s+)*{_QUESTION_START}\b",
    re.I,
)
_LEADING_JOIN = re.compile(rf"^{_JOINER}\s*,?\s+(?={_QUESTION_START}\b)", re.I)
"""A joining word a question that starts a sentence of its own begins with ("…canada? and whats ur return policy"):
it belongs to the message, not to the question searched."""
_NOT_AN_ASK = re.compile(r"^(?:thanks?|thank you|cheers|regards|best|kind regards|sent from)\b", re.I)
MAX_ASKS = 4


def split_asks(text: str) -> list[str]:
    """The questions in `text`, in order; a message holding one question (or none) gives one item, itself."""
    pieces: list[str] = []
    for sentence in _SENTENCES.split(text.strip()):
        pieces += [p.strip(" ,;") for p in _JOINED.split(sentence) if p.strip(" ,;")]
    asks = [p for p in pieces if not _NOT_AN_ASK.match(p) and (p.endswith("?") or _ASKS.match(p))]
    asks = [_LEADING_JOIN.sub("", a) for a in asks if len(a.split()) >= 3]
    return asks[:MAX_ASKS] if len(asks) >= 2 else [text]
