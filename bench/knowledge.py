"""The knowledge index at scale: search latency, HNSW recall against exact search, build and update times.

Chunks are synthetic so 100k of them build in seconds: texts are Zipf-distributed pseudo-words (BM25 has
something to chew on) and their vectors are derived from a hash of the text, standing in for the embedding
model. Only queries go through the real MiniLM model, in the "full search" figures. The vectors imitate sentence
embeddings: each lies near one of `CLUSTERS` topic centres, spread along a `LOCAL_DIMENSIONS`-dimensional local
subspace of that topic (sentence embeddings sit near a low-dimensional manifold), plus a little isotropic jitter.
Nearest neighbours then score about 0.65 cosine, as MiniLM neighbours do. Isotropic noise in all 384 dimensions
would make every vector nearly orthogonal to every other, a distribution no embedding model produces, on which
any approximate index degrades towards a scan.

Per size (10k and 100k chunks; 2k with `quick`):

* `faiss`: the raw index on the same vectors, exact (IndexFlatIP) and HNSW: build time, search p50/p99 for one
  query vector (k=20, what `search(k=5)` fetches first) with FAISS's default OpenMP threads and with one
  thread (on a busy machine OpenMP's barrier dominates single-query latency), and HNSW recall@10 against exact
  search.
* `index`: a `KnowledgeIndex` over an in-memory repository holding those chunks, with the default
  `hnsw_threshold` (so 100k runs on HNSW): full build (first `sync`), a 1-article update through `sync`, and
  `search()` p50/p99 including query embedding, for a short question and for a long multi-sentence request.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt
from langchain_core.embeddings import Embeddings
from rich.table import Table

from threadline.core.types import Article, ArticleId, ArticleKind, ArticleStatus
from threadline.memory.knowledge_index import KnowledgeIndex

DIMENSION = 384
CHUNKS_PER_ARTICLE = 4
CLUSTERS = 256
LOCAL_DIMENSIONS = 24  # intrinsic dimension of a topic's neighbourhood
SPREAD = 0.35  # step along a topic's subspace
JITTER = 0.02  # isotropic noise in every dimension
QUICK_SIZES = (2_000,)
FULL_SIZES = (10_000, 100_000)
SHORT_QUERY = "how do I return a delivered item"
LONG_QUERY = (
    "Hi, I ordered a pair of running shoes three weeks ago and they were delivered last Friday. "
    "Unfortunately they are a size too small and the box was damaged when it arrived. "
    "I would like to exchange them for a larger size if you have it in stock, otherwise I want a refund. "
    "I paid with a gift card and part with my credit card, so please tell me where the money goes. "
    "Also, can you waive the return shipping fee since the package was damaged? Thanks, Alex"
)
Log = Callable[[str], None]
Matrix = npt.NDArray[np.float32]


def _unit(matrix: Matrix) -> Matrix:
    faiss.normalize_L2(matrix)
    return matrix


class _Topics:
    """Topic centres and each topic's local basis, fixed by a seed so documents and probes share them."""

    def __init__(self, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        self.centres = _unit(rng.standard_normal((CLUSTERS, DIMENSION)).astype(np.float32))
        scale = np.float32(1 / np.sqrt(DIMENSION))
        self.bases = (rng.standard_normal((CLUSTERS, LOCAL_DIMENSIONS, DIMENSION)) * scale).astype(np.float32)

    def vectors(self, picks: npt.NDArray[np.int64], rng: np.random.Generator) -> Matrix:
        """One unit vector per pick: its topic's centre, a step along the topic's subspace, a little jitter."""
        n = len(picks)
        steps = (rng.standard_normal((n, LOCAL_DIMENSIONS)) * SPREAD).astype(np.float32)
        local = np.einsum("ns,nsd->nd", steps, self.bases[picks])
        jitter = (rng.standard_normal((n, DIMENSION)) * JITTER).astype(np.float32)
        return _unit(np.ascontiguousarray(self.centres[picks] + local + jitter, dtype=np.float32))


_TOPICS = _Topics()


def clustered_vectors(n: int, seed: int = 0) -> Matrix:
    """`n` embedding-like unit vectors (see the module docstring), the same for the same seed."""
    rng = np.random.default_rng(seed)
    return _TOPICS.vectors(rng.integers(0, CLUSTERS, n), rng)


class HashEmbeddings(Embeddings):
    """Documents get an embedding-like vector derived from their text's hash; queries go to `query_model` if
    given."""

    dimension = DIMENSION

    def __init__(self, query_model: Embeddings | None = None) -> None:
        self._query_model = query_model

    def _vector(self, text: str) -> list[float]:
        seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
        picks = np.array([seed % CLUSTERS], dtype=np.int64)
        return [float(x) for x in _TOPICS.vectors(picks, np.random.default_rng(seed))[0]]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._query_model.embed_query(text) if self._query_model is not None else self._vector(text)


class MemoryKnowledge:
    """Just what `KnowledgeIndex.sync` reads: published articles and a revision."""

    def __init__(self, articles: list[Article]) -> None:
        self._articles = {a.id: a for a in articles}
        self._revision = 1

    def bump(self, article_id: ArticleId, body: str) -> None:
        old = self._articles[article_id]
        self._articles[article_id] = old.model_copy(update={"version": old.version + 1, "body": body})
        self._revision += 1

    def list(self, status: ArticleStatus | None = ArticleStatus.PUBLISHED) -> list[Article]:
        return list(self._articles.values())

    def revision(self) -> int:
        return self._revision


def synthetic_articles(chunks: int, seed: int = 0) -> list[Article]:
    """Articles of `CHUNKS_PER_ARTICLE` sections, each section one chunk of about 90 Zipf-drawn words."""
    rng = np.random.default_rng(seed)
    vocabulary = np.array([f"w{i}x" for i in range(20_000)])
    words = vocabulary[np.minimum(rng.zipf(1.3, chunks * 90), len(vocabulary)) - 1].reshape(chunks, 90)
    now = datetime.now(UTC)
    articles = []
    for a in range(chunks // CHUNKS_PER_ARTICLE):
        sections = [
            f"## Section {s}\n{' '.join(words[a * CHUNKS_PER_ARTICLE + s])}." for s in range(CHUNKS_PER_ARTICLE)
        ]
        articles.append(
            Article(
                id=ArticleId(f"synthetic-{a}"),
                version=1,
                kind=ArticleKind.FAQ,
                status=ArticleStatus.PUBLISHED,
                title=f"Synthetic article {a}",
                body="\n\n".join(sections),
                updated_at=now,
            )
        )
    return articles


def _percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 3),
    }


