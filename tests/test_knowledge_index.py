"""The knowledge index: Markdown chunking, incremental FAISS sync with the repository, persistence and filters."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings

from threadline.core.types import Article, ArticleDraft, ArticleId, ArticleKind, ArticleStatus, Audience
from threadline.demo.loader import default_articles
from threadline.memory.chunking import chunk_article, split_request
from threadline.memory.knowledge_index import KnowledgeIndex, RetrievalSettings, focus
from threadline.memory.lexical import LexicalIndex
from threadline.memory.stores import Stores


class CountingEmbeddings(Embeddings):
    """Delegates to the real model and records which texts the index asked for.

    Vectors are memoised per text (shared across the module) so the demo KB is embedded by MiniLM once per run;
    the counts reflect what the index requested, not what the cache served.
    """

    dimension = 384

    def __init__(self, inner: Embeddings, memo: dict[str, list[float]]) -> None:
        self.inner, self.memo = inner, memo
        self.documents: list[str] = []
        self.queries = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.documents.extend(texts)
        missing = [t for t in dict.fromkeys(texts) if t not in self.memo]
        self.memo.update(zip(missing, self.inner.embed_documents(missing), strict=True))
        return [self.memo[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        self.queries += 1
        return self.inner.embed_query(text)


@pytest.fixture(scope="module")
def memo() -> dict[str, list[float]]:
    return {}


@pytest.fixture
def counting(embeddings: Embeddings, memo: dict[str, list[float]]) -> CountingEmbeddings:
    return CountingEmbeddings(embeddings, memo)


AGENT = Audience.AGENT
"""The store's agent policy is searched as staff would."""


def _article(body: str, title: str = "Gift cards", **fields: object) -> Article:
    return Article.model_validate(
        {
            "id": "faq-gift-cards",
            "version": 1,
            "kind": ArticleKind.FAQ,
            "status": ArticleStatus.PUBLISHED,
            "title": title,
            "body": body,
            "updated_at": datetime.now(UTC),
            **fields,
        }
    )


def _draft(article_id: str, **changes: object) -> ArticleDraft:
    base = next(d for d in default_articles() if d.id == article_id)
    return base.model_copy(update=changes)


STRUCTURED = """Gift cards never expire and can be combined with other payment methods.

## Buying
A gift card can be bought online in amounts from $10 to $500.

## Redeeming
1. Open the cart and choose **Gift card** as payment.
   - Enter the 16-digit code.
   - Enter the PIN from the back of the card.
2. Confirm the payment.
   - Any remaining balance stays on the card.
- Lost cards cannot be replaced.
"""


def test_chunks_carry_the_title_and_follow_the_markdown_structure() -> None:
    chunks = chunk_article(_article(STRUCTURED), max_chars=160)

    assert [n for n, _ in chunks] == list(range(len(chunks)))
    assert all(text.startswith("Gift cards\n\n") for _, text in chunks)
    # headings start new chunks and label every chunk of their section
    assert "Buying" not in chunks[0][1]
    assert any(text.startswith("Gift cards\n\nBuying\n") and "$10 to $500" in text for _, text in chunks)
    redeeming = [text for _, text in chunks if text.startswith("Gift cards\n\nRedeeming\n")]
    assert len(redeeming) >= 2
    # a numbered step keeps its sub-bullets
    step1 = next(text for text in redeeming if "1. Open the cart" in text)
    assert "16-digit code" in step1
    assert "PIN from the back" in step1
    step2 = next(text for text in redeeming if "2. Confirm the payment" in text)
    assert "remaining balance" in step2
    assert chunk_article(_article(STRUCTURED), max_chars=160) == chunks


def test_small_blocks_merge_and_long_ones_split() -> None:
    assert len(chunk_article(_article(STRUCTURED), max_chars=800)) == 3  # intro, Buying, Redeeming
    long_body = " ".join(f"Sentence number {i} explains one more detail of the policy." for i in range(40))
    chunks = chunk_article(_article(long_body), max_chars=300)
    assert len(chunks) > 5
    assert all(len(text) - len("Gift cards\n\n") <= 300 for _, text in chunks)
    assert all(text.rstrip().endswith(".") for _, text in chunks)  # cut at sentence ends


