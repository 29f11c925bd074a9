"""The order system against the reference store: every read in the golden replays returns the same facts through
our tools, and the policy probes agree with our enforcement wherever our tools act.

These are deterministic checks on the reference data (tool outputs against recorded outputs), not benchmark scores.
The replays record only write actions, so the reads they imply are checked: `get_order_details`,
`get_user_details` and `get_product_details` of every order, user and product a replayed task touches, as the
reference store the replays start from holds them (our tools do not change orders).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import StructuredTool
from langgraph.prebuilt import ToolRuntime
from langgraph.types import Command

from tests.conftest import DatabaseFactory, PgDatabases, _template
from threadline.core.context import TurnContext
from threadline.core.settings import Settings
from threadline.core.types import ArticleId, Channel, HandleType, VerificationLevel
from threadline.demo.loader import DATA_DIR, demo_customer_id
from threadline.graphs.policy import blocked_by_policy
from threadline.product.services import Services, open_services
from threadline.tools.orders import lookup_order

TAU = DATA_DIR / "tau_retail"
"""The reference store (orders, users, products): the demo's copy, identical to the reference data."""
REFERENCE = Path(__file__).resolve().parents[1] / "evals" / "tau_retail"
"""The golden replays and the policy probes, gzipped copies of the reference files (`evals/tau_retail/README.md`)."""
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "tau_retail"
READS = {"get_order_details", "get_user_details", "get_product_details"}
PROBE_ACTIONS = {
    "cancel_pending_order": "please cancel order {order_id}",
    "modify_pending_order_address": "please change the address of order {order_id}",
    "return_delivered_order_items": "I want to return order {order_id}",
}
STATUS_ERRORS = ("non-pending order", "non-delivered order")


def _reference(name: str) -> Any:
    return json.loads(gzip.decompress((REFERENCE / f"{name}.gz").read_bytes()))


def test_the_vendored_replays_and_probes_are_the_reference_files() -> None:
    if not SHARED.exists():  # a checkout without the reference data beside it
        pytest.skip("the reference data is not beside this checkout")
    for name in ("golden_replay_dev.json", "golden_replay_train.json", "policy_probes.json", "LICENSE"):
        vendored = (
            (REFERENCE / name).read_bytes()
            if name == "LICENSE"
            else gzip.decompress((REFERENCE / f"{name}.gz").read_bytes())
        )
        assert vendored == (SHARED / name).read_bytes(), name


def _replays() -> list[dict[str, Any]]:
    """The reads a replayed task implies, as `{"name", "output"}`: the details of every order, user and product
    it touches, as the reference tools return them on the store the replays start from."""
    orders = json.loads((TAU / "orders.json").read_text())
    users = json.loads((TAU / "users.json").read_text())
    products = json.loads((TAU / "products.json").read_text())
    touched: dict[str, set[str]] = {"orders": set(), "users": set(), "products": set()}
    for name in ("golden_replay_dev.json", "golden_replay_train.json"):
        for task in _reference(name):
            for step in task["steps"]:
                order = orders.get(step["kwargs"].get("order_id", ""))
                if order is None:
                    continue
                touched["orders"].add(order["order_id"])
                touched["users"].add(order["user_id"])
                touched["products"].update(i["product_id"] for i in order["items"])
    return (
        [{"name": "get_order_details", "output": orders[o]} for o in sorted(touched["orders"])]
        + [{"name": "get_user_details", "output": {"user_id": u, **users[u]}} for u in sorted(touched["users"])]
        + [{"name": "get_product_details", "output": products[p]} for p in sorted(touched["products"])]
    )


REPLAYED = _replays()


