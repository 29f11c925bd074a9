"""The default knowledge base: the store policy split by section, and one article per guideline subflow."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from threadline.core.types import ArticleDraft, ArticleId, ArticleKind
from threadline.memory.ingest import slug


def policy_articles(markdown: str) -> Iterator[ArticleDraft]:
    """One policy article per `##` section of the store policy; the preamble becomes the general policy."""
    title: str | None = None
    lines: list[str] = []
    intro_title = "Store policy"
    for line in markdown.splitlines():
        if line.startswith("# "):
            intro_title = line[2:].strip()
            continue
        if line.startswith("## "):
            if lines and any(s.strip() for s in lines):
                yield _policy(title or intro_title, lines)
            title, lines = line[3:].strip(), []
            continue
        lines.append(line)
    if any(s.strip() for s in lines):
        yield _policy(title or intro_title, lines)


def _policy(title: str, lines: list[str]) -> ArticleDraft:
    return ArticleDraft(
        id=ArticleId(f"policy-{slug(title)}"),
        kind=ArticleKind.POLICY,
        title=title,
        body="\n".join(lines).strip() + "\n",
        tags=["store-policy"],
    )


def guideline_articles(guidelines: dict[str, Any]) -> Iterator[ArticleDraft]:
    """One procedure article per subflow of the service guidelines, its steps as a Markdown list."""
    for flow, spec in guidelines.items():
        for subflow, detail in spec.get("subflows", {}).items():
            body = [f"Part of **{flow}** ({spec.get('description', '').strip()}).", ""]
            body += [f"- {line}" for line in detail.get("instructions", [])[:1]]
            for step, action in enumerate(detail.get("actions", []), start=1):
                body.append(f"{step}. {action['text'].strip()}")
                body += [f"   - {sub.strip()}" for sub in action.get("subtext", [])]
            body += [f"- {line}" for line in detail.get("instructions", [])[1:]]
            yield ArticleDraft(
                id=ArticleId(f"guide-{slug(flow)}-{slug(subflow)}"),
                kind=ArticleKind.PROCEDURE,
                title=f"{flow}: {subflow}",
                body="\n".join(body).strip() + "\n",
                tags=["service-guidelines", slug(flow)],
            )
