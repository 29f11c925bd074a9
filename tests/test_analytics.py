"""Every analytics figure against a small log whose expected numbers are worked out by hand here.

The log (business hours 09:00-18:00 Monday to Friday, UTC; 30-minute conversation gap; 7-day first-contact and
attribution windows; 30-minute queue timeout). 2 March 2026 is a Monday.

- A, web, Mon 2 Mar 10:00 and 10:05: two AI turns, both usable; the first searched the knowledge base and cited
  kb-1 v1 (kb-1 is now at v2: a stale answer). A visited from Google at 09:50 and bought online (100) on 3 Mar.
- B, SMS, Mon 2 Mar 20:00 (after hours): a search with no usable article ("Gift wrap?"), then at 20:10 a handoff h1
  (no_knowledge_answer), claimed after 120 s, resolved, rated 4 with one field missing. B came back by email on
  Wed 4 Mar 11:00 (same case: not first-contact) and got a usable answer citing kb-2 v3 (current). B bought in
  store (50) on 5 Mar.
- C, web, Sat 7 Mar 14:00 (after hours): asked for a person (h2), never claimed; wrote again at 14:10.
- D, voice, Tue 3 Mar 10:00: a message with no AI turn (the AI did not take part).
- E, web, 20 Feb: an AI conversation outside the range; E bought online (30) on 6 Mar, 14 days later.

For the resolution outcomes (48-hour reopen window):
- F, web, Thu 5 Mar 15:00: a useful knowledge answer, then "thanks, that's perfect" at 15:02: a confirmed
  resolution.
- G, SMS, Fri 6 Mar 10:00: a greeting answered and nothing else: the AI took part but answered nothing useful.
- H, web, Tue 3 Mar 16:00: a useful product answer, but H came back by phone on Wed 4 Mar 09:30 (17.5 h later, same
  case) with an order question answered from the order: the web conversation was reopened, the call is an assumed
  resolution.
- A's and B's email conversations are assumed resolutions (useful, never came back); B's SMS, resolved by Sam, was
  reopened by B's email 38 h 50 min later, so it is not resolved either.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from threadline.analytics import conversations as conv
from threadline.analytics.attribution import attribution
from threadline.analytics.conversations import Outcome
from threadline.analytics.journeys import ESCALATION, journeys, paths_before
from threadline.analytics.metrics import Inputs, breakdown, metrics
from threadline.analytics.report import (
    Config,
    Filters,
    attribution_report,
    journeys_report,
    load,
    metrics_report,
    summary_report,
)
from threadline.core.hours import BusinessHours
from threadline.core.types import (
    AnalyticsEvent,
    ArticleDraft,
    ArticleId,
    ArticleKind,
    EventType,
    HandleType,
    VerificationLevel,
)

E = EventType


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def turn(
    intent: str,
    answered: bool,
    owner: str = "ai",
    search: str | None = None,
    cited: tuple[str, int] | None = None,
    tool: tuple[str, str] | None = None,
    confirmed: bool = False,
) -> dict[str, Any]:
    """A turn event's payload: `search` is the status of its knowledge search, `cited` the article it cited, `tool`
    another tool's (name, status), `confirmed` whether the customer said the answer helped."""
    results = [{"name": "search_knowledge", "status": search}] if search else []
    results += [{"name": tool[0], "status": tool[1]}] if tool else []
    citations = [{"article_id": cited[0], "version": cited[1]}] if cited else []
    payload = {"intent": intent, "answered": answered, "owner": owner, "tool_results": results, "citations": citations}
    return payload | {"confirmed": confirmed}