def test_demo_articles_chunk_within_bounds() -> None:
    for draft in default_articles():
        article = Article(**draft.model_dump(exclude={"audience"}), version=1, updated_at=datetime.now(UTC))
        chunks = chunk_article(article)
        assert chunks
        assert all(text.startswith(article.title + "\n\n") for _, text in chunks)
        assert all(len(text) <= 800 + len(article.title) + 2 + 80 for _, text in chunks)


def test_demo_kb_answers_support_questions(demo_stores: Stores, counting: CountingEmbeddings) -> None:
    index = KnowledgeIndex(counting)
    assert (index.ready, index.revision, index.size) == (False, -1, 0)
    assert index.search("anything") == []

    assert index.sync(demo_stores.knowledge) is True
    assert index.ready
    assert index.revision == demo_stores.knowledge.revision()
    assert index.size == len(counting.documents) > 61
    assert index.sync(demo_stores.knowledge) is False

    returns = index.search("how do I return a delivered item", k=3, audience=AGENT)
    assert any(p.article_id.startswith("policy-return") for p in returns)
    # customers are answered from the help center; the agent policy never reaches them
    told = index.search("how do I return a delivered item", k=5, audience=Audience.CUSTOMER)
    assert told[0].article_id == "help-returns"
    assert all(p.audience is Audience.CUSTOMER and not p.article_id.startswith("policy-") for p in told)
    cancel = index.search("cancel a pending order", audience=AGENT)
    assert cancel[0].article_id == "policy-cancel-pending-order"
    assert cancel[0].version == 1
    assert cancel[0].kind is ArticleKind.POLICY
    assert cancel[0].text.startswith("Cancel pending order\n\n")

    wide = index.search("refund to my gift card", k=12)
    assert len(wide) == 12
    assert [p.score for p in wide] == sorted((p.score for p in wide), reverse=True)
    assert max(sum(p.article_id == a for p in wide) for a in {p.article_id for p in wide}) <= 2
    assert index.search("refund to my gift card", k=12, min_score=wide[5].score) == wide[:6]


def test_update_reembeds_only_that_article(demo_stores: Stores, counting: CountingEmbeddings) -> None:
    index = KnowledgeIndex(counting)
    index.sync(demo_stores.knowledge)
    size = index.size
    counting.documents.clear()
    old = demo_stores.knowledge.get(ArticleId("policy-return-delivered-order"))
    assert old is not None

    new_body = "Delivered orders can be returned within 45 days for a refund to the original payment method.\n"
    updated = demo_stores.knowledge.upsert(_draft("policy-return-delivered-order", body=new_body), author="test")
    assert updated.version == 2
    assert index.sync(demo_stores.knowledge) is True

    assert counting.documents == [text for _, text in chunk_article(updated)]
    assert index.size == size - len(chunk_article(old)) + len(chunk_article(updated))
    top = index.search("how many days do I have to return a delivered order", k=3, audience=AGENT)
    hit = next(p for p in top if p.article_id == "policy-return-delivered-order")
    assert hit.version == 2
    assert "45 days" in hit.text
    assert all("45 days" in p.text for p in top if p.article_id == "policy-return-delivered-order")


def test_retired_article_leaves_the_results(demo_stores: Stores, counting: CountingEmbeddings) -> None:
    index = KnowledgeIndex(counting)
    index.sync(demo_stores.knowledge)
    size = index.size
    demo_stores.knowledge.upsert(_draft("policy-cancel-pending-order", status=ArticleStatus.RETIRED), author="test")
    counting.documents.clear()

    assert index.sync(demo_stores.knowledge) is True
    assert counting.documents == []
    assert index.size < size
    results = index.search("cancel a pending order", k=10, audience=AGENT)
    assert results
    assert all(p.article_id != "policy-cancel-pending-order" for p in results)


