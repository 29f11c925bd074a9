"""`find_products`: the product finder over the catalogue (type, option values, price range, stock)."""

from __future__ import annotations

import re
from typing import Any

from langchain_core.tools import tool
from langgraph.types import Command

from threadline.core.catalog_search import criteria, find
from threadline.core.tool_names import FIND_PRODUCTS
from threadline.core.types import ArticleKind, Audience, Product
from threadline.tools.results import ProductChoice, ProductsFound
from threadline.tools.runtime import SupportRuntime, tool_result, turn_context

MAX_CHOICES = 6
_ASKED = re.compile(
    r"\b(?:looking for|look for|shopping for|want to buy|wanna buy|need|want|sell|carry|stock|have|got|get|"
    r"buy|find|recommend|what about|how about)\s+(?:a |an |some |any |the |one of those |u )?"
    r"([a-z][a-z -]{1,40}?)(?=[?.!,]|\s+(?:for|that|"
    r"which|with|in|under|do|does|pls|please|at|on|those|them|anymore)\b|$)",
    re.I,
)


def wanted_thing(query: str) -> str | None:
    """The thing a shopper asks for, in their words ("a sofa" → "sofa"), when the query says it plainly."""
    found = _ASKED.findall(query)
    pronouns = {"it", "one", "that", "this", "those", "them", "these", "anything", "something", "u", "you"}
    words = [w.strip() for w in found if w.strip() and w.strip().lower() not in pronouns]
    return words[0] if words else None


def _choice(product: Product, match: Any) -> ProductChoice:
    return ProductChoice(
        name=product.name,
        options=dict(match.variant.options),
        price=str(match.variant.price),
        in_stock=match.variant.available,
        matches_all=match.fits,
        missing=list(match.missed) or None,
    )


@tool(FIND_PRODUCTS)
def find_products(query: str, runtime: SupportRuntime) -> Command[Any]:
    """Find products in our catalogue for a shopper: pass what they asked for in their own words, including every
    earlier criterion they still want when they refine ("waterproof red bluetooth speaker under $300", then
    "bluetooth speaker, red, waterproof, under $300, but with a longer battery"). Returns the best matching
    variants (options, price, in stock) and what each lacks, or `not_carried` with the closest products we sell.
    Never read item or product ids to the customer; describe options and prices."""
    context = turn_context(runtime)
    products = context.services.orders.list_products()
    wanted = criteria(query, products)
    if not wanted.product_ids and not wanted.options:
        closest = _closest(context, query)
        result = ProductsFound(
            status="not_carried",
            query=query[:300],
            asked_for=[],
            products=[],
            wanted=wanted_thing(query),
            closest=closest,
        )
        return tool_result(runtime, FIND_PRODUCTS, result)
    matches = find(products, wanted, limit=500)
    fitting = [m for m in matches if m.fits and m.variant.available]
    offered: dict[str, list[str]] = {}
    for match in fitting:
        for name, value in match.variant.options.items():
            if value not in offered.setdefault(name, []):
                offered[name].append(value)
    prices = sorted(m.variant.price for m in fitting)
    result = ProductsFound(
        status="ok",
        query=query[:300],
        asked_for=wanted.describe(),
        products=[p.name for p in products if p.id in wanted.product_ids] or sorted({m.product.name for m in matches}),
        choices=[_choice(m.product, m) for m in matches[:MAX_CHOICES]],
        in_stock_count=len(fitting),
        in_stock_options=offered or None,
        price_from=str(prices[0]) if prices else None,
        price_to=str(prices[-1]) if prices else None,
    )
    return tool_result(runtime, FIND_PRODUCTS, result)


def _closest(context: Any, query: str) -> list[str]:
    """The product types nearest to what was asked, from the catalogue's product articles."""
    passages = context.services.knowledge.search(query[:300], k=8, audience=Audience.CUSTOMER, min_score=0.2)
    names = [p.title.split(":", 1)[0] for p in passages if p.kind is ArticleKind.PRODUCT]
    return list(dict.fromkeys(names))[:3]
