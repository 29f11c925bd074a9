"""`search_knowledge`: passages from the store's single knowledge base, each with article id and version."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from langchain_core.tools import tool
from langgraph.types import Command

from threadline.core.catalog_search import catalog_type_names, named_type_words
from threadline.core.tool_names import SEARCH_KNOWLEDGE
from threadline.core.types import ArticleKind, Audience
from threadline.tools.results import KnowledgePassage, KnowledgeResult
from threadline.tools.runtime import SupportRuntime, tool_result, turn_context

MIN_SCORE = 0.3
"""Passages below this dense similarity are never used."""
SURE_SCORE = 0.5
"""From this dense similarity a passage answers on its own; below it, it must also share most of the question's
content words ("do you offer gift wrapping?" is not answered by the gift-card article)."""
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    """a about am an and any anything are as at be been but by can could did do does doing for from get got had has
    have how i i'd i'm if in into is it it's its just know let like me might more my need no not of on or our please
    really so some tell than that thats the their them then there theres these they this to too u um uh ur us very
    want was we were what whats when where which who why will with would you your youre yall hey hi hello thanks
    thank okay ok yes guys many much something stuff thing things instead""".split()  # noqa: SIM905
)


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


@lru_cache(maxsize=4096)
def _stems(text: str) -> frozenset[str]:
    return frozenset(_stem(w) for w in _WORD.findall(text.lower()))


@lru_cache(maxsize=1024)
def _wanted(query: str) -> frozenset[str]:
    return frozenset(_stem(w) for w in _WORD.findall(query.lower()) if w not in _STOP)


def coverage(query: str, text: str) -> float:
    """The share of the question's content words (lightly stemmed) that the passage uses; 1.0 for a question with
    none."""
    wanted = _wanted(query)
    if not wanted:
        return 1.0
    return len(wanted & _stems(text)) / len(wanted)


_CLAUSES = re.compile(r"(?<=[.!?])\s+|\n+")


def relevant(query: str, score: float, text: str) -> bool:
    """Whether a passage is relevant enough to answer from: sure on its own, or sharing most of the content words
    of the question or of one of its sentences ("do u price match? saw it cheaper somewhere else")."""
    if score >= SURE_SCORE:
        return True
    clauses = [c for c in [query, *_CLAUSES.split(query)] if _wanted(c)]  # "Hello? Are you there?" asks nothing
    return score >= MIN_SCORE and bool(clauses) and max(coverage(c, text) for c in clauses) > 0.5


def without_products(query: str, names: Sequence[str]) -> str:
    """The question without the catalogue's product types it names (and their other words: "espresso machine",
    "gaming mouse"); the question itself when it names none or nothing else."""
    words = [word for _, word in named_type_words(query, names)]
    if not words:
        return query
    rest = query.lower()
    for word in sorted(words, key=len, reverse=True):
        rest = re.sub(rf"(?<![a-z0-9]){re.escape(word)}s?(?![a-z0-9])", " ", rest)
    return rest if _wanted(rest) else query


def _body(text: str) -> str:
    """A passage without the article title every chunk starts with (it would match every question of the article)."""
    return text.split("\n\n", 1)[-1]


def _passages(context: Any, query: str) -> list[Any]:
    """The (at most three) passages relevant enough to answer `query` from, best first."""
    searched = context.services.knowledge.search(
        query[:500], k=16, channel=context.channel.value, min_score=MIN_SCORE, audience=Audience.CUSTOMER
    )
    searched = [p for p in searched if p.kind is not ArticleKind.PRODUCT]  # the catalogue is find_products' job
    ranked = sorted(searched, key=lambda p: -(p.score + 0.2 * coverage(query, _body(p.text))))
    # The help center speaks of "an item": the product a shopper names ("the warranty on the espresso machine") is
    # no word an answer must share (though an article that does share it, "30% off jackets", ranks first).
    asked = without_products(query, catalog_type_names(context.services.orders))
    passages = [p for p in ranked if relevant(query, p.score, _body(p.text)) or relevant(asked, p.score, _body(p.text))]
    return passages[:3]


@tool(SEARCH_KNOWLEDGE)
def search_knowledge(query: str, runtime: SupportRuntime) -> Command[Any]:
    """Search the store's knowledge base (policies, procedures, FAQs, promotions, product information) and
    return the most relevant passages, each with its article id, title and version to cite."""
    context = turn_context(runtime)
    passages = _passages(context, query)
    if not passages:
        # A question followed by what the shopper adds ("whats ur return policy? bought a lamp last wk"): the added
        # words blur the question's meaning, so the question is searched on its own too.
        questions = [c for c in _CLAUSES.split(query) if c.strip().endswith("?") and c.strip() != query.strip()]
        for question in questions[:2]:
            passages = _passages(context, question)
            if passages:
                break
    found = [
        KnowledgePassage(
            article_id=p.article_id, title=p.title, version=p.version, kind=p.kind, text=p.text, score=round(p.score, 3)
        )
        for p in passages
    ]
    result = KnowledgeResult(status="ok" if found else "no_answer", query=query[:500], passages=found)
    return tool_result(runtime, SEARCH_KNOWLEDGE, result)
