"""Replies written only from tool results: the offline model never invents a status, date, price or policy."""

from __future__ import annotations

import re
from typing import Any

CHANNEL_NAMES = {
    "sms": "text message",
    "voice": "phone",
    "web": "web chat",
    "email": "email",
    "social": "social message",
    "store": "in store",
}
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "a an the is are do does did to of for on in my your you i we it and or how what when can with at be".split()  # noqa: SIM905
)
_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")

ASK_VERIFICATION = (
    "I can help with that. First I need to verify your identity: please reply with the email address on your "
    "account, or your full name and zip code."
)
SPEAKER_CHANGED = (
    "Thanks for letting me know. I'll treat you as a different person from here, so I won't share anything from "
    "the earlier conversation. To help with your own account, please reply with the email address on it, or your "
    "full name and zip code."
)
SPEAKER_SIGNED_IN = (
    "This chat is signed in to someone else's account. To get help with your own, please sign out and sign in "
    "as yourself, or message us from your own phone or email."
)
ASK_CANCEL_REASON_START = "I can cancel order"
"""How `core.order_actions.cancel_reason_question` begins: a cancellation proposed without a reason asks for one."""


ASK_WHICH_ITEMS_START = "Which items from order"


def ask_which_items(order_id: str, names: list[str], verb: str) -> str:
    """The question when the customer did not say which items to return or exchange."""
    listed = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0] if names else "its items"
    return f"{ASK_WHICH_ITEMS_START} {order_id} would you like to {verb}: {listed}? You can also say all of them."


def ask_which_option(name: str, choices: list[str]) -> str:
    """The question when the customer did not say which option they want instead."""
    if not choices:
        return f"Sorry, there are no other options of the {name} in stock right now."
    return f"In stock for the {name}: {'; '.join(choices[:4])}. Which would you like instead?"


def proposal_question(summary: str, channel: str | None = None) -> str:
    """Read back a proposed action and ask for the customer's yes."""
    answer = "Say" if channel == "voice" else "Reply"
    return f"Just to confirm, I'll {summary}. Shall I go ahead? {answer} yes to confirm, or no to leave it as it is."


DECLINED = "No problem, I've left everything as it is. Is there anything else I can help you with?"
VERIFICATION_FAILED = (
    "Sorry, I couldn't verify those details. Please try again with the email address on your account, or your "
    "full name and zip code."
)


def order_reply(order: dict[str, Any]) -> str:
    """Status, items and tracking of one order, as the order system states them."""
    items = ", ".join(item["name"] for item in order["items"]) or "no items"
    text = f"Order {order['order_id']} is {order['status']}. Items: {items}."
    tracking = [t for shipment in order["shipments"] for t in shipment["tracking_ids"]]
    if tracking:
        text += f" Tracking number: {', '.join(tracking)}."
    if order.get("refunded") not in (None, "0", "0.00"):
        text += f" Refunded so far: ${order['refunded']}."
    return text


def history_reply(orders: list[dict[str, Any]]) -> str:
    """The customer's orders, most recent first."""
    if not orders:
        return "I don't see any orders on your account."
    lines = [f"{o['order_id']} ({o['status']}): {', '.join(o['items'])}" for o in orders[:5]]
    more = f" And {len(orders) - 5} more." if len(orders) > 5 else ""
    return "Here are your most recent orders: " + "; ".join(lines) + "." + more


def knowledge_reply(query: str, passages: list[dict[str, Any]], max_sentences: int = 2) -> str:
    """The sentences of the best passage that share most words with the question, with the article cited."""
    top = passages[0]
    article = top.get("article_id")
    same = [top, *(p for p in passages[1:] if article and p.get("article_id") == article)]
    bodies = [p["text"].split("\n\n", 1)[-1] if "\n\n" in p["text"] else p["text"] for p in same]
    body = "\n".join(bodies)
    sentences = list(dict.fromkeys(s.strip(" -•*") for s in _SPLIT.split(body) if len(s.strip()) > 20))
    wanted = {w for w in _WORD.findall(query.lower()) if w not in _STOP}
    ranked = sorted(range(len(sentences)), key=lambda i: (-len(wanted & set(_WORD.findall(sentences[i].lower()))), i))[
        :max_sentences
    ]
    chosen = " ".join(sentences[i] for i in sorted(ranked)) or body.strip()
    return f"{chosen} (Source: {top['title']}, version {top['version']}.)"


_LINE = re.compile(r"^(\d{4}-\d{2}-\d{2}) by (\w+): (.+)$")


def recall_reply(episodes: list[dict[str, Any]], current_channel: str | None = None) -> str:
    """When and on which channel we spoke before, and what it was about (other channels first)."""
    lines = [
        match.groups()
        for episode in episodes
        for match in map(_LINE.match, reversed((episode.get("summary") or "").splitlines()))
        if match
    ]
    if not lines:
        return "I don't see an earlier conversation with you on record. How can I help?"
    elsewhere = [line for line in lines if line[1] != current_channel]
    date, channel, gist = (elsewhere or lines)[0]
    return f"Yes, I can see that: on {date} by {CHANNEL_NAMES.get(channel, channel)}, you {gist}."


def followup_reply(topic: dict[str, Any], passages: list[dict[str, Any]], current_channel: str | None = None) -> str:
    """Picking up a question from an earlier conversation, answered from today's knowledge base."""
    channel = topic.get("channel")
    where = f" by {CHANNEL_NAMES.get(channel, channel)}" if channel and channel != current_channel else ""
    opening = f'Last time, on {topic.get("date")}{where}, you asked: "{topic["question"]}".'
    if not passages:
        return (
            f"{opening} I still don't have an answer to that in our store information. Would you like me to "
            "connect you with a member of our team?"
        )
    return f"{opening} Here is the latest: {knowledge_reply(topic['question'], passages)}"
