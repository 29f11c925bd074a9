"""Channel adapters: verify and translate inbound provider payloads, render outbound replies.

A pure library: each module checks a provider's signature, parses its webhook payload into a typed result that
becomes a `core.types.InboundMessage`, and renders a reply in the provider's response format. No routes, no
database. `LIMITS` holds what each channel carries, as data.
"""

from __future__ import annotations

from dataclasses import dataclass

from threadline.core.types import Channel


@dataclass(frozen=True)
class ChannelLimits:
    """What one channel carries.

    Inbound text longer than `max_inbound_chars` is cut to it (and flagged `truncated`) rather than refused:
    refusing a webhook makes the provider retry a message that can never succeed.
    """

    max_inbound_chars: int
    max_reply_chars: int | None = None
    """Per outbound message; None when the provider sets no practical limit."""
    max_reply_segments: int | None = None
    """SMS only: network segments per outbound message."""
    max_reply_messages: int = 1
    """How many provider messages one reply may be split into; the last is shortened when more would be needed."""


LIMITS: dict[Channel, ChannelLimits] = {
    Channel.WEB: ChannelLimits(max_inbound_chars=4000),
    # Twilio delivers at most 1,600 characters of Body; each reply message stays within two segments.
    Channel.SMS: ChannelLimits(max_inbound_chars=1600, max_reply_segments=2, max_reply_messages=3),
    # A SpeechResult is one utterance; <Say> text is limited to 4 KB (counted here in UTF-8 bytes).
    Channel.VOICE: ChannelLimits(max_inbound_chars=4000, max_reply_chars=4000),
    Channel.EMAIL: ChannelLimits(max_inbound_chars=4000),
    # Messenger's Send API refuses text over 2,000 characters.
    Channel.SOCIAL: ChannelLimits(max_inbound_chars=4000, max_reply_chars=2000, max_reply_messages=3),
    Channel.STORE: ChannelLimits(max_inbound_chars=4000),
    # WhatsApp Cloud API: a text message body is at most 4,096 characters.
    Channel.WHATSAPP: ChannelLimits(max_inbound_chars=4000, max_reply_chars=4096, max_reply_messages=2),
}
