"""`threadline maintenance`: run the retention job once (old checkpoints, idle threads, old messages)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from threadline.cli.options import DatabaseUrl, DataDir, settings_from

console = Console()


def maintenance(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be removed; remove nothing.")] = False,
    keep_checkpoints: Annotated[
        int | None, typer.Option(min=0, help="Overrides THREADLINE_RETENTION_CHECKPOINTS_KEEP.", show_default=False)
    ] = None,
    idle_days: Annotated[
        float | None, typer.Option(min=0, help="Overrides THREADLINE_RETENTION_THREADS_IDLE_DAYS.", show_default=False)
    ] = None,
    messages_days: Annotated[
        float | None, typer.Option(min=0, help="Overrides THREADLINE_RETENTION_MESSAGES_DAYS.", show_default=False)
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Apply the retention policy once and print what was removed (per table)."""
    from threadline.memory.retention import RetentionPolicy, run_retention
    from threadline.product.database import open_database

    settings = settings_from(
        data_dir,
        database_url,
        retention_checkpoints_keep=keep_checkpoints,
        retention_threads_idle_days=idle_days,
        retention_messages_days=messages_days,
    )
    policy = RetentionPolicy.from_settings(settings)
    if not policy.active:
        console.print("retention is off: set THREADLINE_RETENTION_* (or the options) to a non-zero value")
        return
    db = open_database(settings)
    try:
        report = run_retention(db, policy, dry_run=dry_run)
    finally:
        db.dispose()
    verb = "would remove" if dry_run else "removed"
    counts = ", ".join(f"{n} {table}" for table, n in sorted(report.removed.items())) or "nothing"
    console.print(f"{verb}: {counts}")