LOG: list[tuple[EventType, str, str, datetime, dict[str, Any]]] = [
    (E.PAGE_VIEW, "A", "web", at(2, 9, 50), {"utm_source": "Google", "url": "/boots"}),
    (E.MESSAGE_RECEIVED, "A", "web", at(2, 10), {}),
    (E.TURN, "A", "web", at(2, 10), turn("order_status", True, search="ok", cited=("kb-1", 1))),
    (E.MESSAGE_RECEIVED, "A", "web", at(2, 10, 5), {}),
    (E.TURN, "A", "web", at(2, 10, 5), turn("order_status", True, tool=("lookup_order", "ok"))),
    (E.PURCHASE_ONLINE, "A", "web", at(3, 12), {"order_id": "o-1", "amount": 100}),
    (E.MESSAGE_RECEIVED, "B", "sms", at(2, 20), {}),
    (E.KNOWLEDGE_GAP, "B", "sms", at(2, 20), {"query": "Gift  wrap?", "intent": "product_question"}),
    (E.TURN, "B", "sms", at(2, 20), turn("product_question", False, search="no_answer")),
    (E.MESSAGE_RECEIVED, "B", "sms", at(2, 20, 10), {}),
    (E.HANDOFF_CREATED, "B", "sms", at(2, 20, 10), {"handoff_id": "h1", "stall": "no_knowledge_answer"}),
    (E.TURN, "B", "sms", at(2, 20, 10), turn("product_question", False, "queue")),
    (E.HANDOFF_CLAIMED, "B", "", at(2, 20, 12), {"handoff_id": "h1", "agent": "sam", "waited_s": 120.0}),
    (E.HANDOFF_RESOLVED, "B", "", at(2, 20, 30), {"handoff_id": "h1", "agent": "sam"}),
    (E.HANDOFF_RATED, "B", "", at(2, 20, 31), {"handoff_id": "h1", "usefulness": 4, "missing": ["facts"], "wrong": []}),
    (E.MESSAGE_RECEIVED, "B", "email", at(4, 11), {}),
    (E.TURN, "B", "email", at(4, 11), turn("returns", True, search="ok", cited=("kb-2", 3))),
    (E.PURCHASE_IN_STORE, "B", "store", at(5, 15), {"order_id": "o-2", "amount": 50}),
    (E.MESSAGE_RECEIVED, "C", "web", at(7, 14), {}),
    (E.HANDOFF_CREATED, "C", "web", at(7, 14), {"handoff_id": "h2", "stall": "customer_requested_human"}),
    (E.TURN, "C", "web", at(7, 14), turn("human", False, "queue", search="skipped")),  # cut short by the handoff
    (E.MESSAGE_RECEIVED, "C", "web", at(7, 14, 10), {}),
    (E.MESSAGE_RECEIVED, "D", "voice", at(3, 10), {}),
    (E.MESSAGE_RECEIVED, "E", "web", at(20, 10, month=2), {}),
    (E.TURN, "E", "web", at(20, 10, month=2), turn("order_status", True, tool=("lookup_order", "ok"))),
    (E.PURCHASE_ONLINE, "E", "web", at(6, 12), {"order_id": "o-3", "amount": 30}),
    (E.MESSAGE_RECEIVED, "F", "web", at(5, 15), {}),
    (E.TURN, "F", "web", at(5, 15), turn("knowledge_question", True, search="ok")),
    (E.MESSAGE_RECEIVED, "F", "web", at(5, 15, 2), {}),
    (E.TURN, "F", "web", at(5, 15, 2), turn("thanks", True, confirmed=True)),
    (E.MESSAGE_RECEIVED, "G", "sms", at(6, 10), {}),
    (E.TURN, "G", "sms", at(6, 10), turn("greeting", True)),
    (E.MESSAGE_RECEIVED, "H", "web", at(3, 16), {}),
    (E.TURN, "H", "web", at(3, 16), turn("product_question", True, tool=("find_products", "ok"))),
    (E.MESSAGE_RECEIVED, "H", "voice", at(4, 9, 30), {}),
    (E.TURN, "H", "voice", at(4, 9, 30), turn("order_status", True, tool=("lookup_order", "ok"))),
]
GAP, WINDOW, TIMEOUT, REOPEN = timedelta(minutes=30), timedelta(days=7), timedelta(minutes=30), timedelta(hours=48)
AS_OF = at(10, 12)
CURRENT = {"kb-1": 2, "kb-2": 3}
HOURS = BusinessHours.parse("UTC", "09:00-18:00", "mon,tue,wed,thu,fri")
IN_RANGE = (date(2026, 3, 2), date(2026, 3, 8))


def events(ids: dict[str, str] | None = None) -> list[AnalyticsEvent]:
    return [
        AnalyticsEvent(
            id=i,
            type=kind,
            customer_id=(ids or {}).get(who, who),
            channel=channel or None,
            payload=payload,
            occurred_at=when,
        )
        for i, (kind, who, channel, when, payload) in enumerate(LOG, start=1)
    ]


