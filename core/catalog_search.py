"""The product finder: what a shopper asks for, read as criteria over the catalogue, and the variants that fit.

`criteria(text, products)` reads the product type ("speaker", "office chairs"), option values ("red",
"waterproof", "adjustable arms", "size 8"), a price range ("under $300", "between 50 and 100") and whether only
what is in stock counts. Later words win over earlier ones for the same option or bound, so a refinement appended
to the previous request ("… | what about blue?") replaces the colour and keeps the rest. `find(products,
wanted)` ranks the variants: those matching every criterion first, in stock before out of stock, then by price.
Pure functions over `Product` records: no database, no model.
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import TypeVar

from threadline.core.ports import OrderSystem
from threadline.core.types import Product, Variant

T = TypeVar("T")

_WORD = re.compile(r"[a-z0-9]+(?:[.'-][a-z0-9]+)*")
_PRICE = r"\$?\s?(\d+(?:[.,]\d{1,2})?)\s*(?:dollars|bucks|usd)?"
_UNDER = re.compile(
    rf"\b(?:under|below|less than|cheaper than|no more than|at most|max(?:imum)?|up to|within)\s+{_PRICE}"
)
_OVER = re.compile(rf"\b(?:over|above|more than|at least|min(?:imum)?|from)\s+{_PRICE}")
_BETWEEN = re.compile(rf"\bbetween\s+{_PRICE}\s+(?:and|to|-)\s+{_PRICE}")
_SIZE = re.compile(r"\bsize\s+([a-z0-9.%]+(?:\s?ml)?)\b")
_NEGATED = re.compile(r"\b(?:not|non|no|without)\b[\s-]*$")

# Everyday words for the catalogue's product types and options. The catalogue's own words always count too.
PRODUCT_WORDS: dict[str, tuple[str, ...]] = {
    "Bluetooth Speaker": ("speaker", "speakers"),
    "Office Chair": ("chair", "chairs", "desk chair"),
    "Electric Kettle": ("kettle", "kettles"),
    "Tea Kettle": ("kettle", "kettles", "teakettle"),
    "Smartphone": ("phone", "phones", "cell phone", "mobile"),
    "Smart Watch": ("smartwatch", "watch", "watches"),
    "Wristwatch": ("watch", "watches", "wrist watch"),
    "Wireless Earbuds": ("earbuds", "earphones", "ear buds"),
    "Headphones": ("headphone", "headset"),
    "Bicycle": ("bike", "bikes", "cycle"),
    "Cycling Helmet": ("helmet", "bike helmet"),
    "Running Shoes": ("running shoe", "runners", "shoes", "trainers"),
    "Sneakers": ("sneaker", "shoes", "trainers"),
    "Hiking Boots": ("boots", "boot", "hiking shoes"),
    "T-Shirt": ("tshirt", "t shirt", "tee", "tees", "shirt", "shirts"),
    "Fleece Jacket": ("jacket", "jackets", "fleece"),
    "Portable Charger": ("power bank", "powerbank", "charger", "battery pack"),
    "Luggage Set": ("luggage", "suitcase", "suitcases"),
    "Laptop": ("laptops", "notebook computer", "computer"),
    "Tablet": ("tablets", "ipad"),
    "E-Reader": ("ereader", "e reader", "kindle"),
    "Vacuum Cleaner": ("vacuum", "hoover"),
    "LED Light Bulb": ("light bulb", "bulb", "bulbs"),
    "Desk Lamp": ("lamp", "lamps"),
    "Indoor Security Camera": ("security camera", "security cam"),
    "Action Camera": ("action cam", "gopro"),
    "Digital Camera": ("camera", "cameras"),
    "Mechanical Keyboard": ("keyboard", "keyboards"),
    "Gaming Mouse": ("mouse", "mice"),
    "Water Bottle": ("bottle", "bottles"),
    "Jigsaw Puzzle": ("puzzle", "puzzles", "jigsaw"),
    "Dumbbell Set": ("dumbbells", "dumbbell", "weights"),
    "Yoga Mat": ("mat", "yoga mats"),
    "Patio Umbrella": ("umbrella", "umbrellas", "parasol"),
    "Garden Hose": ("hose", "hoses"),
    "Smart Thermostat": ("thermostat",),
    "Electric Toothbrush": ("toothbrush",),
    "Coffee Maker": ("coffee machine", "coffeemaker"),
    "Espresso Machine": ("espresso maker",),
    "Makeup Kit": ("makeup", "make up"),
    "Perfume": ("fragrance", "cologne"),
    "Pet Bed": ("dog bed", "cat bed"),
    "Wall Clock": ("clock", "clocks"),
    "Sunglasses": ("shades",),
    "Grill": ("grills", "bbq", "barbecue"),
    "Skateboard": ("skateboards", "skate board"),
    "Bookshelf": ("bookcase", "shelf", "shelves"),
    "Backpack": ("backpacks", "rucksack", "bag"),
}
VALUE_WORDS: dict[str, tuple[str, ...]] = {
    "waterproof": ("yes", "IPX7", "IPX4"),
    "water resistant": ("yes", "IPX7", "IPX4"),
    "water-resistant": ("yes", "IPX7", "IPX4"),
    "grey": ("gray", "grey", "space grey"),
    "gray": ("gray", "grey", "space grey"),
    "adjustable arms": ("adjustable",),
    "adjustable armrests": ("adjustable",),
    "cordless": ("cordless",),
    "wireless": ("wireless", "Bluetooth", "Wi-Fi"),
    "small": ("S", "small"),
    "medium": ("M", "medium"),
    "large": ("L", "large"),
    "extra large": ("XL",),
}
_OPTION_FOR_WORD = {"waterproof": ("water resistance", "waterproof"), "water resistant": ("water resistance",)}
_STOCK_WORDS = re.compile(r"\b(in stock|available|availability|can i (?:buy|get|order))\b")


@dataclass(frozen=True)
class Wanted:
    """What a shopper asked for."""

    product_ids: tuple[str, ...] = ()
    options: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """(the customer's word, the option values it stands for), in the order they were said."""
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    in_stock: bool = False
    product_words: tuple[str, ...] = ()

    def describe(self) -> list[str]:
        """The criteria in the customer's words (for read-back and for the model)."""
        said = [word for word, _ in self.options]
        if self.min_price is not None and self.max_price is not None:
            said.append(f"between ${self.min_price} and ${self.max_price}")
        elif self.max_price is not None:
            said.append(f"under ${self.max_price}")
        elif self.min_price is not None:
            said.append(f"over ${self.min_price}")
        return said


@dataclass(frozen=True)
class Match:
    """One variant and how well it fits."""

    product: Product
    variant: Variant
    matched: tuple[str, ...]
    missed: tuple[str, ...] = field(default=())

    @property
    def fits(self) -> bool:
        """It matches every option the shopper named and the price range."""
        return not self.missed


_UNITS = (
    (re.compile(r"(\d+(?:\.\d+)?)\s*(?:litres?|liters?|l)\b"), r"\1l"),
    (re.compile(r"(\d+(?:\.\d+)?)\s*(?:millilit(?:re|er)s?|ml)\b"), r"\1ml"),
    (re.compile(r"(\d+(?:\.\d+)?)\s*(?:inch(?:es)?|in\.|\")(?=\W|$)"), r"\1 inch"),
    (re.compile(r"(\d+)\s*(?:gb|gigs?)\b"), r"\1gb"),
)


def _norm(text: str) -> str:
    """Lower case words; quantities written one way whatever the shopper typed ("2 litre" and "2L" are "2l")."""
    text = text.lower().replace("_", " ")
    for pattern, written in _UNITS:
        text = pattern.sub(written, text)
    return " ".join(_WORD.findall(text))


def _contains(text: str, phrase: str) -> int:
    """Where `phrase` occurs as whole words in normalised `text` (-1 when it does not)."""
    found = re.search(rf"(?<![a-z0-9]){re.escape(phrase)}(?![a-z0-9])", text)
    return found.start() if found else -1


def named_types(text: str, names: Sequence[str]) -> list[str]:
    """The product type names (of `names`) the text names, in the order said."""
    return [name for name, _ in named_type_words(text, names)]


def named_type_words(text: str, names: Sequence[str]) -> list[tuple[str, str]]:
    """The product type names the text names, each with the words that named it ("espresso machine", "earbuds")."""
    return _types(text, [(n, n) for n in names])


def product_types(text: str, products: Sequence[Product]) -> list[tuple[Product, str]]:
    """The catalogue's product types the text names, each with the word that named it (longest words first, so
    "security camera" beats "camera")."""
    return _types(text, [(p.name, p) for p in products])


@lru_cache(maxsize=4096)
def _name_words(name: str) -> tuple[str, ...]:
    """A product type's name and its other words, normalised (the catalogue's names recur on every turn)."""
    return tuple(_norm(w) for w in (name, *PRODUCT_WORDS.get(name, ())))


@lru_cache(maxsize=4096)
def _word_pattern(word: str) -> re.Pattern[str]:
    """A normalised word as a whole word, plural included."""
    return re.compile(rf"(?<![a-z0-9]){re.escape(word)}s?(?![a-z0-9])")


def _types(text: str, named: Sequence[tuple[str, T]]) -> list[tuple[T, str]]:
    said = _norm(text)
    found: list[tuple[int, T, str]] = []
    taken: list[tuple[int, int]] = []
    words = sorted(((w, p) for name, p in named for w in _name_words(name)), key=lambda item: -len(item[0]))
    for word, product in words:
        for hit in _word_pattern(word).finditer(said):
            span = (hit.start(), hit.end())
            inside = any(s <= span[0] and span[1] <= e and (s, e) != span for s, e in taken)
            if inside:
                continue
            taken.append(span)
            found.append((hit.start(), product, word))
    ordered: list[tuple[T, str]] = []
    for _, product, word in sorted(found, key=lambda f: f[0]):
        if all(product is not p for p, _ in ordered):
            ordered.append((product, word))
    return ordered


def _option_values(products: Iterable[Product]) -> dict[str, set[str]]:
    values: dict[str, set[str]] = {}
    for product in products:
        for variant in product.variants:
            for name, value in variant.options.items():
                values.setdefault(_norm(value), set()).add(value)
                values.setdefault(f"{_norm(name)} {_norm(value)}", set()).add(value)
    return values


def _colours_and_materials(products: Iterable[Product]) -> set[str]:
    return {
        _norm(value)
        for product in products
        for variant in product.variants
        for name, value in variant.options.items()
        if "color" in name or "material" in name
    }


def _price(raw: str) -> Decimal:
    return Decimal(raw.replace(",", "."))


def criteria(text: str, products: Sequence[Product], within: Sequence[Product] | None = None) -> Wanted:
    """What `text` asks for; option values are looked up among `within` (the products named, or given)."""
    said = _norm(text)
    named = product_types(text, products)
    pool = list(within) if within else [p for p, _ in named] or list(products)
    values = _option_values(pool)
    hits: list[tuple[int, str, tuple[str, ...]]] = []
    for word, stands_for in VALUE_WORDS.items():
        at = _contains(said, _norm(word))
        if at >= 0 and not _NEGATED.search(said[:at]):
            present = tuple(v for v in stands_for if _norm(v) in values)
            if present:
                hits.append((at, word, present))
    for phrase, originals in values.items():
        if len(phrase) < 2 or phrase in ("no", "none", "yes") or phrase.isdigit():
            continue  # a bare "8" or "yes" says nothing on its own: sizes are read from "size 8"
        at = _contains(said, phrase)
        if at >= 0 and not _NEGATED.search(said[:at]) and not any(phrase in _norm(w) for _, w, _ in hits):
            if any(_contains(_norm(w), phrase) >= 0 for _, w in named):
                continue  # "speaker" is the product, not an option value
            hits.append((at, phrase, tuple(sorted(originals))))
    for phrase in _colours_and_materials(products) - set(values):
        at = _contains(said, phrase)
        if at >= 0 and not _NEGATED.search(said[:at]) and not any(phrase in _norm(w) for _, w, _ in hits):
            hits.append((at, phrase, (phrase,)))  # a colour these products never come in: a criterion none meets
    for size in _SIZE.finditer(said):
        value = size.group(1)
        matching = tuple(sorted(values.get(value, set())))
        if matching:
            hits.append((size.start(), f"size {matching[0]}", matching))
    hits = [(at, f"size {values_[0]}" if w.startswith("size ") else w, values_) for at, w, values_ in hits]
    hits = _without_overlaps(hits)
    latest: dict[str, tuple[int, str, tuple[str, ...]]] = {}
    for at, word, stands_for in sorted(hits):
        option = _option_of(stands_for, pool, word)
        latest[option] = (at, word, stands_for)  # a later word for the same option replaces the earlier one
    options = tuple((word, stands_for) for _, word, stands_for in sorted(latest.values()))
    low = high = None
    for match in _BETWEEN.finditer(said):
        low, high = _price(match.group(1)), _price(match.group(2))
    for match in _UNDER.finditer(said):
        high = _price(match.group(1))
    for match in _OVER.finditer(said):
        if not _BETWEEN.search(said[max(0, match.start() - 40) : match.end()]):
            low = _price(match.group(1))
    latest_part = _norm(text.rsplit("|", 1)[-1])
    cheapest = re.search(r"\b(?:cheapest|lowest price|any price|forget the budget|whatever price)\b", latest_part)
    if cheapest and not (_UNDER.search(latest_part) or _BETWEEN.search(latest_part)):
        low = high = None  # "the cheapest one then": the earlier budget no longer holds
    return Wanted(
        product_ids=tuple(p.id for p, _ in named),
        options=options,
        min_price=low,
        max_price=high,
        in_stock=bool(_STOCK_WORDS.search(said)),
        product_words=tuple(w for _, w in named),
    )


def _without_overlaps(hits: list[tuple[int, str, tuple[str, ...]]]) -> list[tuple[int, str, tuple[str, ...]]]:
    """Longest phrases first; a phrase inside a longer one already taken ("red" in "rose gold red"?) is dropped."""
    kept: list[tuple[int, str, tuple[str, ...]]] = []
    for hit in sorted(hits, key=lambda h: -len(h[1])):
        start, end = hit[0], hit[0] + len(hit[1])
        if any(k[0] <= start and end <= k[0] + len(k[1]) for k in kept):
            continue
        kept.append(hit)
    return kept


def _option_of(values: tuple[str, ...], products: Sequence[Product], word: str) -> str:
    """The option name these values belong to (the first that has one of them), so later words replace it."""
    if word in _OPTION_FOR_WORD:
        return _OPTION_FOR_WORD[word][0]
    for product in products:
        for variant in product.variants:
            for name, value in variant.options.items():
                if value in values:
                    return name
    return word


def _variant_has(variant: Variant, stands_for: tuple[str, ...], word: str) -> bool:
    names = _OPTION_FOR_WORD.get(word)
    return any(value in stands_for and (names is None or name in names) for name, value in variant.options.items())


def find(products: Sequence[Product], wanted: Wanted, limit: int = 6) -> list[Match]:
    """Variants of the wanted products, best fit first: every criterion met, in stock, cheapest."""
    pool = [p for p in products if p.id in wanted.product_ids] if wanted.product_ids else list(products)
    matches: list[Match] = []
    for product in pool:
        for variant in product.variants:
            matched = tuple(w for w, values in wanted.options if _variant_has(variant, values, w))
            missed = [w for w, values in wanted.options if w not in matched]
            if wanted.max_price is not None and variant.price > wanted.max_price:
                missed.append(f"under ${wanted.max_price}")
            if wanted.min_price is not None and variant.price < wanted.min_price:
                missed.append(f"over ${wanted.min_price}")
            if wanted.options and not matched and not wanted.product_ids:
                continue  # a search across every product keeps only variants sharing something with the request
            matches.append(Match(product, variant, matched, tuple(missed)))
    matches.sort(key=lambda m: (len(m.missed), not m.variant.available, m.variant.price, m.variant.item_id))
    return matches[:limit]


_CATALOG_TTL_S = 60.0
PROMPT_PRODUCT_TYPES = 200
"""At most this many product types are listed in the system prompt (a catalogue of thousands stays searchable)."""
_catalogs: weakref.WeakKeyDictionary[OrderSystem, tuple[float, tuple[str, ...]]] = weakref.WeakKeyDictionary()
_catalogs_lock = threading.Lock()


def catalog_type_names(orders: OrderSystem) -> tuple[str, ...]:
    """The names of the product types the store sells, read at most once a minute per order system."""
    now = time.monotonic()
    with _catalogs_lock:
        try:
            cached = _catalogs.get(orders)
        except TypeError:  # an order system that cannot be weakly referenced is read every time
            return tuple(sorted({p.name for p in orders.list_products()}))
    if cached is not None and now - cached[0] < _CATALOG_TTL_S:
        return cached[1]
    names = tuple(sorted({p.name for p in orders.list_products()}))[:PROMPT_PRODUCT_TYPES]
    with _catalogs_lock:
        _catalogs[orders] = (now, names)
    return names
