"""`threadline keys …`: API keys with roles (stored hashed; a new key is shown once)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Column, Table

from threadline.cli.options import DatabaseUrl, DataDir, settings_from
from threadline.core.auth import Role
from threadline.memory.stores import Stores

keys_app = typer.Typer(help="API keys with roles: create, list, revoke.", no_args_is_help=True)
console = Console()
CREATED_BY = "cli"


def _stores(data_dir: Path | None, database_url: str | None) -> Stores:
    from threadline.product.database import open_database

    return Stores.over(open_database(settings_from(data_dir, database_url)))


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


@keys_app.command("create")
def create(
    role: Annotated[Role, typer.Option(help="What the key may do.", show_default=False)],
    name: Annotated[str, typer.Option(help="Who or what uses the key (a channel, a person, a service).")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a key and print it once: only its hash is stored, so it cannot be shown again."""
    stores = _stores(data_dir, database_url)
    try:
        record, key = stores.api_keys.create(role, name, created_by=CREATED_BY)
    finally:
        stores.db.dispose()
    console.print(f"created {record.role.value} key {record.id} ({record.name})")
    typer.echo(key)
    console.print(
        "[yellow]Store this key now: it is not shown again.[/] Send it as `Authorization: Bearer <key>`.",
        highlight=False,
    )


@keys_app.command("list")
def list_keys(
    active: Annotated[bool, typer.Option("--active", help="Leave out revoked keys.")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """List keys (never the keys themselves: a prefix to recognise each by)."""
    stores = _stores(data_dir, database_url)
    try:
        keys = stores.api_keys.list(include_revoked=not active)
    finally:
        stores.db.dispose()
    table = Table(
        Column("id", no_wrap=True), "name", Column("role", no_wrap=True), "prefix", "created (UTC)", "revoked (UTC)"
    )
    for k in keys:
        table.add_row(k.id, k.name, k.role.value, f"{k.prefix}…", _when(k.created_at), _when(k.revoked_at))
    console.print(table)


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (see `threadline keys list`).")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke a key for good; running API workers refuse it within a few seconds."""
    from threadline.core.auth import AUTH_CACHE_TTL_S

    stores = _stores(data_dir, database_url)
    try:
        record = stores.api_keys.revoke(key_id)
    finally:
        stores.db.dispose()
    console.print(
        f"revoked {record.role.value} key {record.id} ({record.name}); "
        f"API workers refuse it within {AUTH_CACHE_TTL_S:g} s"
    )
