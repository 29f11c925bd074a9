import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import DatabaseFactory
from threadline.cli.main import app
from threadline.core.settings import Settings
from threadline.demo.loader import DATA_DIR, demo_customer_id, load_demo
from threadline.memory import migrate
from threadline.memory.db import Database
from threadline.memory.stores import Stores
from threadline.product.services import open_services

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_demo_load_twice_through_the_cli_gives_the_same_store(db_factory: DatabaseFactory, tmp_path: Path) -> None:
    url = db_factory.empty_url()
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(app, ["demo", "load", "--database-url", url, "--data-dir", str(tmp_path)])
        assert result.exit_code == 0, result.output
        assert "customers" in result.output
        db = Database.from_url(url)
        stores = Stores.over(db)
        assert stores.customers.count() == 500
        assert stores.orders.count_orders() == 1000
        assert len(stores.knowledge.list()) == 13 + 61 + 50  # help center, policy, guidelines, one per product
        db.dispose()


def test_second_load_changes_nothing(db_factory: DatabaseFactory) -> None:
    db = Database.from_url(db_factory.empty_url())
    migrate.upgrade(db)
    stores = Stores.over(db)
    first = load_demo(stores)
    assert first.created == {
        "products": 50,
        "variants": 591,
        "customers": 500,
        "identities": 500,
        "orders": 1000,
        "articles": 13 + 61,
        "product articles": 50,
    }
    revision = stores.knowledge.revision()
    assert load_demo(stores).created == {}
    assert stores.knowledge.revision() == revision
    db.dispose()


def test_demo_records_match_the_source_data(demo_stores: Stores) -> None:
    users = json.loads((DATA_DIR / "tau_retail" / "users.json").read_text())
    orders = json.loads((DATA_DIR / "tau_retail" / "orders.json").read_text())
    for user_id in ["noah_brown_6181", "james_li_5688"]:
        customer = demo_stores.customers.get(demo_customer_id(user_id))
        assert customer is not None
        assert customer.email == users[user_id]["email"].lower()
        assert customer.zip == users[user_id]["address"]["zip"]
        assert {o.id for o in demo_stores.orders.orders_for_customer(customer.id, limit=100)} == set(
            users[user_id]["orders"]
        )
    for order_id in list(orders)[::97]:
        source, order = orders[order_id], demo_stores.orders.get_order(order_id)
        assert order is not None
        assert order.status.value == source["status"]
        assert [i.item_id for i in order.items] == [i["item_id"] for i in source["items"]]
        assert [f.tracking_ids for f in order.fulfillments] == [f["tracking_id"] for f in source["fulfillments"]]
        assert [str(p.amount) for p in order.payments] == [f"{p['amount']:.2f}" for p in source["payment_history"]]


def test_packaged_copy_is_identical_to_the_reference_data() -> None:
    if not SHARED.exists():  # a packaged install has no shared/ beside it
        return
    for name in ["users.json", "orders.json", "products.json", "wiki.md", "LICENSE"]:
        assert (DATA_DIR / "tau_retail" / name).read_bytes() == (SHARED / "tau_retail" / name).read_bytes()
    for name in ["guidelines.json", "LICENSE"]:
        assert (DATA_DIR / "abcd" / name).read_bytes() == (SHARED / "abcd" / name).read_bytes()


@pytest.mark.slow
def test_two_workers_starting_on_an_empty_database_load_the_demo_once(
    db_factory: DatabaseFactory, tmp_path: Path
) -> None:
    url = db_factory.empty_url()
    settings = [Settings(data_dir=tmp_path / name, database_url=url, load_demo=True) for name in ("one", "two")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        opened = list(pool.map(open_services, settings))  # both start at once, as `serve --workers 2` does
    try:
        assert sum(s.demo_report is not None for s in opened) == 1  # one loaded; the other found it loaded
        stores = opened[0].stores
        assert (stores.customers.count(), stores.orders.count_orders()) == (500, 1000)
        assert len(stores.knowledge.list()) == 13 + 61 + 50
    finally:
        for services in opened:
            services.close()
