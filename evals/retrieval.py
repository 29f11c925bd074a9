"""Retrieval evaluation: the product's retriever beside plain BM25 and plain dense search, at document level.

Documents (`{"id", "title", "content"}` per line) are ingested as FAQ articles into a scratch SQLite store and
indexed by a `KnowledgeIndex`; each task (`{"id", "query", "relevant": [doc ids]}` per line) is scored with
recall@5, recall@k, MRR@k and nDCG@k (binary relevance), averaged over tasks. Chunk rankings become document
rankings by keeping each document's first (best) appearance.

* `threadline`: `KnowledgeIndex.search`, exactly as the product calls it (minus `min_score`).
* `bm25`: plain BM25 (bm25s, same tokeniser) over whole documents, title and content.
* `dense`: the whole query embedded once, cosine against every chunk, a document scored by its best chunk.

Splits: every task belongs to `tune` or `held_out` by the CRC-32 of its id (even: tune), so the split is fixed,
needs no list, and a task added later does not move the others. Settings are chosen on `tune` and reported on
`held_out`. Cross-validation (`cross_validate`) also swaps the roles: for each half, the `TUNING_GRID` setting
with the best recall@k (then MRR@k) on the other half is scored on it, so every task is scored once by settings
chosen without it; the baselines have no settings, so their cross-validated figures are their figures over all
tasks.
"""

from __future__ import annotations

import itertools
import math
import tempfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from threadline.core.errors import InvalidInputError
from threadline.core.types import Article, ArticleDraft, ArticleId, ArticleKind, ArticleStatus
from threadline.memory.chunking import chunk_article
from threadline.memory.ingest import jsonl_records
from threadline.memory.knowledge_index import KnowledgeIndex, RetrievalSettings
from threadline.memory.lexical import LexicalIndex

RELEVANT_FIELDS = ("relevant", "relevant_ids", "relevant_doc_ids", "relevant_docs", "doc_ids")
RETRIEVERS = ("threadline", "bm25", "dense")
SPLITS = ("all", "tune", "held_out")
BANKING = Path(__file__).resolve().parent / "banking_knowledge"
BANKING_DOCS, BANKING_TASKS = BANKING / "documents.jsonl.gz", BANKING / "retrieval_dev.jsonl.gz"
"""The labelled set scored by default: tau2-bench's banking knowledge (MIT; `banking_knowledge/README.md`)."""
TUNING_GRID = tuple(
    RetrievalSettings(focus_clauses=focus, clause_votes=votes, lexical_weight=weight)
    for focus, votes, weight in itertools.product((0, 6, 8, 12), (1, 3, 5), (0.0, 0.2, 0.5, 1.0))
)
"""The settings `cross_validate` chooses among (the shipped defaults were chosen among them on `tune`)."""
Log = Callable[[str], None]
Scores = list[dict[str, float]]  # one metrics dict per task, in task order


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


def split_of(task_id: str) -> str:
    """`tune` or `held_out`: the CRC-32 of the task id, even or odd (fixed, and independent of the other tasks)."""
    return "tune" if zlib.crc32(task_id.encode("utf-8")) % 2 == 0 else "held_out"


def in_split(tasks: Sequence[Task], split: str) -> list[Task]:
    """The tasks of `split` (`all`, `tune` or `held_out`), in their order."""
    if split not in SPLITS:
        raise InvalidInputError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return [task for task in tasks if split == "all" or split_of(task.id) == split]


def mean_scores(scores: Sequence[dict[str, float]]) -> dict[str, float]:
    """Each metric averaged over tasks, rounded to four places."""
    if not scores:
        return {}
    return {metric: round(sum(s[metric] for s in scores) / len(scores), 4) for metric in scores[0]}


def choose(grid_scores: Sequence[Scores], positions: Sequence[int], k: int) -> int:
    """The grid position with the best mean recall@k over the tasks at `positions`, then the best MRR@k, then
    the earliest."""

    def key(g: int) -> tuple[float, float, int]:
        means = mean_scores([grid_scores[g][i] for i in positions])
        return (means[f"recall@{k}"], means[f"mrr@{k}"], -g)

    return max(range(len(grid_scores)), key=key)


