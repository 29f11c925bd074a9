"""Twilio SMS and voice: request signatures, inbound webhook parameters, and TwiML replies.

Twilio signs each webhook with `X-Twilio-Signature`: base64(HMAC-SHA1(auth token, the full request URL followed
by every POST parameter's name and value, sorted by name)). The URL must be exactly the one Twilio called
(scheme, host, port, path and query), so a route behind a proxy has to rebuild the public URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict

from threadline.channels import LIMITS
from threadline.channels._common import clip, optional, required, split_to_fit
from threadline.core.errors import AuthenticationError, InvalidInputError, UsageError
from threadline.core.sms import sms_segments
from threadline.core.types import Channel, InboundMessage

SIGNATURE_HEADER = "X-Twilio-Signature"
SMS_LIMITS = LIMITS[Channel.SMS]
VOICE_LIMITS = LIMITS[Channel.VOICE]
MAX_MEDIA = 10  # Twilio attaches at most ten media items to an MMS
MAX_ID_CHARS = 256  # InboundMessage.provider_message_id

_E164 = re.compile(r"^\+[1-9]\d{7,14}$")  # 8 to 15 digits, as core's phone handles expect
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
_DEFAULT_PORTS = {"https": 443, "http": 80}

Params = Mapping[str, str] | Iterable[tuple[str, str]]
"""POST parameters: a mapping, or (name, value) pairs when a name repeats."""


# --- signatures ---------------------------------------------------------------------------------------------


def _pairs(params: Params) -> list[tuple[str, str]]:
    items = params.items() if isinstance(params, Mapping) else params
    return sorted((str(name), str(value)) for name, value in items)


def twilio_signature(auth_token: str, url: str, params: Params) -> str:
    """The `X-Twilio-Signature` Twilio sends for a request to `url` with these POST parameters."""
    payload = url + "".join(name + value for name, value in _pairs(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _url_variants(url: str) -> list[str]:
    """`url` as given, and with its default port added or removed: Twilio signs whichever form it called."""
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme)
    if default is None or parts.hostname is None:
        return [url]
    try:
        port = parts.port
    except ValueError:
        return [url]
    userinfo, at, host_port = parts.netloc.rpartition("@")
    host = host_port if port is None else host_port[: host_port.rfind(":")]
    prefix = userinfo + at
    if port is None:
        other = urlunsplit(parts._replace(netloc=f"{prefix}{host}:{default}"))
    elif port == default:
        other = urlunsplit(parts._replace(netloc=f"{prefix}{host}"))
    else:
        return [url]
    return [url, other]


def verify_twilio(auth_token: str, url: str, params: Params, signature: str | None) -> None:
    """Refuse a request whose `X-Twilio-Signature` is missing or was not made with `auth_token`
    (constant-time comparison; the URL is also tried with its default port added or removed)."""
    if not auth_token:
        raise UsageError("no Twilio auth token is configured, so Twilio requests cannot be verified")
    if not signature or not signature.strip():
        raise AuthenticationError(f"the {SIGNATURE_HEADER} header is missing")
    pairs = _pairs(params)
    given = signature.strip().encode()
    if not any(
        hmac.compare_digest(twilio_signature(auth_token, candidate, pairs).encode(), given)
        for candidate in _url_variants(url)
    ):
        raise AuthenticationError(f"the {SIGNATURE_HEADER} header does not match the request")


# --- inbound ------------------------------------------------------------------------------------------------


def _phone(params: Mapping[str, str], name: str) -> str:
    value = required(params, name)
    if not _E164.match(value):
        raise InvalidInputError(f"{name} is not an E.164 phone number: {value!r}")
    return value


class _Parsed(BaseModel):
    model_config = ConfigDict(frozen=True)


class Media(_Parsed):
    """A picture or file attached to an MMS."""

    url: str
    content_type: str | None = None


class SmsMessage(_Parsed):
    """An inbound text message."""

    message_sid: str
    sender: str
    to: str | None
    body: str
    media: tuple[Media, ...] = ()
    truncated: bool = False

    @property
    def has_text(self) -> bool:
        """Whether the message says anything (an MMS may carry only a picture)."""
        return bool(self.body.strip())

    def to_inbound(self, received_at: datetime | None = None) -> InboundMessage:
        """The message as the conversation service takes it."""
        metadata: dict[str, Any] = {"to": self.to, "provider": "twilio"}
        if self.media:
            metadata["media"] = [item.model_dump() for item in self.media]
        if self.truncated:
            metadata["truncated"] = True
        return InboundMessage(
            channel=Channel.SMS,
            sender=self.sender,
            text=self.body,
            provider_message_id=self.message_sid,
            metadata=metadata,
            received_at=received_at,
        )


def parse_sms(params: Mapping[str, str]) -> SmsMessage:
    """An inbound SMS webhook's parameters (MessageSid, From, To, Body, NumMedia, MediaUrlN) as a message."""
    message_sid = required(params, "MessageSid", max_length=MAX_ID_CHARS)
    sender = _phone(params, "From")
    if params.get("Body") is None:
        raise InvalidInputError("Body is missing")
    body, truncated = clip(str(params["Body"]).strip(), SMS_LIMITS.max_inbound_chars)
    raw_count = optional(params, "NumMedia") or "0"
    if not raw_count.isdigit() or int(raw_count) > MAX_MEDIA:
        raise InvalidInputError(f"NumMedia is not a number from 0 to {MAX_MEDIA}: {raw_count!r}")
    media = tuple(
        Media(url=required(params, f"MediaUrl{index}"), content_type=optional(params, f"MediaContentType{index}"))
        for index in range(int(raw_count))
    )
    return SmsMessage(
        message_sid=message_sid, sender=sender, to=optional(params, "To"), body=body, media=media, truncated=truncated
    )


