"""The embedded order system: orders, items, fulfilments, payments, products and variants in SQL."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from threadline.core.errors import ConflictError, NotFoundError
from threadline.core.order_actions import (
    ActionRecord,
    ActionRefusedError,
    Change,
    ChangeDefaultAddress,
    ExchangeItems,
    ModifyItems,
    OrderAction,
    plan,
)
from threadline.core.types import (
    CustomerId,
    Order,
    OrderId,
    Product,
    ProductId,
    Variant,
)
from threadline.memory.db import Database
from threadline.memory.repositories.order_reads import OrderReads
from threadline.memory.schema import (
    CustomerRow,
    OrderActionRow,
    OrderItemRow,
    OrderRow,
    PaymentRow,
    ProductRow,
    VariantRow,
    table,
    utcnow,
)


def _product(row: ProductRow) -> Product:
    return Product(id=ProductId(row.id), name=row.name, variants=[Variant.model_validate(v) for v in row.variants])


class SqlOrderSystem:
    """`OrderSystem` over the domain store's order tables."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._reads = OrderReads(db)

    def get_order(self, order_id: OrderId) -> Order | None:
        return self._reads.get(order_id)

    def orders_for_customer(self, customer_id: CustomerId, limit: int = 20) -> list[Order]:
        """The customer's orders, most recent first."""
        return self._reads.for_customer(customer_id, limit)

    def get_product(self, product_id: ProductId) -> Product | None:
        with self._db.session() as s:
            row = s.get(ProductRow, product_id)
            return _product(row) if row else None

    def list_products(self) -> list[Product]:
        with self._db.session() as s:
            return [_product(r) for r in s.scalars(select(ProductRow).order_by(ProductRow.name))]

    def count_orders(self) -> int:
        with self._db.session() as s:
            return int(s.scalar(select(func.count()).select_from(OrderRow)) or 0)

    def payment_methods(self, customer_id: CustomerId) -> dict[str, dict[str, Any]]:
        with self._db.engine.connect() as conn:
            found = conn.execute(select(_CUSTOMERS.c.payment_methods).where(_CUSTOMERS.c.id == customer_id)).scalar()
        return dict(found or {})

    def apply(
        self,
        action: OrderAction,
        *,
        customer_id: CustomerId,
        idempotency_key: str,
        actor: str,
        channel: str | None = None,
        confirming_message_id: int | None = None,
    ) -> ActionRecord:
        action = _ACTION.validate_python(action)
        audit = {
            "idempotency_key": idempotency_key,
            "kind": action.kind,
            "order_id": getattr(action, "order_id", None),
            "customer_id": customer_id,
            "actor": actor,
            "channel": channel,
            "confirming_message_id": confirming_message_id,
            "action": action.model_dump(mode="json"),
        }
        try:
            with self._db.transaction() as conn:
                if self._db.backend == "sqlite":  # take the write lock before reading: the reads plan the write
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                if (done := _recorded(conn, idempotency_key)) is not None:
                    if done.action != audit["action"] or done.customer_id != customer_id:
                        raise ConflictError(f"the idempotency key {idempotency_key!r} was used for another action")
                    return done
                return _record(conn, audit, *_run(conn, self._reads, action, customer_id))
        except IntegrityError:  # the same key ran at the same moment elsewhere: its record stands
            with self._db.engine.connect() as conn:
                done = _recorded(conn, idempotency_key)
            if done is None:
                raise
            return done

    def actions(self, customer_id: CustomerId, limit: int = 50) -> list[ActionRecord]:
        query = (
            select(_ACTIONS).where(_ACTIONS.c.customer_id == customer_id).order_by(_ACTIONS.c.id.desc()).limit(limit)
        )
        with self._db.engine.connect() as conn:
            return [ActionRecord.model_validate(dict(r)) for r in conn.execute(query).mappings()]


