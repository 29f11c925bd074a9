"""`threadline kb …`: the knowledge base from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from threadline.cli.options import DatabaseUrl, DataDir, settings_from
from threadline.core.settings import Settings
from threadline.core.types import ArticleId, ArticleKind, ArticleStatus
from threadline.memory.stores import Stores

kb_app = typer.Typer(help="The knowledge base: ingest, search, list, retire.", no_args_is_help=True)
console = Console()
AUTHOR = "cli"


def _stores(data_dir: Path | None, database_url: str | None) -> tuple[Settings, Stores]:
    from threadline.product.database import open_database

    settings = settings_from(data_dir, database_url)
    return settings, Stores.over(open_database(settings))


@kb_app.command("ingest")
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories: .md .html .txt .jsonl .csv")],
    kind: Annotated[ArticleKind, typer.Option(help="Kind for articles that do not say.")] = ArticleKind.FAQ,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Load articles; idempotent by id and content (an unchanged article adds no version)."""
    from threadline.memory.ingest import read_articles
    from threadline.memory.knowledge_admin import apply_draft

    drafts = [draft for path in paths for draft in read_articles(path, kind)]
    _settings, stores = _stores(data_dir, database_url)
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    with Progress(TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), console=console) as bar:
        task = bar.add_task("ingest", total=len(drafts))
        for draft in drafts:
            counts[apply_draft(stores.knowledge, draft, author=AUTHOR)] += 1
            bar.advance(task)
    console.print(
        ", ".join(f"{n} {k}" for k, n in counts.items()) + f" (knowledge revision {stores.knowledge.revision()})"
    )
    stores.db.dispose()


@kb_app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="What a customer would ask.")],
    k: Annotated[int, typer.Option("--k", min=1, max=50, help="How many passages.")] = 5,
    channel: Annotated[str | None, typer.Option(help="Search as this channel would (web, sms, …).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the passages as JSON.")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Search the knowledge base the way a channel would."""
    from threadline.product.services import open_index

    settings, stores = _stores(data_dir, database_url)
    passages = open_index(settings, stores).search(query, k=k, channel=channel)
    stores.db.dispose()
    if as_json:
        typer.echo(json.dumps([p.model_dump(mode="json") for p in passages]))
        return
    table = Table("score", "article", "version", "passage")
    for p in passages:
        table.add_row(f"{p.score:.3f}", f"{p.title}\n[dim]{p.article_id}[/]", str(p.version), p.text[:300])
    console.print(table)


@kb_app.command("list")
def list_articles(
    status: Annotated[str, typer.Option(help="published, draft, retired or all.")] = "published",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """List the current version of every article."""
    from threadline.core.errors import InvalidInputError

    if status not in ("all", *ArticleStatus):
        raise InvalidInputError(f"unknown status {status!r}: use published, draft, retired or all")
    _settings, stores = _stores(data_dir, database_url)
    articles = stores.knowledge.list(status=None if status == "all" else ArticleStatus(status))
    stores.db.dispose()
    table = Table("id", "kind", "version", "status", "title")
    for a in articles:
        table.add_row(a.id, a.kind.value, str(a.version), a.status.value, a.title)
    console.print(table)


@kb_app.command("retire")
def retire(
    article_id: Annotated[str, typer.Argument(help="The article to retire.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Retire an article: search stops returning it; its history stays readable."""
    from threadline.memory.knowledge_admin import retire_article

    _settings, stores = _stores(data_dir, database_url)
    retired = retire_article(stores.knowledge, ArticleId(article_id), author=AUTHOR)
    stores.db.dispose()
    console.print(f"retired {retired.id} (now version {retired.version})")