class VoiceSpeech(_Parsed):
    """What a caller said in answer to a <Gather>."""

    call_sid: str
    sender: str
    to: str | None
    text: str
    confidence: float | None = None
    turn: str | None = None
    truncated: bool = False

    def to_inbound(self, received_at: datetime | None = None) -> InboundMessage:
        """The utterance as the conversation service takes it. Its provider message id is `CallSid:turn` when
        the route knows the turn (e.g. from the action URL), else None: a call's turns share one CallSid, so the
        CallSid alone would make every later turn look like a redelivery of the first."""
        metadata: dict[str, Any] = {"call_sid": self.call_sid, "to": self.to, "provider": "twilio"}
        if self.confidence is not None:
            metadata["confidence"] = self.confidence
        if self.truncated:
            metadata["truncated"] = True
        return InboundMessage(
            channel=Channel.VOICE,
            sender=self.sender,
            text=self.text,
            provider_message_id=f"{self.call_sid}:{self.turn}" if self.turn is not None else None,
            metadata=metadata,
            received_at=received_at,
        )


class VoiceNoSpeech(_Parsed):
    """A voice webhook without speech: the call's first request, or a <Gather> that heard nothing."""

    call_sid: str
    sender: str
    to: str | None
    turn: str | None = None


def parse_voice(params: Mapping[str, str], *, turn: str | None = None) -> VoiceSpeech | VoiceNoSpeech:
    """A voice webhook's parameters (CallSid, From, To, SpeechResult, Confidence) as speech, or as no speech when
    there is no SpeechResult. `turn` is the route's own counter for this call, if it keeps one."""
    call_sid = required(params, "CallSid", max_length=MAX_ID_CHARS - 12)
    sender = _phone(params, "From")
    to = optional(params, "To")
    if turn is not None and (not turn or len(turn) > 10):
        raise InvalidInputError(f"the turn must be 1 to 10 characters: {turn!r}")
    speech = optional(params, "SpeechResult")
    if speech is None:
        return VoiceNoSpeech(call_sid=call_sid, sender=sender, to=to, turn=turn)
    confidence: float | None = None
    raw_confidence = optional(params, "Confidence")
    if raw_confidence is not None:
        try:
            confidence = float(raw_confidence)
        except ValueError:
            confidence = math.nan
        if not 0.0 <= confidence <= 1.0:
            raise InvalidInputError(f"Confidence is not a number from 0 to 1: {raw_confidence!r}")
    text, truncated = clip(speech, VOICE_LIMITS.max_inbound_chars)
    return VoiceSpeech(
        call_sid=call_sid, sender=sender, to=to, text=text, confidence=confidence, turn=turn, truncated=truncated
    )


# --- SMS replies --------------------------------------------------------------------------------------------


def split_sms(
    text: str,
    max_segments: int = SMS_LIMITS.max_reply_segments or 2,
    *,
    max_messages: int = SMS_LIMITS.max_reply_messages,
) -> list[str]:
    """`text` as at most `max_messages` SMS bodies of at most `max_segments` segments each, split at sentence
    (then word) boundaries; when it needs more, the last body is shortened and ends with "...". Empty → []."""
    if max_segments < 1:
        raise UsageError("max_segments must be at least 1")
    return split_to_fit(text, lambda part: sms_segments(part) <= max_segments, max_parts=max_messages)


def _xml_text(text: str) -> str:
    """`text` without the characters XML 1.0 cannot carry at all (escaping `&<>` is the serializer's job)."""
    return _XML_INVALID.sub("", text)


def _document(root: ET.Element) -> str:
    return _XML_DECLARATION + ET.tostring(root, encoding="unicode")


def sms_twiml(text_parts: Sequence[str]) -> str:
    """A messaging TwiML response sending each non-blank part as its own <Message>; `<Response />` for none."""
    root = ET.Element("Response")
    for part in text_parts:
        if part.strip():
            ET.SubElement(root, "Message").text = _xml_text(part.strip())
    return _document(root)


# --- voice replies ------------------------------------------------------------------------------------------


def _fits_say(text: str) -> bool:
    return len(text.encode()) <= (VOICE_LIMITS.max_reply_chars or 4000)


def voice_twiml(text: str, action_url: str, *, language: str = "en-US", hangup: bool = False) -> str:
    """A voice TwiML response that says `text` (cut at a sentence to <Say>'s 4 KB limit) and then either listens
    for the caller's answer with a speech <Gather> posting to `action_url` (which is also called when the caller
    says nothing, so the route sees a no-speech turn) or, with `hangup`, ends the call."""
    if not hangup and not action_url.strip():
        raise UsageError("a voice reply that listens needs the action URL Twilio posts the caller's answer to")
    parts = split_to_fit(_xml_text(text), _fits_say, max_parts=1)
    root = ET.Element("Response")
    if hangup:
        if parts:
            ET.SubElement(root, "Say", {"language": language}).text = parts[0]
        ET.SubElement(root, "Hangup")
        return _document(root)
    gather = ET.SubElement(
        root,
        "Gather",
        {
            "input": "speech",
            "action": action_url.strip(),
            "method": "POST",
            "speechTimeout": "auto",
            "language": language,
            "actionOnEmptyResult": "true",
        },
    )
    if parts:
        ET.SubElement(gather, "Say", {"language": language}).text = parts[0]
    return _document(root)
