"""The chat-model factory: the embedded offline model, or any OpenAI-compatible server through ChatOpenAI."""

from __future__ import annotations

import threading
from functools import cache
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from pydantic import SecretStr

from threadline.agents.intents import IntentClassifier
from threadline.agents.offline_model import OfflineChatModel
from threadline.core.errors import ConfigurationError

PLAIN_JSON_FIELDS = ("messages", "tools")
"""Request fields sent as built, without the openai SDK's type-driven transform (`_plain_json_chat_openai`)."""

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
        return _plain_json_chat_openai()(
            model=model.split(":", 1)[1],
            base_url=base_url,
            api_key=api_key or SecretStr("not-needed"),
            temperature=0,
            timeout=timeout_s,
            max_retries=2,
        )
    raise ConfigurationError(f"unknown model {model!r}: use 'offline' or 'openai:<model>'")


@cache
def _plain_json_chat_openai() -> type[BaseChatModel]:
    """`ChatOpenAI` whose messages and tool schemas reach the server as the JSON they already are.

    The openai SDK walks every request body against its TypedDict definitions (`maybe_transform`) to apply
    field aliases and encode files. langchain-openai has already built the chat messages and tool schemas as
    plain JSON, and for them the walk is pure cost: about a third of a turn's CPU on the OpenAI-compatible path
    (`bench/RESULTS.md`), growing with the conversation window and the tool schemas. Passed as `extra_body`,
    which the SDK merges into the body unchanged, they are sent as the same JSON without the walk. Structured
    output (`response_format`) and the Responses API keep the stock path. It overrides langchain-openai's private
    `_get_request_payload`, so `langchain-openai` is pinned to the minor releases `tests/test_chat_model_http.py`
    has passed on (`pyproject.toml`)."""
    from langchain_openai import ChatOpenAI

    class PlainJsonChatOpenAI(ChatOpenAI):
        def _get_request_payload(self, input_: Any, *, stop: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
            payload: dict[str, Any] = super()._get_request_payload(input_, stop=stop, **kwargs)
            if "messages" not in payload or "response_format" in payload:
                return payload
            raw = dict(payload.get("extra_body") or {})
            for key in PLAIN_JSON_FIELDS:
                if key in payload:
                    raw[key] = payload.pop(key)
            payload["messages"] = []  # required by the SDK's signature; the merged body carries the real list
            payload["extra_body"] = raw
            return payload

    return PlainJsonChatOpenAI
