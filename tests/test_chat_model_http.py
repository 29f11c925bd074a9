"""The OpenAI-compatible chat model sends exactly the request body the stock `ChatOpenAI` sends, over real HTTP to
the scripted model server, while skipping the openai SDK's type-driven walk of messages and tool schemas."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.embeddings import Embeddings
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from threadline.agents.models import make_chat_model
from threadline.tools import SUPPORT_TOOLS

CONVERSATION = [
    SystemMessage("You are the store's assistant. Brief: Verification level: strong"),
    HumanMessage('Where is order #W2378156? Ünïcode, "quotes" and a newline\nstay as they are.'),
    AIMessage(content="", tool_calls=[{"name": "lookup_order", "args": {"order_id": "#W2378156"}, "id": "call_1"}]),
    ToolMessage('{"status": "ok", "order": {"id": "#W2378156", "status": "delivered"}}', tool_call_id="call_1"),
    HumanMessage("thanks"),
]


def _bodies(server: Any, model: Any, stream: bool) -> dict[str, Any]:
    bound = model.bind_tools(SUPPORT_TOOLS)
    before = len(server.requests)
    if stream:
        # The scripted server answers with a whole completion, never server-sent events, so the client finds no
        # chunks; the request it recorded is what this test compares.
        with pytest.raises(ValueError, match="No generation chunks"):
            for _chunk in bound.stream(CONVERSATION):
                pass
    else:
        bound.invoke(CONVERSATION)
    assert len(server.requests) == before + 1
    body: dict[str, Any] = server.requests[-1]
    return body


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_the_request_body_is_the_stock_clients_body(scripted_server: Any, embeddings: Embeddings, stream: bool) -> None:
    ours = make_chat_model(
        "openai:scripted-model",
        embeddings=embeddings,
        base_url=scripted_server.base_url,
        api_key=SecretStr("test-key"),
    )
    stock = ChatOpenAI(
        model="scripted-model",
        base_url=scripted_server.base_url,
        api_key=SecretStr("test-key"),
        temperature=0,
        timeout=60.0,
        max_retries=2,
    )
    assert type(ours) is not ChatOpenAI and isinstance(ours, ChatOpenAI)
    sent, expected = _bodies(scripted_server, ours, stream), _bodies(scripted_server, stock, stream)
    assert sent == expected
    assert len(sent["tools"]) == len(SUPPORT_TOOLS) and sent["messages"][1]["content"].startswith("Where is order")
