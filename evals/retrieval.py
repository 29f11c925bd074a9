"""Retrieval evaluation: the product's retriever beside plain BM25 and plain dense search, at document level.

Documents (`{"id", "title", "content"}` per line) are ingested as FAQ articles into a scratch SQLite store and
indexed by a `KnowledgeIndex`; each task (`{"id", "query", "relevant": [doc ids]}` per line) is scored with
recall@5, recall@k, MRR@k and nDCG@k (binary relevance), averaged over tasks. Chunk rankings become document
rankings by keeping each document's first (best) appearance.

* `threadline`: `KnowledgeIndex.search`, exactly as the product calls it (minus `min_score`).
* `bm25`: plain BM25 (bm25s, same tokeniser) over whole documents, title and content.
* `dense`: the whole query embedded once, cosine against every chunk, a document scored by its best chunk.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from threadline.core.errors import InvalidInputError
from threadline.core.types import Article, ArticleDraft, ArticleId, ArticleKind, ArticleStatus
from threadline.memory.chunking import chunk_article
from threadline.memory.ingest import jsonl_records
from threadline.memory.knowledge_index import KnowledgeIndex
from threadline.memory.lexical import LexicalIndex

RELEVANT_FIELDS = ("relevant", "relevant_ids", "relevant_doc_ids", "relevant_docs", "doc_ids")
RETRIEVERS = ("threadline", "bm25", "dense")
Log = Callable[[str], None]


@dataclass(frozen=True)
class Doc:
    """One document to ingest."""

    id: str
    title: str
    content: str


@dataclass(frozen=True)
class Task:
    """One labelled query."""

    id: str
    query: str
    relevant: tuple[str, ...]


def recall_at(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Share of the relevant documents found in the first `k`."""
    wanted = set(relevant)
    return len(wanted & set(ranked[:k])) / len(wanted) if wanted else 0.0


