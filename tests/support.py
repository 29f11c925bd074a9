"""Helpers shared by the scenario tests."""

from __future__ import annotations

from typing import Any

from threadline.core.types import Channel, InboundMessage, TurnOutcome
from threadline.product.services import Services


def say(services: Services, channel: Channel, sender: str, text: str, **extra: Any) -> TurnOutcome:
    """One customer message through the turn service."""
    return services.turns.handle(InboundMessage(channel=channel, sender=sender, text=text, **extra))
