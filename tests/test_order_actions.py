"""Order actions against the reference order system's recorded behaviour: its 520 golden replays (every action with
its exact output and every record it changed) on SQLite and Postgres, and its 4,000 labelled policy probes; then
exactly-once execution and the audit."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DatabaseFactory, PgDatabases, _template
from threadline.core.order_actions import (
    ActionRefusedError,
    Address,
    CancelOrder,
    ChangeDefaultAddress,
    ExchangeItems,
    ModifyAddress,
    ModifyItems,
    ModifyPayment,
    ReturnItems,
    plan,
)
from threadline.core.types import CustomerId, Order, OrderStatus, Variant
from threadline.demo.loader import DATA_DIR, demo_customer_id
from threadline.memory.db import Database
from threadline.memory.stores import Stores

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tau_retail"
SOURCE = REFERENCE if (REFERENCE / "golden_replay_train.json").exists() else None
needs_reference = pytest.mark.skipif(SOURCE is None, reason="the reference data set (../shared/data) is not here")
USERS = json.loads((DATA_DIR / "tau_retail" / "users.json").read_text())
ORDERS = json.loads((DATA_DIR / "tau_retail" / "orders.json").read_text())
PRODUCTS = json.loads((DATA_DIR / "tau_retail" / "products.json").read_text())
VARIANTS = {
    item_id: Variant.model_validate({**v, "product_id": pid, "price": Decimal(str(v["price"]))})
    for pid, p in PRODUCTS.items()
    for item_id, v in p["variants"].items()
}


def _golden() -> list[dict[str, Any]]:
    assert SOURCE is not None
    return [
        {**task, "key": f"{split}-{task['task_id']}"}
        for split in ("train", "dev")
        for task in json.loads((SOURCE / f"golden_replay_{split}.json").read_text())
    ]


def as_action(name: str, kwargs: dict[str, Any]) -> Any:
    """The reference tool call as one of our actions."""
    address_keys = ("address1", "address2", "city", "state", "country", "zip")
    if name == "cancel_pending_order":
        return CancelOrder(order_id=kwargs["order_id"], reason=kwargs["reason"])
    if name == "modify_pending_order_address":
        return ModifyAddress(order_id=kwargs["order_id"], address=Address(**{k: kwargs[k] for k in address_keys}))
    if name == "modify_pending_order_payment":
        return ModifyPayment(order_id=kwargs["order_id"], payment_method_id=kwargs["payment_method_id"])
    if name == "modify_pending_order_items":
        return ModifyItems(**{k: kwargs[k] for k in ("order_id", "item_ids", "new_item_ids", "payment_method_id")})
    if name == "return_delivered_order_items":
        return ReturnItems(**{k: kwargs[k] for k in ("order_id", "item_ids", "payment_method_id")})
    if name == "exchange_delivered_order_items":
        return ExchangeItems(**{k: kwargs[k] for k in ("order_id", "item_ids", "new_item_ids", "payment_method_id")})
    if name == "modify_user_address":
        return ChangeDefaultAddress(address=Address(**{k: kwargs[k] for k in address_keys}))
    raise AssertionError(f"no action for {name}")


def _owner(name: str, kwargs: dict[str, Any]) -> str:
    return str(kwargs["user_id"]) if name == "modify_user_address" else str(ORDERS[kwargs["order_id"]]["user_id"])


def cents(value: Any) -> Any:
    """Every number to the cent: the reference sums prices in binary floating point (a difference of 173.83 is
    recorded as 173.82999999999993); the order system keeps money in exact decimals."""
    if isinstance(value, float | Decimal):
        return round(float(value), 2)
    if isinstance(value, dict):
        return {k: cents(v) for k, v in value.items()}
    if isinstance(value, list):
        return [cents(v) for v in value]
    return value


def reference_order(order: Order, user_id: str) -> dict[str, Any]:
    """An order in the reference order system's shape."""
    record: dict[str, Any] = {
        "order_id": order.id,
        "user_id": user_id,
        "address": order.address,
        "items": [
            {
                "name": i.name,
                "product_id": i.product_id,
                "item_id": i.item_id,
                "price": float(i.price),
                "options": i.options,
            }
            for i in order.items
        ],
        "fulfillments": [{"tracking_id": f.tracking_ids, "item_ids": f.item_ids} for f in order.fulfillments],
        "status": order.status.value,
        "payment_history": [
            {
                "transaction_type": p.transaction_type,
                "amount": float(p.amount),
                "payment_method_id": p.payment_method_id,
            }
            for p in order.payments
        ],
    }
    if order.cancel_reason:
        record["cancel_reason"] = order.cancel_reason
    return cents({**record, **(order.request or {})})


