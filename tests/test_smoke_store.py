from threadline.memory.stores import Stores


def test_demo_store_has_the_reference_data(demo_stores: Stores) -> None:
    assert demo_stores.customers.count() == 500
    assert demo_stores.orders.count_orders() == 1000
