"""The embedded order system: orders, items, fulfilments, payments, products and variants in SQL."""

from __future__ import annotations

from sqlalchemy import func, select

from core.types import (
    CustomerId,
    Fulfillment,
    Order,
    OrderId,
    OrderItem,
    OrderStatus,
    Payment,
    Product,
    ProductId,
    Variant,
)
from memory.db import Database
from memory.schema import OrderRow, ProductRow


def _order(row: OrderRow) -> Order:
    return Order(
        id=OrderId(row.id),
        customer_id=CustomerId(row.customer_id),
        status=OrderStatus(row.status),
        address=row.address,
        placed_at=row.placed_at,
        notes=row.notes,
        items=[OrderItem.model_validate(i) for i in row.items],
        fulfillments=[Fulfillment.model_validate(f) for f in row.fulfillments],
        payments=[Payment.model_validate(p) for p in row.payments],
    )


def _product(row: ProductRow) -> Product:
    return Product(id=ProductId(row.id), name=row.name, variants=[Variant.model_validate(v) for v in row.variants])


class SqlOrderSystem:
    """`OrderSystem` over the domain store's order tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get_order(self, order_id: OrderId) -> Order | None:
        with self._db.session() as s:
            row = s.get(OrderRow, order_id)
            return _order(row) if row else None

    def orders_for_customer(self, customer_id: CustomerId, limit: int = 20) -> list[Order]:
        """The customer's orders, most recent first."""
        with self._db.session() as s:
            rows = s.scalars(
                select(OrderRow)
                .where(OrderRow.customer_id == customer_id)
                .order_by(OrderRow.sequence.desc(), OrderRow.id)
                .limit(limit)
            )
            return [_order(r) for r in rows]

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