def test_persisted_index_loads_without_reembedding(
    demo_stores: Stores, counting: CountingEmbeddings, tmp_path: Path
) -> None:
    first = KnowledgeIndex(counting, tmp_path)
    first.sync(demo_stores.knowledge)
    assert (tmp_path / "knowledge.faiss").exists()
    assert (tmp_path / "knowledge.json").exists()
    counting.documents.clear()

    second = KnowledgeIndex(counting, tmp_path)
    assert second.ready
    assert (second.revision, second.size) == (first.revision, first.size)
    assert second.sync(demo_stores.knowledge) is False
    assert counting.documents == []
    for query in ("how do I return a delivered item", "reset two-factor authentication"):
        assert second.search(query) == first.search(query)

    demo_stores.knowledge.upsert(_draft("policy-domain-basic", body="All prices are in euros.\n"), author="test")
    assert second.sync(demo_stores.knowledge) is True
    assert counting.documents == ["Domain basic\n\nAll prices are in euros."]
    third = KnowledgeIndex(counting, tmp_path)
    assert third.revision == demo_stores.knowledge.revision()
    assert third.search("which currency are prices in", k=1)[0].version == 2


@pytest.mark.parametrize("damage", ["garbage sidecar", "truncated index", "other model"])
def test_damaged_files_are_ignored_and_rebuilt(
    demo_stores: Stores, counting: CountingEmbeddings, tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    KnowledgeIndex(counting, tmp_path).sync(demo_stores.knowledge)
    sidecar, faiss_file = tmp_path / "knowledge.json", tmp_path / "knowledge.faiss"
    if damage == "garbage sidecar":
        sidecar.write_text("{not json", encoding="utf-8")
    elif damage == "truncated index":
        faiss_file.write_bytes(faiss_file.read_bytes()[:100])
    else:
        sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "model": "openai:other"}), encoding="utf-8")
    counting.documents.clear()

    with caplog.at_level(logging.WARNING, logger="memory.knowledge_index"):
        index = KnowledgeIndex(counting, tmp_path)
    assert not index.ready
    assert "rebuilt" in caplog.text

    assert index.sync(demo_stores.knowledge) is True
    assert len(counting.documents) == index.size > 61
    assert index.search("cancel a pending order", audience=AGENT)[0].article_id == "policy-cancel-pending-order"
    assert KnowledgeIndex(counting, tmp_path).ready


def test_channel_filter_and_effective_dates(stores: Stores, counting: CountingEmbeddings) -> None:
    now = datetime.now(UTC)
    body = "Store credit for a late delivery is added to the account automatically.\n"
    variants: dict[str, dict[str, object]] = {
        "everywhere": {},
        "web-only": {"channels": ["web"]},
        "sms-only": {"channels": ["sms"]},
        "expired": {"effective_to": now - timedelta(days=1)},
        "upcoming": {"effective_from": now + timedelta(days=1)},
        "current": {"effective_from": now - timedelta(days=1), "effective_to": now + timedelta(days=1)},
    }
    for name, fields in variants.items():
        draft = {"id": name, "kind": ArticleKind.PROMOTION, "title": f"Late delivery credit ({name})", "body": body}
        stores.knowledge.upsert(ArticleDraft.model_validate({**draft, **fields}), author="test")
    index = KnowledgeIndex(counting)
    index.sync(stores.knowledge)
    assert index.size == 6

    def found(channel: str | None) -> set[str]:
        return {p.article_id for p in index.search("late delivery store credit", k=10, channel=channel)}

    assert found(None) == {"everywhere", "web-only", "sms-only", "current"}
    assert found("web") == {"everywhere", "web-only", "current"}
    assert found("sms") == {"everywhere", "sms-only", "current"}
    assert found("voice") == {"everywhere", "current"}


