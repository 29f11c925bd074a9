"""Helpers shared by the scenario tests."""

from __future__ import annotations

from typing import Any

from threadline.api.services import Services
from threadline.core.types import Channel, InboundMessage, TurnOutcome


def say(services: Services, channel: Channel, sender: str, text: str, **extra: Any) -> TurnOutcome:
    """One customer message through the turn service."""
    return services.conversations.handle(InboundMessage(channel=channel, sender=sender, text=text, **extra))
