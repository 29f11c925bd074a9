"""Knowledge articles with version history: every change is a new version row, old versions stay readable."""

from __future__ import annotations

import builtins
from typing import Any

from sqlalchemy import ColumnElement, Row, select, update
from sqlalchemy.orm import Session

from threadline.core.types import (
    NOTICE_KINDS,
    Article,
    ArticleDraft,
    ArticleId,
    ArticleKind,
    ArticleStatus,
    Audience,
    default_audience,
)
from threadline.memory.db import Database
from threadline.memory.schema import ArticleRow, ArticleVersionRow, KnowledgeRevisionRow, table, utcnow

_CONTENT_FIELDS = (
    "kind",
    "audience",
    "status",
    "title",
    "body",
    "tags",
    "channels",
    "product_ids",
    "effective_from",
    "effective_to",
)


def _article(row: ArticleVersionRow | Row[Any]) -> Article:
    return Article(
        id=ArticleId(row.article_id),
        version=row.version,
        kind=ArticleKind(row.kind),
        audience=Audience(row.audience),
        status=ArticleStatus(row.status),
        title=row.title,
        body=row.body,
        tags=row.tags,
        channels=row.channels,
        product_ids=row.product_ids,
        effective_from=row.effective_from,
        effective_to=row.effective_to,
        updated_at=row.created_at,
    )


_VERSIONS, _ARTICLES = table(ArticleVersionRow), table(ArticleRow)
_NOTICES = (
    select(_VERSIONS)
    .join(
        _ARTICLES,
        (_ARTICLES.c.id == _VERSIONS.c.article_id) & (_ARTICLES.c.current_version == _VERSIONS.c.version),
    )
    .where(
        _VERSIONS.c.status == ArticleStatus.PUBLISHED.value,
        _VERSIONS.c.kind.in_([k.value for k in NOTICE_KINDS]),
    )
    .order_by(_VERSIONS.c.article_id)
)


def _content(draft: ArticleDraft, current: Audience | None = None) -> dict[str, object]:
    """The stored fields of a draft; an audience left unset keeps `current` (the article's), else goes by kind."""
    data = draft.model_dump(include=set(_CONTENT_FIELDS))
    data["kind"], data["status"] = draft.kind.value, draft.status.value
    data["audience"] = (draft.audience or current or default_audience(draft.kind)).value
    return data


class SqlKnowledgeRepository:
    """`KnowledgeRepository` over the domain store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def upsert(self, draft: ArticleDraft, *, author: str) -> Article:
        with self._db.session() as s:
            head = s.get(ArticleRow, draft.id, with_for_update=True)
            current = self._version(s, draft.id, head.current_version) if head is not None else None
            kept = Audience(current.audience) if current is not None else None
            content = _content(draft, kept)
            if head is not None:
                assert current is not None, f"article {draft.id} lost its current version"
                if all(getattr(current, f) == content[f] for f in _CONTENT_FIELDS):
                    return _article(current)
                head.current_version += 1
                head.updated_at = utcnow()
            else:
                head = ArticleRow(id=draft.id, current_version=1, created_at=utcnow(), updated_at=utcnow())
                s.add(head)
            row = ArticleVersionRow(
                article_id=draft.id, version=head.current_version, author=author, created_at=utcnow(), **content
            )
            s.add(row)
            s.flush()
            # Locks the counter row until commit: concurrent editors commit in the order of their revisions.
            s.execute(
                update(KnowledgeRevisionRow)
                .where(KnowledgeRevisionRow.id == 1)
                .values(value=KnowledgeRevisionRow.value + 1)
            )
            return _article(row)

    def get(self, article_id: ArticleId, version: int | None = None) -> Article | None:
        with self._db.session() as s:
            head = s.get(ArticleRow, article_id)
            if head is None:
                return None
            row = self._version(s, article_id, version or head.current_version)
            return _article(row) if row else None

    def history(self, article_id: ArticleId) -> list[Article]:
        with self._db.session() as s:
            rows = s.scalars(
                select(ArticleVersionRow)
                .where(ArticleVersionRow.article_id == article_id)
                .order_by(ArticleVersionRow.version)
            )
            return [_article(r) for r in rows]

    def notices(self) -> list[Article]:
        """Published promotions and product notices (read on every turn: a statement built once)."""
        return [_article(row) for row in self._db.all(_NOTICES)]

    def list(self, status: ArticleStatus | None = ArticleStatus.PUBLISHED) -> list[Article]:
        """The current version of every article, optionally only those with `status`."""
        return self._current(*([] if status is None else [ArticleVersionRow.status == status.value]))

    def _current(self, *conditions: ColumnElement[bool]) -> builtins.list[Article]:
        """Current versions matching `conditions`, by article id."""
        with self._db.session() as s:
            query = (
                select(ArticleVersionRow)
                .join(
                    ArticleRow,
                    (ArticleRow.id == ArticleVersionRow.article_id)
                    & (ArticleRow.current_version == ArticleVersionRow.version),
                )
                .where(*conditions)
                .order_by(ArticleVersionRow.article_id)
            )
            return [_article(r) for r in s.scalars(query)]

    def revision(self) -> int:
        with self._db.session() as s:
            return int(s.scalar(select(KnowledgeRevisionRow.value).where(KnowledgeRevisionRow.id == 1)) or 0)

    @staticmethod
    def _version(s: Session, article_id: str, version: int) -> ArticleVersionRow | None:
        return s.scalar(
            select(ArticleVersionRow).where(
                ArticleVersionRow.article_id == article_id, ArticleVersionRow.version == version
            )
        )