@pytest.fixture
def built() -> tuple[list[conv.Conversation], list[conv.Case], Inputs]:
    log = events()
    found = conv.conversations(log, GAP)
    selected = [c for c in found if IN_RANGE[0] <= c.started_at.date() <= IN_RANGE[1]]
    ids = {id(c) for c in selected}
    cases = [k for k in conv.cases(found, WINDOW) if id(k.first) in ids]
    return selected, cases, Inputs(conv.handoffs(log), CURRENT, AS_OF, TIMEOUT, REOPEN)


def test_conversations_and_cases_are_rebuilt_by_channel_gap_and_window() -> None:
    found = conv.conversations(events(), GAP)
    assert [(c.customer_id, c.channel, c.started_at) for c in found] == [
        ("E", "web", at(20, 10, month=2)),
        ("A", "web", at(2, 10)),
        ("B", "sms", at(2, 20)),
        ("D", "voice", at(3, 10)),
        ("H", "web", at(3, 16)),
        ("H", "voice", at(4, 9, 30)),
        ("B", "email", at(4, 11)),
        ("F", "web", at(5, 15)),
        ("G", "sms", at(6, 10)),
        ("C", "web", at(7, 14)),
    ]
    assert found[9].ended_at == at(7, 14, 10)  # C's second message, 10 minutes later, is the same conversation
    cases = conv.cases(found, WINDOW)
    assert [[c.channel for c in k.conversations] for k in cases] == [
        ["web"],
        ["web"],
        ["sms", "email"],
        ["voice"],
        ["web", "voice"],
        ["web"],
        ["sms"],
        ["web"],
    ]
    assert found[2].intent == "product_question" and found[1].contained and not found[2].contained
    # G's greeting was answered but rested on nothing: the AI took part, was not handed off, and is not contained.
    assert found[8].ai_involved and not found[8].escalated and not found[8].contained
    outcomes = [c.outcome(REOPEN) for c in found]
    assert outcomes == [
        Outcome.ASSUMED,  # E: useful, and E never came back
        Outcome.ASSUMED,  # A
        Outcome.HANDED_OFF,  # B sms
        None,  # D: no AI turn
        Outcome.REOPENED,  # H web: H called 17.5 h later
        Outcome.ASSUMED,  # H voice
        Outcome.ASSUMED,  # B email
        Outcome.CONFIRMED,  # F: "thanks, that's perfect" after a useful answer
        Outcome.NO_USEFUL_ANSWER,  # G
        Outcome.HANDED_OFF,  # C
    ]
    handoffs = conv.handoffs(events())
    # Sam resolved B's SMS handoff, but B wrote again by email 38 h 50 min later: within 48 h, so not resolved;
    # with a 24-hour window it would be.
    assert not found[2].resolved(handoffs, REOPEN) and found[2].resolved(handoffs, timedelta(hours=24))


