"""`SqlStore`, LangGraph's `BaseStore` over the domain database, on SQLite and Postgres alike."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings
from langgraph.store.base import InvalidNamespaceError, PutOp

from threadline.memory.db import Database
from threadline.memory.longterm import SqlStore

A = ("customers", "A", "episodes")


@pytest.fixture
def store(db: Database, embeddings: Embeddings) -> SqlStore:
    return SqlStore(db, embeddings)


def keys(items: list[Any]) -> list[str]:
    return [item.key for item in items]


def test_put_then_get_round_trips_and_a_missing_item_is_none(store: SqlStore) -> None:
    value = {"text": "asked about a bookshelf", "topics": [{"q": "délai ?", "n": 3}], "ok": True, "none": None}
    store.put(A, "ep-1", value)
    first = store.get(A, "ep-1")
    assert first is not None
    assert first.value == value
    assert first.namespace == A
    assert first.key == "ep-1"
    assert isinstance(first.created_at, datetime)
    assert first.created_at.tzinfo is not None
    assert first.updated_at == first.created_at

    store.put(A, "ep-1", {"text": "asked about a lamp"})
    second = store.get(A, "ep-1")
    assert second is not None
    assert second.value == {"text": "asked about a lamp"}  # replaced, not merged
    assert second.created_at == first.created_at
    assert second.updated_at > first.updated_at
    assert keys(store.search(A)) == ["ep-1"]  # an overwrite never duplicates the item

    assert store.get(A, "absent") is None
    assert store.get(("customers", "B", "episodes"), "ep-1") is None
    assert store.get(("customers", "A"), "ep-1") is None  # a parent namespace is another namespace


def test_delete_removes_the_item_through_delete_and_a_put_of_none(store: SqlStore) -> None:
    for key in ("one", "two", "three"):
        store.put(A, key, {"text": f"item {key}"})
    store.delete(A, "one")
    store.batch([PutOp(A, "two", None)])  # what `delete` sends: a put with no value
    assert store.get(A, "one") is None
    assert store.get(A, "two") is None
    assert keys(store.search(A)) == ["three"]
    assert keys(store.search(A, query="item one")) == ["three"]
    store.delete(A, "never-there")  # deleting a missing item is a no-op
    assert keys(store.search(A)) == ["three"]


LOOK_ALIKES = ["AB", "B", "A_", "A%", "A/", "_"]
"""Other customers whose ids a careless prefix match would confuse with `A`: a longer id, LIKE wildcards, the
escape character."""


def test_a_customers_namespace_never_returns_another_customers_items(store: SqlStore) -> None:
    mine = ("customers", "A")
    store.put((*mine, "episodes"), "mine", {"text": "refund for a damaged lamp"})
    for other in LOOK_ALIKES:
        theirs = ("customers", other)
        store.put((*theirs, "episodes"), f"theirs-{other}", {"text": "refund for a damaged lamp"})
        store.put((*theirs, "preferences"), f"pref-{other}", {"text": "please email me"})
        store.put(theirs, f"root-{other}", {"text": "refund for a damaged lamp"})

    assert keys(store.search(mine)) == ["mine"]
    assert keys(store.search(mine, query="refund for a damaged lamp")) == ["mine"]
    assert keys(store.search((*mine, "episodes"), filter={"text": "refund for a damaged lamp"})) == ["mine"]
    assert store.search((*mine, "preferences")) == []
    assert store.get((*mine, "episodes"), "theirs-AB") is None
    assert store.list_namespaces(prefix=mine) == [(*mine, "episodes")]
    for other in LOOK_ALIKES:
        found = sorted(keys(store.search(("customers", other), limit=50)))
        assert found == sorted([f"theirs-{other}", f"pref-{other}", f"root-{other}"]), other
    assert len(store.search(("customers",), limit=50)) == 1 + 3 * len(LOOK_ALIKES)

    # The BaseStore methods refuse labels that would read back as another namespace.
    with pytest.raises(InvalidNamespaceError):
        store.put(("customers", "A.B"), "k", {"text": "x"})
    with pytest.raises(InvalidNamespaceError):
        store.search(("customers", "A.B"))


@pytest.mark.parametrize(
    "backend",
    [
        "sqlite",  # SQLite's LIKE ignores case: the prefix match must not
        "postgres",
    ],
    indirect=True,
)
def test_customer_ids_differing_only_in_case_are_different_namespaces(store: SqlStore) -> None:
    store.put(("customers", "A", "episodes"), "upper", {"text": "x"})
    store.put(("customers", "a", "episodes"), "lower", {"text": "x"})
    assert keys(store.search(("customers", "A"))) == ["upper"]
    assert keys(store.search(("customers", "a"))) == ["lower"]


SEMANTIC = {
    "bookshelf": "bookshelf delivery lead time",
    "lamp": "refund for a damaged lamp",
    "address": "changing my shipping address",
}


def test_semantic_search_ranks_the_item_about_the_query_first(store: SqlStore) -> None:
    for key, text in SEMANTIC.items():
        store.put(A, key, {"text": text})
    store.put(A, "unindexed", {"text": "bookshelf delivery lead time"}, index=False)

    found = store.search(A, query="how long until the bookshelf arrives")
    assert keys(found)[0] == "bookshelf"
    scored, unscored = found[:3], found[3:]
    scores = [item.score for item in scored if isinstance(item.score, float)]
    assert len(scores) == 3
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > scores[1]
    assert keys(unscored) == ["unindexed"]  # kept, though it matches the query best, after every scored item
    assert unscored[0].score is None

    assert keys(store.search(A, query="my lamp arrived broken, can I get my money back?"))[0] == "lamp"
    assert keys(store.search(A, query="I moved house, please update where you ship to"))[0] == "address"


def test_index_fields_choose_what_is_embedded_and_index_false_drops_it(store: SqlStore) -> None:
    store.put(A, "titled", {"title": "bookshelf delivery lead time", "text": "refund for a damaged lamp"}, ["title"])
    store.put(A, "plain", {"text": "refund for a damaged lamp"})
    store.put(A, "no-text", {"note": "bookshelf delivery lead time"})  # nothing at the default `text` field
    found = store.search(A, query="how long until the bookshelf arrives")
    assert keys(found) == ["titled", "plain", "no-text"]
    assert found[2].score is None

    # Overwriting with index=False drops the embedding: still found, no longer scored.
    store.put(A, "titled", {"title": "bookshelf delivery lead time"}, index=False)
    found = store.search(A, query="how long until the bookshelf arrives")
    assert keys(found) == ["plain", "titled", "no-text"]
    assert [item.score is None for item in found] == [False, True, True]


FILTERED: dict[str, dict[str, Any]] = {
    "a": {"text": "bookshelf delivery lead time", "kind": "order", "n": 1},
    "b": {"text": "refund for a damaged lamp", "kind": "refund", "n": 2},
    "c": {"text": "changing my shipping address", "kind": "order", "n": 3},
    "d": {"text": "bookshelf assembly instructions", "kind": "product"},
}


FILTERS: list[tuple[dict[str, Any], set[str]]] = [
    ({"kind": "order"}, {"a", "c"}),
    ({"kind": {"$eq": "refund"}}, {"b"}),
    ({"kind": {"$ne": "order"}}, {"b", "d"}),
    ({"n": {"$gt": 1}}, {"b", "c"}),
    ({"n": {"$gte": 2}}, {"b", "c"}),
    ({"n": {"$lt": 3}}, {"a", "b"}),
    ({"n": {"$lte": 2}}, {"a", "b"}),
    ({"n": {"$gt": 1, "$lte": 2}}, {"b"}),
    ({"kind": {"$in": ["refund", "product"]}}, {"b", "d"}),
    ({"kind": "order", "n": {"$ne": 1}}, {"c"}),
    ({"kind": "missing"}, set()),
]


def test_filter_by_equality_and_comparison_operators(store: SqlStore) -> None:
    for key, value in FILTERED.items():
        store.put(A, key, value)
    for condition, expected in FILTERS:
        assert set(keys(store.search(A, filter=condition))) == expected, condition
        ranked = store.search(A, query="when will my bookshelf be delivered", filter=condition)
        assert set(keys(ranked)) == expected, condition
        assert all(item.score is not None for item in ranked), condition
    best = store.search(A, query="when will my bookshelf be delivered", filter={"kind": {"$ne": "refund"}})
    assert keys(best)[0] == "a"


def test_limit_and_offset_page_through_newest_first_and_ranked_results(store: SqlStore) -> None:
    for i in range(5):
        store.put(A, f"k{i}", {"text": f"note number {i}"})
    newest_first = ["k4", "k3", "k2", "k1", "k0"]
    assert keys(store.search(A)) == newest_first
    assert keys(store.search(A, limit=2)) == newest_first[:2]
    assert keys(store.search(A, limit=2, offset=1)) == newest_first[1:3]
    assert keys(store.search(A, limit=10, offset=4)) == newest_first[4:]
    assert store.search(A, offset=5) == []

    for key, text in SEMANTIC.items():
        store.put(A, key, {"text": text})
    ranked = keys(store.search(A, query="how long until the bookshelf arrives", limit=8))
    assert ranked[0] == "bookshelf"
    assert keys(store.search(A, query="how long until the bookshelf arrives", limit=3, offset=2)) == ranked[2:5]


def test_list_namespaces_with_prefix_suffix_wildcards_and_max_depth(store: SqlStore) -> None:
    for namespace in [
        ("customers", "A", "episodes"),
        ("customers", "A", "preferences"),
        ("customers", "B", "episodes"),
        ("customers", "AB", "episodes"),
        ("staff", "notes"),
    ]:
        store.put(namespace, "k", {"text": "x"})
    everything = store.list_namespaces()
    assert everything == sorted(everything)
    assert len(everything) == 5
    assert store.list_namespaces(prefix=("customers", "A")) == [
        ("customers", "A", "episodes"),
        ("customers", "A", "preferences"),
    ]
    assert store.list_namespaces(suffix=("episodes",)) == [
        ("customers", "A", "episodes"),
        ("customers", "AB", "episodes"),
        ("customers", "B", "episodes"),
    ]
    assert store.list_namespaces(prefix=("customers", "*", "preferences")) == [("customers", "A", "preferences")]
    assert store.list_namespaces(prefix=("customers",), suffix=("B", "episodes")) == [("customers", "B", "episodes")]
    assert store.list_namespaces(prefix=("customers",), max_depth=2) == [
        ("customers", "A"),
        ("customers", "AB"),
        ("customers", "B"),
    ]
    assert store.list_namespaces(max_depth=1) == [("customers",), ("staff",)]
    assert store.list_namespaces(prefix=("customers",), limit=2, offset=1) == [
        ("customers", "A", "preferences"),
        ("customers", "AB", "episodes"),
    ]
    assert store.list_namespaces(prefix=("nobody",)) == []


def test_the_async_api_works_through_asyncio_run(store: SqlStore) -> None:
    async def scenario() -> tuple[Any, ...]:
        await asyncio.gather(*(store.aput(A, key, {"text": text}) for key, text in SEMANTIC.items()))
        got = await store.aget(A, "lamp")
        found = await store.asearch(A, query="how long until the bookshelf arrives")
        namespaces = await store.alist_namespaces(prefix=("customers",))
        await store.adelete(A, "lamp")
        gone = await store.aget(A, "lamp")
        return got, found, namespaces, gone

    got, found, namespaces, gone = asyncio.run(scenario())
    assert got is not None
    assert got.value == {"text": SEMANTIC["lamp"]}
    assert keys(found)[0] == "bookshelf"
    assert isinstance(found[0].score, float)
    assert namespaces == [A]
    assert gone is None
    assert sorted(keys(store.search(A))) == ["address", "bookshelf"]


def test_a_store_without_embeddings_still_searches_newest_first_without_scores(
    db: Database, embeddings: Embeddings
) -> None:
    plain = SqlStore(db)
    for key, text in SEMANTIC.items():
        plain.put(A, key, {"text": text})
    found = plain.search(A, query="how long until the bookshelf arrives")
    assert keys(found) == ["address", "lamp", "bookshelf"]
    assert all(item.score is None for item in found)
    assert keys(plain.search(A, query="bookshelf", filter={"text": SEMANTIC["lamp"]})) == ["lamp"]

    # Items written without embeddings are found, unscored and after the scored ones, by a store with them.
    with_embeddings = SqlStore(db, embeddings)
    with_embeddings.put(A, "new", {"text": "refund for a damaged lamp"})
    found = with_embeddings.search(A, query="how long until the bookshelf arrives")
    assert keys(found) == ["new", "address", "lamp", "bookshelf"]
    assert [item.score is None for item in found] == [False, True, True, True]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # backend-independent: one is enough
def test_ops_passed_straight_to_batch_cannot_address_another_namespace_with_a_dotted_label(store: SqlStore) -> None:
    with pytest.raises(InvalidNamespaceError):
        store.batch([PutOp(("customers", "A.B"), "k", {"text": "x"})])
    assert store.search(("customers", "A")) == []


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # backend-independent: one is enough
def test_an_empty_namespace_prefix_searches_every_namespace(store: SqlStore) -> None:
    store.put(A, "a", {"text": "x"})
    store.put(("staff", "notes"), "b", {"text": "y"})
    assert sorted(keys(store.search(()))) == ["a", "b"]


class RecordedEmbeddings(Embeddings):
    """The real embeddings, recording each document they are asked to embed."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner = inner
        self.documents: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.documents += texts
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)


