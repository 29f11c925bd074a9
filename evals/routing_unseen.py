"""Off-topic rejection on domains the model never saw: a leave-one-domain-out routing evaluation over clinc150.

The shipped clinc150 dev set draws its out-of-scope utterances from the same clinc intents as the training
examples (every clinc intent lends 8 of them), so its `none` recall is an upper bound. Here each of clinc150's ten
domains is a fold: the classifier is built without the training examples of that domain's off-topic intents (those
`agents/data/build_examples.py` maps to `out_of_scope` or `smalltalk`) and without a tenth of the `oos` examples
(chosen by a stable hash), and is scored on utterances of exactly those intents that it does not learn from.
Intents the model has to know (order_status, greeting, goodbye, thank_you, yes, no) stay in every fold, and the
ones build_examples drops as ambiguous (cancel, maybe, repeat, order, card_declined) are neither trained on nor
scored. Each fold's classifier is also scored on every `lookup_order` utterance of the shipped dev sets (clinc
order_status, bitext track_order / delivery_period / invoices), so losing order-status recall shows.

Deterministic: folds, sampling and the classifier are all fixed by the data.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from threadline.agents.intents import Example, Intent
from threadline.core.errors import InvalidInputError
from threadline.core.tool_names import LOOKUP_ORDER
from threadline.evals.routing.build_dev_sets import CLINC_DROPPED, fold
from threadline.evals.routing_eval import DEV_DIR, DEV_SETS, load_routing_set, score

CLINC_SHIPPED = Path(__file__).resolve().parent / "routing" / "clinc150"
"""clinc150 train + val, gzipped and byte-identical, with its domains (CC BY 3.0; `routing/README.md`)."""
CLINC_CANDIDATES = (
    CLINC_SHIPPED,
    Path(__file__).resolve().parents[2] / "shared" / "data" / "clinc150",
)
KEPT = frozenset({"order_status", "greeting", "goodbye", "thank_you", "yes", "no"})
"""clinc intents the offline model must know: never held out (build_examples maps them to our intents)."""
OFF_TOPIC = frozenset({Intent.OUT_OF_SCOPE, Intent.SMALLTALK})
PER_INTENT = 20
"""Utterances scored per held-out clinc intent (all of a fold's `oos` share is scored)."""
Router = Callable[[Sequence[str]], list[str]]


@dataclass(frozen=True)
class Fold:
    """One clinc150 domain held out: its off-topic intents and the `oos` utterances hashed to it."""

    domain: str
    intents: frozenset[str]
    oos: frozenset[str]


def default_clinc_dir() -> Path | None:
    """The shipped clinc150 data (or the reference copy next to the repository, `../shared/data/clinc150`)."""
    return next((path for path in CLINC_CANDIDATES if _utterances(path).exists()), None)


def _utterances(clinc_dir: Path) -> Path:
    """clinc150's train + val file in a folder: `clinc150_train_val.json`, or gzipped as shipped."""
    plain = clinc_dir / "clinc150_train_val.json"
    return plain if plain.exists() else plain.with_suffix(".json.gz")


def _stable(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16)


def load_clinc(clinc_dir: Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """clinc150 train + val utterances by intent (stripped, in file order) and the domains' intent lists."""
    try:
        path = _utterances(clinc_dir)
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        data = json.loads(raw.decode("utf-8"))
        domains: dict[str, list[str]] = json.loads((clinc_dir / "domains.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InvalidInputError(f"cannot read clinc150 from {clinc_dir}: {error}") from error
    pools: dict[str, list[str]] = defaultdict(list)
    for text, intent in data["train"] + data["val"] + data["oos_train"] + data["oos_val"]:
        pools[intent].append(text.strip())
    return dict(pools), domains


def make_folds(pools: dict[str, list[str]], domains: dict[str, list[str]]) -> list[Fold]:
    """One fold per domain, in name order; the `oos` utterances are spread over them by a stable hash."""
    names = sorted(domains)
    oos: dict[str, set[str]] = {name: set() for name in names}
    for text in pools.get("oos", []):
        oos[names[_stable(fold(text)) % len(names)]].add(text)
    return [Fold(name, frozenset(set(domains[name]) - KEPT - CLINC_DROPPED), frozenset(oos[name])) for name in names]


def fold_split(
    examples: Sequence[Example], pools: dict[str, list[str]], held_out: Fold, per_intent: int = PER_INTENT
) -> tuple[list[Example], list[str]]:
    """The examples the fold's classifier learns from, and the off-topic utterances it is scored on.

    An off-topic example is dropped when its text is a clinc utterance of a held-out intent (or a held-out `oos`
    one); the scored utterances are up to `per_intent` of each held-out intent (stable hash order) and all of
    the fold's `oos` share, none of them equal (digits, case and punctuation folded) to a remaining example.
    """
    held = set(held_out.oos) | {t for i in held_out.intents for t in pools.get(i, [])}

    kept = [e for e in examples if e.intent not in OFF_TOPIC or e.text.strip() not in held]
    seen = {fold(e.text) for e in kept}
    scored: list[str] = []
    groups = [(pools.get(i, []), per_intent) for i in sorted(held_out.intents)]
    for group, cap in [*groups, (sorted(held_out.oos), len(held_out.oos))]:
        unique: dict[str, str] = {}
        for text in group:
            key = fold(text)
            if key and key not in seen:
                unique.setdefault(key, text)
        scored += sorted(unique.values(), key=_stable)[:cap]
    return kept, scored


def order_rows(dev_dir: Path = DEV_DIR) -> list[str]:
    """Every `lookup_order` utterance of the shipped dev sets."""
    return [row.text for name in DEV_SETS for row in load_routing_set(dev_dir / name) if row.route == LOOKUP_ORDER]


def evaluate_unseen_domains(
    examples: Sequence[Example],
    make_router: Callable[[list[Example]], Router],
    clinc_dir: Path,
    *,
    per_intent: int = PER_INTENT,
) -> dict[str, Any]:
    """Per fold and pooled: `none` recall on the held-out off-topic utterances, `lookup_order` recall on the dev
    sets' order utterances, and accuracy over both; `make_router` builds a router from a fold's examples."""
    pools, domains = load_clinc(clinc_dir)
    orders = order_rows()
    folds: dict[str, dict[str, Any]] = {}
    gold: list[str] = []
    predicted: list[str] = []
    for held_out in make_folds(pools, domains):
        kept, off_topic = fold_split(examples, pools, held_out, per_intent)
        router = make_router(kept)
        fold_gold = ["none"] * len(off_topic) + [LOOKUP_ORDER] * len(orders)
        fold_predicted = router([*off_topic, *orders])
        result = score(fold_gold, fold_predicted)
        folds[held_out.domain] = {
            "held_out_intents": len(held_out.intents),
            "dropped_examples": len(examples) - len(kept),
            "n": len(fold_gold),
            "none_recall": result["per_route"]["none"]["recall"],
            "lookup_order_recall": result["per_route"][LOOKUP_ORDER]["recall"],
            "accuracy": result["accuracy"],
            "missed": sorted(t for t, p in zip(off_topic, fold_predicted, strict=False) if p != "none")[:5],
        }
        gold += fold_gold
        predicted += fold_predicted
    pooled = score(gold, predicted)
    return {
        "none_recall": pooled["per_route"]["none"]["recall"],
        "lookup_order_recall": pooled["per_route"][LOOKUP_ORDER]["recall"],
        "lookup_order_recall_min": min(f["lookup_order_recall"] for f in folds.values()),
        "accuracy": pooled["accuracy"],
        "n": len(gold),
        "confusion": pooled["confusion"],
        "folds": folds,
    }