def test_searches_run_while_syncing(demo_stores: Stores, counting: CountingEmbeddings) -> None:
    index = KnowledgeIndex(counting)
    index.sync(demo_stores.knowledge)
    errors: list[BaseException] = []
    stop = threading.Event()

    def searcher() -> None:
        try:
            while not stop.is_set():
                assert len(index.search("exchange a delivered order", k=4)) == 4
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for thread in threads:
        thread.start()
    for n in range(3):
        body = f"Exchanges are allowed {n + 2} times per order, for items of the same product.\n"
        demo_stores.knowledge.upsert(_draft("policy-exchange-delivered-order", body=body), author="test")
        assert index.sync(demo_stores.knowledge)
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []
    assert "4 times" in index.search("how many exchanges per order", k=1)[0].text


def test_split_request_cuts_sentences_and_lines_and_drops_fragments() -> None:
    text = "Hi,\nI ordered a jacket last week. It arrived today!\n\nCan I return it for a refund? Thanks\n- Sam"
    assert split_request(text) == [
        "I ordered a jacket last week.",
        "Can I return it for a refund?",
    ]
    assert split_request("cancel a pending order") == ["cancel a pending order"]
    assert split_request("  hi  ") == ["hi"]  # nothing long enough: the request stays whole
    assert split_request("") == []
    many = " ".join(f"Sentence number {i} of a very long email." for i in range(100))
    assert len(split_request(many, max_clauses=10)) == 10


def test_lexical_index_replaces_ids_and_ranks() -> None:
    index = LexicalIndex.from_texts({1: "gift cards never expire", 2: "returns within 30 days", 3: "shipping times"})
    hits = index.query("my gift card expired")
    ids, _ = hits.top(5)
    assert ids.tolist() == [1]
    assert hits.ranks(np.asarray([1, 2, 99])).tolist() == [1.0, np.inf, np.inf]
    updated = index.replaced([1], {4: "expired gift cards can be renewed", 5: "gift wrapping"})
    assert len(updated) == 4 and len(index) == 3  # snapshots: the old one is untouched
    assert updated.query("gift card expired").top(5)[0].tolist()[0] == 4
    assert LexicalIndex().query("anything").top(3)[0].tolist() == []


LONG_REQUEST = """Hi there,

I bought a jacket from you last month and it was delivered on Monday.
Unfortunately it does not fit and I would like to send it back for a refund to my card.
Can you tell me how returns work for an order that has already been delivered?

Thanks a lot,
Sam"""


def test_a_long_request_finds_the_article_behind_it(demo_stores: Stores, counting: CountingEmbeddings) -> None:
    index = KnowledgeIndex(counting)
    index.sync(demo_stores.knowledge)
    top = index.search(LONG_REQUEST, k=3, audience=AGENT)
    assert index.search(LONG_REQUEST, k=1, audience=Audience.CUSTOMER)[0].article_id == "help-returns"
    assert "policy-return-delivered-order" in [p.article_id for p in top]
    assert counting.queries >= 3  # one embedding per clause
    assert max(sum(p.article_id == a for p in top) for a in {p.article_id for p in top}) <= 2
    # scores stay dense similarities, and min_score cuts on them
    cut = index.search(LONG_REQUEST, k=10, min_score=0.3)
    assert cut and all(p.score >= 0.3 for p in cut)
    assert index.search(LONG_REQUEST, k=10, min_score=0.99) == []


