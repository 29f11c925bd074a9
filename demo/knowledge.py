"""The default knowledge base: the customer help center (one article per `#` section, one question per `##`), the
store's agent policy split by section, and one agent procedure per guideline subflow."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from threadline.core.types import EDITOR_NOTES, ArticleDraft, ArticleId, ArticleKind, Audience
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
    """The store policy is written to its agents ("you should check its status before taking the action"): agents
    read it, customers hear the help center instead."""
    return ArticleDraft(
        id=ArticleId(f"policy-{slug(title)}"),
        kind=ArticleKind.POLICY,
        audience=Audience.AGENT,
        title=title,
        body="\n".join(lines).strip() + "\n",
        tags=["store-policy"],
    )


DEMO_NOTE = EDITOR_NOTES[0]
"""How a help-center article marks answers that are the demo store's own choice (where the store policy is silent):
a note to its editors, never indexed or part of an answer."""


def help_center_articles(markdown: str) -> Iterator[ArticleDraft]:
    """One customer-facing FAQ article per `# ` section of the help center; its `## ` headings are the questions."""
    title: str | None = None
    lines: list[str] = []
    for line in [*markdown.splitlines(), "# "]:
        if line.startswith("# "):
            if title and any(s.strip() for s in lines):
                demo = any(s.startswith(DEMO_NOTE) for s in lines)
                yield ArticleDraft(
                    id=ArticleId(f"help-{slug(title)}"),
                    kind=ArticleKind.FAQ,
                    audience=Audience.CUSTOMER,
                    title=title,
                    body="\n".join(lines).strip() + "\n",
                    tags=["help-center", *(["demo-content"] if demo else [])],
                )
            title, lines = line[2:].strip(), []
        else:
            lines.append(line)


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
                audience=Audience.AGENT,
                title=f"{flow}: {subflow}",
                body="\n".join(body).strip() + "\n",
                tags=["service-guidelines", slug(flow)],
            )
