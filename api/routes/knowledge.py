"""`/v1/knowledge…`: articles (create, update → new version, retire, versions) and search.

Without a key, reads and search see what a customer may read: published articles written for customers.
Procedures (the team's playbooks) need an `agent`, `admin` or `qa` key; drafts and retired articles an `admin` key.
A hidden article reads exactly like a missing one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from threadline.api.auth import authorize, roles_dependency
from threadline.api.deps import ServicesDep
from threadline.api.routes import MAX_ID
from threadline.core.auth import Role
from threadline.core.errors import AuthenticationError, InvalidInputError, NotFoundError
from threadline.core.rate_limits import RateLimiter
from threadline.core.types import (
    Article,
    ArticleDraft,
    ArticleId,
    ArticleKind,
    ArticleStatus,
    Audience,
    Channel,
    Passage,
)
from threadline.memory.knowledge_admin import create_article, retire_article, update_article

router = APIRouter(prefix="/v1/knowledge", tags=["knowledge"])
AUTHOR = "api"


class ArticleIn(BaseModel):
    """An article's content; every change creates a new version."""

    model_config = ConfigDict(extra="forbid")

    kind: ArticleKind
    audience: Audience | None = Field(
        None,
        description="Who it is written for: customers read and hear only `customer` articles. Unset: `agent` for "
        "procedures, `customer` otherwise.",
    )
    title: str = Field(min_length=1, max_length=300)
    body: str = Field(min_length=1, max_length=200_000, description="Markdown.")
    status: Literal["draft", "published"] = "published"
    tags: list[str] = Field(default_factory=list)
    channels: list[Channel] = Field(default_factory=list, description="Empty means every channel.")
    product_ids: list[str] = Field(default_factory=list)
    effective_from: datetime | None = None
    effective_to: datetime | None = None

    def draft(self, article_id: str) -> ArticleDraft:
        """The domain draft for `article_id`."""
        data = self.model_dump(include=set(ArticleIn.model_fields))
        data["channels"] = [c.value for c in self.channels]
        try:
            return ArticleDraft(id=ArticleId(article_id), **data)
        except ValidationError as error:  # the draft's own rules (an effective window that ends before it starts)
            raise InvalidInputError(str(error.errors()[0]["msg"])) from error


class ArticleCreate(ArticleIn):
    """A new article with its stable id."""

    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _synced(services: ServicesDep, article: Article) -> Article:
    services.index.sync(services.stores.knowledge)  # this worker at once; the others within seconds
    return article


ANONYMOUS_QUERY_CHARS = 500
"""The longest search without a key: each clause of a query is embedded, so length is cost."""
STAFF = (Role.AGENT, Role.ADMIN, Role.QA)
"""Keys that read the team's procedures."""


def _reader(request: Request, services: ServicesDep) -> Role | None:
    """The role of the caller's key; None for an anonymous caller (or a key that is not valid)."""
    if "authorization" not in request.headers:
        return None
    try:
        return authorize(request, services, *Role).role
    except AuthenticationError:  # a wrong or revoked key reads what anyone may read
        return None


def _visible(article: Article, reader: Role | None) -> bool:
    """Whether this caller may read the article: customers published customer-facing ones, staff all published ones,
    admins everything."""
    if reader is Role.ADMIN:
        return True
    published = article.status is ArticleStatus.PUBLISHED
    return published and (reader in STAFF or article.audience is Audience.CUSTOMER)


@router.get("/articles", response_model=list[Article])
def list_articles(
    request: Request, services: ServicesDep, status: Literal["published", "draft", "retired", "all"] = "published"
) -> list[Article]:
    """The current version of every article a caller may read; drafts and retired articles need the admin key,
    procedures a staff key."""
    if status != "published":
        authorize(request, services, Role.ADMIN)
    reader = _reader(request, services)
    found = services.stores.knowledge.list(status=None if status == "all" else ArticleStatus(status))
    return [a for a in found if status != "published" or _visible(a, reader)]


@router.post("/articles", response_model=Article, status_code=201, dependencies=[roles_dependency(Role.ADMIN)])
def create(body: ArticleCreate, services: ServicesDep) -> Article:
    """Create an article (version 1)."""
    draft = body.draft(body.id)
    return _synced(services, create_article(services.stores.knowledge, draft, author=AUTHOR))


@router.get("/articles/{article_id}", response_model=Article)
def get(article_id: str, request: Request, services: ServicesDep) -> Article:
    """The current version of an article."""
    article = services.stores.knowledge.get(ArticleId(article_id))
    if article is None or not _visible(article, _reader(request, services)):
        raise NotFoundError(f"article {article_id!r} not found")
    return article


@router.put("/articles/{article_id}", response_model=Article, dependencies=[roles_dependency(Role.ADMIN)])
def update(article_id: str, body: ArticleIn, services: ServicesDep) -> Article:
    """Replace an article's content: a new version; the old ones stay readable."""
    return _synced(services, update_article(services.stores.knowledge, body.draft(article_id), author=AUTHOR))


@router.post("/articles/{article_id}/retire", response_model=Article, dependencies=[roles_dependency(Role.ADMIN)])
def retire(article_id: str, services: ServicesDep) -> Article:
    """Retire an article: search never returns it again."""
    return _synced(services, retire_article(services.stores.knowledge, ArticleId(article_id), author=AUTHOR))


@router.get("/articles/{article_id}/versions", response_model=list[Article])
def versions(article_id: str, request: Request, services: ServicesDep) -> list[Article]:
    """Every version of an article the caller may read, oldest first."""
    reader = _reader(request, services)
    history = [v for v in services.stores.knowledge.history(ArticleId(article_id)) if _visible(v, reader)]
    if not history:
        raise NotFoundError(f"article {article_id!r} not found")
    return history


@router.get("/articles/{article_id}/versions/{version}", response_model=Article)
def version(
    article_id: str, version: Annotated[int, Path(ge=1, le=MAX_ID)], request: Request, services: ServicesDep
) -> Article:
    """One version of an article."""
    article = services.stores.knowledge.get(ArticleId(article_id), version=version)
    if article is None or not _visible(article, _reader(request, services)):
        raise NotFoundError(f"article {article_id!r} has no version {version}")
    return article


@router.get("/search", response_model=list[Passage])
def search(
    request: Request,
    services: ServicesDep,
    q: Annotated[str, Query(min_length=1, max_length=2000, description="What a customer asked.")],
    k: Annotated[int, Query(ge=1, le=50)] = 5,
    channel: Channel | None = None,
) -> list[Passage]:
    """Search the knowledge base as a channel would (procedures only with a staff key). Without a key a query
    is at most 500 characters, and each client address is held to THREADLINE_RATE_ANONYMOUS_SEARCH_PER_MINUTE."""
    reader = _reader(request, services)
    if reader is None:
        if len(q) > ANONYMOUS_QUERY_CHARS:
            raise InvalidInputError(f"q: at most {ANONYMOUS_QUERY_CHARS} characters without a key")
        searchers: RateLimiter = request.app.state.anonymous_search
        searchers.check(request.client.host if request.client else "unknown", "client's searches")
    audience = None if reader in STAFF else Audience.CUSTOMER
    return services.index.search(q, k=k, channel=channel.value if channel else None, audience=audience)
