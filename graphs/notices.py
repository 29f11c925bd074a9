"""Proactive notices: a promotion or product notice that concerns this customer's orders or question,
mentioned once per episode, the same on every channel."""

from __future__ import annotations

from datetime import datetime

from threadline.core.context import TurnContext
from threadline.core.types import EDITOR_NOTES, Article, Audience, ProductId

MAX_NOTICE_CHARS = 150


def _live(article: Article, now: datetime, channel: str) -> bool:
    if article.channels and channel not in article.channels:
        return False
    if article.effective_from and now < article.effective_from:
        return False
    return not (article.effective_to and now >= article.effective_to)


def notice_text(article: Article) -> str:
    """The one line every channel shows: the title, plus the body's first sentence when short enough."""
    said = [line for line in article.body.strip().splitlines() if line.strip() and not line.startswith(EDITOR_NOTES)]
    first = (said[0] if said else "").split(". ", 1)[0].strip().rstrip(".")
    text = f"{article.title.rstrip('.')}. {first}." if first and first != article.title else f"{article.title}."
    return text if len(text) <= MAX_NOTICE_CHARS else f"{article.title.rstrip('.')}."


def citation(article: Article) -> str:
    """`article-id@vN`, how episodes record what was shown."""
    return f"{article.id}@v{article.version}"


def pick_notice(ctx: TurnContext, question: str, bought: set[ProductId]) -> Article | None:
    """The first live notice about a product the customer bought (`bought`: product ids the caller may
    already see, i.e. of a verified customer's orders) or named in the question, not yet shown in the
    customer's current episode (read only when some notice is live)."""
    services = ctx.services
    notices = [
        a
        for a in services.articles.notices()
        if a.product_ids and a.audience is Audience.CUSTOMER and _live(a, ctx.now, ctx.channel.value)
    ]
    if not notices:
        return None
    episode = services.episodes.current(ctx.customer_id)
    shown = {n.split("@", 1)[0] for n in (episode.notices if episode else [])}
    lowered = question.lower()
    for article in notices:
        if article.id in shown:
            continue
        if bought & {ProductId(p) for p in article.product_ids}:
            return article
        names = [p.name.lower() for pid in article.product_ids if (p := services.orders.get_product(ProductId(pid)))]
        if any(name in lowered for name in names):
            return article
    return None
