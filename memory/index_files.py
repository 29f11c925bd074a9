"""The knowledge index's vector store and its files: the FAISS index kinds, what is recorded per article, and
saving / loading the index beside a JSON sidecar (atomically; a torn or foreign pair is rejected)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
from langchain_core.embeddings import Embeddings

from threadline.core.types import ArticleId, ArticleKind, Audience

logger = logging.getLogger("memory.knowledge_index")

_FORMAT = 2  # 2: entries record their audience
_INDEX_FILE = "knowledge.faiss"
_META_FILE = "knowledge.json"
_HNSW_M = 32
_HNSW_EF_CONSTRUCTION = 80
_HNSW_EF_SEARCH = 128


@dataclass(frozen=True)
class IndexEntry:
    """What search needs to know about one indexed article version, and which vector ids hold its chunks."""

    version: int
    kind: ArticleKind
    audience: Audience
    title: str
    channels: tuple[str, ...]
    effective_from: datetime | None
    effective_to: datetime | None
    chunk_ids: tuple[int, ...]

    def live(self, now: datetime, channel: str | None) -> bool:
        """Whether the article is in its effective window and offered on `channel`."""
        if channel is not None and self.channels and channel not in self.channels:
            return False
        if self.effective_from is not None and now < _aware(self.effective_from):
            return False
        return self.effective_to is None or now < _aware(self.effective_to)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def model_identity(embeddings: Embeddings) -> str:
    """A string that changes when the embedding model does, so persisted vectors are never mixed across models."""
    kind = type(embeddings)
    name = getattr(embeddings, "model", None) or getattr(embeddings, "model_name", None)
    return f"{kind.__module__}.{kind.__qualname__}" + (f":{name}" if isinstance(name, str) else "")


def _atomic_write(path: Path, write: Callable[[str], object]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        write(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def new_vector_index(dimension: int, hnsw: bool) -> Any:
    """An empty IndexIDMap2 over exact inner-product search or an inner-product HNSW graph."""
    base: Any
    if hnsw:
        base = faiss.IndexHNSWFlat(dimension, _HNSW_M, faiss.METRIC_INNER_PRODUCT)
        base.hnsw.efConstruction = _HNSW_EF_CONSTRUCTION
        base.hnsw.efSearch = _HNSW_EF_SEARCH
    else:
        base = faiss.IndexFlatIP(dimension)
    return faiss.IndexIDMap2(base)


def is_hnsw(index: Any) -> bool:
    return index is not None and isinstance(faiss.downcast_index(index.index), faiss.IndexHNSW)


@dataclass
class IndexState:
    """Everything the index holds, as saved and loaded."""

    index: Any  # IndexIDMap2 over IndexFlatIP or IndexHNSWFlat; None before the first vector
    articles: dict[ArticleId, IndexEntry]
    chunks: dict[int, tuple[ArticleId, int, str]]  # vector id -> (article, chunk number, text)
    dead: set[int]  # ids still in an HNSW graph whose chunks are gone
    revision: int
    next_id: int


def save_index(directory: Path, state: IndexState, model: str) -> None:
    """Write the FAISS file, then the sidecar carrying its checksum, each atomically (a torn pair is rejected)."""
    directory.mkdir(parents=True, exist_ok=True)
    index_path = directory / _INDEX_FILE
    if state.index is not None:
        _atomic_write(index_path, lambda tmp: faiss.write_index(state.index, tmp))
    meta = {
        "format": _FORMAT,
        "revision": state.revision,
        "model": model,
        "dimension": None if state.index is None else int(state.index.d),
        "index_sha256": None if state.index is None else _sha256(index_path),
        "next_id": state.next_id,
        "kind": "hnsw" if is_hnsw(state.index) else "flat",
        "dead": sorted(state.dead),
        "articles": {
            aid: {
                "version": e.version,
                "kind": e.kind.value,
                "audience": e.audience.value,
                "title": e.title,
                "channels": list(e.channels),
                "effective_from": e.effective_from.isoformat() if e.effective_from else None,
                "effective_to": e.effective_to.isoformat() if e.effective_to else None,
                "chunks": [[vid, *state.chunks[vid][1:]] for vid in e.chunk_ids],
            }
            for aid, e in state.articles.items()
        },
    }
    text = json.dumps(meta, ensure_ascii=False)
    _atomic_write(directory / _META_FILE, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def load_index(directory: Path, model: str, dimension: int | None) -> IndexState | None:
    """A saved index if it is complete and was built by the same model (and `dimension`), else None."""
    meta_path, index_path = directory / _META_FILE, directory / _INDEX_FILE
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta["format"] != _FORMAT or meta["model"] != model:
            raise ValueError(f"built by {meta['model']!r} (format {meta['format']}), not {model!r}")
        if dimension is not None and meta["dimension"] not in (None, dimension):
            raise ValueError(f"dimension {meta['dimension']} != {dimension}")
        index: Any = None
        if meta["dimension"] is not None:
            if _sha256(index_path) != meta["index_sha256"]:
                raise ValueError("index file does not match its sidecar")
            index = faiss.read_index(str(index_path))
            if not isinstance(index, faiss.IndexIDMap2) or index.d != meta["dimension"]:
                raise ValueError("index file is not an IndexIDMap2 of the recorded dimension")
        articles: dict[ArticleId, IndexEntry] = {}
        chunks: dict[int, tuple[ArticleId, int, str]] = {}
        for aid, item in meta["articles"].items():
            for vid, number, text in item["chunks"]:
                chunks[int(vid)] = (ArticleId(aid), int(number), str(text))
            articles[ArticleId(aid)] = IndexEntry(
                version=int(item["version"]),
                kind=ArticleKind(item["kind"]),
                audience=Audience(item["audience"]),
                title=str(item["title"]),
                channels=tuple(item["channels"]),
                effective_from=datetime.fromisoformat(item["effective_from"]) if item["effective_from"] else None,
                effective_to=datetime.fromisoformat(item["effective_to"]) if item["effective_to"] else None,
                chunk_ids=tuple(int(vid) for vid, _, _ in item["chunks"]),
            )
        dead = {int(vid) for vid in meta.get("dead", [])}
        stored = set() if index is None else set(faiss.vector_to_array(index.id_map).tolist())
        if stored != set(chunks) | dead or dead & set(chunks) or (dead and not is_hnsw(index)):
            raise ValueError("index ids do not match the sidecar's chunks")
        return IndexState(index, articles, chunks, dead, int(meta["revision"]), int(meta["next_id"]))
    except Exception as exc:  # any unreadable or inconsistent pair means: rebuild from the repository
        logger.warning("ignoring saved knowledge index in %s (%s); it will be rebuilt", directory, exc)
        return None
