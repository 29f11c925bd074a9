"""What a turn leaves in long-term memory: the episode's summary record and the customer's preferences.

Episode records keep public topics (questions asked and the articles that answered them, products looked at)
apart from private facts (orders and their outcomes), so `recall_context` can pick up a topic at a lower
verification level than it shows an order.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from langchain_core.messages import AnyMessage, HumanMessage, ToolMessage
from langgraph.store.base import BaseStore, GetOp, Item, PutOp

from threadline.core.longterm import EPISODES, PREFERENCES, customer_namespace
from threadline.core.types import ArticleKind, Episode
from threadline.tools.results import KnowledgeResult, OrdersFound, read_result

MAX_TOPICS = 8
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_ORDER = re.compile(r"#?W\d{7}\b", re.I)
_DIGITS = re.compile(r"\+?\d[\d\s().-]*")
_PREFERENCE = re.compile(
    r"\b(i(?:'d| would)? (?:prefer|rather|like|love|hate|need)\b[^.!?\n]{3,100}"
    r"|(?:please )?(?:don't|do not|never) (?:call|text|email|phone) me\b[^.!?\n]{0,60})",
    re.I,
)


def public_text(text: str, private: Sequence[str] = ()) -> str:
    """A customer's words with anything identifying taken out: emails, order numbers, every number (house
    numbers, zip codes, phones), and the customer's own profile terms (street, city, name)."""
    text = _EMAIL.sub("[email]", without_profile(text, private))
    text = _ORDER.sub("[order]", text)
    text = _DIGITS.sub("[number] ", text)
    return re.sub(r"\s+", " ", text).strip()


def without_profile(text: str, private: Sequence[str]) -> str:
    """`text` with the customer's profile terms (street, city, zip, name, email) replaced by [private]."""
    for term in sorted({t.strip() for t in private if t and len(t.strip()) > 2}, key=len, reverse=True):
        text = re.sub(re.escape(term), "[private]", text, flags=re.I)
    return text


def _product_name(title: str) -> str:
    return title.split(":", 1)[0].strip()


def episode_record(
    episode: Episode,
    turn: list[AnyMessage],
    previous: dict[str, Any] | None,
    channel: str,
    now: datetime,
    private: Sequence[str] = (),
) -> dict[str, Any]:
    """The episode's long-term record after this turn (built on the previous record)."""
    record = dict(previous or {})
    topics: list[dict[str, Any]] = list(record.get("topics", []))
    products: list[str] = list(record.get("products", []))
    orders: list[str] = list(record.get("orders", []))
    for message in turn:
        if not isinstance(message, ToolMessage):
            continue
        result = read_result(message)
        if isinstance(result, KnowledgeResult) and result.query:
            top = result.passages[0] if result.passages else None
            topics.append(
                {
                    "question": public_text(result.query, private)[:200],
                    "answered": result.status == "ok",
                    "source": top.title if top else None,
                    "article_id": top.article_id if top else None,
                    "date": now.date().isoformat(),
                    "channel": channel,
                }
            )
            products += [_product_name(p.title) for p in result.passages[:1] if p.kind is ArticleKind.PRODUCT]
        elif isinstance(result, OrdersFound):
            found = [result.order.order_id if result.order else None] + [o.order_id for o in result.orders or []]
            orders += [str(o) for o in found if o]
    topics = _latest_per_question(topics)[-MAX_TOPICS:]
    open_items = [f"unanswered question: {t['question']}" for t in topics if not t["answered"]]
    if episode.status.value == "escalated":
        open_items.append("waiting for a member of the team")
    record.update(
        episode_id=episode.id,
        topics=topics,
        products=list(dict.fromkeys(products))[-MAX_TOPICS:],
        orders=list(dict.fromkeys(orders))[-MAX_TOPICS:],
        summary=without_profile(episode.summary or "", private),  # shown from `verified`; addresses need `strong`
        outcome=without_profile(episode.outcome or "", private),
        open_items=open_items,
        channels=episode.channels,
        status=episode.status.value,
        started_at=record.get("started_at") or now.isoformat(timespec="minutes"),
        last_active=now.isoformat(timespec="minutes"),
    )
    record["text"] = " | ".join([*(t["question"] for t in topics), *record["products"], episode.topic or ""]).strip(
        " |"
    )
    return record


def _latest_per_question(topics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per question (its latest), in the order last asked."""
    latest: dict[str, dict[str, Any]] = {}
    for topic in topics:
        latest.pop(topic["question"].lower(), None)
        latest[topic["question"].lower()] = topic
    return list(latest.values())


def remember_turn(
    store: BaseStore,
    customer_id: str,
    episode: Episode,
    turn: list[AnyMessage],
    channel: str,
    now: datetime,
    private: Sequence[str] = (),
) -> None:
    """Write the episode record and any preference the customer stated in this turn; `private` lists the
    customer's profile terms (street, city, zip, name) kept out of what is stored as public."""
    # Two round trips to the store, whatever the turn said: every read in one batch, every write in another.
    namespace, channels = customer_namespace(customer_id, EPISODES), customer_namespace(customer_id, PREFERENCES)
    previous, used = store.batch([GetOp(namespace, episode.id), GetOp(channels, "channels")])
    assert previous is None or isinstance(previous, Item)
    assert used is None or isinstance(used, Item)
    record = episode_record(episode, turn, previous.value if previous else None, channel, now, private)
    writes = [PutOp(namespace, episode.id, record, index=["text"] if record["text"] else False)]
    for message in turn:
        if isinstance(message, HumanMessage):
            for match in _PREFERENCE.finditer(message.text):
                statement = public_text(match.group(0), private)
                key = "said-" + hashlib.sha256(statement.lower().encode()).hexdigest()[:16]
                value = {"text": statement, "channel": channel, "date": now.date().isoformat()}
                writes.append(PutOp(channels, key, value))
    counts: dict[str, int] = dict((used.value if used else {}).get("counts", {}))
    counts[channel] = counts.get(channel, 0) + 1
    summary = "contacts us by " + ", ".join(f"{c} ({n})" for c, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    writes.append(PutOp(channels, "channels", {"text": summary, "counts": counts, "last": channel}, index=False))
    store.batch(writes)
