"""`threadline demo load`: import the demo store idempotently (a second run changes nothing)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

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
        for done, product in enumerate(products.values(), start=1):
            if product["product_id"] not in known:
                s.add(ProductRow(id=product["product_id"], name=product["name"]))
                s.flush()
                for variant in product["variants"].values():
                    s.add(
                        VariantRow(
                            item_id=variant["item_id"],
                            product_id=product["product_id"],
                            options=variant["options"],
                            available=variant["available"],
                            price=Decimal(str(variant["price"])),
                        )
                    )
                report.add("products")
                report.add("variants", len(product["variants"]))
            progress("catalog", done, len(products))


def _load_customers(stores: Stores, users: dict[str, Any], report: LoadReport, progress: Progress) -> None:
    with stores.db.session() as s:
        known = set(s.scalars(select(CustomerRow.external_id).where(CustomerRow.external_id.is_not(None))))
        taken = set(s.scalars(select(ChannelIdentityRow.handle_value).where(ChannelIdentityRow.handle_type == "email")))
        now = utcnow()
        for done, (user_id, user) in enumerate(users.items(), start=1):
            progress("customers", done, len(users))
            if user_id in known:
                continue
            cid = demo_customer_id(user_id)
            email = user["email"].lower()
            s.add(
                CustomerRow(
                    id=cid,
                    external_id=user_id,
                    first_name=user["name"]["first_name"],
                    last_name=user["name"]["last_name"],
                    email=email,
                    zip=user["address"]["zip"],
                    address=user["address"],
                    payment_methods=user["payment_methods"],
                    provisional=False,
                    created_at=now,
                )
            )
            s.flush()
            report.add("customers")
            if email in taken:
                continue
            identity = ChannelIdentityRow(
                customer_id=cid,
                handle_type=HandleType.EMAIL.value,
                handle_value=email,
                verification_level=VerificationLevel.CLAIMED.value,
                active=True,
                created_at=now,
            )
            s.add(identity)
            s.flush()
            s.add(
                IdentityEventRow(
                    kind="link",
                    customer_id=cid,
                    identity_id=identity.id,
                    detail={"handle_type": "email", "level": "claimed", "source": "store records"},
                    actor=ACTOR,
                    created_at=now,
                )
            )
            report.add("identities")


def _load_orders(
    stores: Stores, users: dict[str, Any], orders: dict[str, Any], report: LoadReport, progress: Progress
) -> None:
    sequence = {oid: pos for user in users.values() for pos, oid in enumerate(user["orders"])}
    with stores.db.session() as s:
        known = set(s.scalars(select(OrderRow.id)))
        for done, order in enumerate(orders.values(), start=1):
            progress("orders", done, len(orders))
            if order["order_id"] in known:
                continue
            _add_order(s, order, sequence.get(order["order_id"], 0))
            report.add("orders")


def _add_order(s: Any, order: dict[str, Any], sequence: int) -> None:
    oid = order["order_id"]
    s.add(
        OrderRow(
            id=oid,
            customer_id=demo_customer_id(order["user_id"]),
            status=order["status"],
            address=order["address"],
            sequence=sequence,
            updated_at=utcnow(),
        )
    )
    s.flush()
    for pos, item in enumerate(order["items"]):
        s.add(
            OrderItemRow(
                order_id=oid,
                position=pos,
                item_id=item["item_id"],
                product_id=item["product_id"],
                name=item["name"],
                price=Decimal(str(item["price"])),
                options=item["options"],
            )
        )
    for pos, ful in enumerate(order["fulfillments"]):
        s.add(FulfillmentRow(order_id=oid, position=pos, tracking_ids=ful["tracking_id"], item_ids=ful["item_ids"]))
    for pos, pay in enumerate(order["payment_history"]):
        s.add(
            PaymentRow(
                order_id=oid,
                position=pos,
                transaction_type=pay["transaction_type"],
                amount=Decimal(str(pay["amount"])),
                payment_method_id=pay["payment_method_id"],
            )
        )


def _load_knowledge(stores: Stores, drafts: list[ArticleDraft], report: LoadReport, progress: Progress) -> None:
    for done, draft in enumerate(drafts, start=1):
        if apply_draft(stores.knowledge, draft, author=ACTOR) != "unchanged":
            report.add("articles")
        progress("knowledge", done, len(drafts))