def test_hnsw_past_the_threshold_keeps_answers_updates_and_retires(
    demo_stores: Stores, counting: CountingEmbeddings, tmp_path: Path
) -> None:
    index = KnowledgeIndex(counting, tmp_path, hnsw_threshold=50)
    index.sync(demo_stores.knowledge)
    assert index.approximate and index.size > 50
    assert index.search("cancel a pending order", audience=AGENT)[0].article_id == "policy-cancel-pending-order"
    returns = index.search("how do I return a delivered item", k=3, audience=AGENT)
    assert any(p.article_id == "policy-return-delivered-order" for p in returns)

    new_body = "Delivered orders can be returned within 45 days for a refund to the original payment method.\n"
    demo_stores.knowledge.upsert(_draft("policy-return-delivered-order", body=new_body), author="test")
    demo_stores.knowledge.upsert(_draft("policy-cancel-pending-order", status=ArticleStatus.RETIRED), author="test")
    counting.documents.clear()
    assert index.sync(demo_stores.knowledge)
    assert counting.documents == ["Return delivered order\n\n" + new_body.strip()]
    hit = next(
        p
        for p in index.search("how many days do I have to return a delivered order", k=3, audience=AGENT)
        if p.article_id == "policy-return-delivered-order"
    )
    assert (hit.version, "45 days" in hit.text) == (2, True)
    assert all(
        p.article_id != "policy-cancel-pending-order"
        for p in index.search("cancel a pending order", k=10, audience=AGENT)
    )
    assert len(index.search("refund to my gift card", k=12)) == 12

    reloaded = KnowledgeIndex(counting, tmp_path, hnsw_threshold=50)
    assert reloaded.approximate and (reloaded.revision, reloaded.size) == (index.revision, index.size)
    for query in ("cancel a pending order", LONG_REQUEST):
        assert reloaded.search(query) == index.search(query)


def test_hnsw_goes_back_to_exact_search_when_the_knowledge_base_shrinks(
    demo_stores: Stores, counting: CountingEmbeddings
) -> None:
    index = KnowledgeIndex(counting, hnsw_threshold=50)
    index.sync(demo_stores.knowledge)
    assert index.approximate
    keep = {"policy-return-delivered-order", "policy-cancel-pending-order"}
    for article in demo_stores.knowledge.list():
        if article.id not in keep:
            fields = article.model_dump(exclude={"version", "updated_at"})
            retired = ArticleDraft.model_validate({**fields, "status": ArticleStatus.RETIRED})
            demo_stores.knowledge.upsert(retired, author="test")
    index.sync(demo_stores.knowledge)
    assert not index.approximate and index.size < 40
    assert index.search("cancel a pending order", audience=AGENT)[0].article_id == "policy-cancel-pending-order"


def test_focus_keeps_the_clauses_whose_nearest_chunk_is_closest_in_request_order() -> None:
    best = np.asarray([0.2, 0.9, 0.5, 0.9, 0.1], dtype=np.float32)
    assert focus(best, 2).tolist() == [1, 3]
    assert focus(best, 3).tolist() == [1, 2, 3]
    assert focus(best, 9).tolist() == [0, 1, 2, 3, 4]
    assert focus(np.asarray([0.5, 0.5, 0.5], dtype=np.float32), 2).tolist() == [0, 1]  # ties: the earlier
    with pytest.raises(ValueError, match="clause_votes must be positive"):
        RetrievalSettings(clause_votes=0)
    with pytest.raises(ValueError, match="clause_votes must be positive"):
        RetrievalSettings(focus_clauses=-1)


ROLE_PLAY = """You are playing the role of a customer contacting a customer service representative.
Your character is a retired teacher named Sam Park who lives in Ohio with two cats and a garden.
Only provide additional details about your situation when the agent asks for them.
Never respond as a customer service representative or assistant; you are the customer.
Do not dump all your information at once, and stay polite and patient throughout.
If the agent asks for your name, give it; do not volunteer your phone number or email address.
When you have the answer you need, thank the agent and end the conversation.
Speak casually, as you would on the phone with someone you have never met before.
Keep your messages short: one or two sentences at a time is plenty for this kind of call.
"""


def test_a_request_buried_in_instructions_is_found_by_its_focused_clauses(
    demo_stores: Stores, counting: CountingEmbeddings
) -> None:
    index = KnowledgeIndex(counting, settings=RetrievalSettings(focus_clauses=4, clause_votes=2))
    index.sync(demo_stores.knowledge)
    request = ROLE_PLAY + "\n" + LONG_REQUEST
    assert len(split_request(request)) > 10
    found = [p.article_id for p in index.search(request, k=3, audience=Audience.CUSTOMER)]
    assert found[0] == "help-returns", found