def _order_from_reference(raw: dict[str, Any]) -> Order:
    return Order.model_validate(
        {
            "id": raw["order_id"],
            "customer_id": demo_customer_id(raw["user_id"]),
            "status": raw["status"],
            "address": raw["address"],
            "items": [{**i, "price": Decimal(str(i["price"]))} for i in raw["items"]],
            "fulfillments": [
                {"tracking_ids": f["tracking_id"], "item_ids": f["item_ids"]} for f in raw["fulfillments"]
            ],
            "payments": [{**p, "amount": Decimal(str(p["amount"]))} for p in raw["payment_history"]],
        }
    )


# --- the policy alone: 4,000 probes and 520 replays, no database ------------------------------------------------


@needs_reference
def test_every_policy_probe_agrees_with_its_label() -> None:
    assert SOURCE is not None
    probes = json.loads((SOURCE / "policy_probes.json").read_text())
    disagreements = []
    for probe in probes:
        order = _order_from_reference(ORDERS[probe["kwargs"]["order_id"]])
        assert order.status.value == probe["order_status"]
        methods = USERS[ORDERS[order.id]["user_id"]]["payment_methods"]
        try:
            change = plan(as_action(probe["tool"], probe["kwargs"]), order, methods, VARIANTS)
        except ActionRefusedError as refused:
            if probe["expect_success"] or refused.reference != probe["expected_error"]:
                disagreements.append((probe, refused.reference))
            continue
        assert change.order is not None
        if not probe["expect_success"] or change.order.status.value != probe["expected_new_status"]:
            disagreements.append((probe, change.order.status.value))
    assert len(probes) == 4000
    assert disagreements == []


