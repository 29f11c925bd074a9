"""`threadline customers …`: find and show customers, put handles on file, merge and unmerge (audited)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from threadline.cli.options import DatabaseUrl, DataDir, settings_from
from threadline.core.types import CustomerId, HandleType, VerificationLevel
from threadline.memory.db import Database
from threadline.memory.merges import MergeRecord

customers_app = typer.Typer(
    help="Customers: find, show, timeline, link handles, merge and unmerge.", no_args_is_help=True
)
console = Console()
ACTOR = "cli"


def _database(data_dir: DataDir, database_url: DatabaseUrl) -> Database:
    from threadline.product.database import open_database

    return open_database(settings_from(data_dir, database_url))


@customers_app.command("find")
def find(
    email: Annotated[str | None, typer.Option(help="Email address.")] = None,
    phone: Annotated[str | None, typer.Option(help="Phone number.")] = None,
    visitor_id: Annotated[str | None, typer.Option(help="Web visitor id.")] = None,
    external_id: Annotated[str | None, typer.Option(help="The store's own customer id.")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """The customer the handles identify (an exact handle match wins; email beats phone)."""
    from threadline.core.errors import InvalidInputError, NotFoundError
    from threadline.memory.customer_view import find_customer
    from threadline.memory.identity import normalize_phone

    handles = {
        HandleType.EMAIL: email.strip().lower() if email else None,
        HandleType.PHONE: normalize_phone(phone) if phone else None,
        HandleType.VISITOR: visitor_id,
        HandleType.EXTERNAL: external_id,
    }
    given = {kind: value for kind, value in handles.items() if value}
    if not given:
        raise InvalidInputError("give --email, --phone, --visitor-id or --external-id")
    db = _database(data_dir, database_url)
    customer = find_customer(db, given)
    db.dispose()
    if customer is None:
        raise NotFoundError("no customer has those handles")
    console.print(f"{customer.id}  {customer.display_name}  {'(provisional)' if customer.provisional else ''}")


@customers_app.command("show")
def show(customer_id: str, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Profile, identities with levels, orders and episodes."""
    from threadline.memory.customer_view import profile
    from threadline.memory.repositories.orders import SqlOrderSystem

    db = _database(data_dir, database_url)
    view = profile(db, SqlOrderSystem(db), CustomerId(customer_id))
    db.dispose()
    c = view.customer
    console.print(f"[bold]{c.display_name}[/] {c.id}" + (" (provisional)" if c.provisional else ""))
    if view.merged_into:
        console.print(f"merged into {view.merged_into}")
    table = Table("handle", "type", "level")
    for identity in view.identities:
        table.add_row(identity.handle_value, identity.handle_type.value, identity.verification_level.value)
    console.print(table)
    console.print(f"{len(view.orders)} orders, lifetime value ${view.lifetime_value}; {len(view.episodes)} episodes")


@customers_app.command("timeline")
def show_timeline(
    customer_id: str,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Every message and event across channels, oldest first."""
    from threadline.memory.customer_view import timeline

    db = _database(data_dir, database_url)
    entries = timeline(db, CustomerId(customer_id), limit=limit)
    db.dispose()
    table = Table("when", "kind", "channel", "what")
    for e in entries:
        what = e.text or ", ".join(f"{k}={v}" for k, v in e.detail.items() if v is not None)
        table.add_row(e.at.isoformat(timespec="seconds"), e.kind, e.channel or "", what[:100])
    console.print(table)


@customers_app.command("link")
def link(
    customer_id: str,
    handle_type: Annotated[HandleType, typer.Argument(help="phone, email, visitor, social, loyalty, external")],
    handle: str,
    level: Annotated[VerificationLevel, typer.Option(help="At most verified.")] = VerificationLevel.CLAIMED,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Put a handle on file for a customer (never one that belongs to someone else: merge instead)."""
    from threadline.core.errors import ConflictError, InvalidInputError, NotFoundError
    from threadline.memory.identity import normalize_phone
    from threadline.memory.repositories.customers import SqlCustomerRepository

    if level is VerificationLevel.STRONG:
        raise InvalidInputError("a stored handle is at most `verified`")
    value = normalize_phone(handle) if handle_type is HandleType.PHONE else handle.strip()
    db = _database(data_dir, database_url)
    customers = SqlCustomerRepository(db)
    try:
        if customers.get(CustomerId(customer_id)) is None:
            raise NotFoundError(f"no customer {customer_id}")
        current = customers.find_by_handle(handle_type, value)
        if current is not None and current.customer_id != customer_id:
            raise ConflictError(f"that handle belongs to {current.customer_id}; merge the customers instead")
        customers.link_identity(CustomerId(customer_id), handle_type, value, level, actor=ACTOR)
    finally:
        db.dispose()
    console.print(f"{handle_type.value} {value} is on file for {customer_id} ({level.value})")


def _report(verb: str, record: MergeRecord) -> None:
    moved = ", ".join(f"{len(ids)} {table}" for table, ids in record.moved.items() if ids)
    console.print(f"{verb} {record.source} → {record.target} (merge {record.event_id}): {moved or 'nothing'}")


@customers_app.command("merge")
def merge(
    source: str,
    target: str,
    reason: Annotated[str, typer.Option(help="Why: kept in the audit row.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Merge SOURCE into TARGET: rows and conversation move; `unmerge` undoes it exactly."""
    from threadline.product.services import open_services

    services = open_services(settings_from(data_dir, database_url))
    try:
        record = services.merging.merge(CustomerId(source), CustomerId(target), actor=ACTOR, reason=reason)
    finally:
        services.close()
    _report("merged", record)


@customers_app.command("unmerge")
def unmerge(
    merge_id: Annotated[int, typer.Argument(help="The merge's id (printed by merge; see the identity events).")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Undo a merge exactly: every moved row goes back, the thread loses what the merge brought in."""
    from threadline.product.services import open_services

    services = open_services(settings_from(data_dir, database_url))
    try:
        record = services.merging.unmerge(merge_id, actor=ACTOR)
    finally:
        services.close()
    _report("unmerged", record)


@customers_app.command("forget")
def forget(
    customer_id: str,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Erase a customer: messages, threads, identities, memories, episodes, handoffs and events go; orders stay,
    anonymised. Prints the counts (the audit trail keeps only a hash of the id)."""
    from threadline.memory.checkpoints import open_checkpointer
    from threadline.memory.erasure import CustomerErasure
    from threadline.product.database import open_database

    settings = settings_from(data_dir, database_url)
    key = settings.checkpoint_key.get_secret_value().encode() if settings.checkpoint_key else None
    db = open_database(settings)
    try:
        with open_checkpointer(settings.sqlalchemy_url, pool_size=2, key=key) as saver:
            erasure = CustomerErasure(
                db, saver, embedding_cache=settings.cache_path / "embeddings.sqlite", lease_s=settings.turn_lease_s
            )
            report = erasure.erase(customer_id, actor=ACTOR)
    finally:
        db.dispose()
    removed = ", ".join(f"{count} {table}" for table, count in report.removed.items() if count)
    console.print(f"erased {customer_id} (audit subject {report.subject[:16]}…): {removed or 'nothing else'}")
