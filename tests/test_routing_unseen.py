"""Leave-one-domain-out routing (`evals/routing_unseen.py`): folds hold out exactly their domain's off-topic
examples and score only text the fold's classifier does not learn from; the full run meets the goal."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from threadline.agents.intents import Example, Intent, IntentClassifier, load_examples
from threadline.evals.routing.build_dev_sets import fold
from threadline.evals.routing_eval import INTENT_ROUTES
from threadline.evals.routing_unseen import (
    CLINC_SHIPPED,
    default_clinc_dir,
    evaluate_unseen_domains,
    fold_split,
    load_clinc,
    make_folds,
)


def _w(i: int) -> str:
    """A distinct word per number (the folding that compares texts ignores digits)."""
    return "ab" + chr(97 + i % 26) + chr(97 + i // 26)


def _clinc(tmp_path: Path) -> Path:
    """A two-domain clinc150 look-alike: banking (with a kept and a dropped intent) and home (with order_status)."""
    train = [[f"what is my balance number {_w(i)}", "balance"] for i in range(30)]
    train += [[f"please pay the bill {_w(i)} now", "pay_bill"] for i in range(30)]
    train += [[f"cancel that {_w(i)}", "cancel"] for i in range(5)]
    train += [[f"play a song by band {_w(i)}", "play_music"] for i in range(30)]
    train += [[f"where is my order {_w(i)}", "order_status"] for i in range(30)]
    oos = [[f"how tall is mountain {_w(i)}", "oos"] for i in range(40)]
    data = {"train": train, "val": [], "oos_train": oos, "oos_val": []}
    domains = {"banking": ["balance", "pay_bill", "cancel"], "home": ["play_music", "order_status"]}
    (tmp_path / "clinc150_train_val.json").write_text(json.dumps(data))
    (tmp_path / "domains.json").write_text(json.dumps(domains))
    return tmp_path


def test_folds_hold_out_their_domain_and_score_only_unseen_text(tmp_path: Path) -> None:
    pools, domains = load_clinc(_clinc(tmp_path))
    folds = make_folds(pools, domains)
    assert [f.domain for f in folds] == ["banking", "home"]
    assert folds[0].intents == {"balance", "pay_bill"}  # `cancel` is dropped as ambiguous, never scored
    assert folds[1].intents == {"play_music"}  # order_status is always learnt
    assert folds[0].oos | folds[1].oos == set(pools["oos"]) and not folds[0].oos & folds[1].oos
    examples = [Example(t, Intent.OUT_OF_SCOPE) for i in ("balance", "pay_bill", "play_music") for t in pools[i][:8]]
    examples += [Example(t, Intent.OUT_OF_SCOPE) for t in pools["oos"][:30]]
    examples += [Example(t, Intent.ORDER_STATUS) for t in pools["order_status"][:8]]
    kept, scored = fold_split(examples, pools, folds[0], per_intent=5)
    assert {e.text for e in examples} - {e.text for e in kept} == {
        e.text for e in examples if e.text.startswith(("what is my balance", "please pay")) or e.text in folds[0].oos
    }
    assert len([t for t in scored if "balance" in t]) == 5 and len([t for t in scored if "bill" in t]) == 5
    assert {t for t in scored if "mountain" in t} == folds[0].oos
    assert not {fold(t) for t in scored} & {fold(e.text) for e in kept}


def test_unseen_domain_figures_pool_the_folds(tmp_path: Path) -> None:
    clinc = _clinc(tmp_path)
    built: list[int] = []

    def make_router(examples: list[Example]) -> Any:
        built.append(len(examples))

        def route(texts: Sequence[str]) -> list[str]:  # knows only what it learnt; "order" means an order
            known = {e.text for e in examples}
            return ["lookup_order" if "order" in t or t in known else "none" for t in texts]

        return route

    pools, _ = load_clinc(clinc)
    examples = [Example(t, Intent.OUT_OF_SCOPE) for i in ("balance", "play_music", "oos") for t in pools[i][:10]]
    result = evaluate_unseen_domains(examples, make_router, clinc, per_intent=4)
    assert len(built) == 2 and all(n < len(examples) for n in built)
    assert result["none_recall"] == 1.0  # nothing scored was learnt, so the stub never calls it an order
    assert result["lookup_order_recall"] < 1.0  # the dev sets' order messages without "order" in them
    assert set(result["folds"]) == {"banking", "home"}
    assert result["n"] == sum(f["n"] for f in result["folds"].values())


@pytest.mark.slow
def test_off_topic_rejection_on_unseen_domains(embeddings: Any, record_property: Any) -> None:
    clinc = default_clinc_dir()
    assert clinc is not None

    def make_router(examples: list[Example]) -> Any:
        classifier = IntentClassifier(embeddings, examples)
        return lambda texts: [INTENT_ROUTES[c.intent.value] for c in classifier.classify_many(texts)]

    result = evaluate_unseen_domains(load_examples("all"), make_router, clinc)
    record_property("unseen_none_recall", result["none_recall"])
    print(f"\nunseen domains: none {result['none_recall']}, lookup_order min {result['lookup_order_recall_min']}")
    assert result["none_recall"] >= 0.88  # 0.79 without the off-topic margin, 0.985 on the dev set
    assert result["lookup_order_recall_min"] >= 0.99


SHARED_CLINC = Path(__file__).resolve().parents[2] / "shared" / "data" / "clinc150"


def test_the_shipped_clinc150_is_the_default_and_the_reference_files() -> None:
    """`threadline eval routing --unseen-domains` runs in a fresh clone: clinc150 ships with the evaluations."""
    assert default_clinc_dir() == CLINC_SHIPPED
    pools, domains = load_clinc(CLINC_SHIPPED)
    assert len(domains) == 10 and sum(len(intents) for intents in domains.values()) == 150
    assert set(pools) == {intent for intents in domains.values() for intent in intents} | {"oos"}
    if SHARED_CLINC.exists():  # the reference data beside this checkout: the copies are unchanged
        shipped = gzip.decompress((CLINC_SHIPPED / "clinc150_train_val.json.gz").read_bytes())
        assert shipped == (SHARED_CLINC / "clinc150_train_val.json").read_bytes()
        assert (CLINC_SHIPPED / "domains.json").read_bytes() == (SHARED_CLINC / "domains.json").read_bytes()