_ACTION: TypeAdapter[Any] = TypeAdapter(OrderAction)
_ACTIONS = table(OrderActionRow)
_CUSTOMERS = table(CustomerRow)
_ORDERS = table(OrderRow)
_ITEMS = table(OrderItemRow)
_PAYMENTS = table(PaymentRow)
_VARIANTS = table(VariantRow)


def _recorded(conn: Connection, key: str) -> ActionRecord | None:
    row = conn.execute(select(_ACTIONS).where(_ACTIONS.c.idempotency_key == key)).mappings().first()
    return ActionRecord.model_validate(dict(row)) if row else None


def _run(
    conn: Connection, reads: OrderReads, action: Any, customer_id: CustomerId
) -> tuple[str, dict[str, Any] | None, dict[str, Any] | None, dict[str, Any]]:
    """Plan and write the action in the caller's transaction: its outcome, the records before and after, and the
    detail (refund, price difference, or why it was refused)."""
    customer = conn.execute(
        select(_CUSTOMERS.c.address, _CUSTOMERS.c.payment_methods)
        .where(_CUSTOMERS.c.id == customer_id)
        .with_for_update()
    ).first()
    if customer is None:
        raise NotFoundError(f"no customer {customer_id}")
    if isinstance(action, ChangeDefaultAddress):
        after = action.address.model_dump()
        conn.execute(update(_CUSTOMERS).where(_CUSTOMERS.c.id == customer_id).values(address=after))
        return "done", {"address": customer.address}, {"address": after}, {}
    order = reads.locked(conn, action.order_id)
    if order is not None and order.customer_id != customer_id:
        order = None  # someone else's order reads exactly like a missing one
    wanted = action.new_item_ids if isinstance(action, ModifyItems | ExchangeItems) else []
    variants = {
        r.item_id: Variant.model_validate(r)
        for r in conn.execute(select(_VARIANTS).where(_VARIANTS.c.item_id.in_(wanted))).mappings()
    }
    try:
        change = plan(action, order, customer.payment_methods or {}, variants)
    except ActionRefusedError as refused:
        return "refused", None, None, {"message": refused.message, "reference": refused.reference}
    assert order is not None and change.order is not None
    _write(conn, order, change, customer_id)
    detail: dict[str, Any] = {}
    if change.refunded is not None:
        detail["refunded"] = float(change.refunded)
    if change.price_difference is not None:
        detail["price_difference"] = float(change.price_difference)
    return "done", order.model_dump(mode="json"), change.order.model_dump(mode="json"), detail


def _write(conn: Connection, before: Order, change: Change, customer_id: CustomerId) -> None:
    after = change.order
    assert after is not None
    conn.execute(
        update(_ORDERS)
        .where(_ORDERS.c.id == after.id)
        .values(
            status=after.status.value,
            address=after.address,
            cancel_reason=after.cancel_reason,
            request=after.request or None,
            updated_at=utcnow(),
        )
    )
    for position, (old, new) in enumerate(zip(before.items, after.items, strict=True)):
        if old != new:
            conn.execute(
                update(_ITEMS)
                .where(_ITEMS.c.order_id == after.id, _ITEMS.c.position == position)
                .values(item_id=new.item_id, price=new.price, options=new.options)
            )
    added = after.payments[len(before.payments) :]
    if added:
        conn.execute(
            insert(_PAYMENTS),
            [
                {"order_id": after.id, "position": len(before.payments) + i, **p.model_dump()}
                for i, p in enumerate(added)
            ],
        )
    if change.payment_methods is not None:
        conn.execute(
            update(_CUSTOMERS).where(_CUSTOMERS.c.id == customer_id).values(payment_methods=change.payment_methods)
        )


def _record(
    conn: Connection,
    audit: dict[str, Any],
    outcome: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    detail: dict[str, Any],
) -> ActionRecord:
    row = {**audit, "outcome": outcome, "before": before, "after": after, "detail": detail, "created_at": utcnow()}
    new_id = conn.execute(insert(_ACTIONS).returning(_ACTIONS.c.id), row).scalar_one()
    return ActionRecord.model_validate({**row, "id": new_id})
