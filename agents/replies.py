"""Replies written only from tool results: the offline model never invents a status, date, price or policy."""

from __future__ import annotations

import re
from typing import Any

from threadline.core.types import EDITOR_NOTES

CHANNEL_NAMES = {
    "sms": "text message",
    "voice": "phone",
    "web": "web chat",
    "email": "email",
    "social": "social message",
    "whatsapp": "WhatsApp",
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


AI_DISCLOSURE = (
    "I'm an AI assistant for the store, not a person. I can check orders, start returns and exchanges, and answer "
    "questions about our products and policies, and I can connect you with a member of our team whenever you like."
)
TAKE_YOUR_TIME = (
    "No problem, take your time: nothing changes until you tell me. Is there anything else I can help with?"
)
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
    elif order["status"] in ("pending", "processed"):
        text += (
            " It hasn't shipped yet, so there's no tracking number yet; you'll get one when it ships."
            if order["status"] == "pending"
            else " It's being processed and hasn't shipped yet, so there's no tracking number yet."
        )
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


CITATION = re.compile(r"\s*\(Source: [^)]*\)")
CITING_CHANNELS = frozenset({"web", "email", "social", "store", "whatsapp"})
"""Channels whose replies name the article they answer from; an SMS has no room for it and a voice never reads it."""
_EDITOR_NOTE = re.compile("^(?:" + "|".join(re.escape(n) for n in EDITOR_NOTES) + ").*$\n?", re.M)
DONT_KNOW = (
    "I'm sorry, I don't have an answer to that in our store information, and I'd rather not guess. Would you like "
    "me to connect you with a member of our team?"
)


def passage_answer(passage: dict[str, Any]) -> tuple[str | None, str]:
    """A passage as (the question its section answers, when it is one, and the text under it), without the
    article title and without the article's notes to its editors."""
    text = _EDITOR_NOTE.sub("", passage["text"]).strip()
    title = str(passage.get("title") or "").strip()  # the text was stripped: so is the title it starts with
    if title and text.startswith(title):
        text = text[len(title) :].strip()
    first, _, rest = text.partition("\n")
    if first.rstrip().endswith("?") and rest.strip():
        return first.strip(), rest.strip()
    return None, text


def _best_sentences(query: str, body: str, max_sentences: int) -> str:
    sentences = list(dict.fromkeys(s.strip(" -•*") for s in _SPLIT.split(body) if len(s.strip()) > 20))
    wanted = {w for w in _WORD.findall(query.lower()) if w not in _STOP}
    ranked = sorted(range(len(sentences)), key=lambda i: (-len(wanted & set(_WORD.findall(sentences[i].lower()))), i))[
        :max_sentences
    ]
    return " ".join(sentences[i] for i in sorted(ranked)) or body.strip()


def which_order(orders: list[dict[str, Any]]) -> str:
    """The question when the product the customer names is in more than one of their orders."""
    listed = [f"{o['order_id']} ({o['status']}: {', '.join(o['items'])})" for o in orders[:4]]
    return f"I see that in more than one of your orders: {'; '.join(listed)}. Which order do you mean?"


def knowledge_answer(query: str, passages: list[dict[str, Any]], max_sentences: int = 2) -> tuple[str, str] | None:
    """(answer, article title) from the best passage that has one: a help-center answer whole, or else the
    sentences of the article that share most words with the question."""
    for top in passages:
        question, body = passage_answer(top)
        if not body or top.get("kind") == "product":
            continue  # a product page is a table of variants: catalogue questions are the product finder's
        if question is not None:
            return body, str(top["title"])
        article = top.get("article_id")
        same = [top, *(p for p in passages if p is not top and article and p.get("article_id") == article)]
        text = "\n".join(a for _, a in map(passage_answer, same) if a)
        return _best_sentences(query, text, max_sentences), str(top["title"])
    return None


def knowledge_reply(query: str, passages: list[dict[str, Any]], channel: str | None = None) -> str:
    """The answer to one question from the knowledge base, citing the article where the channel shows it."""
    found = knowledge_answer(query, passages)
    if found is None:
        return DONT_KNOW
    answer, title = found
    return f"{answer} (Source: {title}.)" if channel in CITING_CHANNELS or channel is None else answer


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
    elsewhere = [line for line in lines if line[1] != current_channel] or lines
    telling = [line for line in elsewhere if "#W" in line[2] or 'asked "' in line[2]]  # what it was about
    date, channel, gist = (telling or elsewhere)[0]
    return f"Yes, I can see that: on {date} by {CHANNEL_NAMES.get(channel, channel)}, you {_second_person(gist)}."


_THIRD_PERSON = (
    (re.compile(r"\bwas asked\b"), "were asked"),
    (re.compile(r"\btheir\b"), "your"),
    (re.compile(r"\bthey are\b"), "you are"),
    (re.compile(r"\bwas handed\b"), "were handed"),
    (re.compile(r"\bcould not be verified\b"), "could not be verified then"),
)


def _second_person(gist: str) -> str:
    """A summary line (written about the customer, for the model and agents) as said to the customer."""
    for pattern, said in _THIRD_PERSON:
        gist = pattern.sub(said, gist)
    return gist


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
    return f"{opening} Here is the latest: {knowledge_reply(topic['question'], passages, current_channel)}"


SHORT_CHANNELS = frozenset({"sms", "voice"})


def _plural(word: str) -> str:
    word = word.strip()
    if word.endswith(("s", "x")):
        return word
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def _listed(parts: list[str], joiner: str = "or") -> str:
    return ", ".join(parts[:-1]) + f" {joiner} {parts[-1]}" if len(parts) > 1 else parts[0] if parts else ""


def _option_words(name: str, value: str) -> str:
    """One option as a shopper says it: "black", "leather", "size 10", "battery life 20 hours"."""
    if "color" in name or "material" in name:
        return value
    return f"{name} {value}"


def _described(choice: dict[str, Any], shown: list[str]) -> str:
    """A variant in a shopper's words: the options that tell it apart, and the price."""
    options = ", ".join(_option_words(name, choice["options"][name]) for name in shown if name in choice["options"])
    return f"{options + ' ' if options else ''}for ${choice['price']}".strip()


def _wanted_words(asked: list[str], name: str | None) -> str:
    """ "red, waterproof Bluetooth Speakers", "Office Chairs with adjustable arms", "Running Shoes in size 10"."""
    before = [a for a in asked if " " not in a and not a.startswith("$")]
    after = [a for a in asked if a not in before]
    noun = _plural(name) if name else "products"
    text = f"{', '.join(before)} {noun}".strip()
    for phrase in after:
        if phrase.startswith(("under", "over", "between")):
            text += f" {phrase}"
        else:
            text += f" in {phrase}" if phrase.startswith("size ") else f" with {phrase}"
    return text


def _range(result: dict[str, Any]) -> str:
    options: dict[str, list[str]] = result.get("in_stock_options") or {}
    low, high = result.get("price_from"), result.get("price_to")
    parts = [f"from ${low} to ${high}" if low != high else f"at ${low}"] if low else []
    parts += [f"{name}: {_listed(values[:5])}" for name, values in options.items() if len(values) > 1][:3]
    return "; ".join(parts)


def products_reply(result: dict[str, Any], channel: str | None = None) -> str:
    """The product finder's result as a shopper would want it: no ids, a couple of matches on SMS and voice, a
    short list elsewhere, a summary when many fit, and an honest answer when we do not sell it or nothing fits."""
    if result["status"] == "not_carried":
        wanted = result.get("wanted")
        opening = f"Sorry, we don't carry {_plural(wanted)}." if wanted else "Sorry, we don't carry that."
        closest = result.get("closest") or []
        if closest:
            nearest = f"The closest things we sell are the {_listed(closest)}."
            return f"{opening} {nearest} Would you like to hear about any of them?"
        return f"{opening} Is there anything else I can help you find?"
    choices: list[dict[str, Any]] = result.get("choices") or []
    limit = 2 if channel in SHORT_CHANNELS else 4
    fitting = [c for c in choices if c.get("matches_all") and c.get("in_stock")]
    products = result.get("products") or []
    name = products[0] if len(products) == 1 else None
    asked = result.get("asked_for") or []
    what = _wanted_words(asked, name)
    if fitting:
        count = int(result.get("in_stock_count") or len(fitting))
        if count > limit and not asked:
            return (
                f"We have {count} {what} in stock, {_range(result)}. Any preference, like a colour, size or "
                "budget? I'll find the best match."
            )
        shown = fitting[:limit]
        asked_values = " ".join(asked).lower()
        differing = [
            k
            for k in shown[0]["options"]
            if (len({c["options"].get(k) for c in shown}) > 1 or len(shown) == 1)
            and shown[0]["options"][k].lower() not in asked_values
        ]
        described = [_described(c, differing) for c in shown]
        if name is None:
            described = [f"the {c['name']} {d}" for c, d in zip(shown, described, strict=True)]
        one = f"Yes, I found one match in stock for {what}"
        head = one if count == 1 else f"Yes, we have {count} {what} in stock"
        more = " Want me to narrow it down further?" if count > len(shown) else " Would you like anything else?"
        return f"{head}: {_listed(described)}.{more}"
    near = [c for c in choices if c.get("in_stock")][:limit] or choices[:limit]
    if not near:
        return f"Sorry, I couldn't find any {what} right now."
    out_of_stock = any(c.get("matches_all") and not c.get("in_stock") for c in choices)
    opening = (
        f"Sorry, the {what} {'is' if name else 'are'} out of stock right now."
        if out_of_stock
        else f"Sorry, we don't have {what} right now."
    )
    shown_names = [k for k in near[0]["options"]][:3]
    closest = [(f"the {c['name']} " if name is None else "") + _described(c, shown_names) for c in near]
    return f"{opening} The closest we have in stock: {_listed(closest)}. Would one of those work?"


HANDOFF_OPENERS = {
    "safety": "I'm so sorry, that sounds frightening. If anyone is hurt, please get medical help first, and stop "
    "using the product. I've passed this to our team as urgent.",
    "theft": "I'm sorry your package was taken, that's really frustrating. I've passed this to our team so they can "
    "look into a replacement or a refund.",
    "fraud_or_legal": "I understand, and I'm sorry it has come to this. I've passed this to our team as a priority "
    "so a person can look into it properly.",
    "harassment": "I'm really sorry you experienced that; nobody should have to. I've passed this to our team as a "
    "priority.",
    "customer_requested_human": "Of course. I've passed your conversation to a member of our team, with a summary "
    "so you won't have to repeat yourself.",
    "apology": "I'm sorry for the trouble. I've passed your conversation to a member of our team, with a summary so "
    "you won't have to repeat yourself.",
}
HANDOFF_DEFAULT = (
    "I've passed your conversation to a member of our team, with a summary so you won't have to repeat yourself."
)
APOLOGY_STALLS = frozenset({"negative_sentiment", "high_value_complaint", "repeated_failure", "no_knowledge_answer"})
FOLLOW_UP = {
    "voice": "they'll call you back on this number",
    "sms": "they'll text you back here",
    "email": "they'll reply to this email",
}


def handoff_notice(stall: str, topic: str | None, channel: str, wait: str, told: str | None = None) -> str:
    """What the customer hears when a person takes over: fitting why (care and safety advice where it matters),
    the expected wait, and how the team will get back to them on this channel."""
    if told:
        opener = f"{told} I've passed your request to a member of our team, who can look at an exception."
    elif topic in HANDOFF_OPENERS:
        opener = HANDOFF_OPENERS[topic]
    elif stall in HANDOFF_OPENERS:
        opener = HANDOFF_OPENERS[stall]
    else:
        opener = HANDOFF_OPENERS["apology"] if stall in APOLOGY_STALLS else HANDOFF_DEFAULT
    follow = FOLLOW_UP.get(channel, "they'll reply to you here")
    return f"{opener} {wait}, and {follow}."


def queued_ack(channel: str, wait: str) -> str:
    """The short note a customer gets when they write again while their case waits for a person."""
    follow = FOLLOW_UP.get(channel, "they'll reply to you here")
    return f"Thanks, I've added this to your case for our team. {wait}, and {follow}."
