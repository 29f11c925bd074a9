"""`threadline`: serve, chat, load the demo, migrate; a user error prints one line and exits non-zero."""

from __future__ import annotations

import json
import os
import secrets
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from threadline.cli.customer_commands import customers_app
from threadline.cli.eval_commands import eval_app
from threadline.cli.kb_commands import kb_app
from threadline.cli.key_commands import keys_app
from threadline.cli.maintenance_commands import maintenance
from threadline.cli.options import DatabaseUrl, DataDir, settings_from
from threadline.core.errors import ThreadlineError, UsageError
from threadline.core.types import Channel, InboundMessage, TurnOutcome

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
app.add_typer(kb_app, name="kb")
app.add_typer(eval_app, name="eval")
app.add_typer(customers_app, name="customers")
app.command("maintenance")(maintenance)
app.add_typer(keys_app, name="keys")

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (THREADLINE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (THREADLINE_PORT).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (THREADLINE_WORKERS).")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Run the HTTP API (creates, migrates and seeds the database on first start)."""
    import uvicorn

    settings = settings_from(data_dir, database_url, host=host, port=port, workers=workers)
    from threadline.product.database import open_database

    if settings.bootstrap_keys is not None:  # a malformed key list is a one-line error, not a worker traceback
        from threadline.core.auth import parse_bootstrap

        parse_bootstrap(settings.bootstrap_keys.get_secret_value())
    console.print(
        f"Starting Threadline on http://{settings.host}:{settings.port} (data in {settings.data_dir}); a first start "
        "loads the demo store and builds the knowledge index: the links follow once it is ready.",
        highlight=False,
        soft_wrap=True,
    )
    # Fail fast with a clear error before forking workers, and migrate here, where the progress line is ours.
    open_database(settings, progress=lambda line: console.print(line + "…", highlight=False)).dispose()
    # Workers rebuild settings from the environment, so pass the overrides on that way.
    os.environ["THREADLINE_DATA_DIR"] = str(settings.data_dir)
    os.environ["THREADLINE_HOST"] = settings.host  # the demo page's loopback check sees the bound address
    os.environ["THREADLINE_PORT"] = str(settings.port)  # the links printed when ready
    os.environ["THREADLINE_WORKERS"] = str(settings.workers)  # one worker starts in the background
    if settings.database_url:
        os.environ["THREADLINE_DATABASE_URL"] = settings.database_url
    uvicorn.run(
        "threadline.api.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        log_config=_log_config(settings.log_level),
    )


def _log_config(level: str) -> dict[str, object]:
    """uvicorn's logging, with the product's own logs (start-up progress, the ready line) on its console handler."""
    from copy import deepcopy

    from uvicorn.config import LOGGING_CONFIG

    config = deepcopy(LOGGING_CONFIG)
    config["loggers"]["threadline"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


@app.command()
def chat(
    channel: Annotated[Channel, typer.Option(help="The channel you write on.")] = Channel.WEB,
    sender: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Your handle on that channel: phone, email, visitor id. Without it (web, store, social), each run "
            "is a new visitor, whose id is printed so you can continue as them.",
        ),
    ] = None,
    verified: Annotated[bool, typer.Option(help="The channel vouches for you (signed-in web, store check).")] = False,
    message: Annotated[str | None, typer.Option(help="Send one message and exit.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="With --message: print the outcome as JSON.")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Talk to the support graph as a customer, interactively or one message at a time."""
    from threadline.product.services import open_services

    if as_json and message is None:
        raise UsageError("--json needs --message")
    new_visitor = sender is None
    if sender is None:
        sender = _new_visitor(channel)
    services = open_services(settings_from(data_dir, database_url))
    try:
        if message is not None:
            if new_visitor:  # on stderr, so --json stays one JSON document on stdout
                err_console.print(f"[dim]as new visitor {sender}; continue with --from {sender}[/]", highlight=False)
            outcome = services.turns.handle(
                InboundMessage(channel=channel, sender=sender, text=message, vouched=verified)
            )
            if as_json:
                typer.echo(
                    json.dumps(
                        outcome.model_dump(mode="json", exclude={"duplicate", "folded", "message_id", "reply_id"})
                    )
                )
            else:
                _print_outcome(outcome)
            return
        who = f"new visitor {sender} (continue later with --from {sender})" if new_visitor else sender
        console.print(f"Chatting on [bold]{channel.value}[/] as {who}. Ctrl-D or 'quit' to leave.", soft_wrap=True)
        while (text := _read_line()) is not None:
            if text.strip():
                _print_outcome(
                    services.turns.handle(InboundMessage(channel=channel, sender=sender, text=text, vouched=verified))
                )
    finally:
        services.close()


HANDLE_NEEDED = {Channel.SMS: "a phone number", Channel.VOICE: "a phone number", Channel.EMAIL: "an email address"}


def _new_visitor(channel: Channel) -> str:
    """A visitor id of its own for a chat without `--from`: one person's escalation never silences the next run."""
    if channel in HANDLE_NEEDED:
        raise UsageError(f"--channel {channel.value} needs --from ({HANDLE_NEEDED[channel]})")
    return f"cli-visitor-{secrets.token_hex(6)}"


def _read_line() -> str | None:
    try:
        text = console.input("[bold cyan]you>[/] ")
    except (EOFError, KeyboardInterrupt):
        return None
    return None if text.strip().lower() in {"quit", "exit"} else text


def _print_outcome(outcome: TurnOutcome) -> None:
    tools = ", ".join(t["name"] for t in outcome.tools)
    if outcome.reply is None:
        console.print(f"[dim](a human agent owns this case: {outcome.owner}; no AI reply)[/]")
    else:
        console.print(f"[bold green]threadline>[/] {outcome.reply}", highlight=False)
    if tools:
        console.print(f"[dim]  tools: {tools}[/]")


@demo_app.command("load")
def demo_load(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Import the demo store (500 customers, 1,000 orders, the catalog and knowledge base); safe to repeat."""
    from threadline.demo.loader import load_demo
    from threadline.memory.stores import Stores
    from threadline.product.database import open_database

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
    for kind in ("products", "variants", "customers", "identities", "orders", "articles", "product articles"):
        table.add_row(kind, str(report.created.get(kind, 0)), str(totals.get(kind, "")))
    console.print(table)
    db.dispose()


@demo_app.command("traffic")
def demo_traffic(
    customers: Annotated[int, typer.Option(min=1, max=500, help="Simulated shoppers (demo-store customers).")] = 20,
    days: Annotated[int, typer.Option(min=1, max=90, help="Simulated days, ending yesterday.")] = 7,
    seed: Annotated[int, typer.Option(help="Same seed and start, same traffic.")] = 7,
    start: Annotated[str | None, typer.Option(help="First simulated day (YYYY-MM-DD).")] = None,
    url: Annotated[str | None, typer.Option(help="Drive a running server (default: one started here).")] = None,
    key: Annotated[str | None, typer.Option(help="Admin API key for --url.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was driven as JSON.")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Drive the real API with simulated shoppers over a simulated clock: turns on every channel, channel switches,
    escalations worked by a scripted agent, page views and purchases; then open /dashboard."""
    from datetime import date

    from threadline.cli.demo_traffic import run_traffic

    settings = settings_from(data_dir, database_url)
    first = date.fromisoformat(start) if start else None
    with Progress(TextColumn("shoppers"), BarColumn(), MofNCompleteColumn(), console=err_console) as bar:
        task = bar.add_task("shoppers", total=customers)
        report = run_traffic(
            settings,
            customers=customers,
            days=days,
            seed=seed,
            start=first,
            url=url,
            key=key,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if as_json:
        print(json.dumps(report.as_dict()))
        return
    table = Table("driven", "count")
    for name, value in report.as_dict().items():
        table.add_row(name, json.dumps(value) if isinstance(value, dict) else str(value))
    console.print(table)


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Apply pending migrations (start-up does this too)."""
    from threadline.memory import migrate
    from threadline.product.database import open_database

    db = open_database(settings_from(data_dir, database_url))
    console.print(f"database at revision {migrate.current_revision(db)} ({db.backend})")
    db.dispose()


@app.command("bench")
def bench(
    as_json: Annotated[bool, typer.Option("--json", help="Print only the result as one JSON object.")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes: a smoke run, not a measurement.")] = False,
    only: Annotated[str, typer.Option(help="all, turns, history, api, knowledge, orders or start.")] = "all",
) -> None:
    """Run the benchmarks: our turn beside a minimal LangGraph tool loop, and knowledge search at scale."""
    from threadline.bench.suite import PARTS, render_all, run_all

    if only not in ("all", *PARTS):
        raise UsageError(f"--only takes all or one of {', '.join(PARTS)}, not {only!r}")
    log = None if as_json else (lambda line: err_console.print(f"[dim]{line}[/]"))
    result = run_all(quick, only=only, log=log)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    for table in render_all(result):
        console.print(table)


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
