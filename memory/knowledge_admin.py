"""Editing the knowledge base: create, update (a new version), retire. Shared by the API and the CLI."""

from __future__ import annotations

from typing import Literal

from threadline.core.errors import ConflictError, NotFoundError
from threadline.core.ports import KnowledgeRepository
from threadline.core.types import Article, ArticleDraft, ArticleId, ArticleStatus

Applied = Literal["created", "updated", "unchanged"]


def apply_draft(repo: KnowledgeRepository, draft: ArticleDraft, *, author: str) -> Applied:
    """Upsert an article from an import and say what it did (an unchanged draft adds no version)."""
    before = repo.get(draft.id)
    after = repo.upsert(draft, author=author)
    if before is None:
        return "created"
    return "unchanged" if before.version == after.version else "updated"


def create_article(repo: KnowledgeRepository, draft: ArticleDraft, *, author: str) -> Article:
    """A new article at version 1; an existing id is a conflict."""
    if repo.get(draft.id) is not None:
        raise ConflictError(f"article {draft.id!r} already exists; update it instead")
    return repo.upsert(draft, author=author)


def update_article(repo: KnowledgeRepository, draft: ArticleDraft, *, author: str) -> Article:
    """A new version of an existing article (an unchanged draft keeps the current version)."""
    if repo.get(draft.id) is None:
        raise NotFoundError(f"article {draft.id!r} not found")
    return repo.upsert(draft, author=author)


def retire_article(repo: KnowledgeRepository, article_id: ArticleId, *, author: str) -> Article:
    """A new version with status `retired`: search stops returning it, the history stays readable."""
    current = repo.get(article_id)
    if current is None:
        raise NotFoundError(f"article {article_id!r} not found")
    fields = current.model_dump(include=set(ArticleDraft.model_fields))
    return repo.upsert(ArticleDraft.model_validate({**fields, "status": ArticleStatus.RETIRED}), author=author)
