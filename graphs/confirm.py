"""The customer's explicit yes, enforced in code.

An order-action tool only proposes (`tools/order_actions.py`). At the start of the next turn this node reads the
customer's own new message: a plain yes runs the proposed action through the order system, keyed by the
proposal so that a redelivered message, a retried turn or a crash between the write and the reply never runs it
twice; a no drops it; anything else (a new topic) or a proposal older than `PROPOSAL_TTL` drops it unrun. What
happened is recorded in the conversation as a `confirm_order_action` call and its result, which the model
(offline or hosted) reports; the model cannot call that name itself, and nothing it says can confirm.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.runtime import Runtime
from pydantic import TypeAdapter

from threadline.agents.intents import explicit_answer
from threadline.core import faults
from threadline.core.context import TurnContext
from threadline.core.order_actions import OrderAction
from threadline.core.tool_names import CONFIRM_ORDER_ACTION
from threadline.core.types import CustomerId, VerificationLevel
from threadline.graphs.policy import turn_messages
from threadline.graphs.state import SupportState
from threadline.tools.results import ActionDeclined, ActionDone, ActionRefused, Shape
from threadline.tools.runtime import identity_from

_ACTION: TypeAdapter[Any] = TypeAdapter(OrderAction)
PROPOSAL_TTL = timedelta(minutes=30)
"""How long a proposal waits for the customer's yes."""
STALE = (
    "I didn't make that change: the request has expired or the conversation moved on. If you'd still like it, "
    "just ask again and I'll set it up."
)


def _answer(state: SupportState) -> tuple[str | None, int | None]:
    """The customer's yes or no this turn (every message of the turn agreeing), and the id of the message that
    said it."""
    said = [m for m in turn_messages(state["messages"]) if isinstance(m, HumanMessage)]
    answers = {explicit_answer(m.text) for m in said}
    if len(answers) != 1:
        return None, None
    message_id = str(said[-1].id or "")
    return answers.pop(), int(message_id[4:]) if message_id.startswith("msg-") else None


def confirm_proposal(state: SupportState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
    """Run, drop or expire the proposal waiting for this turn's answer."""
    proposal = state.get("proposal")
    if not proposal:
        return {}
    ctx = runtime.context
    answer, message_id = _answer(state)
    if answer is not None and _before_the_question(proposal, message_id, ctx):
        return {}  # sent while the proposal was being made: the customer has not seen it yet; it still waits
    if answer is None:
        return {"proposal": None}  # the customer moved on: nothing runs
    result: Shape
    if answer == "no":
        result = ActionDeclined(summary=proposal["summary"])
    elif not _still_valid(proposal, state, ctx):
        result = ActionRefused(message=STALE)
    else:
        action = _ACTION.validate_python(proposal["action"])
        record = ctx.services.orders.apply(
            action,
            customer_id=CustomerId(proposal["customer_id"]),
            idempotency_key=proposal["id"],
            actor="customer",
            channel=ctx.channel.value,
            confirming_message_id=message_id,
        )
        faults.reached("after_order_write")  # the order changed; the reply does not exist yet

        if record.outcome == "done":
            result = ActionDone(
                summary=proposal.get("done") or proposal["summary"], next_steps=proposal.get("next_steps", "")
            )
        else:  # the order changed since the proposal (shipped meanwhile, paid differently)
            result = ActionRefused(message=record.refusal or STALE)
    call_id = f"confirm-{proposal['id']}"
    call = AIMessage(content="", tool_calls=[{"name": CONFIRM_ORDER_ACTION, "args": {"answer": answer}, "id": call_id}])
    done = ToolMessage(
        content=result.content(), artifact=result.payload(), name=CONFIRM_ORDER_ACTION, tool_call_id=call_id
    )
    return {"messages": [call, done], "proposal": None}


def _before_the_question(proposal: dict[str, Any], message_id: int | None, ctx: TurnContext) -> bool:
    """Whether the answering message reached the server before the proposal existed ("cancel it" then "ok" a
    second later: the ok cannot be a yes to a summary the customer never saw)."""
    wall = proposal.get("proposed_wall")
    if wall is None or message_id is None:
        return False
    logged = ctx.services.messages.get(message_id)
    accepted = logged.accepted_at if logged is not None else None
    return accepted is not None and accepted <= datetime.fromisoformat(wall)


def _still_valid(proposal: dict[str, Any], state: SupportState, ctx: TurnContext) -> bool:
    """The same customer, still verified (signed in, for an address), within the proposal's lifetime."""
    who = identity_from(state, ctx)
    needed = VerificationLevel.STRONG if proposal.get("strong") else VerificationLevel.VERIFIED
    proposed_at = datetime.fromisoformat(proposal["proposed_at"])
    return (
        who.customer_id == proposal["customer_id"]
        and who.level.at_least(needed)
        and ctx.now - proposed_at <= PROPOSAL_TTL
    )