def test_every_metric_overall(built: tuple[list[conv.Conversation], list[conv.Case], Inputs]) -> None:
    selected, cases, inputs = built
    m = metrics(selected, cases, inputs)
    # 9 conversations in range (A web, B sms, D voice, H web, H voice, B email, F web, G sms, C web); the AI took
    # part in all but D's.
    assert (m["conversations"], m["ai_conversations"], m["involvement"]) == (9, 8, 0.8889)
    # Contained (no handoff, at least one useful answer): A, H web, H voice, B email, F = 5 of 8. G's answered
    # greeting is not useful, so G is not contained.
    assert (m["contained"], m["containment"]) == (5, 0.625)
    # Outcomes of the 8: handed off B sms and C; no useful answer G; reopened H web; confirmed F; assumed A, H voice
    # and B email. AI resolution: confirmed + assumed = 4 of 8.
    assert m["outcomes"] == {"handed_off": 2, "no_useful_answer": 1, "reopened": 1, "confirmed": 1, "assumed": 3}
    assert (m["ai_resolved"], m["confirmed_resolutions"], m["assumed_resolutions"], m["ai_resolution"]) == (
        4,
        1,
        3,
        0.5,
    )
    # Resolved conversations: the AI's 4; B's SMS was resolved by Sam but reopened within 48 h: 4 of 9.
    assert (m["resolved_conversations"], m["conversation_resolution"]) == (4, 0.4444)
    # Per case: A | B sms+email | D | H web+voice | F | G | C; one resolved conversation: A and F, 2 of 7.
    assert (m["cases"], m["first_contact_resolved"], m["first_contact_resolution"]) == (7, 2, 0.2857)
    # Escalated: B sms and C = 2 of 8 AI conversations, one reason each.
    assert (m["escalated"], m["escalation_rate"]) == (2, 0.25)
    assert m["escalation_reasons"] == {"no_knowledge_answer": 1, "customer_requested_human": 1}
    # Quality: h1 rated 4 with one field missing; time to human: h1's 120 s; h2 never claimed, days past the timeout.
    assert (m["handoffs"], m["rated_handoffs"], m["mean_usefulness"], m["mean_facts_reasked"]) == (2, 1, 4.0, 1.0)
    assert (m["claimed_handoffs"], m["median_time_to_human_s"], m["mean_time_to_human_s"]) == (1, 120.0, 120.0)
    assert (m["abandoned_handoffs"], m["handoff_abandonment"]) == (1, 0.5)
    # Knowledge: 4 searches ran (A, B sms, B email, F; C's was skipped by the handoff), 1 gap; 2 citations, kb-1
    # v1 is stale (kb-1 is at v2 now).
    assert (m["knowledge_searches"], m["knowledge_gaps"], m["knowledge_gap_rate"]) == (4, 1, 0.25)
    assert m["top_gap_queries"] == [{"query": "gift wrap?", "count": 1}]
    assert (m["citations"], m["stale_answers"], m["stale_answer_rate"]) == (2, 1, 0.5)
    assert m["stale_articles"] == [{"article": "kb-1@v1", "count": 1}]


def test_metrics_per_channel_per_day_and_by_business_hours(
    built: tuple[list[conv.Conversation], list[conv.Case], Inputs],
) -> None:
    selected, cases, inputs = built
    by_channel = breakdown(selected, cases, inputs, lambda c: c.channel)
    assert list(by_channel) == ["email", "sms", "voice", "web"]
    # web: A, H and F contained, C escalated; cases starting on web: A and F (FCR), H (came back by phone) and C.
    assert (by_channel["web"]["containment"], by_channel["web"]["first_contact_resolution"]) == (0.75, 0.5)
    # email: B's return is contained but starts no case of its own.
    assert (by_channel["email"]["containment"], by_channel["email"]["first_contact_resolution"]) == (1.0, None)
    # sms: B escalated, G answered nothing useful; neither case is a first-contact resolution.
    assert (by_channel["sms"]["containment"], by_channel["sms"]["first_contact_resolution"]) == (0.0, 0.0)
    # voice: D had no AI turn; H's call was contained (its case started on web).
    assert (by_channel["voice"]["involvement"], by_channel["voice"]["containment"]) == (0.5, 1.0)
    assert by_channel["voice"]["outcomes"]["assumed"] == 1 and by_channel["web"]["outcomes"]["reopened"] == 1
    by_day = breakdown(selected, cases, inputs, lambda c: HOURS.day(c.started_at).isoformat())
    assert {d: m["conversations"] for d, m in by_day.items()} == {
        "2026-03-02": 2,
        "2026-03-03": 2,
        "2026-03-04": 2,
        "2026-03-05": 1,
        "2026-03-06": 1,
        "2026-03-07": 1,
    }
    assert by_day["2026-03-02"]["containment"] == 0.5  # A contained, B's SMS escalated
    side = breakdown(selected, cases, inputs, lambda c: "business" if HOURS.is_open(c.started_at) else "after_hours")
    # Business: A (Mon 10:00), D (Tue 10:00), H web (Tue 16:00), H voice (Wed 09:30), B email (Wed 11:00), F (Thu
    # 15:00), G (Fri 10:00). After hours: B sms (Mon 20:00), C (Saturday).
    assert (side["business"]["conversations"], side["after_hours"]["conversations"]) == (7, 2)
    # Business AI conversations: all but D (6); contained: all but G (5).
    assert (side["business"]["containment"], side["after_hours"]["containment"]) == (0.8333, 0.0)
    assert (side["business"]["escalation_rate"], side["after_hours"]["escalation_rate"]) == (0.0, 1.0)
    # Business cases: A, D, H, F, G; first-contact: A and F.
    assert (side["business"]["first_contact_resolution"], side["after_hours"]["first_contact_resolution"]) == (0.4, 0.0)


