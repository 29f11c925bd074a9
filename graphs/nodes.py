"""The support graph's nodes; each returns a partial state update and never mutates state."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, RemoveMessage, SystemMessage, ToolMessage
from langgraph.runtime import Runtime

from threadline.agents import language, replies
from threadline.agents.concerns import ConcernDetector
from threadline.agents.prompts import system_prompt
from threadline.agents.sentiment import sentiment
from threadline.agents.slots import extract_slots
from threadline.agents.summarizer import extend_summary, summary_line, turn_gist
from threadline.core.catalog_search import catalog_type_names
from threadline.core.context import TurnContext
from threadline.core.disclosure import Disclosure, may_see
from threadline.core.handoff import StallPoint
from threadline.core.hours import BusinessHours
from threadline.core.standing import LIFETIME_ORDERS, Standing, standing
from threadline.core.types import (
    Channel,
    Customer,
    CustomerId,
    Episode,
    EpisodeStatus,
    EventType,
    HandoffId,
    Order,
    OrderId,
    VerificationLevel,
)
from threadline.graphs import policy
from threadline.graphs.confirm import confirm_proposal
from threadline.graphs.handoff import build_packet, cited_articles, last_intent, packet_actions
from threadline.graphs.memories import remember_turn
from threadline.graphs.notices import citation, notice_text, pick_notice
from threadline.graphs.policy import SENTIMENT_HISTORY, Thresholds, turn_messages
from threadline.graphs.render import DEFAULT_SIGNATURE, render
from threadline.graphs.state import SupportState
from threadline.tools.results import ActionProposed, ToolSkipped, read_result, result_status
from threadline.tools.runtime import identity_from

QUEUE_ACK_INTERVAL = timedelta(minutes=30)
_JUST_THANKS = re.compile(
    r"^\W*(?:ok(?:ay)?|k|thanks?|thank you|ty|thx|cool|great|perfect|got it|sounds good)\W*$", re.I
)
FALLBACK = "Sorry, I couldn't finish that. Could you rephrase, or ask for a person and I'll connect you?"
EPISODE_IDLE = timedelta(days=3)


def load_context(state: SupportState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
    """Start a turn: identity from the context, ownership from the database, a brief for the model, and the
    customer's answer to an order action proposed last turn."""
    ctx = runtime.context
    services = ctx.services
    handoff = services.handoffs.open_for_customer(ctx.customer_id)
    brief = [f"Verification level: {ctx.verification.value}"]
    customer = ctx.customer(ctx.customer_id)
    orders: list[Order] = []
    if customer and not customer.provisional and may_see(ctx.verification, Disclosure.OWN_ORDER_STATUS):
        brief.append(f"Name: {customer.display_name}")
        orders = services.orders.orders_for_customer(customer.id, limit=10)
        if orders:
            brief.append("Recent orders: " + ", ".join(f"{o.id} ({o.status.value})" for o in orders[:5]))
    question = next((m.text for m in reversed(state["messages"]) if isinstance(m, HumanMessage)), "")
    bought = {item.product_id for order in orders for item in order.items}
    notice = pick_notice(ctx, question, bought) if handoff is None else None
    if notice is not None:
        brief.append(f"Notice to mention: {notice_text(notice)}")
    said = "\n".join(m.text for m in turn_messages(state["messages"]) if isinstance(m, HumanMessage))
    scores = [*state.get("sentiment", []), sentiment(said)][-SENTIMENT_HISTORY:]
    identity = {"customer_id": ctx.customer_id, "level": ctx.verification.value}
    # An order action proposed last turn is answered here, in code, before any model step (graphs/confirm.py).
    answered = confirm_proposal({**state, "identity": identity}, runtime) if handoff is None else {}
    return {
        **answered,
        "sentiment": scores,
        "identity": identity,
        "brief": "\n".join(brief),
        "notice": {"citation": citation(notice), "text": notice_text(notice)} if notice else None,
        "owner": handoff.owner if handoff else "ai",
        "handoff_id": handoff.id if handoff else None,
        **({"proposal": None} if handoff is not None else {}),
        "escalation": None,
        "steps": 0,
        "reply": None,
        "turn_tools": [],
        "desk_turn": False,
    }


