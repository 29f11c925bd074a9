"""What the runner needs from a running product, and what one turn left behind.

The runner never builds the product itself (evals never reach the entry points): whoever calls it passes a
`DriverFactory` that opens a fresh product (a fresh demo database) per scenario run, and closes it afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class ToolResult:
    """One tool call of a turn with the text the tool returned."""

    name: str
    args: dict[str, Any]
    content: str


@dataclass
class TurnRecord:
    """One customer message and everything it led to."""

    channel: str
    sender: str
    text: str
    at: datetime
    reply: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    results: list[ToolResult] = field(default_factory=list)
    owner: str = "ai"
    customer_id: str | None = None
    handoff_id: str | None = None
    packet: dict[str, Any] | None = None
    error: str | None = None
    label: str | None = None

    def as_json(self) -> dict[str, Any]:
        """A plain-JSON view for reports."""
        return {
            "channel": self.channel,
            "sender": self.sender,
            "text": self.text if len(self.text) <= 2000 else self.text[:2000] + f"… ({len(self.text)} characters)",
            "at": self.at.isoformat(),
            "reply": self.reply,
            "tools": [{"name": r.name, "args": r.args, "result": r.content[:1500]} for r in self.results] or self.tools,
            "owner": self.owner,
            "handoff_id": self.handoff_id,
            "packet": self.packet,
            "error": self.error,
            "label": self.label,
        }


@dataclass(frozen=True)
class CustomerFacts:
    """What identifies one customer's data: for checking that nobody else sees it."""

    user_id: str
    email: str
    name: str
    zip: str
    order_ids: frozenset[str]
    tracking_ids: frozenset[str]
    addresses: frozenset[str]


class Driver(Protocol):
    """One open product over a fresh database."""

    def turn(self, channel: str, sender: str, text: str, *, vouched: bool, at: datetime) -> TurnRecord:
        """Send one customer message; a refused message comes back with `error` set to its code."""
        ...

    def publish(self, article: dict[str, Any]) -> None:
        """Publish a knowledge article (`evals.suite.Article` fields) and bring the index up to date."""
        ...

    def annotate_order(self, order_id: str, note: str) -> None:
        """Write a note on an order in the order system."""
        ...

    def order_status(self, order_id: str) -> tuple[str, int] | None:
        """An order's status and item count in the order system, or None if there is no such order."""
        ...

    def customers(self) -> dict[str, CustomerFacts]:
        """Every demo customer's identifying facts, by user id."""
        ...

    def close(self) -> None:
        """Release the product's resources."""
        ...


DriverFactory = Callable[[], Driver]