def test_an_item_is_embedded_when_a_search_first_meets_it_and_only_once(db: Database, embeddings: Embeddings) -> None:
    """A turn writes its episode record every time and searches rarely: writing embeds nothing, the first search
    with a query embeds what it meets (the same vector writing would have made) and stores it, and an item written
    again is embedded again."""
    recorded = RecordedEmbeddings(embeddings)
    store = SqlStore(db, recorded)
    for key, text in SEMANTIC.items():
        store.put(A, key, {"text": text})
    assert recorded.documents == []
    assert keys(store.search(A)) == ["address", "lamp", "bookshelf"]  # no query: nothing to embed
    assert recorded.documents == []

    question = "how long until the bookshelf arrives"
    found = store.search(A, query=question)
    assert sorted(recorded.documents) == sorted(SEMANTIC.values())
    query = np.asarray(embeddings.embed_query(question))
    document = np.asarray(embeddings.embed_documents([SEMANTIC["bookshelf"]])[0])
    expected = float(document @ query / (np.linalg.norm(document) * np.linalg.norm(query)))
    assert found[0].key == "bookshelf" and found[0].score == pytest.approx(expected, abs=1e-5)

    assert [i.score for i in store.search(A, query=question)] == [i.score for i in found]
    assert len(recorded.documents) == len(SEMANTIC)  # stored: the second search embedded nothing

    store.put(A, "lamp", {"text": "my lamp arrived broken"})
    store.search(A, query=question)
    assert recorded.documents[len(SEMANTIC) :] == ["my lamp arrived broken"]


