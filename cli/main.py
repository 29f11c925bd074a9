"""`threadline`: serve, chat, load the demo, migrate; a user error prints one line and exits non-zero."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from core.errors import ThreadlineError
from core.settings import Settings, load_settings

app = typer.Typer(
    name="threadline",
    help="Omnichannel AI customer support for retailers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
demo_app = typer.Typer(help="The demo store.", no_args_is_help=True)
db_app = typer.Typer(help="The domain store's schema.", no_args_is_help=True)
app.add_typer(demo_app, name="demo")
app.add_typer(db_app, name="db")

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Overrides THREADLINE_DATA_DIR.", show_default=False)]
DatabaseUrl = Annotated[
    str | None, typer.Option("--database-url", help="Overrides THREADLINE_DATABASE_URL.", show_default=False)
]


def settings_from(data_dir: Path | None = None, database_url: str | None = None, **extra: object) -> Settings:
    """Settings from the environment with the command line's overrides on top."""
    overrides: dict[str, object] = {k: v for k, v in extra.items() if v is not None}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if database_url is not None:
        overrides["database_url"] = database_url
    return load_settings(**overrides)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (THREADLINE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (THREADLINE_PORT).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (THREADLINE_WORKERS).")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Run the API, agent console, demo chat and dashboard (creates and seeds the database on first start)."""
    import uvicorn

    settings = settings_from(data_dir, database_url, host=host, port=port, workers=workers)
    from api.services import open_database

    open_database(settings).dispose()  # fail fast with a clear error before forking workers
    # Workers rebuild settings from the environment, so pass the overrides on that way.
    os.environ["THREADLINE_DATA_DIR"] = str(settings.data_dir)
    if settings.database_url:
        os.environ["THREADLINE_DATABASE_URL"] = settings.database_url
    base = f"http://{settings.host}:{settings.port}"
    console.print(f"Threadline on [bold]{base}[/]  ·  API docs {base}/docs  ·  ready {base}/readyz")
    uvicorn.run(
        "api.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
    )


@demo_app.command("load")
def demo_load(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Import the demo store (500 customers, 1,000 orders, the catalog and knowledge base); safe to repeat."""
    from api.services import open_database
    from demo.loader import load_demo
    from memory.stores import Stores

    settings = settings_from(data_dir, database_url)
    db = open_database(settings)
    stores = Stores.over(db)
    with Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), console=console) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(step, total=total)
            bar.update(tasks[step], completed=done)

        report = load_demo(stores, progress)
    table = Table("records", "created", "total")
    products = stores.orders.list_products()
    totals = {
        "products": len(products),
        "variants": sum(len(p.variants) for p in products),
        "customers": stores.customers.count(),
        "orders": stores.orders.count_orders(),
        "articles": len(stores.knowledge.list(status=None)),
    }
    for kind in ("products", "variants", "customers", "identities", "orders", "articles"):
        table.add_row(kind, str(report.created.get(kind, 0)), str(totals.get(kind, "")))
    console.print(table)
    db.dispose()


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Apply pending migrations (start-up does this too)."""
    from api.services import open_database
    from memory import migrate

    db = open_database(
        load_settings() if data_dir is None and database_url is None else settings_from(data_dir, database_url)
    )
    console.print(f"database at revision {migrate.current_revision(db)} ({db.backend})")
    db.dispose()


def run() -> None:
    """Console-script entry: run the app, turning product errors into one clear line."""
    try:
        app()
    except ThreadlineError as exc:
        err_console.print(f"[red]error:[/] {exc.message}", highlight=False)
        sys.exit(2)
    except SQLAlchemyError as exc:
        err_console.print(
            f"[red]error:[/] database problem: {exc.__class__.__name__}: {exc.args[0] if exc.args else exc}"
        )
        sys.exit(2)
    except OSError as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    run()
