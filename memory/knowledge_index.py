"""A FAISS vector index over the published knowledge base, kept in step with the repository incrementally.

Retrieval, as measured by `threadline eval retrieval` on long customer requests:

* A request is cut into clauses (`split_request`); each clause is embedded on its own, because MiniLM reads at
  most 256 word pieces and a whole email blurs into one generic vector. Only the `focus_clauses` clauses whose
  nearest chunk is closest are kept (`focus`): greetings, sign-offs, story and instructions match nothing in
  the knowledge base. A chunk's dense score is the mean cosine of its `clause_votes` best-matching kept
  clauses: a chunk that answers several parts of the request beats one that matches a single line. For a
  one-clause question this is the plain cosine.
* The dense order can be fused (reciprocal rank, k=60) with BM25 over the same chunks at `lexical_weight`.
* The defaults (8 clauses, 5 votes, no BM25) were chosen on the `tune` half of the banking dev set among
  `evals.retrieval.TUNING_GRID` and are reported on its `held_out` half (README, "Retrieval").
* `Passage.score` is always the dense score (a cosine, or a mean of cosines), never the fused one, so the
  product's `min_score` cut-off keeps its meaning; with fusion, results are in fused order.

Exact inner-product search (IndexFlatIP) serves up to `hnsw_threshold` chunks; past it the index is rebuilt as
HNSW (IndexHNSWFlat, inner product). HNSW cannot remove vectors, so updated and retired chunks become
tombstones that search skips, and the graph is rebuilt from its own stored vectors (no re-embedding) once
tombstones exceed 10% of it. Both kinds sit in an IndexIDMap2 and persist the same way.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import faiss
import numpy as np
import numpy.typing as npt
from langchain_core.embeddings import Embeddings

from threadline.core.types import Article, ArticleId, ArticleStatus, Audience, Passage
from threadline.memory.chunking import chunk_article, split_request
from threadline.memory.index_files import (
    IndexEntry,
    IndexState,
    is_hnsw,
    load_index,
    model_identity,
    new_vector_index,
    save_index,
)
from threadline.memory.lexical import LexicalIndex

logger = logging.getLogger(__name__)

_RRF_K = 60
MAX_CHARS = 800  # a chunk's length past its title and heading (`chunking.chunk_article`)
DEFAULT_HNSW_THRESHOLD = 50_000  # chunks; exact search past this costs more than a millisecond per query
_COMPACT_RATIO = 0.1  # rebuild an HNSW graph once this share of its vectors are tombstones
_FLAT_RATIO = 0.8  # go back to exact search below this share of the threshold (no flapping at the boundary)
Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class RetrievalSettings:
    """How a multi-clause request is ranked (see the module docstring); a one-clause question ignores them.

    `focus_clauses`: keep only this many clauses, those whose nearest chunk is closest (0 keeps them all);
    `clause_votes`: a chunk's dense score is the mean cosine of its this many best-matching kept clauses;
    `lexical_weight`: weight of BM25's rank in the reciprocal-rank fusion (0 is dense only).
    """

    focus_clauses: int = 8
    clause_votes: int = 5
    lexical_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.focus_clauses < 0 or self.clause_votes < 1 or self.lexical_weight < 0:
            raise ValueError("focus_clauses and lexical_weight must not be negative, clause_votes must be positive")


class PublishedArticles(Protocol):
    """What `sync` reads from a knowledge repository (`core.ports.KnowledgeRepository` provides it)."""

    def list(self, status: ArticleStatus | None = ArticleStatus.PUBLISHED) -> list[Article]: ...

    def revision(self) -> int: ...


class KnowledgeIndex:
    """Semantic search over published articles; `sync` re-embeds only articles whose version changed."""

    def __init__(
        self,
        embeddings: Embeddings,
        directory: str | Path | None = None,
        *,
        max_chars: int = MAX_CHARS,
        hnsw_threshold: int = DEFAULT_HNSW_THRESHOLD,
        settings: RetrievalSettings | None = None,
    ) -> None:
        """Wrap `embeddings`; with a `directory`, load a previously saved index from it and save there after syncs.

        `hnsw_threshold` is the chunk count past which search switches from exact to HNSW; `settings` shape
        long-request retrieval (see `RetrievalSettings`; the attribute may be replaced between searches).
        """
        if hnsw_threshold < 1:
            raise ValueError("hnsw_threshold must be positive")
        self._embeddings = embeddings
        self._model = model_identity(embeddings)
        self._dir = Path(directory) if directory is not None else None
        self._max_chars = max_chars
        self._hnsw_threshold = hnsw_threshold
        self.settings = settings or RetrievalSettings()
        self._lock = threading.RLock()  # guards the state below; held briefly by sync and by search
        self._sync_lock = threading.Lock()  # serialises syncs so embedding happens outside `_lock`
        self._reset()
        if self._dir is not None:
            self._load(self._dir)

    def _reset(self) -> None:
        self._index: Any = None  # IndexIDMap2 over IndexFlatIP or IndexHNSWFlat, created once the dimension is known
        self._articles: dict[ArticleId, IndexEntry] = {}
        self._chunks: dict[int, tuple[ArticleId, int, str]] = {}  # vector id -> (article, chunk number, text)
        self._dead: set[int] = set()  # ids still in an HNSW graph whose chunks are gone
        self._lexical = LexicalIndex()
        self._next_id = 0
        self._revision = -1

    @property
    def revision(self) -> int:
        """The repository revision the index was last brought up to date with; -1 before the first sync."""
        return self._revision

    @property
    def ready(self) -> bool:
        """Whether the index has been synced (or loaded) at least once, so search answers are meaningful."""
        return self._revision >= 0

    @property
    def size(self) -> int:
        """Number of chunks currently indexed."""
        with self._lock:
            return len(self._chunks)

    @property
    def approximate(self) -> bool:
        """Whether search runs on an HNSW graph rather than exactly."""
        with self._lock:
            return is_hnsw(self._index)

    def sync(self, repo: PublishedArticles) -> bool:
        """Bring the index up to date with `repo`'s published articles; returns whether its revision had moved."""
        with self._sync_lock:
            revision = repo.revision()
            if revision == self._revision:
                return False
            published = {article.id: article for article in repo.list(ArticleStatus.PUBLISHED)}
            with self._lock:
                indexed = {aid: entry.version for aid, entry in self._articles.items()}
                dimension = None if self._index is None else int(self._index.d)
            changed = [a for aid, a in published.items() if indexed.get(aid) != a.version]
            if changed:
                logger.info("indexing %s articles", len(changed))
            pieces, vectors = self._embed_articles(changed)
            if dimension is not None and vectors.shape[0] and vectors.shape[1] != dimension:
                logger.warning(
                    "embedding dimension changed (%s -> %s); rebuilding the index", dimension, vectors.shape[1]
                )
                with self._lock:
                    self._reset()
                changed = list(published.values())
                pieces, vectors = self._embed_articles(changed)
            with self._lock:
                stale = [aid for aid in self._articles if aid not in published] + [a.id for a in changed]
                doomed = [vid for aid in stale if aid in self._articles for vid in self._articles[aid].chunk_ids]
                lexical, first_id = self._lexical, self._next_id
            # Syncs are serialised, so the ids `_add` will hand out are known: build the BM25 snapshot unlocked.
            texts = [text for chunks in pieces for _, text in chunks]
            lexical = lexical.replaced(doomed, dict(enumerate(texts, start=first_id)))
            with self._lock:
                self._remove(stale)
                self._add(changed, pieces, vectors)
                self._lexical = lexical
                self._revision = revision
                rebuild = self._rebuild_plan()
            if rebuild is not None:
                self._rebuild(hnsw=rebuild)
            logger.info(
                "knowledge index at revision %s: %s articles re-embedded, %s chunks", revision, len(changed), self.size
            )
            if self._dir is not None:
                self._save(self._dir)
            return True

    def search(
        self,
        query: str,
        k: int = 5,
        *,
        channel: str | None = None,
        min_score: float = 0.0,
        audience: Audience | None = None,
    ) -> list[Passage]:
        """The `k` best chunks for `query`, best first, at most two per article, only live articles (and only
        articles written for `audience`, when given).

        A one-clause question is ranked by cosine similarity; a longer request clause by clause, fused with
        BM25 (see the module docstring). Only chunks whose dense score reaches `min_score` are returned.
        """
        if k <= 0 or not self.size:
            return []
        clauses = split_request(query)
        if not clauses:
            return []
        matrix = self._as_matrix([self._embeddings.embed_query(clause) for clause in clauses])
        now = datetime.now(UTC)
        with self._lock:
            if self._index is None or matrix.shape[1] != self._index.d:
                return []
            total = int(self._index.ntotal)
            fetch = min(total, max(k * 4, 64 if len(clauses) > 1 else 0))
            while True:
                if len(clauses) == 1:
                    scores, ids = self._index.search(matrix, fetch)
                    ranked = [(vid, score) for vid, score in zip(ids[0].tolist(), scores[0].tolist(), strict=True)]
                    passages = self._collect(ranked, k, channel, min_score, now, audience, by_score=True)
                    found = scores[0][ids[0] >= 0]  # HNSW may return fewer than asked, padded with -1
                    if len(found) and float(found[-1]) < min_score:
                        return passages
                else:
                    ranked = self._rank_request(query, matrix, fetch)
                    passages = self._collect(ranked, k, channel, min_score, now, audience)
                if len(passages) >= k or fetch >= total:
                    return passages
                fetch = min(total, fetch * 4)

    def _rank_request(self, query: str, clauses: Vectors, fetch: int) -> list[tuple[int, float]]:
        """Candidates for a multi-clause request as (vector id, dense score), in fused order.

        With `focus_clauses`, only the clauses whose nearest chunk is closest are kept (`focus`). The pool is
        each kept clause's `fetch` nearest chunks plus BM25's `fetch` best; every candidate is then scored
        exactly against every kept clause from its stored vector.
        """
        settings = self.settings
        scores, ids = self._index.search(clauses, fetch)
        if settings.focus_clauses:
            keep = focus(scores[:, 0], settings.focus_clauses)
            clauses, ids = clauses[keep], ids[keep]
        hits = self._lexical.query(query) if settings.lexical_weight else None
        lexical_ids = hits.top(fetch)[0] if hits is not None else ids[:0, 0]
        pool = np.unique(np.concatenate([ids.ravel(), lexical_ids]))
        pool = np.asarray([vid for vid in pool.tolist() if vid in self._chunks], dtype=np.int64)
        if not len(pool):
            return []
        similarity = self._index.reconstruct_batch(pool) @ clauses.T  # candidates x clauses
        votes = min(settings.clause_votes, similarity.shape[1])
        dense = np.sort(similarity, axis=1)[:, -votes:].mean(axis=1)
        dense_rank = np.empty(len(pool))
        dense_rank[np.argsort(-dense, kind="stable")] = np.arange(1, len(pool) + 1)
        fused = 1.0 / (_RRF_K + dense_rank)
        if hits is not None:
            fused += settings.lexical_weight / (_RRF_K + hits.ranks(pool))
        order = np.argsort(-fused, kind="stable")
        return [(int(pool[i]), float(dense[i])) for i in order]

    def _collect(
        self,
        ranked: list[tuple[int, float]],
        k: int,
        channel: str | None,
        min_score: float,
        now: datetime,
        audience: Audience | None,
        *,
        by_score: bool = False,
    ) -> list[Passage]:
        """Passages from ranked (vector id, score) pairs; `by_score` means scores descend, so stop at `min_score`."""
        passages: list[Passage] = []
        per_article: dict[ArticleId, int] = {}
        for vid, score in ranked:
            if len(passages) >= k or (by_score and score < min_score):
                break
            if vid < 0 or vid not in self._chunks or score < min_score:
                continue  # -1 pads a short answer; tombstones of an HNSW graph are skipped
            article_id, number, text = self._chunks[vid]
            entry = self._articles[article_id]
            if per_article.get(article_id, 0) >= 2 or not entry.live(now, channel):
                continue
            if audience is not None and entry.audience is not audience:
                continue
            per_article[article_id] = per_article.get(article_id, 0) + 1
            passages.append(
                Passage(
                    article_id=article_id,
                    version=entry.version,
                    title=entry.title,
                    kind=entry.kind,
                    text=text,
                    score=float(score),
                    chunk=number,
                    audience=entry.audience,
                )
            )
        return passages

    def _embed_articles(self, articles: list[Article]) -> tuple[list[list[tuple[int, str]]], Vectors]:
        pieces = [chunk_article(article, self._max_chars) for article in articles]
        texts = [text for chunks in pieces for _, text in chunks]
        if not texts:
            return pieces, np.zeros((0, 0), dtype=np.float32)
        return pieces, self._as_matrix(self._embeddings.embed_documents(texts))

    @staticmethod
    def _as_matrix(rows: list[list[float]]) -> Vectors:
        matrix = np.ascontiguousarray(rows, dtype=np.float32)
        faiss.normalize_L2(matrix)  # inner product on unit vectors is cosine similarity, whatever the model returns
        return matrix

    def _remove(self, article_ids: list[ArticleId]) -> None:
        doomed = [vid for aid in article_ids if aid in self._articles for vid in self._articles.pop(aid).chunk_ids]
        if doomed and self._index is not None:
            if is_hnsw(self._index):
                self._dead.update(doomed)  # HNSW cannot delete: search skips these until the next rebuild
            else:
                self._index.remove_ids(np.asarray(doomed, dtype=np.int64))
        for vid in doomed:
            del self._chunks[vid]

    def _add(self, articles: list[Article], pieces: list[list[tuple[int, str]]], vectors: Vectors) -> None:
        if vectors.shape[0] and self._index is None:
            hnsw = len(self._chunks) + int(vectors.shape[0]) > self._hnsw_threshold
            self._index = new_vector_index(int(vectors.shape[1]), hnsw)
        ids = np.arange(self._next_id, self._next_id + vectors.shape[0], dtype=np.int64)
        self._next_id += int(vectors.shape[0])
        cursor = 0
        for article, chunks in zip(articles, pieces, strict=True):
            chunk_ids = tuple(int(v) for v in ids[cursor : cursor + len(chunks)])
            cursor += len(chunks)
            for vid, (number, text) in zip(chunk_ids, chunks, strict=True):
                self._chunks[vid] = (article.id, number, text)
            self._articles[article.id] = IndexEntry(
                version=article.version,
                kind=article.kind,
                audience=article.audience,
                title=article.title,
                channels=tuple(article.channels),
                effective_from=article.effective_from,
                effective_to=article.effective_to,
                chunk_ids=chunk_ids,
            )
        if vectors.shape[0]:
            self._index.add_with_ids(vectors, ids)

    def _rebuild_plan(self) -> bool | None:
        """Whether the index should be rebuilt as HNSW (True) or exact (False), or left alone (None)."""
        if self._index is None:
            return None
        live, hnsw = len(self._chunks), is_hnsw(self._index)
        if not hnsw:
            return True if live > self._hnsw_threshold else None
        if live <= self._hnsw_threshold * _FLAT_RATIO:
            return False
        return True if len(self._dead) > _COMPACT_RATIO * int(self._index.ntotal) else None

    def _rebuild(self, *, hnsw: bool) -> None:
        """Rebuild the index from its own stored vectors, off the search lock; call only from `sync`."""
        with self._lock:
            ids = np.fromiter(self._chunks, dtype=np.int64, count=len(self._chunks))
            vectors = self._index.reconstruct_batch(ids) if len(ids) else None
            dimension = int(self._index.d)
        index = new_vector_index(dimension, hnsw)
        if vectors is not None:
            index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        with self._lock:  # no sync can have run meanwhile (the caller holds `_sync_lock`)
            self._index, self._dead = index, set()
        logger.info("knowledge index rebuilt as %s over %s chunks", "HNSW" if hnsw else "exact", len(ids))

    def _save(self, directory: Path) -> None:
        """Persist the current state (see `memory.index_files`)."""
        with self._lock:
            state = IndexState(self._index, self._articles, self._chunks, self._dead, self._revision, self._next_id)
            save_index(directory, state, self._model)

    def _load(self, directory: Path) -> None:
        """Adopt a saved index if it is complete and was built by the same model; otherwise start empty."""
        expected = getattr(self._embeddings, "dimension", None)
        state = load_index(directory, self._model, expected if isinstance(expected, int) else None)
        if state is None:
            return
        lexical = LexicalIndex.from_texts({vid: text for vid, (_, _, text) in state.chunks.items()})
        with self._lock:
            self._index, self._articles, self._chunks, self._dead = (
                state.index,
                state.articles,
                state.chunks,
                state.dead,
            )
            self._revision, self._next_id, self._lexical = state.revision, state.next_id, lexical


def focus(best: npt.NDArray[np.float32], keep: int) -> npt.NDArray[np.int64]:
    """Positions of the `keep` clauses whose best match (`best[i]`: clause i's cosine with its nearest chunk) is
    highest, in their original order; ties go to the earlier clause.

    A customer's long message carries greetings, sign-offs, story and instructions the knowledge base says nothing
    about; their nearest chunk is far, so they drop out and the clauses that match something decide the ranking.
    """
    order = np.argsort(-np.asarray(best, dtype=np.float64), kind="stable")[:keep]
    return np.sort(order).astype(np.int64)
