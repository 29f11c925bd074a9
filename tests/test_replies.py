"""`agents.replies.knowledge_reply`: a help-center answer whole, or only whole sentences of another passage; the
article is cited where the channel shows citations (never on SMS or voice); the product finder's replies."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from threadline.agents import replies
from threadline.core.types import Article, ArticleStatus, Audience
from threadline.demo.loader import default_articles
from threadline.memory.chunking import chunk_article

WORDS = ["return", "refund", "delivered", "items", "within", "thirty", "days", "gift", "card", "exchange", "order"]
WORDS += ["pending", "payment", "method", "shipping", "address", "policy", "customer", "store", "original"]
_sentence = st.lists(st.sampled_from(WORDS), min_size=5, max_size=12).map(lambda ws: " ".join(ws).capitalize() + ".")
_title = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz :-", min_size=1, max_size=40).filter(
    lambda t: t.strip() != ""
)


@settings(max_examples=150, deadline=None)
@given(
    sentences=st.lists(_sentence, min_size=1, max_size=8),
    title=_title,
    version=st.integers(min_value=1, max_value=999),
    query=st.lists(st.sampled_from([*WORDS, "how", "what", "the", "my", "weather"]), max_size=10).map(" ".join),
    separator=st.sampled_from([" ", "\n", "\n- ", "\n\n"]),
)
def test_knowledge_reply_cites_and_quotes_only_whole_passage_sentences(
    sentences: list[str], title: str, version: int, query: str, separator: str
) -> None:
    text = f"{title}\n\n" + separator.join(sentences)
    reply = replies.knowledge_reply(query, [{"title": title, "version": version, "text": text}])
    citation = f" (Source: {title}.)"
    assert reply.endswith(citation)
    spoken = replies.knowledge_reply(query, [{"title": title, "version": version, "text": text}], "voice")
    assert "Source" not in spoken and spoken == reply[: -len(citation)]
    chosen = reply[: -len(citation)]
    allowed = set(sentences) | {f"{a} {b}" for i, a in enumerate(sentences) for j, b in enumerate(sentences) if i < j}
    assert chosen in allowed
    if len(set(sentences)) >= 2:  # a repeated sentence is quoted once
        assert chosen.count(".") == 2


def test_knowledge_reply_prefers_the_sentences_sharing_words_with_the_question() -> None:
    text = (
        "Returns\n\nOur stores open at nine every weekday morning. "
        "Delivered items can be returned within thirty days of delivery. "
        "Gift cards never expire and can be used online. "
        "The refund goes to the original payment method."
    )
    reply = replies.knowledge_reply(
        "how many days to return delivered items and get a refund?", [{"title": "Returns", "version": 7, "text": text}]
    )
    assert reply == (
        "Delivered items can be returned within thirty days of delivery. "
        "The refund goes to the original payment method. (Source: Returns.)"
    )


def test_knowledge_reply_uses_only_the_top_passage() -> None:
    passages = [
        {"title": "First", "version": 1, "text": "First\n\nThe first passage talks about returns and refunds."},
        {"title": "Second", "version": 2, "text": "Second\n\nThe second passage talks about weather and flights."},
    ]
    reply = replies.knowledge_reply("weather flights", passages)
    assert reply == "The first passage talks about returns and refunds. (Source: First.)"


def _spans(chosen: str, source: str) -> int | None:
    """The fewest pieces of `source` (joined by single spaces) that make up `chosen`, or None."""
    cuts = [0] + [i + 1 for i, ch in enumerate(chosen) if ch == " "] + [len(chosen) + 1]
    best: dict[int, int] = {0: 0}
    for a in cuts:
        if a not in best:
            continue
        for b in cuts:
            if b > a and chosen[a : b - 1] in source and best.get(b, 1 << 30) > best[a] + 1:
                best[b] = best[a] + 1
    return best.get(len(chosen) + 1)


def test_knowledge_reply_on_every_demo_chunk_quotes_at_most_two_spans_and_cites() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    checked = answers = 0
    for draft in default_articles():
        article = Article(
            id=draft.id,
            version=3,
            kind=draft.kind,
            status=ArticleStatus.PUBLISHED,
            title=draft.title,
            body=draft.body,
            updated_at=now,
        )
        for _, chunk in chunk_article(article):
            passage = {"title": article.title, "version": 3, "text": chunk}
            reply = replies.knowledge_reply(f"what about {article.title.lower()}?", [passage])
            assert "Demo content" not in reply  # the help center's notes to its editors are never read out
            if reply == replies.DONT_KNOW:
                assert replies.passage_answer(passage)[1] == ""  # only a chunk holding nothing but such notes
                continue
            citation = f" (Source: {article.title}.)"
            assert reply.endswith(citation)
            chosen = reply[: -len(citation)]
            assert chosen
            question, answer = replies.passage_answer(passage)
            if question is not None:  # a help-center question: its whole answer, nothing else
                assert chosen == answer and question.endswith("?")
                answers += 1
            pieces = _spans(chosen, chunk)
            assert pieces is not None, (chunk, chosen)
            assert pieces <= 2 or question is not None, (chunk, chosen)
            checked += 1
    assert checked > 20 and answers >= 50


def test_help_center_is_for_customers_and_the_agent_policy_is_not() -> None:
    drafts = default_articles()
    help_center = [d for d in drafts if "help-center" in d.tags]
    assert len(help_center) >= 10
    assert {d.audience for d in help_center} == {Audience.CUSTOMER}
    agent_text = re.compile(r"\b(the user|the agent|you should check|remember to remind)\b", re.I)
    for draft in help_center:
        answers = [
            a for _, a in (replies.passage_answer({"title": draft.title, "text": c}) for c in draft.body.split("\n## "))
        ]
        assert not any(agent_text.search(a) for a in answers), draft.title
    policy = [d for d in drafts if d.id.startswith(("policy-", "guide-"))]
    assert policy and {d.audience for d in policy} == {Audience.AGENT}
    demo = [d for d in help_center if "demo-content" in d.tags]
    assert demo and all("> Demo content:" in d.body for d in demo)


SPEAKERS = {
    "status": "ok",
    "query": "waterproof red speaker",
    "asked_for": ["waterproof", "red"],
    "products": ["Bluetooth Speaker"],
    "choices": [
        {
            "name": "Bluetooth Speaker",
            "options": {"color": "red", "battery life": "20 hours", "water resistance": "yes"},
            "price": "285.94",
            "in_stock": True,
            "matches_all": True,
        },
        {
            "name": "Bluetooth Speaker",
            "options": {"color": "red", "battery life": "10 hours", "water resistance": "yes"},
            "price": "321.18",
            "in_stock": True,
            "matches_all": True,
        },
        {
            "name": "Bluetooth Speaker",
            "options": {"color": "red", "battery life": "20 hours", "water resistance": "no"},
            "price": "285.81",
            "in_stock": True,
            "matches_all": False,
            "missing": ["waterproof"],
        },
    ],
    "in_stock_count": 2,
}


def test_products_reply_names_what_fits_by_its_options_and_never_an_id() -> None:
    reply = replies.products_reply(SPEAKERS, "web")
    assert reply.startswith("Yes, we have 2 waterproof, red Bluetooth Speakers in stock")
    assert "$285.94" in reply and "$321.18" in reply and "$285.81" not in reply  # the one that is not waterproof
    assert "battery life 20 hours" in reply and "item" not in reply
    none_fit = {**SPEAKERS, "choices": SPEAKERS["choices"][2:], "in_stock_count": 0}
    assert replies.products_reply(none_fit, "sms").startswith("Sorry, we don't have waterproof, red Bluetooth")
    sofa = {
        "status": "not_carried",
        "query": "a sofa",
        "asked_for": [],
        "products": [],
        "wanted": "sofa",
        "closest": ["Office Chair", "Pet Bed"],
    }
    assert replies.products_reply(sofa, "voice") == (
        "Sorry, we don't carry sofas. The closest things we sell are the Office Chair or Pet Bed. Would you like to "
        "hear about any of them?"
    )
