"""The embedded order system: orders, items, fulfilments, payments, products and variants in SQL."""

from __future__ import annotations

from sqlalchemy import Connection, RowMapping, bindparam, func, select

from threadline.core.types import (
    CustomerId,
    Order,
    OrderId,
    Product,
    ProductId,
    Variant,
)
from threadline.memory.db import Database
from threadline.memory.schema import FulfillmentRow, OrderItemRow, OrderRow, PaymentRow, ProductRow

# Orders are read with Core statements on one connection (no ORM identity map, no relationship loaders): the
# order rows, then each child table once for all of them. Built once, so SQLAlchemy's compiled cache answers
# every lookup; this is the hot path of `lookup_order` and of every verified turn's context.
_ORDER = select(*OrderRow.__table__.c).where(OrderRow.id == bindparam("id"))
_CUSTOMER_ORDERS = (
    select(*OrderRow.__table__.c)
    .where(OrderRow.customer_id == bindparam("customer_id"))
    .order_by(OrderRow.sequence.desc(), OrderRow.id)
    .limit(bindparam("limit"))
)
_CHILDREN = {
    key: select(table.order_id, *(table.__table__.c[name] for name in columns))
    .where(table.order_id.in_(bindparam("ids", expanding=True)))
    .order_by(table.order_id, table.position)
    for key, table, columns in (
        ("items", OrderItemRow, ("item_id", "product_id", "name", "price", "options")),
        ("fulfillments", FulfillmentRow, ("tracking_ids", "item_ids")),
        ("payments", PaymentRow, ("transaction_type", "amount", "payment_method_id")),
    )
}


def _assemble(conn: Connection, heads: list[RowMapping]) -> list[Order]:
    """Whole orders from their rows: one query per child table for all of them."""
    if not heads:
        return []
    ids = [head["id"] for head in heads]
    children: dict[str, dict[str, list[dict[str, object]]]] = {}
    for key, query in _CHILDREN.items():
        grouped: dict[str, list[dict[str, object]]] = {order_id: [] for order_id in ids}
        for row in conn.execute(query, {"ids": ids}).mappings():
            grouped[row["order_id"]].append(dict(row))
        children[key] = grouped
    return [Order.model_validate({**head, **{key: children[key][head["id"]] for key in _CHILDREN}}) for head in heads]


def _product(row: ProductRow) -> Product:
    return Product(id=ProductId(row.id), name=row.name, variants=[Variant.model_validate(v) for v in row.variants])


class SqlOrderSystem:
    """`OrderSystem` over the domain store's order tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get_order(self, order_id: OrderId) -> Order | None:
        with self._db.engine.connect() as conn:
            found = _assemble(conn, list(conn.execute(_ORDER, {"id": order_id}).mappings()))
        return found[0] if found else None

    def orders_for_customer(self, customer_id: CustomerId, limit: int = 20) -> list[Order]:
        """The customer's orders, most recent first."""
        with self._db.engine.connect() as conn:
            heads = conn.execute(_CUSTOMER_ORDERS, {"customer_id": customer_id, "limit": limit}).mappings()
            return _assemble(conn, list(heads))

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
