"""The support graph's state: a bounded window of messages plus a running summary and a few typed slots."""

from __future__ import annotations

from typing import Annotated, Any, NotRequired, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages


def latest(_: Any, new: Any) -> Any:
    """Reducer for slots tools write: several calls in one step (a model may emit them) leave the last value."""
    return new


class SupportInput(TypedDict):
    """What a turn brings in: the customer's new message(s)."""

    messages: Annotated[list[AnyMessage], add_messages]


class SupportState(TypedDict):
    """One customer's thread, checkpointed per customer across channels."""

    messages: Annotated[list[AnyMessage], add_messages]
    """Recent window of the conversation; older messages are folded into `summary`."""
    summary: NotRequired[str]
    """Running summary of everything older than the window."""
    identity: NotRequired[Annotated[dict[str, str], latest]]
    """Whom this turn acts for (`customer_id`, `level`): set from the runtime context, raised only by verification."""
    brief: NotRequired[str]
    """Profile, episode and open-order notes loaded for the model at turn start."""
    focus_order_id: NotRequired[Annotated[str | None, latest]]
    """The order the conversation is about, so "any news?" needs no number."""
    owner: NotRequired[str]
    """`ai`, `queue` or `human`: who owns the case now."""
    handoff_id: NotRequired[str | None]
    """The open handoff, when the case left the AI."""
    escalation: NotRequired[Annotated[dict[str, Any] | None, latest]]
    """A pending request to hand off (from the model's tool call or the guard)."""
    verification_failures: NotRequired[Annotated[int, latest]]
    """Consecutive failed verification attempts."""
    not_understood: NotRequired[int]
    """Consecutive turns the model could not understand."""
    failed_answers: NotRequired[int]
    """Consecutive turns whose answer was unusable (no knowledge answer, the same question asked again)."""
    out_of_scope: NotRequired[int]
    """Consecutive out-of-scope turns."""
    sentiment: NotRequired[list[float]]
    """Compound sentiment of the customer's recent turns (bounded, the latest last)."""
    steps: NotRequired[int]
    """Model steps taken in the current turn (bounded)."""
    notice: NotRequired[dict[str, str] | None]
    """A proactive notice to mention in this turn's reply (`citation`, `text`)."""
    reply: NotRequired[str | None]
    desk_turn: NotRequired[bool]
    """This turn arrived while people own the case: the AI did not run."""
    queue_acked_at: NotRequired[str | None]
    """When a customer waiting for a person was last told their message reached the team (ISO time)."""
    """The rendered reply of the last turn, or None when the AI stayed silent."""
    proposal: NotRequired[Annotated[dict[str, Any] | None, latest]]
    """An order action a tool proposed, waiting for the customer's yes in their next message (`graphs/confirm.py`):
    id (the idempotency key), tool, action, summary, next steps, customer, when."""
    turn_tools: NotRequired[list[dict[str, Any]]]
    """Tools called in the last turn, with their arguments."""
