"""Channel rendering, the last step of a turn: the same answer fitted to SMS, voice, email, web, social, store."""

from __future__ import annotations

import re

from threadline.core.sms import sms_segments
from threadline.core.types import Channel

SMS_MAX_SEGMENTS = 2
_URL = re.compile(r"(?:https?://|www\.)\S+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|net|org|io|co|shop|store)(?:/\S*)?", re.I)
_ORDER_ID = re.compile(r"#W(\d{7})")
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]+\)")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+", re.M)
_EMPHASIS = re.compile(r"(\*\*|__|\*|`|^#+\s*)", re.M)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def plain(text: str) -> str:
    """Markdown removed: links become their text, list markers and emphasis disappear."""
    text = _MD_LINK.sub(r"\1", text)
    text = _BULLET.sub("", text)
    text = _EMPHASIS.sub("", text)
    return re.sub(r"[ \t]+", " ", text).strip()


def fit_sms(text: str, max_segments: int = SMS_MAX_SEGMENTS) -> str:
    """Plain text within `max_segments`, cut at a sentence (or word) boundary when too long."""
    text = re.sub(r"\s*\n+\s*", " ", plain(text))
    if sms_segments(text) <= max_segments:
        return text
    kept = ""
    for sentence in _SENTENCE_END.split(text):
        candidate = f"{kept} {sentence}".strip()
        if sms_segments(candidate) > max_segments:
            break
        kept = candidate
    if not kept:
        words = text.split()
        while words and sms_segments(" ".join(words) + "…") > max_segments:
            words.pop()
        kept = " ".join(words) + "…"
    return kept


_WRITE_BACK = re.compile(r"\b(please )?reply with\b", re.I)
_CITED = re.compile(r"\s*\(Source: [^)]*\)")


def speakable(text: str) -> str:
    """Voice: no URLs, lists, markdown or citations, nothing to "reply with"; one flowing paragraph."""
    text = _CITED.sub("", _WRITE_BACK.sub(lambda m: f"{m.group(1) or ''}tell me", text))
    text = _URL.sub("our website", _MD_LINK.sub(r"\1", text))
    text = _ORDER_ID.sub(lambda m: "W " + " ".join(m.group(1)), text)
    lines = [line.strip().rstrip(".") for line in plain(text).replace("#", " number ").splitlines() if line.strip()]
    spoken = re.sub(r"\s+", " ", ". ".join(lines)).strip()
    return spoken if spoken.endswith(("?", "!")) else spoken + "."


DEFAULT_SIGNATURE = "Customer Care"
"""Who signs emails when no store name is configured."""


EMAIL_WORDS = {"en": ("Hi {name},", "Hello,", "Best regards,")}


def email_body(
    text: str, name: str | None, signature: str = DEFAULT_SIGNATURE, words: tuple[str, str, str] | None = None
) -> str:
    """Email: greeting, the answer, a sign-off by `signature` (the store's name); `words` are the greeting with a
    name, without one, and the sign-off, in the customer's language (English by default)."""
    named, plain_greeting, sign_off = words or EMAIL_WORDS["en"]
    greeting = named.format(name=name) if name else plain_greeting
    return f"{greeting}\n\n{text.strip()}\n\n{sign_off}\n{signature.strip() or DEFAULT_SIGNATURE}"


def _sms_with_notice(text: str, notice: str) -> str:
    """SMS: the answer shortened as needed so the notice always fits in the two segments."""
    notice = plain(notice)
    sentences = _SENTENCE_END.split(re.sub(r"\s*\n+\s*", " ", plain(text)))
    for count in range(len(sentences), 0, -1):
        candidate = f"{' '.join(sentences[:count])} {notice}"
        if sms_segments(candidate) <= SMS_MAX_SEGMENTS:
            return candidate
    return fit_sms(f"{text} {notice}")


def render(
    text: str,
    channel: Channel,
    *,
    name: str | None = None,
    notice: str | None = None,
    signature: str = DEFAULT_SIGNATURE,
    email_words: tuple[str, str, str] | None = None,
) -> str:
    """The reply as `channel` should carry it, with a proactive notice after the answer when there is one; emails
    are signed by `signature`."""
    if notice and channel is Channel.SMS:
        return _sms_with_notice(text, notice)
    if notice:
        text = f"{text.rstrip()}\n\n{notice}" if channel not in (Channel.VOICE,) else f"{text.rstrip()} {notice}"
    if channel is Channel.SMS:
        return fit_sms(text)
    if channel is Channel.VOICE:
        return speakable(text)
    if channel is Channel.EMAIL:
        return email_body(text, name, signature, email_words)
    if channel is Channel.SOCIAL:
        return plain(text)[:2000]
    if channel is Channel.WHATSAPP:
        return plain(text)[:4096]
    return text.strip()