def _read_only(url: str) -> str:
    """The same database through a connection that cannot write (a read-only replica after a failover, say)."""
    if url.startswith("sqlite"):
        return f"sqlite:///file:{url.split('///', 1)[1]}?mode=ro&uri=true"
    return url + ("&" if "?" in url else "?") + "options=-c%20default_transaction_read_only%3Don"


def test_a_search_that_cannot_store_its_vectors_still_scores_and_stays_a_read(
    db_url: str, db: Database, embeddings: Embeddings
) -> None:
    """A search computes the vectors of items not embedded yet and stores them best-effort after its own
    transaction: on a database that refuses the write it still answers with scores (and computes them again next
    time), and the next search that can write stores them once."""
    from sqlalchemy.exc import SQLAlchemyError

    writer = SqlStore(db, embeddings)
    for key, text in SEMANTIC.items():
        writer.put(A, key, {"text": text})
    question = "how long until the bookshelf arrives"
    reader_db = Database.from_url(_read_only(db_url))
    try:
        recorded = RecordedEmbeddings(embeddings)
        reader = SqlStore(reader_db, recorded)
        with pytest.raises(SQLAlchemyError):  # the connection really cannot write
            reader.put(A, "note", {"text": "a write"})
        found = reader.search(A, query=question)
        assert found[0].key == "bookshelf" and all(item.score is not None for item in found)
        assert [i.score for i in reader.search(A, query=question)] == [i.score for i in found]
        assert len(recorded.documents) == 2 * len(SEMANTIC)  # nothing was stored: computed again
    finally:
        reader_db.dispose()
    recorded = RecordedEmbeddings(embeddings)
    store = SqlStore(db, recorded)
    assert [i.score for i in store.search(A, query=question)] == pytest.approx([i.score for i in found], abs=1e-6)
    store.search(A, query=question)
    assert len(recorded.documents) == len(SEMANTIC)  # stored by the first search that could write
