"""`core.catalog_search`: the product finder reads what a shopper asks for over the real demo catalogue."""

from __future__ import annotations

from decimal import Decimal

import pytest

from threadline.core.catalog_search import criteria, find, named_types
from threadline.core.types import Product, Variant
from threadline.demo.loader import read_json


@pytest.fixture(scope="module")
def catalogue() -> list[Product]:
    return [
        Product(
            id=pid,
            name=p["name"],
            variants=[
                Variant(
                    item_id=i,
                    product_id=pid,
                    options=v["options"],
                    available=v["available"],
                    price=Decimal(str(v["price"])),
                )
                for i, v in p["variants"].items()
            ],
        )
        for pid, p in read_json("tau_retail", "products.json").items()
    ]


def _best(catalogue: list[Product], text: str) -> list[dict[str, str]]:
    return [m.variant.options for m in find(catalogue, criteria(text, catalogue)) if m.fits and m.variant.available]


def test_every_option_asked_for_is_met_and_nothing_else_counts(catalogue: list[Product]) -> None:
    fits = _best(catalogue, "do u have a waterproof bluetooth speaker in red??")
    assert fits and all(o["color"] == "red" and o["water resistance"] == "yes" for o in fits)
    wanted = criteria("do u have a waterproof bluetooth speaker in red??", catalogue)
    assert [w for w, _ in wanted.options] == ["waterproof", "red"]
    assert "speaker" not in wanted.describe()  # the product is not an option value


def test_a_refinement_replaces_the_same_option_and_keeps_the_rest(catalogue: list[Product]) -> None:
    fits = _best(catalogue, "red waterproof speaker | hmm what about blue")
    assert fits and all(o["color"] == "blue" and o["water resistance"] == "yes" for o in fits)
    chairs = _best(catalogue, "im looking for an office chair | ok what about one with adjustable arms?")
    assert chairs and all(o["armrest"] == "adjustable" for o in chairs)


def test_sizes_prices_and_plural_names(catalogue: list[Product]) -> None:
    wanted = criteria("any running shoes in size 10 under $200?", catalogue)
    assert wanted.max_price == Decimal("200") and wanted.describe() == ["size 10", "under $200"]
    for match in find(catalogue, wanted):
        if match.fits:
            assert match.variant.options["size"] == "10" and match.variant.price <= 200
    between = criteria("yoga mats between 90 and 100 dollars", catalogue)
    assert (between.min_price, between.max_price) == (Decimal("90"), Decimal("100"))


def test_a_colour_the_product_never_comes_in_is_a_criterion_nothing_meets(catalogue: list[Product]) -> None:
    wanted = criteria("is the yoga mat available in purple", catalogue)
    assert wanted.describe() == ["purple"]
    assert not any(m.fits for m in find(catalogue, wanted))


def test_what_we_do_not_sell_names_nothing(catalogue: list[Product]) -> None:
    wanted = criteria("looking for a sofa, do u sell those", catalogue)
    assert not wanted.product_ids and not wanted.options
    names = [p.name for p in catalogue]
    assert named_types("the grill I ordered and a tea kettle", names) == ["Grill", "Tea Kettle"]
    assert named_types("a security camera for the porch", names) == ["Indoor Security Camera"]