def make_agent(model: BaseChatModel, guard: Any | None = None) -> Any:
    """The node that asks the (tool-bound) chat model for the next step; with `guard` (`make_guard`), the
    escalation policy is evaluated on the step's result in the same graph step (each graph step costs LangGraph's
    machinery about half a millisecond)."""

    def agent(state: SupportState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        prompt = system_prompt(
            channel=runtime.context.channel.value,
            brief=state.get("brief", ""),
            summary=state.get("summary"),
            focus_order_id=state.get("focus_order_id"),
            products=catalog_type_names(runtime.context.services.orders),
            language=language.NAMES.get(language.customer_language(policy.customer_turns(state["messages"]))),
        )
        reply = model.invoke([SystemMessage(prompt), *state["messages"]])
        update: dict[str, Any] = {"messages": [reply], "steps": state.get("steps", 0) + 1}
        if isinstance(reply, AIMessage) and not reply.tool_calls:
            understood = (reply.additional_kwargs.get("threadline") or {}).get("understood", True)
            update["not_understood"] = 0 if understood else state.get("not_understood", 0) + 1
        if guard is None:
            return update
        # The guard reads the state as the step leaves it: the reply appended, the counters updated.
        stepped = {**state, **update, "messages": [*state["messages"], reply]}
        return {**update, **guard(stepped, runtime)}

    return agent


def _own_order_statuses(state: SupportState, ctx: TurnContext) -> dict[str, str]:
    """Statuses of the customer's own orders named in a request to change an order (read for the policy, never
    shown: a refusal to act reveals nothing)."""
    texts = [text for text, _ in policy.requested_actions(policy.turn_texts(state["messages"]))]
    if not texts:
        return {}
    customer_id, _ = identity_from(state, ctx)
    statuses = {}
    for order_id in {o for text in texts for o in extract_slots(text).order_ids}:
        order = ctx.services.orders.get_order(OrderId(order_id))
        if order is not None and order.customer_id == customer_id:
            statuses[order_id] = order.status.value
    return statuses


def customer_standing(state: SupportState, ctx: TurnContext, thresholds: Thresholds) -> Standing | None:
    """The turn's customer's lifetime value and tier from the order system (None for a provisional customer)."""
    customer_id, _ = identity_from(state, ctx)
    customer = ctx.customer(customer_id)
    if customer is None or customer.provisional:
        return None
    orders = ctx.services.orders.orders_for_customer(customer_id, limit=LIFETIME_ORDERS)
    return standing(orders, thresholds.high_value_spend)


def make_guard(thresholds: Thresholds, concerns: ConcernDetector | None = None) -> Any:
    """The node that evaluates the escalation policy after a model or tool step; `concerns` recognises sensitive
    topics by meaning in the customer's words this turn."""

    def guard(state: SupportState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        messages = state["messages"]
        update: dict[str, Any] = {}
        failed, out_of_scope = state.get("failed_answers", 0), state.get("out_of_scope", 0)
        last = messages[-1] if messages else None
        if isinstance(last, AIMessage) and not last.tool_calls:  # the turn's final reply: count its signals
            signals = policy.turn_signals(messages)
            # The same question again means the previous answer did not help either.
            failed = (max(failed, 1) if signals.repeated else failed) + 1 if signals.unusable else 0
            out_of_scope = out_of_scope + 1 if signals.out_of_scope else 0
            update = {"failed_answers": failed, "out_of_scope": out_of_scope}
        spend = None
        if policy.complaint_texts(messages):
            found_standing = customer_standing(state, runtime.context, thresholds)
            spend = found_standing.lifetime_value if found_standing else None
        found = policy.evaluate(
            messages,
            requested=state.get("escalation"),
            not_understood=state.get("not_understood", 0),
            verification_failures=state.get("verification_failures", 0),
            thresholds=thresholds,
            sentiment=state.get("sentiment", []),
            failed_answers=failed,
            out_of_scope=out_of_scope,
            lifetime_spend=spend,
            order_statuses=_own_order_statuses(state, runtime.context),
            sensed=_sensed(concerns, messages),
        )
        if found is None:
            return update
        escalation = {"stall": found.stall.value, "evidence": found.evidence, "urgency": found.urgency}
        extra = {
            key: value
            for key, value in (("detail", found.detail), ("tell", found.tell), ("topic", found.topic))
            if value
        }
        return {**update, "escalation": escalation | extra}

    return guard


def _sensed(concerns: ConcernDetector | None, messages: list[AnyMessage]) -> tuple[str, str] | None:
    """The sensitive topic the customer's words this turn mean, and the sentence that says it."""
    texts = policy.turn_texts(messages)
    found = concerns.detect("\n".join(texts)) if concerns is not None and texts else None
    return (found.topic, found.sentence) if found else None


def expected_wait(now: datetime, priority: str, due: datetime | None, hours: BusinessHours | None) -> str:
    """The wait a customer can expect for a person, in words: the queue's target while the team is in, else when
    it opens."""
    if hours is not None and not hours.is_open(now):
        opening = hours.next_opening(now)
        local = hours.local(now)
        days = (opening.date() - local.date()).days
        day = "today" if days == 0 else "tomorrow" if days == 1 else f"on {opening.strftime('%A')}"
        at = f"{opening.hour}:{opening.minute:02d}"
        return f"Our team is away right now and will pick this up when we open {day} at {at}"
    left = (due - now).total_seconds() / 60 if due is not None else None
    if left is None or left <= 0:
        return "They'll be with you as soon as they can"
    if left <= 50:
        return f"They usually reply within {max(5, round(left / 5) * 5):.0f} minutes"
    if left <= 70:
        return "They usually reply within the hour"
    return f"They usually reply within {round(left / 60):.0f} hours"


def make_acknowledge(hours: BusinessHours | None, signature: str, interval: timedelta = QUEUE_ACK_INTERVAL) -> Any:
    """The node for a message that arrives while people own the case: the AI does not answer it; while it waits in
    the queue the customer hears once per `interval` that their message reached the team (a plain "thanks" needs no
    note). It marks the turn as the desk's (`desk_turn`): its messages go to the agent."""

    def acknowledge(state: SupportState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        ctx = runtime.context
        texts = policy.turn_texts(state["messages"])
        last = state.get("queue_acked_at")
        recent = last is not None and ctx.now - datetime.fromisoformat(last) < interval
        if state.get("owner") != "queue" or recent or all(_JUST_THANKS.match(t) for t in texts):
            return {"desk_turn": True}
        handoff_id = state.get("handoff_id")
        handoff = ctx.services.handoffs.get(HandoffId(handoff_id)) if handoff_id else None
        priority = handoff.priority if handoff is not None else "normal"
        wait = expected_wait(ctx.now, priority, handoff.sla_due_at if handoff else None, hours)
        lang = language.customer_language(policy.customer_turns(state["messages"]))
        text = language.text(lang, "queued") or replies.queued_ack(ctx.channel.value, wait)
        words = language.GREETINGS.get(lang)
        reply = render(text, ctx.channel, signature=signature, email_words=words)
        return {"reply": reply, "queue_acked_at": ctx.now.isoformat(), "desk_turn": True}

    return acknowledge


def make_handoff(thresholds: Thresholds, hours: BusinessHours | None = None) -> Any:
    """The node that builds the packet, queues the case and steps back: from now on a human owns it."""

    def handoff(state: SupportState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        ctx, services = runtime.context, runtime.context.services
        customer_id, level = identity_from(state, ctx)
        customer = ctx.customer(customer_id)
        assert customer is not None
        request = state.get("escalation") or {}
        messages = list(state["messages"])
        pending = _unanswered_calls(messages)
        episode = services.episodes.current(customer_id)
        packet = build_packet(
            messages=[*messages, *pending],
            customer=customer,
            identities=services.customers.identities(customer_id),
            level=level.value,
            channel=ctx.channel.value,
            episode=episode,
            stall=StallPoint(request.get("stall", StallPoint.MODEL_REQUESTED.value)),
            evidence=list(request.get("evidence") or []),
            urgency=request.get("urgency"),
            intent=last_intent(messages),
            now=ctx.now,
            standing=customer_standing(state, ctx, thresholds),
            sentiment=state.get("sentiment", []),
            detail=request.get("detail"),
            focus_order_id=state.get("focus_order_id"),
            order_actions=packet_actions(messages, state.get("proposal"), services.orders.actions(customer_id, 10)),
        )
        created = services.handoffs.create(
            customer_id,
            packet=packet.model_dump(mode="json"),
            packet_version=packet.version,
            priority=packet.priority,
            episode_id=episode.id if episode else None,
            sla_due_at=packet.sla_due_at,
        )
        services.events.append(
            EventType.HANDOFF_CREATED,
            customer_id=customer_id,
            channel=ctx.channel.value,
            payload={"handoff_id": created.id, "stall": packet.stall.type.value, "intent": last_intent(messages)},
            occurred_at=ctx.now,
        )
        wait = expected_wait(ctx.now, packet.priority, packet.sla_due_at, hours)
        unheld = any("a team member who reads" in str(e) for e in request.get("evidence") or [])
        key = "handoff_language" if unheld else "handoff"
        told = language.text(packet.language or "en", key) or replies.handoff_notice(
            packet.stall.type.value, request.get("topic"), ctx.channel.value, wait, request.get("tell")
        )
        notice = AIMessage(content=told, additional_kwargs={"threadline": {"handoff": created.id}})
        return {
            "messages": [*pending, notice],
            "owner": "queue",
            "proposal": None,  # a person owns the case now: nothing proposed before runs on a later "ok"
            "handoff_id": created.id,
            "failed_answers": 0,
            "out_of_scope": 0,
        }

    return handoff


def _unanswered_calls(messages: list[AnyMessage]) -> list[ToolMessage]:
    """Tool messages closing calls the handoff pre-empted, so the transcript stays well-formed."""
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    last = messages[-1] if messages else None
    if not isinstance(last, AIMessage):
        return []
    return [
        ToolMessage(content=ToolSkipped().content(), tool_call_id=c["id"] or "", name=c["name"])
        for c in last.tool_calls
        if c["id"] not in answered
    ]


def make_respond(signature: str = DEFAULT_SIGNATURE, remember: Any | None = None) -> Any:
    """The node that renders the turn's answer for the channel it goes back on; emails are signed `signature`.
    With `remember` (`make_remember`), the turn ends in the same graph step: neither reads what the other writes."""

    def respond(state: SupportState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        rendered = _respond(state, runtime, signature)
        return rendered if remember is None else {**rendered, **remember(state, runtime)}

    return respond


def _respond(state: SupportState, runtime: Runtime[TurnContext], signature: str) -> dict[str, Any]:
    ctx = runtime.context
    turn = turn_messages(state["messages"])
    last = state["messages"][-1]
    text = last.text if isinstance(last, AIMessage) and not last.tool_calls and last.text.strip() else FALLBACK
    proposal = state.get("proposal")
    if proposal and _proposed_in(turn) and proposal["summary"] not in text:
        # Whatever the model wrote, a turn that proposed an order action shows the summary and asks for a yes:
        # the customer's next "ok" confirms only what they were shown.
        text = replies.proposal_question(proposal["summary"], ctx.channel.value)
    customer_id, level = identity_from(state, ctx)
    name = None
    if ctx.channel is Channel.EMAIL and level.at_least(VerificationLevel.VERIFIED):
        customer = ctx.customer(customer_id)
        name = customer.first_name if customer and not customer.provisional else None
    tools = [
        {"name": c["name"], "args": dict(c["args"])} for m in turn if isinstance(m, AIMessage) for c in m.tool_calls
    ]
    notice = (state.get("notice") or {}).get("text") if state.get("owner", "ai") == "ai" else None
    words = language.GREETINGS.get(language.customer_language(policy.customer_turns(state["messages"])))
    reply = render(text, ctx.channel, name=name, notice=notice, signature=signature, email_words=words)
    return {"reply": reply, "turn_tools": tools}


def _proposed_in(turn: list[AnyMessage]) -> bool:
    return any(isinstance(m, ToolMessage) and isinstance(read_result(m), ActionProposed) for m in turn)


def make_remember(window: int) -> Any:
    """The node that bounds the state, writes the episode and appends analytics."""

    def remember(state: SupportState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        ctx = runtime.context
        customer_id, level = identity_from(state, ctx)
        turn = turn_messages(state["messages"])
        line = summary_line(ctx.now, ctx.channel.value, turn_gist(turn))
        customer = ctx.customer(customer_id)
        # Someone merely claiming a known customer's handle does not write into that customer's episodes.
        if customer is None or customer.provisional or level.at_least(VerificationLevel.VERIFIED):
            episode = _record_episode(state, ctx, customer_id, turn, line)
            if runtime.store is not None:
                private = _profile_terms(customer) if customer else []
                remember_turn(runtime.store, customer_id, episode, turn, ctx.channel.value, ctx.now, private)
        _log_turn(state, ctx, customer_id, turn)
        return {
            "messages": [RemoveMessage(id=m.id) for m in _overflow(state["messages"], window) if m.id],
            "summary": extend_summary(state.get("summary"), line),
            "steps": 0,
            "escalation": None,
        }

    return remember


def _log_turn(state: SupportState, ctx: TurnContext, customer_id: CustomerId, turn: list[AnyMessage]) -> None:
    """Append the turn's analytics events (`core.types.EventType`) on the turn clock."""
    owner, intent, messages = state.get("owner", "ai"), last_intent(turn), state["messages"]
    calls = [c for m in turn if isinstance(m, AIMessage) for c in m.tool_calls]
    results = {m.tool_call_id: result_status(m) for m in turn if isinstance(m, ToolMessage)}
    cited = [{"article_id": a, "version": int(v)} for a, _, v in (c.rpartition("@v") for c in cited_articles(turn))]
    gaps = policy.missed_questions(messages)
    missed = policy.knowledge_missed(messages)
    last = messages[-1] if messages else None
    replied = isinstance(last, AIMessage) and not last.tool_calls and bool(last.text.strip())
    understood = not isinstance(last, AIMessage) or (last.additional_kwargs.get("threadline") or {}).get(
        "understood", True
    )
    # Answered: a reply that was understood and rests on a relevant answer or a tool that worked; "I didn't
    # understand" and "I don't know" are not answers.
    answered = owner == "ai" and replied and bool(understood) and not policy.turn_signals(messages).unusable
    events, channel = ctx.services.events, ctx.channel.value
    for query in gaps:
        gap = {"query": query[:200], "intent": intent}
        events.append(
            EventType.KNOWLEDGE_GAP, customer_id=customer_id, channel=channel, payload=gap, occurred_at=ctx.now
        )
    payload: dict[str, Any] = {"tools": [c["name"] for c in calls], "owner": owner, "intent": intent}
    payload["tool_results"] = [{"name": c["name"], "status": results.get(c["id"] or "")} for c in calls]
    payload |= {"answered": answered, "knowledge_missed": missed, "citations": cited}
    payload["confirmed"] = policy.customer_confirmed(messages)
    payload["handoff_id"] = state.get("handoff_id")
    events.append(EventType.TURN, customer_id=customer_id, channel=channel, payload=payload, occurred_at=ctx.now)


def _profile_terms(customer: Customer) -> list[str]:
    """What identifies the customer in free text: name, email, street, city, zip."""
    address = customer.address or {}
    fields = [customer.first_name, customer.last_name, customer.email, customer.zip]
    fields += [address.get(k) for k in ("address1", "address2", "city", "zip")]
    return [str(f) for f in fields if f]


def _record_episode(
    state: SupportState, ctx: TurnContext, customer_id: CustomerId, turn: list[AnyMessage], line: str
) -> Episode:
    """Add the turn to the customer's current episode (a new one after a few idle days)."""
    episodes = ctx.services.episodes
    episode = episodes.current(customer_id)
    if episode is None or ctx.now - episode.updated_at > EPISODE_IDLE:
        episode = episodes.open(customer_id, ctx.channel, topic=state.get("focus_order_id"))
    shown = (state.get("notice") or {}).get("citation") if state.get("owner", "ai") == "ai" else None
    return episodes.update(
        episode.id,
        citations=cited_articles(turn),
        notices=[shown] if shown else [],
        channel=ctx.channel,
        summary=extend_summary(episode.summary, line),
        topic=state.get("focus_order_id") or episode.topic or last_intent(turn),
        outcome=line.split(": ", 1)[1],
        status=EpisodeStatus.ESCALATED if state.get("owner") == "queue" else None,
    )


def _overflow(messages: list[AnyMessage], window: int) -> list[AnyMessage]:
    """Messages older than the window, cut at a customer message so no tool result loses its call; the
    current turn is always kept whole, however long."""
    if len(messages) <= window:
        return []
    current = len(messages) - len(turn_messages(messages))
    cut = len(messages) - window
    while cut < current and not isinstance(messages[cut], HumanMessage):
        cut += 1
    return messages[: min(cut, current)]
