"""A local server speaking the OpenAI chat-completions protocol (tool calls included), scripted by the offline
model's policy. Tests, evals and benchmarks drive the real `ChatOpenAI` client against it over real HTTP.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import uvicorn
from fastapi import FastAPI, Header, HTTPException
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage

from threadline.agents.intents import IntentClassifier
from threadline.agents.offline_model import decision_message
from threadline.agents.offline_policy import decide


def to_langchain(messages: list[dict[str, Any]]) -> list[AnyMessage]:
    """OpenAI chat messages as LangChain messages; tool results get their tool's name back from the call."""
    names: dict[str, str] = {}
    converted: list[AnyMessage] = []
    for m in messages:
        role, content = m["role"], m.get("content") or ""
        if role in ("system", "developer"):
            converted.append(SystemMessage(content=content))
        elif role == "user":
            converted.append(HumanMessage(content=content))
        elif role == "assistant":
            calls = [
                {"name": c["function"]["name"], "args": json.loads(c["function"]["arguments"] or "{}"), "id": c["id"]}
                for c in m.get("tool_calls") or []
            ]
            names.update({c["id"]: c["name"] for c in calls})
            converted.append(AIMessage(content=content, tool_calls=calls))
        elif role == "tool":
            call_id = m["tool_call_id"]
            converted.append(ToolMessage(content=content, tool_call_id=call_id, name=names.get(call_id)))
    return converted


def completion(message: AIMessage, model: str) -> dict[str, Any]:
    """A chat.completion response body for one assistant message."""
    body: dict[str, Any] = {"role": "assistant", "content": message.text or None}
    if message.tool_calls:
        body["tool_calls"] = [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": json.dumps(c["args"])}}
            for c in message.tool_calls
        ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": body, "finish_reason": "tool_calls" if message.tool_calls else "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


@dataclass
class ScriptedModelServer:
    """Serves `POST /v1/chat/completions` on 127.0.0.1; `latency_s` simulates a slow model."""

    classifier: IntentClassifier
    latency_s: float = 0.0
    api_key: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    def app(self) -> FastAPI:
        """The FastAPI app behind the server."""
        api = FastAPI()

        @api.post("/v1/chat/completions")
        def chat(body: dict[str, Any], authorization: str | None = Header(None)) -> dict[str, Any]:
            if self.api_key and authorization != f"Bearer {self.api_key}":
                raise HTTPException(401, "invalid api key")
            self.requests.append(body)
            if self.latency_s:
                time.sleep(self.latency_s)
            messages = to_langchain(body["messages"])
            bound = {t["function"]["name"] for t in body.get("tools") or []}
            reply = decision_message(decide(messages, self.classifier), messages, bound)
            return completion(reply, body.get("model", "scripted"))

        return api

    @property
    def base_url(self) -> str:
        """The OpenAI base URL to configure (`…/v1`)."""
        assert self._server is not None and self._server.servers, "server not started"
        port = self._server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    def __enter__(self) -> ScriptedModelServer:
        config = uvicorn.Config(self.app(), host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("scripted model server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(timeout=10)