@pytest.fixture(scope="module")
def services(pg: PgDatabases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """One demo store (SQLite) for the module: the checks only read it."""
    root = tmp_path_factory.getbasetemp() / "templates"
    root.mkdir(exist_ok=True)
    data_dir = tmp_path_factory.mktemp("tau")
    url = DatabaseFactory("sqlite", pg, data_dir).copy_url(_template("demo", "sqlite", pg, root))
    opened = open_services(Settings(data_dir=data_dir, database_url=url, load_demo=False))
    yield opened
    opened.close()


def _call(services: Services, user_id: str, **args: Any) -> dict[str, Any]:
    """`lookup_order` for a demo customer with a strong identity (as a signed-in session gives)."""
    customer_id = demo_customer_id(user_id)
    context = TurnContext(
        customer_id=customer_id,
        verification=VerificationLevel.STRONG,
        channel=Channel.WEB,
        handle_type=HandleType.VISITOR,
        handle=f"replay-{user_id}",
        services=services.turns.services,
    )
    runtime: ToolRuntime[Any, Any] = ToolRuntime(
        state={"messages": [], "identity": {"customer_id": customer_id, "level": "strong"}},
        context=context,
        config={},
        stream_writer=lambda _: None,
        tool_call_id="replay",
        store=None,
    )
    assert isinstance(lookup_order, StructuredTool) and lookup_order.func is not None
    command = lookup_order.func(runtime=runtime, **args)
    assert isinstance(command, Command)
    [message] = dict(command.update)["messages"]  # type: ignore[arg-type]
    return dict(json.loads(str(message.content)))


def _money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def test_the_replays_hold_reads_of_every_kind() -> None:
    kinds = {step["name"] for step in REPLAYED}
    assert kinds == READS
    assert len(REPLAYED) >= 200


def test_order_reads_return_the_reference_facts(services: Services, record_property: Any) -> None:
    checked = 0
    for step in (s for s in REPLAYED if s["name"] == "get_order_details"):
        reference = step["output"]
        ours = _call(services, reference["user_id"], order_id=reference["order_id"])
        assert ours["status"] == "ok", step
        order = ours["order"]
        assert order["order_id"] == reference["order_id"]
        assert order["status"] == reference["status"]
        assert sorted(
            (i["name"], _money(i["price"]), json.dumps(i["options"], sort_keys=True)) for i in order["items"]
        ) == sorted(
            (i["name"], _money(i["price"]), json.dumps(i["options"], sort_keys=True)) for i in reference["items"]
        )
        assert sorted(t for s in order["shipments"] for t in s["tracking_ids"]) == sorted(
            t for f in reference["fulfillments"] for t in f["tracking_id"]
        )
        history = reference["payment_history"]
        assert _money(order["paid"]) == sum(
            (_money(p["amount"]) for p in history if p["transaction_type"] == "payment"), Decimal("0")
        )
        assert _money(order["refunded"]) == sum(
            (_money(p["amount"]) for p in history if p["transaction_type"] == "refund"), Decimal("0")
        )
        assert order["shipping_address"] == reference["address"]
        checked += 1
    record_property("order_reads_checked", checked)
    assert checked >= 100


def test_user_reads_return_the_reference_facts(services: Services, record_property: Any) -> None:
    checked = 0
    for step in (s for s in REPLAYED if s["name"] == "get_user_details"):
        reference = step["output"]
        customer = services.stores.customers.get(demo_customer_id(reference["user_id"]))
        assert customer is not None
        assert (customer.first_name, customer.last_name) == (
            reference["name"]["first_name"],
            reference["name"]["last_name"],
        )
        assert customer.email == reference["email"].lower()
        history = _call(services, reference["user_id"])
        assert history["status"] == "ok"
        listed = {o["order_id"] for o in history["orders"]}
        assert listed <= set(reference["orders"])
        assert len(listed) == min(len(reference["orders"]), 10)
        checked += 1
    record_property("user_reads_checked", checked)
    assert checked >= 50


def test_product_reads_return_the_reference_facts(services: Services, record_property: Any) -> None:
    checked = 0
    for step in (s for s in REPLAYED if s["name"] == "get_product_details"):
        reference = step["output"]
        article = services.stores.knowledge.get(ArticleId(f"product-{reference['product_id']}"))
        assert article is not None, reference["product_id"]
        for item_id, variant in reference["variants"].items():
            line = next((ln for ln in article.body.splitlines() if f"(item {item_id})" in ln), None)
            assert line is not None, (reference["product_id"], item_id)
            assert f"${_money(variant['price'])}" in line
            assert ("available" in line and "unavailable" not in line) == variant["available"], line
        checked += 1
    record_property("product_reads_checked", checked)
    assert checked >= 20


def test_policy_probes_agree_with_the_enforcement_where_our_tools_act(record_property: Any) -> None:
    probes = _reference("policy_probes.json")
    agreed = checked = 0
    for probe in probes:
        error = probe["expected_error"] or ""
        if not probe["expect_success"] and not error.startswith(tuple("Error: " + e for e in STATUS_ERRORS)):
            continue  # an invalid reason or payment method: decided by a person, not by status in our tools
        order_id = probe["kwargs"]["order_id"]
        text = PROBE_ACTIONS[probe["tool"]].format(order_id=order_id)
        blocked = blocked_by_policy([text], {order_id: probe["order_status"]}) is not None
        checked += 1
        agreed += blocked != probe["expect_success"]
    record_property("policy_probes_checked", checked)
    record_property("policy_probes_agreed", agreed)
    assert checked >= 3000
    assert agreed == checked