def test_business_hours_follow_the_time_zone() -> None:
    paris = BusinessHours.parse("Europe/Paris", "09:00-18:00", "mon,tue,wed,thu,fri")
    assert paris.is_open(at(2, 8, 30))  # 09:30 in Paris (UTC+1 in March before the switch)
    assert not paris.is_open(at(2, 17, 30))  # 18:30 in Paris
    assert paris.day(at(2, 23, 30)) == date(2026, 3, 3)


def test_attribution_last_touch_and_linear_by_channel_and_intent() -> None:
    log = events()
    purchases = [e for e in log if e.type in (E.PURCHASE_ONLINE, E.PURCHASE_IN_STORE)]
    result = attribution(purchases, conv.conversations(log, GAP), WINDOW)
    # A's purchase (100) follows A's web chat; B's (50) follows B's SMS and email chats; E's (30) is 14 days after
    # E's chat: outside the 7-day window.
    assert (result["purchases"], result["attributed_purchases"], result["attributed_share"]) == (3, 2, 0.6667)
    assert (result["revenue"], result["attributed_revenue"]) == (180.0, 150.0)
    assert result["by_kind"]["online"] == {
        "purchases": 2,
        "revenue": 130.0,
        "attributed": 1,
        "attributed_revenue": 100.0,
    }
    assert result["by_kind"]["in_store"] == {
        "purchases": 1,
        "revenue": 50.0,
        "attributed": 1,
        "attributed_revenue": 50.0,
    }
    # Last touch: A → web (1, 100); B → email, its last chat (1, 50). Linear: B's credit split between SMS and email.
    assert result["by_channel"] == {
        "email": {"last_touch": {"purchases": 1.0, "revenue": 50.0}, "linear": {"purchases": 0.5, "revenue": 25.0}},
        "sms": {"last_touch": {"purchases": 0.0, "revenue": 0.0}, "linear": {"purchases": 0.5, "revenue": 25.0}},
        "web": {"last_touch": {"purchases": 1.0, "revenue": 100.0}, "linear": {"purchases": 1.0, "revenue": 100.0}},
    }
    assert result["by_intent"]["returns"]["last_touch"] == {"purchases": 1.0, "revenue": 50.0}
    assert result["by_intent"]["product_question"]["linear"] == {"purchases": 0.5, "revenue": 25.0}
    assert result["by_intent"]["order_status"]["linear"] == {"purchases": 1.0, "revenue": 100.0}


def test_journeys_order_touchpoints_and_count_paths() -> None:
    log = events()
    steps = journeys(log, conv.conversations(log, GAP))
    assert [s.label for s in steps["A"]] == ["visit (google)", "AI chat (web)", "purchase online"]
    assert [s.label for s in steps["B"]] == [
        "AI chat (sms)",
        ESCALATION,
        "AI chat (email)",
        "purchase in store",
    ]
    to_purchase = paths_before(steps, frozenset({"purchase_online", "purchase_in_store"}))
    assert to_purchase[("visit (google)", "AI chat (web)", "purchase online")] == 1
    assert to_purchase[("AI chat (sms)", ESCALATION, "AI chat (email)", "purchase in store")] == 1
    assert to_purchase[("AI chat (web)", "purchase online")] == 1  # E
    to_escalation = paths_before(steps, frozenset({ESCALATION}))
    assert to_escalation == {("AI chat (sms)", ESCALATION): 1, ("AI chat (web)", ESCALATION): 1}


# --- the same log through the event log and the report queries, on SQLite and Postgres ----------------------------