def _replay_pure(task: dict[str, Any]) -> tuple[dict[str, Order], dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """One golden task through `plan` on in-memory copies of the records it touches."""
    orders: dict[str, Order] = {}
    methods: dict[str, dict[str, Any]] = {}
    addresses: dict[str, dict[str, Any]] = {}
    for step in task["steps"]:
        user = _owner(step["name"], step["kwargs"])
        methods.setdefault(user, json.loads(json.dumps(USERS[user]["payment_methods"])))
        action = as_action(step["name"], step["kwargs"])
        if isinstance(action, ChangeDefaultAddress):
            addresses[user] = action.address.model_dump()
            continue
        order = orders.get(action.order_id) or _order_from_reference(ORDERS[action.order_id])
        if step["is_error"]:
            with pytest.raises(ActionRefusedError) as refused:
                plan(action, order, methods[user], VARIANTS)
            assert refused.value.reference == step["output"], (task["key"], step)
            continue
        change = plan(action, order, methods[user], VARIANTS)
        assert change.order is not None
        assert reference_order(change.order, user) == cents(json.loads(step["output"])), (task["key"], step["name"])
        orders[action.order_id] = change.order
        if change.payment_methods is not None:
            methods[user] = change.payment_methods
    return orders, methods, addresses


@needs_reference
def test_every_golden_replay_changes_exactly_the_reference_records_by_policy_alone() -> None:
    tasks = _golden()
    for task in tasks:
        orders, methods, addresses = _replay_pure(task)
        changes = task["db_changes"]
        assert set(changes.get("orders", {})) == set(orders), task["key"]
        for order_id, expected in changes.get("orders", {}).items():
            assert reference_order(orders[order_id], expected["user_id"]) == cents(expected), (task["key"], order_id)
        for user_id, expected in changes.get("users", {}).items():
            assert methods.get(user_id, USERS[user_id]["payment_methods"]) == cents(expected["payment_methods"])
            assert addresses.get(user_id, USERS[user_id]["address"]) == expected["address"]
    assert len(tasks) == 520


# --- the embedded order system: the same replays, on SQLite and Postgres ----------------------------------------


def _touches(task: dict[str, Any]) -> set[str]:
    """Records a task reads or writes: the orders it names and their owners (balances are read across orders)."""
    keys = {f"user:{u}" for u in task["db_changes"].get("users", {})}
    for step in task["steps"]:
        keys.add(f"user:{_owner(step['name'], step['kwargs'])}")
        if "order_id" in step["kwargs"]:
            keys.add(f"order:{step['kwargs']['order_id']}")
    return keys


def _rounds(tasks: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Tasks in rounds that touch disjoint records, so each round can run on one fresh copy of the store."""
    rounds: list[tuple[set[str], list[dict[str, Any]]]] = []
    for task in tasks:
        touched = _touches(task)
        home = next((r for r in rounds if not (r[0] & touched)), None)
        if home is None:
            rounds.append((set(), []))
            home = rounds[-1]
        home[0].update(touched)
        home[1].append(task)
    return [tasks for _, tasks in rounds]


@pytest.fixture
def fresh_demo(
    db_factory: DatabaseFactory, pg: PgDatabases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], Stores]]:
    root = tmp_path_factory.getbasetemp() / "templates"
    root.mkdir(exist_ok=True)
    opened: list[Database] = []

    def make() -> Stores:
        db = Database.from_url(db_factory.copy_url(_template("demo", db_factory.backend, pg, root)))
        opened.append(db)
        return Stores.over(db)

    yield make
    for db in opened:
        db.dispose()


@needs_reference
@pytest.mark.slow
def test_the_order_system_replays_every_golden_task_with_the_same_records(fresh_demo: Callable[[], Stores]) -> None:
    rounds = _rounds(_golden())
    assert len(rounds) < 40
    for tasks in rounds:
        stores = fresh_demo()
        for task in tasks:
            for n, step in enumerate(task["steps"]):
                user = _owner(step["name"], step["kwargs"])
                record = stores.orders.apply(
                    as_action(step["name"], step["kwargs"]),
                    customer_id=CustomerId(demo_customer_id(user)),
                    idempotency_key=f"golden-{task['key']}-{n}",
                    actor="test",
                )
                if step["is_error"]:
                    assert record.outcome == "refused" and record.detail["reference"] == step["output"]
                else:
                    assert record.outcome == "done", (task["key"], step, record.detail)
            for order_id, expected in task["db_changes"].get("orders", {}).items():
                order = stores.orders.get_order(order_id)
                assert order is not None
                assert reference_order(order, expected["user_id"]) == cents(expected), (task["key"], order_id)
            for user_id, expected in task["db_changes"].get("users", {}).items():
                customer_id = CustomerId(demo_customer_id(user_id))
                assert stores.orders.payment_methods(customer_id) == cents(expected["payment_methods"])
                customer = stores.customers.get(customer_id)
                assert customer is not None and customer.address == expected["address"]


# --- exactly once, ownership, the audit ----------------------------------------------------------------------------

PENDING = next(
    o
    for o in ORDERS.values()
    if o["status"] == "pending" and any("gift_card" in p["payment_method_id"] for p in o["payment_history"])
)
OWNER = CustomerId(demo_customer_id(PENDING["user_id"]))


def test_a_key_runs_its_action_once_however_often_and_however_concurrently_it_is_sent(demo_stores: Stores) -> None:
    orders = demo_stores.orders
    cancel = CancelOrder(order_id=PENDING["order_id"], reason="no longer needed")
    card = next(p["payment_method_id"] for p in PENDING["payment_history"] if "gift_card" in p["payment_method_id"])
    balance = Decimal(str(orders.payment_methods(OWNER)[card]["balance"]))

    def send(_: int) -> Any:
        return orders.apply(cancel, customer_id=OWNER, idempotency_key="msg-77:cancel", actor="customer", channel="sms")

    with ThreadPoolExecutor(max_workers=4) as pool:
        records = list(pool.map(send, range(5)))
    assert {r.id for r in records} == {records[0].id} and records[0].outcome == "done"
    order = orders.get_order(PENDING["order_id"])
    assert order is not None and order.status is OrderStatus.CANCELLED
    refunds = [p for p in order.payments if p.transaction_type == "refund"]
    assert len(refunds) == len(PENDING["payment_history"])  # refunded once, not five times
    paid = sum(Decimal(str(p["amount"])) for p in PENDING["payment_history"] if p["payment_method_id"] == card)
    assert Decimal(str(orders.payment_methods(OWNER)[card]["balance"])) == balance + paid
    audit = orders.actions(OWNER)
    assert len(audit) == 1 and audit[0].before is not None and audit[0].before["status"] == "pending"
    assert audit[0].after is not None and audit[0].after["status"] == "cancelled"
    assert (audit[0].actor, audit[0].channel) == ("customer", "sms")


def test_someone_elses_order_reads_like_a_missing_one_and_the_refusal_is_audited(demo_stores: Stores) -> None:
    stranger = CustomerId(demo_customer_id(next(u for u in USERS if u != PENDING["user_id"])))
    record = demo_stores.orders.apply(
        CancelOrder(order_id=PENDING["order_id"], reason="ordered by mistake"),
        customer_id=stranger,
        idempotency_key="k-stranger",
        actor="customer",
    )
    assert record.outcome == "refused" and record.refusal == "I couldn't find that order on your account."
    order = demo_stores.orders.get_order(PENDING["order_id"])
    assert order is not None and order.status is OrderStatus.PENDING
    assert [a.outcome for a in demo_stores.orders.actions(stranger)] == ["refused"]


def test_refusals_say_why_in_words_a_customer_understands(demo_stores: Stores) -> None:
    delivered = next(o for o in ORDERS.values() if o["status"] == "delivered")
    owner = CustomerId(demo_customer_id(delivered["user_id"]))
    record = demo_stores.orders.apply(
        CancelOrder(order_id=delivered["order_id"], reason="no longer needed"),
        customer_id=owner,
        idempotency_key="k-delivered",
        actor="customer",
    )
    assert record.refusal == (
        f"Order {delivered['order_id']} has been delivered, so I can't cancel it: only pending (not yet processed) "
        "orders can be cancelled."
    )
    modified = ModifyItems(
        order_id=PENDING["order_id"],
        item_ids=[PENDING["items"][0]["item_id"]],
        new_item_ids=[PENDING["items"][0]["item_id"]],
        payment_method_id=PENDING["payment_history"][0]["payment_method_id"],
    )
    assert (
        demo_stores.orders.apply(modified, customer_id=OWNER, idempotency_key="k-mod", actor="customer").outcome
        == "done"
    )
    again = demo_stores.orders.apply(
        CancelOrder(order_id=PENDING["order_id"], reason="no longer needed"),
        customer_id=OWNER,
        idempotency_key="k-after-mod",
        actor="customer",
    )
    assert (
        again.refusal
        == f"Order {PENDING['order_id']} has already had its items changed, so it can't be cancelled any more."
    )


def test_concurrent_actions_with_different_keys_on_one_order_run_once(demo_stores: Stores) -> None:
    """Two tabs, two agents or two workers cancelling the same order at once: the policy is checked under the
    order's write lock, so one runs and the rest are refused; nothing is refunded twice."""
    orders = demo_stores.orders
    cancel = CancelOrder(order_id=PENDING["order_id"], reason="no longer needed")
    card = next(p["payment_method_id"] for p in PENDING["payment_history"] if "gift_card" in p["payment_method_id"])
    balance = Decimal(str(orders.payment_methods(OWNER)[card]["balance"]))

    def send(n: int) -> Any:
        return orders.apply(cancel, customer_id=OWNER, idempotency_key=f"tab-{n}", actor="customer")

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = sorted(r.outcome for r in pool.map(send, range(8)))
    assert outcomes == ["done"] + ["refused"] * 7
    order = orders.get_order(PENDING["order_id"])
    assert order is not None
    assert len([p for p in order.payments if p.transaction_type == "refund"]) == len(PENDING["payment_history"])
    paid = sum(Decimal(str(p["amount"])) for p in PENDING["payment_history"] if p["payment_method_id"] == card)
    assert Decimal(str(orders.payment_methods(OWNER)[card]["balance"])) == balance + paid


def test_cancelling_after_a_payment_change_refunds_what_was_paid_once(demo_stores: Stores) -> None:
    """Pay a pending order with another method, then cancel it: the first method was refunded by the change, so
    the cancellation refunds only the new one (the reference store refunds every line again: three times over)."""
    orders = demo_stores.orders
    order = next(
        o
        for o in ORDERS.values()
        if o["status"] == "pending"
        and len(o["payment_history"]) == 1
        and "gift_card" not in o["payment_history"][0]["payment_method_id"]
        and any(
            k.startswith("credit_card") and k != o["payment_history"][0]["payment_method_id"]
            for k in USERS[o["user_id"]]["payment_methods"]
        )
    )
    owner = CustomerId(demo_customer_id(order["user_id"]))
    other = next(
        k
        for k in USERS[order["user_id"]]["payment_methods"]
        if k.startswith("credit_card") and k != order["payment_history"][0]["payment_method_id"]
    )
    changed = orders.apply(
        ModifyPayment(order_id=order["order_id"], payment_method_id=other),
        customer_id=owner,
        idempotency_key="p1",
        actor="t",
    )
    assert changed.outcome == "done"
    cancelled = orders.apply(
        CancelOrder(order_id=order["order_id"], reason="ordered by mistake"),
        customer_id=owner,
        idempotency_key="c1",
        actor="t",
    )
    assert cancelled.outcome == "done" and cancelled.detail["refunded"] == order["payment_history"][0]["amount"]
    after = orders.get_order(order["order_id"])
    assert after is not None
    net: dict[str, Decimal] = {}
    for p in after.payments:
        net[p.payment_method_id] = net.get(p.payment_method_id, Decimal(0)) + (
            p.amount if p.transaction_type == "payment" else -p.amount
        )
    assert set(net.values()) == {Decimal(0)}  # every method got back exactly what it paid


def test_a_key_reused_for_another_action_is_a_conflict(demo_stores: Stores) -> None:
    from threadline.core.errors import ConflictError

    cancel = CancelOrder(order_id=PENDING["order_id"], reason="no longer needed")
    demo_stores.orders.apply(cancel, customer_id=OWNER, idempotency_key="k-reused", actor="t")
    other = CancelOrder(order_id=PENDING["order_id"], reason="ordered by mistake")
    with pytest.raises(ConflictError, match="was used for another action"):
        demo_stores.orders.apply(other, customer_id=OWNER, idempotency_key="k-reused", actor="t")
