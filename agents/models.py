"""The chat-model factory: the embedded offline model, or any OpenAI-compatible server through ChatOpenAI."""

from __future__ import annotations

import threading
from pathlib import Path

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from pydantic import SecretStr

from agents.intents import IntentClassifier
from agents.offline_model import OfflineChatModel
from core.errors import ConfigurationError

_classifiers: dict[int, IntentClassifier] = {}
_lock = threading.Lock()


def shared_classifier(embeddings: Embeddings, cache_dir: Path | None = None) -> IntentClassifier:
    """One intent classifier per embeddings instance and process (embedding the examples takes seconds)."""
    with _lock:
        if id(embeddings) not in _classifiers:
            _classifiers[id(embeddings)] = IntentClassifier(embeddings, cache_dir=cache_dir)
        return _classifiers[id(embeddings)]


def make_chat_model(
    model: str,
    *,
    embeddings: Embeddings,
    base_url: str | None = None,
    api_key: SecretStr | None = None,
    cache_dir: Path | None = None,
    timeout_s: float = 60.0,
) -> BaseChatModel:
    """`offline` or `openai:<model>`; the OpenAI path needs a base URL or a key."""
    if model == "offline":
        return OfflineChatModel(classifier=shared_classifier(embeddings, cache_dir))
    if model.startswith("openai:"):
        if base_url is None and api_key is None:
            raise ConfigurationError("THREADLINE_MODEL=openai:… needs THREADLINE_OPENAI_BASE_URL or OPENAI_API_KEY")
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(
            model=model.split(":", 1)[1],
            base_url=base_url,
            api_key=api_key or SecretStr("not-needed"),
            temperature=0,
            timeout=timeout_s,
            max_retries=2,
        )
    raise ConfigurationError(f"unknown model {model!r}: use 'offline' or 'openai:<model>'")
