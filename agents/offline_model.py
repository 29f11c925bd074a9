"""The embedded offline chat model: a real `BaseChatModel` with `bind_tools`, deterministic and network-free."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field

from threadline.agents.decision import Decision
from threadline.agents.intents import IntentClassifier
from threadline.agents.offline_policy import decide


def _call_id(messages: Sequence[BaseMessage], name: str) -> str:
    digest = hashlib.sha256(f"{len(messages)}:{messages[-1].text if messages else ''}:{name}".encode()).hexdigest()
    return f"call_{digest[:20]}"


def decision_message(decision: Decision, messages: Sequence[BaseMessage], bound: set[str] | None) -> AIMessage:
    """The AI message for a decision; a tool the caller did not bind is never called."""
    meta: dict[str, Any] = {"threadline": {"understood": decision.understood, "intent": decision.intent}}
    if decision.confidence is not None:
        meta["threadline"]["confidence"] = decision.confidence
    if decision.ask:
        meta["threadline"]["ask"] = decision.ask
    if decision.tool and (bound is None or decision.tool in bound):
        call = {
            "name": decision.tool,
            "args": decision.args,
            "id": _call_id(messages, decision.tool),
            "type": "tool_call",
        }
        return AIMessage(content="", tool_calls=[call], additional_kwargs=meta)
    text = decision.text or "How can I help you today?"
    return AIMessage(content=text, additional_kwargs=meta)


class OfflineChatModel(BaseChatModel):
    """Classifies the turn (MiniLM embeddings of labelled examples plus rules), extracts slots, emits the tool
    calls an LLM would, and writes replies only from tool results."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    classifier: IntentClassifier = Field(exclude=True)
    bound_tools: list[str] | None = None

    @property
    def _llm_type(self) -> str:
        return "threadline-offline"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": "offline", "tools": self.bound_tools}

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools the way chat models do: only these tools may be called."""
        names = [convert_to_openai_tool(t)["function"]["name"] for t in tools]
        return self.model_copy(update={"bound_tools": names})

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        decision = decide(list(messages), self.classifier)  # type: ignore[arg-type]
        bound = set(self.bound_tools) if self.bound_tools is not None else None
        message = decision_message(decision, messages, bound)
        return ChatResult(generations=[ChatGeneration(message=message)])
