"""Product information as knowledge: one article per catalog product, regenerated when the catalog changes."""

from __future__ import annotations

from collections.abc import Callable

from threadline.core.ports import KnowledgeRepository, OrderSystem
from threadline.core.types import ArticleDraft, ArticleId, ArticleKind, Product
from threadline.memory.knowledge_admin import apply_draft

AUTHOR = "catalog"


def product_article_id(product: Product) -> ArticleId:
    """The stable article id of a product's information page."""
    return ArticleId(f"product-{product.id}")


def product_article(product: Product) -> ArticleDraft:
    """Description, options, availability and price range of a product, as Markdown."""
    available = [v for v in product.variants if v.available]
    prices = sorted(v.price for v in product.variants)
    options: dict[str, set[str]] = {}
    for variant in product.variants:
        for name, value in variant.options.items():
            options.setdefault(name, set()).add(value)
    lines = [
        f"The {product.name} (product {product.id}) comes in {len(product.variants)} variants, "
        f"{len(available)} of them available now.",
    ]
    if prices:
        lines.append(f"Prices range from ${prices[0]} to ${prices[-1]}.")
    lines += ["", "## Options", ""]
    lines += [f"- {name}: {', '.join(sorted(values))}" for name, values in sorted(options.items())]
    lines += ["", "## Availability by option", ""]
    for name, values in sorted(options.items()):
        for value in sorted(values):
            matching = [v for v in product.variants if v.options.get(name) == value]
            in_stock = [v for v in matching if v.available]
            low, high = min(v.price for v in matching), max(v.price for v in matching)
            span = f"${low}" if low == high else f"${low} to ${high}"
            lines.append(
                f"- {product.name} in {value} ({name}): {len(in_stock)} of {len(matching)} variants available, {span}."
            )
    lines += ["", "## Variants", ""]
    for variant in sorted(product.variants, key=lambda v: (not v.available, v.item_id)):
        described = ", ".join(f"{k} {v}" for k, v in variant.options.items())
        stock = "available" if variant.available else "out of stock"
        lines.append(f"- {product.name}, {described}: ${variant.price}, {stock} (item {variant.item_id})")
    return ArticleDraft(
        id=product_article_id(product),
        kind=ArticleKind.PRODUCT,
        title=f"{product.name}: options, availability and prices",
        body="\n".join(lines) + "\n",
        tags=["catalog"],
        product_ids=[product.id],
    )


def sync_product_articles(
    orders: OrderSystem, knowledge: KnowledgeRepository, progress: Callable[[int, int], None] | None = None
) -> int:
    """Upsert every product's article; unchanged products add no version. Returns how many changed."""
    products = orders.list_products()
    changed = 0
    for done, product in enumerate(products, start=1):
        changed += apply_draft(knowledge, product_article(product), author=AUTHOR) != "unchanged"
        if progress:
            progress(done, len(products))
    return changed