def _time(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure_faiss(size: int, queries: int) -> dict[str, Any]:
    """Exact and HNSW indexes over the same `size` vectors: build, latency, HNSW recall@10 vs exact."""
    from threadline.memory.index_files import new_vector_index

    vectors = clustered_vectors(size, seed=size)
    probes = clustered_vectors(queries, seed=size + 1)
    ids = np.arange(size, dtype=np.int64)
    result: dict[str, Any] = {"size": size}
    answers: dict[str, npt.NDArray[np.int64]] = {}
    for kind in ("exact", "hnsw"):
        index = new_vector_index(DIMENSION, hnsw=kind == "hnsw")
        start = time.perf_counter()
        index.add_with_ids(vectors, ids)
        result[kind] = {"build_s": round(time.perf_counter() - start, 3)}
        threads = faiss.omp_get_max_threads()
        for label, count in (("", threads), ("_1thread", 1)):
            faiss.omp_set_num_threads(count)
            try:
                times, cpu = [], []
                for i in range(queries):
                    start, start_cpu = time.perf_counter(), time.thread_time()
                    index.search(probes[i : i + 1], 20)
                    times.append(time.perf_counter() - start)
                    cpu.append(time.thread_time() - start_cpu)
            finally:
                faiss.omp_set_num_threads(threads)
            result[kind].update({f"{key}{label}": value for key, value in _percentiles(times).items()})
            if count == 1:  # CPU time of the calling thread: what the index costs, without the machine's queueing
                result[kind].update({f"cpu_{key}{label}": value for key, value in _percentiles(cpu).items()})
        answers[kind] = index.search(probes, 10)[1]
    hits = sum(len(set(a.tolist()) & set(e.tolist())) for a, e in zip(answers["hnsw"], answers["exact"], strict=True))
    result["hnsw_recall@10"] = round(hits / (10 * queries), 4)
    return result


def measure_index(size: int, queries: int, query_model: Embeddings | None) -> dict[str, Any]:
    """A `KnowledgeIndex` over `size` synthetic chunks: first sync, a 1-article update, search latency."""
    repo = MemoryKnowledge(synthetic_articles(size, seed=size))
    index = KnowledgeIndex(HashEmbeddings(query_model))
    build = _time(lambda: index.sync(repo))
    repo.bump(ArticleId("synthetic-0"), "## Section 0\nA rewritten first section.\n\n## Section 1\nAnd a second.")
    update = _time(lambda: index.sync(repo))
    for query in (SHORT_QUERY, LONG_QUERY):
        index.search(query)  # warm the query model and caches
    # a distinct query each time, so no cache in the query model can answer
    short = [_time(partial(index.search, f"{SHORT_QUERY} (case {i})")) for i in range(queries)]
    long = [_time(partial(index.search, f"Case {i}. {LONG_QUERY}")) for i in range(max(5, queries // 4))]
    return {
        "chunks": index.size,
        "approximate": index.approximate,
        "build_s": round(build, 3),
        "update_1_article_s": round(update, 3),
        "search_short": _percentiles(short),
        "search_long": _percentiles(long),
    }


def run(quick: bool = False, log: Log | None = None, query_model: Embeddings | None = None) -> dict[str, Any]:
    """Measure every size; `query_model` embeds queries in the full-search figures (MiniLM unless `quick`)."""
    say = log or (lambda _line: None)
    if query_model is None and not quick:
        from threadline.memory.embeddings import LocalMiniLMEmbeddings

        # no disk cache and a one-entry memory cache: every query (and clause) is really embedded
        query_model = LocalMiniLMEmbeddings(cache_size=1)
    sizes = QUICK_SIZES if quick else FULL_SIZES
    queries = 50 if quick else 300
    result: dict[str, Any] = {
        "dimension": DIMENSION,
        "query_model": "hash" if query_model is None else type(query_model).__name__,
        "sizes": {},
    }
    for size in sizes:
        say(f"{size} chunks: raw FAISS, exact and HNSW")
        raw = measure_faiss(size, queries)
        say(f"{size} chunks: KnowledgeIndex build, update, search")
        result["sizes"][str(size)] = {"faiss": raw, "index": measure_index(size, queries, query_model)}
    largest = result["sizes"][str(sizes[-1])]["faiss"]
    # The headline figures at the largest size: one query vector, one thread (how a request thread searches).
    result["largest"] = sizes[-1]
    result["search_p99_ms"] = largest[index_kind(largest)]["p99_ms_1thread"]
    result["search_cpu_p99_ms"] = largest[index_kind(largest)]["cpu_p99_ms_1thread"]
    result["recall10"] = largest["hnsw_recall@10"]
    return result


def index_kind(raw: dict[str, Any]) -> str:
    """The index `KnowledgeIndex` uses at that size (HNSW past its default threshold)."""
    from threadline.memory.knowledge_index import DEFAULT_HNSW_THRESHOLD

    return "hnsw" if raw["size"] > DEFAULT_HNSW_THRESHOLD else "exact"


def render(result: dict[str, Any]) -> Table:
    """The result as a table, one row per size."""
    table = Table(
        "chunks",
        "exact p50/p99 ms",
        "HNSW p50/p99 ms",
        "HNSW recall@10",
        "HNSW build s",
        "index",
        "build s",
        "1-article update s",
        "search() short p50/p99 ms",
        "search() long p50/p99 ms",
        title="Knowledge index",
    )
    for size, row in result["sizes"].items():
        raw, idx = row["faiss"], row["index"]
        table.add_row(
            size,
            f"{raw['exact']['p50_ms']:.2f} / {raw['exact']['p99_ms']:.2f}",
            f"{raw['hnsw']['p50_ms']:.2f} / {raw['hnsw']['p99_ms']:.2f}",
            f"{raw['hnsw_recall@10']:.3f}",
            f"{raw['hnsw']['build_s']:.2f}",
            "HNSW" if idx["approximate"] else "exact",
            f"{idx['build_s']:.2f}",
            f"{idx['update_1_article_s']:.3f}",
            f"{idx['search_short']['p50_ms']:.1f} / {idx['search_short']['p99_ms']:.1f}",
            f"{idx['search_long']['p50_ms']:.1f} / {idx['search_long']['p99_ms']:.1f}",
        )
    return table


def main(argv: list[str] | None = None) -> None:
    """`python -m bench.knowledge [--json] [--quick]`."""
    import argparse

    from rich.console import Console

    parser = argparse.ArgumentParser(prog="python -m bench.knowledge", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the result as one JSON object")
    parser.add_argument("--quick", action="store_true", help="2k chunks, hashed queries: a smoke run")
    args = parser.parse_args(argv)
    err = Console(stderr=True)
    result = run(quick=args.quick, log=None if args.json else lambda line: err.print(f"[dim]{line}[/]"))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        Console().print(render(result))


if __name__ == "__main__":
    main()
