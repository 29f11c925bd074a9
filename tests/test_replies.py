"""`agents.replies.knowledge_reply`: answers quote only whole sentences of the passage and cite it."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from threadline.agents import replies
from threadline.core.types import Article, ArticleStatus
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
    citation = f" (Source: {title}, version {version}.)"
    assert reply.endswith(citation)
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
        "The refund goes to the original payment method. (Source: Returns, version 7.)"
    )


def test_knowledge_reply_uses_only_the_top_passage() -> None:
    passages = [
        {"title": "First", "version": 1, "text": "First\n\nThe first passage talks about returns and refunds."},
        {"title": "Second", "version": 2, "text": "Second\n\nThe second passage talks about weather and flights."},
    ]
    reply = replies.knowledge_reply("weather flights", passages)
    assert reply == "The first passage talks about returns and refunds. (Source: First, version 1.)"


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
    checked = 0
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
            citation = f" (Source: {article.title}, version 3.)"
            assert reply.endswith(citation)
            chosen = reply[: -len(citation)]
            assert chosen
            pieces = _spans(chosen, chunk)
            assert pieces is not None, (chunk, chosen)
            assert pieces <= 2, (chunk, chosen)
            checked += 1
    assert checked > 20
