"""The support metrics over a set of conversations. Every rate is a share between 0 and 1 (None when its
denominator is zero); README's "Analytics" section defines each one.

- involvement: conversations the AI took part in / conversations
- outcomes: each AI conversation's one outcome (`conversations.Outcome`): handed off, no useful answer, reopened,
  confirmed or assumed resolution
- containment: AI conversations handled by the AI alone (nothing handed off, at least one useful answer) / AI
  conversations
- AI resolution: contained AI conversations the customer did not reopen within the reopen window (confirmed +
  assumed) / AI conversations
- conversation resolution: conversations resolved (by the AI, or by a person who resolved its handoff) and not
  reopened within the reopen window / conversations
- first-contact resolution: cases (conversations chained across channels by the first-contact window) made of a
  single resolved conversation / cases starting in the selection
- escalation rate: AI conversations handed off / AI conversations; reasons: handoffs by stall type
- escalation quality: rated handoffs, mean usefulness (1-5), mean facts re-asked (packet fields marked missing or
  wrong) per rated handoff
- time to human: median and mean seconds from handoff to claim, over claimed handoffs
- handoff abandonment: handoffs that never reached a person (not claimed; timed out or past the queue timeout) /
  handoffs
- knowledge gaps: knowledge searches that ran and found no usable article, their share of the searches that ran,
  and the top queries
- stale answers: citations of an article version that has since changed / citations
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from threadline.analytics.conversations import Case, Conversation, HandoffView, Outcome
from threadline.core.tool_names import SEARCH_KNOWLEDGE
from threadline.core.types import EventType

TOP_N = 10
"""How many gap queries, stale articles and reasons a breakdown lists."""


def rate(part: int, whole: int) -> float | None:
    """`part / whole`, rounded to four places; None for an empty whole."""
    return round(part / whole, 4) if whole else None


@dataclass(frozen=True)
class Inputs:
    """What metrics are computed from: the log's handoffs, the current article versions, and the clock."""

    handoffs: dict[str, HandoffView]
    current_versions: dict[str, int]
    as_of: datetime
    queue_timeout: timedelta
    reopen_window: timedelta


def metrics(selected: list[Conversation], cases: list[Case], inputs: Inputs) -> dict[str, Any]:
    """Every metric for `selected`; `cases` are the cases whose first conversation is in the selection."""
    ai = [c for c in selected if c.ai_involved]
    contained = [c for c in ai if c.contained]
    escalated = [c for c in ai if c.escalated]
    resolved = [c for c in selected if c.resolved(inputs.handoffs, inputs.reopen_window)]
    fcr = [k for k in cases if k.first_contact_resolved(inputs.handoffs, inputs.reopen_window)]
    outcomes = Counter(c.outcome(inputs.reopen_window) for c in ai)
    ai_resolved = outcomes[Outcome.CONFIRMED] + outcomes[Outcome.ASSUMED]
    return {
        "conversations": len(selected),
        "ai_conversations": len(ai),
        "involvement": rate(len(ai), len(selected)),
        "contained": len(contained),
        "containment": rate(len(contained), len(ai)),
        "outcomes": {str(o): outcomes[o] for o in Outcome},
        "ai_resolved": ai_resolved,
        "confirmed_resolutions": outcomes[Outcome.CONFIRMED],
        "assumed_resolutions": outcomes[Outcome.ASSUMED],
        "ai_resolution": rate(ai_resolved, len(ai)),
        "resolved_conversations": len(resolved),
        "conversation_resolution": rate(len(resolved), len(selected)),
        "cases": len(cases),
        "first_contact_resolved": len(fcr),
        "first_contact_resolution": rate(len(fcr), len(cases)),
        "escalated": len(escalated),
        "escalation_rate": rate(len(escalated), len(ai)),
        **handoff_metrics(
            [inputs.handoffs[h] for c in selected for h in c.handoff_ids if h in inputs.handoffs], inputs
        ),
        **knowledge_metrics(selected, inputs.current_versions),
    }


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 2) if values else None


def handoff_metrics(found: list[HandoffView], inputs: Inputs) -> dict[str, Any]:
    """Escalation reasons, quality, time to human and abandonment of `found`."""
    rated = [h for h in found if h.usefulness is not None]
    waits = [h.waited_s for h in found if h.claimed and h.waited_s is not None]
    abandoned = [h for h in found if h.abandoned(inputs.as_of, inputs.queue_timeout)]
    return {
        "handoffs": len(found),
        "escalation_reasons": dict(Counter(h.stall for h in found).most_common()),
        "rated_handoffs": len(rated),
        "mean_usefulness": _mean([float(h.usefulness or 0) for h in rated]),
        "mean_facts_reasked": _mean([float(h.reasked or 0) for h in rated]),
        "claimed_handoffs": len(waits),
        "median_time_to_human_s": round(statistics.median(waits), 2) if waits else None,
        "mean_time_to_human_s": _mean(waits),
        "abandoned_handoffs": len(abandoned),
        "handoff_abandonment": rate(len(abandoned), len(found)),
    }


def knowledge_metrics(selected: Iterable[Conversation], current_versions: dict[str, int]) -> dict[str, Any]:
    """Knowledge gaps and answers given from a version that has since changed."""
    chosen = list(selected)
    turns = [e.payload for c in chosen for e in c.of(EventType.TURN)]
    # Searches that ran: one skipped because a person took over, or that failed, asked the help center nothing.
    searches = [
        r
        for t in turns
        for r in t.get("tool_results") or []
        if r.get("name") == SEARCH_KNOWLEDGE and r.get("status") in ("ok", "no_answer")
    ]
    gaps = [e.payload for c in chosen for e in c.of(EventType.KNOWLEDGE_GAP)]
    citations: list[dict[str, Any]] = [cited for t in turns for cited in t.get("citations") or []]
    stale = [e for e in citations if current_versions.get(str(e.get("article_id")), 0) > int(e.get("version") or 0)]
    queries = Counter(" ".join(str(e.get("query") or "").lower().split()) for e in gaps)
    stale_articles = Counter(f"{e.get('article_id')}@v{e.get('version')}" for e in stale)
    return {
        "knowledge_searches": len(searches),
        "knowledge_gaps": len(gaps),
        "knowledge_gap_rate": rate(len(gaps), len(searches)),
        "top_gap_queries": [{"query": q, "count": n} for q, n in queries.most_common(TOP_N)],
        "citations": len(citations),
        "stale_answers": len(stale),
        "stale_answer_rate": rate(len(stale), len(citations)),
        "stale_articles": [{"article": a, "count": n} for a, n in stale_articles.most_common(TOP_N)],
    }


def breakdown(
    selected: list[Conversation],
    cases: list[Case],
    inputs: Inputs,
    key: Callable[[Conversation], str],
) -> dict[str, dict[str, Any]]:
    """`metrics` per value of `key` (a channel, a day, business or after hours), keys in sorted order."""
    groups = sorted({key(c) for c in selected})
    return {
        g: metrics([c for c in selected if key(c) == g], [k for k in cases if key(k.first) == g], inputs)
        for g in groups
    }