def test_the_reports_read_the_log_from_the_database(stores: Any) -> None:
    ids = {}
    for who in "ABCDEFGH":
        customer, _identity, _ = stores.customers.create_for_handle(
            HandleType.VISITOR, f"visitor-{who}", VerificationLevel.ANONYMOUS, actor="test"
        )
        ids[who] = customer.id
    for event in events(ids):
        stores.events.append(
            event.type,
            customer_id=event.customer_id,
            channel=event.channel,
            payload=event.payload,
            occurred_at=event.occurred_at,
        )
    draft = ArticleDraft(id=ArticleId("kb-1"), kind=ArticleKind.POLICY, title="Returns", body="30 days.")
    stores.knowledge.upsert(draft, author="test")
    stores.knowledge.upsert(draft.model_copy(update={"body": "60 days."}), author="test")  # kb-1 is at v2
    config = Config(HOURS, GAP, WINDOW, WINDOW, TIMEOUT, REOPEN)
    data = load(stores, config, Filters(*IN_RANGE), now=AS_OF)
    overall = metrics_report(data)["overall"]
    assert (overall["conversations"], overall["containment"], overall["first_contact_resolution"]) == (9, 0.625, 0.2857)
    assert (overall["confirmed_resolutions"], overall["assumed_resolutions"], overall["ai_resolution"]) == (1, 3, 0.5)
    assert (overall["stale_answers"], overall["median_time_to_human_s"]) == (1, 120.0)
    credit = attribution_report(data)
    assert (credit["purchases"], credit["attributed_purchases"]) == (3, 2)
    summary = summary_report(data)
    assert summary["volumes_by_channel"] == {"email": 1, "sms": 2, "voice": 2, "web": 4}
    assert summary["outcomes"] == {"handed_off": 2, "no_useful_answer": 1, "reopened": 1, "confirmed": 1, "assumed": 3}
    assert summary["top_gap_queries"] == [{"query": "gift wrap?", "count": 1}]
    why = summary["explanations"]
    assert why["first_contact_resolution"].startswith("2 of 7 cases were resolved in a single conversation")
    assert why["containment"].startswith("5 of 8 AI conversations ended with no person")
    assert "1 got no useful answer and 2 went to a person" in why["containment"]
    assert why["ai_resolution"].startswith("1 confirmed") and "3 assumed" in why["ai_resolution"]
    assert "1 more came back within 48 hours" in why["ai_resolution"]
    assert set(why) == set(summary["headline"])  # every headline figure is explained
    assert summary["after_hours_parity"]["after_hours"] == {
        "conversations": 2,
        "containment": 0.0,
        "escalation_rate": 1.0,
    }
    sms_only = metrics_report(load(stores, config, Filters(*IN_RANGE, channel="sms"), now=AS_OF))["overall"]
    assert (sms_only["conversations"], sms_only["escalation_rate"], sms_only["cases"]) == (2, 0.5, 2)
    after = metrics_report(load(stores, config, Filters(*IN_RANGE, hours="after_hours"), now=AS_OF))["overall"]
    assert (after["conversations"], after["contained"]) == (2, 0)
    trips = journeys_report(data)
    # A, B, C, D, F, G, H, and E (whose only step in range is the purchase)
    assert trips["customers_with_journeys"] == 8
    assert {"path": ["visit (google)", "AI chat (web)", "purchase online"], "count": 1} in trips[
        "top_paths_to_purchase"
    ]


def test_a_thank_you_after_the_gap_confirms_the_conversation_it_thanks() -> None:
    # J asks by email at 10:00 and gets a useful answer; J's "thanks, that helped" comes at 11:30, after the
    # 30-minute gap. Without folding it is a conversation of its own that reopens the answered one.
    log = [
        AnalyticsEvent(
            id=1, type=E.MESSAGE_RECEIVED, customer_id="J", channel="email", payload={}, occurred_at=at(3, 10)
        ),
        AnalyticsEvent(
            id=2,
            type=E.TURN,
            customer_id="J",
            channel="email",
            payload=turn("returns", True, search="ok"),
            occurred_at=at(3, 10),
        ),
        AnalyticsEvent(
            id=3, type=E.MESSAGE_RECEIVED, customer_id="J", channel="email", payload={}, occurred_at=at(3, 11, 30)
        ),
        AnalyticsEvent(
            id=4,
            type=E.TURN,
            customer_id="J",
            channel="email",
            payload=turn("thanks", True, confirmed=True),
            occurred_at=at(3, 11, 30),
        ),
    ]
    apart = conv.conversations(log, GAP)
    assert [c.outcome(REOPEN) for c in apart] == [Outcome.REOPENED, Outcome.NO_USEFUL_ANSWER]
    [folded] = conv.conversations(log, GAP, REOPEN)
    assert folded.outcome(REOPEN) is Outcome.CONFIRMED and folded.ended_at == at(3, 10)
    # A thank-you with a new question in it is a conversation of its own (and reopens the first).
    asking = [*log[:3], log[3].model_copy(update={"payload": turn("returns", True, search="ok")})]
    assert len(conv.conversations(asking, GAP, REOPEN)) == 2