def cross_validate(tasks: Sequence[Task], grid_scores: Sequence[Scores], k: int) -> tuple[Scores, list[int]]:
    """2-fold cross-validation over the fixed split: each half scored by the grid setting chosen on the other.

    Returns the per-task scores (each task scored once, while held out) and the grid position chosen for the
    `held_out` half and for the `tune` half, in that order.
    """
    folds = {name: [i for i, t in enumerate(tasks) if split_of(t.id) == name] for name in ("tune", "held_out")}
    if not all(folds.values()):
        raise InvalidInputError("cross-validation needs tasks in both halves of the split (tune and held_out)")
    scores: list[dict[str, float]] = [{} for _ in tasks]
    chosen = []
    for tuned_on, scored_on in (("tune", "held_out"), ("held_out", "tune")):
        pick = choose(grid_scores, folds[tuned_on], k)
        chosen.append(pick)
        for i in folds[scored_on]:
            scores[i] = grid_scores[pick][i]
    return scores, chosen


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
    docs: Sequence[Doc],
    tasks: Sequence[Task],
    embeddings: Embeddings,
    *,
    k: int = 10,
    split: str = "all",
    cross_validated: bool = False,
    log: Log | None = None,
) -> dict[str, Any]:
    """Ingest the documents into a scratch store and index, score every task of `split` for each retriever.

    Returns `{"split", "tasks", "retrievers": {name: {metric: mean}}, "splits": {split: {"tasks", "retrievers"}},
    "settings"}` with metrics recall@5, recall@k, MRR@k, nDCG@k; `splits` breaks the chosen tasks down by the
    fixed split. With `cross_validated`, also `"cross_validated": {"tasks", "retrievers", "folds"}` over all
    tasks (see `cross_validate`).
    """
    from threadline.memory import migrate
    from threadline.memory.db import Database
    from threadline.memory.stores import Stores

    if k < 1:
        raise InvalidInputError("--k must be at least 1")
    say = log or (lambda _line: None)
    chosen_tasks = in_split(tasks, split)
    if not docs or not chosen_tasks:
        raise InvalidInputError(f"need at least one document and one task (split {split!r})")
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
    shipped = index.settings
    dense = _DenseBaseline(embeddings, articles, max_chars=800)
    bm25 = LexicalIndex.from_texts({i: f"{doc.title}\n{doc.content}" for i, doc in enumerate(docs)})

    def bm25_rank(query: str) -> list[str]:
        ids, _ = bm25.query(query).top(depth)
        return [docs[i].id for i in ids.tolist()]

    def threadline_rank(query: str) -> list[str]:
        return dedupe(p.article_id for p in index.search(query, k=2 * depth))[:depth]

    rankers: dict[str, Callable[[str], list[str]]] = {
        "threadline": threadline_rank,
        "bm25": bm25_rank,
        "dense": lambda q: dense.rank(q, depth),
    }

    def score(name: str, scored: Sequence[Task]) -> Scores:
        return [score_ranking(rankers[name](task.query), task.relevant, k) for task in scored]

    say(f"scoring {len(chosen_tasks)} tasks ({split})")
    per_task = {name: score(name, chosen_tasks) for name in RETRIEVERS}
    result: dict[str, Any] = {
        "split": split,
        "tasks": len(chosen_tasks),
        "retrievers": {name: mean_scores(scores) for name, scores in per_task.items()},
        "splits": {},
        "settings": asdict(shipped),
    }
    for part in ("tune", "held_out"):
        positions = [i for i, task in enumerate(chosen_tasks) if split_of(task.id) == part]
        if positions:
            result["splits"][part] = {
                "tasks": len(positions),
                "retrievers": {name: mean_scores([s[i] for i in positions]) for name, s in per_task.items()},
            }
    if cross_validated:
        all_tasks = list(tasks)
        baselines = per_task if split == "all" else {name: score(name, all_tasks) for name in RETRIEVERS}
        grid_scores = []
        for n, settings in enumerate(TUNING_GRID, start=1):
            index.settings = settings
            grid_scores.append(score("threadline", all_tasks))
            if n % 12 == 0 or n == len(TUNING_GRID):
                say(f"cross-validation: {n}/{len(TUNING_GRID)} settings scored")
        index.settings = shipped
        scores, chosen = cross_validate(all_tasks, grid_scores, k)
        result["cross_validated"] = {
            "tasks": len(all_tasks),
            "retrievers": {
                "threadline": mean_scores(scores),
                **{name: mean_scores(baselines[name]) for name in ("bm25", "dense")},
            },
            "folds": [
                {"tuned_on": "tune", "scored_on": "held_out", "settings": asdict(TUNING_GRID[chosen[0]])},
                {"tuned_on": "held_out", "scored_on": "tune", "settings": asdict(TUNING_GRID[chosen[1]])},
            ],
        }
    return result
