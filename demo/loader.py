"""`threadline demo load`: import the demo store idempotently (a second run changes nothing)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from threadline.core.types import ArticleDraft, CustomerId, HandleType, VerificationLevel
from threadline.demo.knowledge import guideline_articles, help_center_articles, policy_articles
from threadline.memory.catalog_knowledge import sync_product_articles
from threadline.memory.ids import stable_id
from threadline.memory.knowledge_admin import apply_draft
from threadline.memory.schema import (
    ChannelIdentityRow,
    CustomerRow,
    FulfillmentRow,
    IdentityEventRow,
    OrderItemRow,
    OrderRow,
    PaymentRow,
    ProductRow,
    VariantRow,
    utcnow,
)
from threadline.memory.stores import Stores

Progress = Callable[[str, int, int], None]
ACTOR = "demo-import"
DATA_DIR = Path(__file__).parent / "data"


def _silent(_step: str, _done: int, _total: int) -> None:
    return None


@dataclass
class LoadReport:
    """How many records a load created; all zero on a second run."""

    created: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, n: int = 1) -> None:
        self.created[kind] = self.created.get(kind, 0) + n


def demo_customer_id(user_id: str) -> CustomerId:
    """The stable customer id of a demo store user (e.g. `noah_brown_6181`)."""
    return CustomerId(stable_id("cus", user_id))


def read_json(*parts: str) -> Any:
    """A JSON file shipped in `demo/data`."""
    return json.loads(read_text(*parts))


def read_text(*parts: str) -> str:
    """A text file shipped in `demo/data`."""
    return DATA_DIR.joinpath(*parts).read_text(encoding="utf-8")


def load_demo(stores: Stores, progress: Progress = _silent) -> LoadReport:
    """Load catalog, customers, orders and the default knowledge base; existing records are left alone."""
    report = LoadReport()
    _load_catalog(stores, read_json("tau_retail", "products.json"), report, progress)
    users = read_json("tau_retail", "users.json")
    _load_customers(stores, users, report, progress)
    _load_orders(stores, users, read_json("tau_retail", "orders.json"), report, progress)
    _load_knowledge(stores, default_articles(), report, progress)
    changed = sync_product_articles(stores.orders, stores.knowledge, lambda d, t: progress("products kb", d, t))
    if changed:
        report.add("product articles", changed)
    return report


def default_articles() -> list[ArticleDraft]:
    """The knowledge base the demo ships with."""
    policy = read_text("tau_retail", "wiki.md")
    return [
        *help_center_articles(read_text("help_center.md")),
        *policy_articles(policy),
        *guideline_articles(read_json("abcd", "guidelines.json")),
    ]


def _load_catalog(stores: Stores, products: dict[str, Any], report: LoadReport, progress: Progress) -> None:
    with stores.db.session() as s:
        known = set(s.scalars(select(ProductRow.id)))
        new_products: list[dict[str, Any]] = []
        variants: list[dict[str, Any]] = []
        for done, product in enumerate(products.values(), start=1):
            if product["product_id"] not in known:
                new_products.append({"id": product["product_id"], "name": product["name"]})
                variants += [
                    {
                        "item_id": variant["item_id"],
                        "product_id": product["product_id"],
                        "options": variant["options"],
                        "available": variant["available"],
                        "price": Decimal(str(variant["price"])),
                    }
                    for variant in product["variants"].values()
                ]
                report.add("products")
                report.add("variants", len(product["variants"]))
            progress("catalog", done, len(products))
        if new_products:
            s.execute(insert(ProductRow), new_products)
            s.execute(insert(VariantRow), variants)


def _load_customers(stores: Stores, users: dict[str, Any], report: LoadReport, progress: Progress) -> None:
    """Customers, their email identities and the identity events that link them, inserted in bulk (a row at a
    time through the unit of work took seconds of a first start)."""
    with stores.db.session() as s:
        known = set(s.scalars(select(CustomerRow.external_id).where(CustomerRow.external_id.is_not(None))))
        taken = set(s.scalars(select(ChannelIdentityRow.handle_value).where(ChannelIdentityRow.handle_type == "email")))
        now = utcnow()
        customers: list[dict[str, Any]] = []
        identities: list[dict[str, Any]] = []
        for done, (user_id, user) in enumerate(users.items(), start=1):
            progress("customers", done, len(users))
            if user_id in known:
                continue
            cid = demo_customer_id(user_id)
            email = user["email"].lower()
            customers.append(
                {
                    "id": cid,
                    "external_id": user_id,
                    "first_name": user["name"]["first_name"],
                    "last_name": user["name"]["last_name"],
                    "email": email,
                    "zip": user["address"]["zip"],
                    "address": user["address"],
                    "payment_methods": user["payment_methods"],
                    "provisional": False,
                    "created_at": now,
                }
            )
            if email in taken:
                continue
            taken.add(email)
            identities.append(
                {
                    "customer_id": cid,
                    "handle_type": HandleType.EMAIL.value,
                    "handle_value": email,
                    "verification_level": VerificationLevel.CLAIMED.value,
                    "active": True,
                    "created_at": now,
                }
            )
        if customers:
            s.execute(insert(CustomerRow), customers)
            report.add("customers", len(customers))
        if identities:
            ids = s.scalars(
                insert(ChannelIdentityRow).returning(ChannelIdentityRow.id, sort_by_parameter_order=True), identities
            ).all()
            events = [
                {
                    "kind": "link",
                    "customer_id": identity["customer_id"],
                    "identity_id": identity_id,
                    "detail": {"handle_type": "email", "level": "claimed", "source": "store records"},
                    "actor": ACTOR,
                    "created_at": now,
                }
                for identity, identity_id in zip(identities, ids, strict=True)
            ]
            s.execute(insert(IdentityEventRow), events)
            report.add("identities", len(identities))


def _load_orders(
    stores: Stores, users: dict[str, Any], orders: dict[str, Any], report: LoadReport, progress: Progress
) -> None:
    """Orders with their items, fulfilments and payments, inserted in bulk, orders first."""
    sequence = {oid: pos for user in users.values() for pos, oid in enumerate(user["orders"])}
    rows: dict[type[Any], list[dict[str, Any]]] = {OrderRow: [], OrderItemRow: [], FulfillmentRow: [], PaymentRow: []}
    with stores.db.session() as s:
        known = set(s.scalars(select(OrderRow.id)))
        for done, order in enumerate(orders.values(), start=1):
            progress("orders", done, len(orders))
            if order["order_id"] in known:
                continue
            _order_rows(rows, order, sequence.get(order["order_id"], 0))
            report.add("orders")
        for table, values in rows.items():
            if values:
                s.execute(insert(table), values)


def _order_rows(rows: dict[type[Any], list[dict[str, Any]]], order: dict[str, Any], sequence: int) -> None:
    """Append an order's rows to `rows`, by table."""
    oid = order["order_id"]
    rows[OrderRow].append(
        {
            "id": oid,
            "customer_id": demo_customer_id(order["user_id"]),
            "status": order["status"],
            "address": order["address"],
            "sequence": sequence,
            "updated_at": utcnow(),
        }
    )
    rows[OrderItemRow] += [
        {
            "order_id": oid,
            "position": pos,
            "item_id": item["item_id"],
            "product_id": item["product_id"],
            "name": item["name"],
            "price": Decimal(str(item["price"])),
            "options": item["options"],
        }
        for pos, item in enumerate(order["items"])
    ]
    rows[FulfillmentRow] += [
        {"order_id": oid, "position": pos, "tracking_ids": ful["tracking_id"], "item_ids": ful["item_ids"]}
        for pos, ful in enumerate(order["fulfillments"])
    ]
    rows[PaymentRow] += [
        {
            "order_id": oid,
            "position": pos,
            "transaction_type": pay["transaction_type"],
            "amount": Decimal(str(pay["amount"])),
            "payment_method_id": pay["payment_method_id"],
        }
        for pos, pay in enumerate(order["payment_history"])
    ]


def _load_knowledge(stores: Stores, drafts: list[ArticleDraft], report: LoadReport, progress: Progress) -> None:
    for done, draft in enumerate(drafts, start=1):
        if apply_draft(stores.knowledge, draft, author=ACTOR) != "unchanged":
            report.add("articles")
        progress("knowledge", done, len(drafts))