def mrr_at(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """1 / rank of the first relevant document within the first `k`, else 0."""
    wanted = set(relevant)
    return next((1.0 / rank for rank, doc in enumerate(ranked[:k], start=1) if doc in wanted), 0.0)


def ndcg_at(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Binary-gain nDCG over the first `k` (the ideal ranking puts every relevant document first)."""
    wanted = set(relevant)
    dcg = sum(1.0 / math.log2(rank + 1) for rank, doc in enumerate(ranked[:k], start=1) if doc in wanted)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(k, len(wanted)) + 1))
    return dcg / ideal if ideal else 0.0


def score_ranking(ranked: Sequence[str], relevant: Iterable[str], k: int = 10) -> dict[str, float]:
    """The four metrics for one ranked list of document ids."""
    wanted = list(relevant)
    return {
        "recall@5": recall_at(ranked, wanted, 5),
        f"recall@{k}": recall_at(ranked, wanted, k),
        f"mrr@{k}": mrr_at(ranked, wanted, k),
        f"ndcg@{k}": ndcg_at(ranked, wanted, k),
    }


def dedupe(ids: Iterable[str]) -> list[str]:
    """Document ids in order of first appearance."""
    return list(dict.fromkeys(ids))


def _read_jsonl(path: Path, what: str) -> list[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise InvalidInputError(f"{what} file not found: {path}")
    rows = list(jsonl_records(path))
    if not rows:
        raise InvalidInputError(f"{what} file is empty: {path}")
    return rows


def _text(row: dict[str, Any], where: str, *names: str, required: bool = True) -> str:
    for name in names:
        value = row.get(name)
        if isinstance(value, str) and value.strip():
            return value
    if required:
        raise InvalidInputError(f"{where}: missing a non-empty string {names[0]!r}")
    return ""


def load_docs(path: Path) -> list[Doc]:
    """Documents from JSON Lines: `id`, `content` (or `body`/`text`), optional `title`; ids must be unique."""
    docs: list[Doc] = []
    seen: set[str] = set()
    for number, row in _read_jsonl(path, "documents"):
        where = f"{path}:{number}"
        doc_id = _text(row, where, "id")
        if doc_id in seen:
            raise InvalidInputError(f"{where}: duplicate document id {doc_id!r}")
        seen.add(doc_id)
        title = _text(row, where, "title", required=False).strip() or doc_id
        docs.append(Doc(doc_id, title, _text(row, where, "content", "body", "text")))
    return docs


def load_tasks(path: Path) -> list[Task]:
    """Tasks from JSON Lines: `id`, `query` and a non-empty list of document ids under `relevant` (or an alias)."""
    tasks: list[Task] = []
    for number, row in _read_jsonl(path, "tasks"):
        where = f"{path}:{number}"
        field = next((name for name in RELEVANT_FIELDS if name in row), None)
        relevant = row.get(field) if field else None
        if not isinstance(relevant, list) or not relevant or not all(isinstance(d, str) for d in relevant):
            raise InvalidInputError(f"{where}: needs a non-empty list of document ids under 'relevant'")
        task_id = str(row["id"]) if isinstance(row.get("id"), str | int) else f"line-{number}"
        tasks.append(Task(task_id, _text(row, where, "query"), tuple(relevant)))
    return tasks


def _draft(doc: Doc) -> ArticleDraft:
    return ArticleDraft(id=ArticleId(doc.id), kind=ArticleKind.FAQ, title=doc.title[:300], body=doc.content)


class _DenseBaseline:
    """Plain dense search: one embedding of the whole query, cosine against every chunk, best chunk per doc."""

    def __init__(self, embeddings: Embeddings, articles: list[Article], max_chars: int) -> None:
        self._embeddings = embeddings
        pairs = [(a.id, text) for a in articles for _, text in chunk_article(a, max_chars)]
        self._docs = [doc for doc, _ in pairs]
        self._matrix = _unit(embeddings.embed_documents([text for _, text in pairs]))

    def rank(self, query: str, depth: int) -> list[str]:
        scores = self._matrix @ _unit([self._embeddings.embed_query(query)])[0]
        return dedupe(self._docs[i] for i in np.argsort(-scores, kind="stable"))[:depth]


def _unit(rows: list[list[float]]) -> np.ndarray[Any, np.dtype[np.float32]]:
    matrix = np.asarray(rows, dtype=np.float32)
    norms = np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12).astype(np.float32)
    return np.asarray(matrix / norms, dtype=np.float32)


def evaluate_retrieval(
    docs: Sequence[Doc], tasks: Sequence[Task], embeddings: Embeddings, *, k: int = 10, log: Log | None = None
) -> dict[str, Any]:
    """Ingest the documents into a scratch store and index, score every task for each retriever.

    Returns `{"retrievers": {name: {metric: mean}}, "tasks": N}` with metrics recall@5, recall@k, MRR@k, nDCG@k.
    """
    from threadline.memory import migrate
    from threadline.memory.db import Database
    from threadline.memory.stores import Stores

    if k < 1:
        raise InvalidInputError("--k must be at least 1")
    say = log or (lambda _line: None)
    if not docs or not tasks:
        raise InvalidInputError("need at least one document and one task")
    depth = max(k, 5)
    with tempfile.TemporaryDirectory(prefix="threadline-eval-") as scratch:
        db = Database.from_url(f"sqlite:///{Path(scratch) / 'eval.db'}")
        try:
            migrate.upgrade(db)
            stores = Stores.over(db)
            say(f"ingesting {len(docs)} documents")
            for doc in docs:
                stores.knowledge.upsert(_draft(doc), author="eval")
            articles = stores.knowledge.list(ArticleStatus.PUBLISHED)
            index = KnowledgeIndex(embeddings)
            say("embedding and indexing chunks")
            index.sync(stores.knowledge)
        finally:
            db.dispose()
    dense = _DenseBaseline(embeddings, articles, max_chars=800)
    bm25 = LexicalIndex.from_texts({i: f"{doc.title}\n{doc.content}" for i, doc in enumerate(docs)})

    def bm25_rank(query: str) -> list[str]:
        ids, _ = bm25.query(query).top(depth)
        return [docs[i].id for i in ids.tolist()]

    rankers: dict[str, Callable[[str], list[str]]] = {
        "threadline": lambda q: dedupe(p.article_id for p in index.search(q, k=2 * depth))[:depth],
        "bm25": bm25_rank,
        "dense": lambda q: dense.rank(q, depth),
    }
    totals = {name: dict.fromkeys(score_ranking([], ["x"], k), 0.0) for name in RETRIEVERS}
    for n, task in enumerate(tasks, start=1):
        for name in RETRIEVERS:
            for metric, value in score_ranking(rankers[name](task.query), task.relevant, k).items():
                totals[name][metric] += value
        if n % 10 == 0 or n == len(tasks):
            say(f"scored {n}/{len(tasks)} tasks")
    return {
        "retrievers": {
            name: {metric: round(value / len(tasks), 4) for metric, value in metrics.items()}
            for name, metrics in totals.items()
        },
        "tasks": len(tasks),
    }
