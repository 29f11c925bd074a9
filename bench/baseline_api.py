"""The baseline of the HTTP benchmark: the minimal LangGraph tool loop (`bench.turns.build_baseline_graph`) served
by FastAPI the way `threadline serve` serves a turn, so the same load client and the same traffic drive both.

* Served by uvicorn with the options `threadline serve` uses (one worker, uvloop and httptools when installed).
* `POST /v1/messages` takes the body of ours (`channel`, `from`, `text`, `identity_signature`), validated by a
  pydantic model, and answers the fields of ours the load client reads (`owner`, `tools`, `reply`). It checks no
  API key, signature or rate limit: what ours does there is part of what the comparison measures.
* The turn runs on FastAPI's thread pool (a sync endpoint), as ours runs its turn through `run_in_threadpool`.
* One thread per customer (`thread_id` = the sender), checkpointed by the stock `SqliteSaver` on one connection
  in WAL with `synchronous=NORMAL`, like ours on SQLite (`memory/checkpoints.py`); the thread keeps every message
  and checkpoint (LangGraph's defaults).
* The model is the scripted tool model, or with `THREADLINE_BENCH_MODEL_URL` set a stock `ChatOpenAI` on that
  OpenAI-compatible server (the simulated slow model of `bench.api`).

`THREADLINE_BENCH_BASELINE_DIR` is where the checkpoint database goes.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import MessagesState
from pydantic import BaseModel, ConfigDict, Field

from threadline.bench.turns import build_baseline_graph

DIR_VARIABLE = "THREADLINE_BENCH_BASELINE_DIR"
MODEL_URL_VARIABLE = "THREADLINE_BENCH_MODEL_URL"


class MessageIn(BaseModel):
    """The body of `POST /v1/messages` as the benchmark sends it."""

    model_config = ConfigDict(populate_by_name=True)

    channel: str
    sender: str = Field(alias="from", min_length=1)
    text: str = Field(min_length=1)
    identity_signature: str | None = None


def _order_statuses() -> dict[str, str]:
    from threadline.demo.loader import read_json

    orders: dict[str, Any] = read_json("tau_retail", "orders.json")
    return {order_id: order["status"] for order_id, order in orders.items()}


def _model() -> BaseChatModel | None:
    url = os.environ.get(MODEL_URL_VARIABLE)
    if not url:
        return None
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model="bench-model", base_url=url, api_key="bench-model-key")


def baseline_app() -> FastAPI:
    """Factory for `uvicorn --factory threadline.bench.baseline_api:baseline_app`."""
    directory = Path(os.environ[DIR_VARIABLE])
    directory.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(directory / "baseline.sqlite", check_same_thread=False)
    conn.execute("PRAGMA synchronous=NORMAL")
    graph = build_baseline_graph(_order_statuses(), SqliteSaver(conn), _model())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            conn.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/readyz")
    def ready() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/v1/messages")
    def post_message(body: MessageIn) -> dict[str, Any]:
        config: RunnableConfig = {"configurable": {"thread_id": body.sender}}
        turn: MessagesState = {"messages": [HumanMessage(content=body.text)]}
        messages = graph.invoke(turn, config)["messages"]
        start = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
        calls = [call for m in messages[start:] if isinstance(m, AIMessage) for call in m.tool_calls]
        reply = messages[-1]
        return {
            "customer_id": body.sender,
            "reply": reply.text,
            "tools": [{"name": call["name"], "args": call["args"]} for call in calls],
            "owner": "ai",
            "handoff_id": None,
            "duplicate": False,
            "folded": False,
        }

    return app
