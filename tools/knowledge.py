"""`search_knowledge`: passages from the store's single knowledge base, each with article id and version."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import tool
from langgraph.types import Command

from threadline.core.tool_names import SEARCH_KNOWLEDGE
from threadline.core.types import Audience
from threadline.tools.results import KnowledgePassage, KnowledgeResult
from threadline.tools.runtime import SupportRuntime, tool_result, turn_context

MIN_SCORE = 0.25


@tool(SEARCH_KNOWLEDGE)
def search_knowledge(query: str, runtime: SupportRuntime) -> Command[Any]:
    """Search the store's knowledge base (policies, procedures, FAQs, promotions, product information) and
    return the most relevant passages, each with its article id, title and version to cite."""
    context = turn_context(runtime)
    passages = context.services.knowledge.search(
        query[:500], k=3, channel=context.channel.value, min_score=MIN_SCORE, audience=Audience.CUSTOMER
    )
    found = [
        KnowledgePassage(
            article_id=p.article_id, title=p.title, version=p.version, kind=p.kind, text=p.text, score=round(p.score, 3)
        )
        for p in passages
    ]
    result = KnowledgeResult(status="ok" if found else "no_answer", query=query[:500], passages=found)
    return tool_result(runtime, SEARCH_KNOWLEDGE, result)
