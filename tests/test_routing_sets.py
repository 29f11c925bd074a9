"""Labelled routing sets: the offline model's routing on the shipped dev sets (text it was not trained on) meets
the goal, beside the 1-nearest-neighbour baseline; the route table, the scorer and the command's JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from threadline.agents.intents import Intent, IntentClassifier, load_examples
from threadline.core.errors import InvalidInputError
from threadline.evals.routing.build_dev_sets import fold, trained_on
from threadline.evals.routing_eval import (
    DEV_DIR,
    DEV_SETS,
    INTENT_ROUTES,
    ROUTES,
    NearestNeighbour,
    evaluate_routing,
    load_routing_set,
    score,
)

GOAL_ACCURACY = 0.92
GOAL_RECALL = 0.93


def test_every_intent_has_one_route() -> None:
    assert set(INTENT_ROUTES) == {i.value for i in Intent}
    assert set(INTENT_ROUTES.values()) == set(ROUTES)


def test_dev_sets_hold_nothing_the_model_learns_from_and_keep_their_licences() -> None:
    seen = trained_on()
    for name in DEV_SETS:
        rows = load_routing_set(DEV_DIR / name)
        assert len(rows) >= 800
        assert not {fold(r.text) for r in rows} & seen
    assert (DEV_DIR / "LICENSE-bitext-CDLA-Sharing-1.0.txt").exists()
    assert (DEV_DIR / "LICENSE-clinc150-CC-BY-3.0.txt").exists()


def test_score_counts_precision_recall_and_confusion() -> None:
    result = score(["lookup_order", "lookup_order", "none"], ["lookup_order", "none", "none"])
    assert result["accuracy"] == pytest.approx(0.6667, abs=1e-4)
    assert result["per_route"]["lookup_order"] == {"precision": 1.0, "recall": 0.5, "n": 2}
    assert result["per_route"]["none"] == {"precision": 0.5, "recall": 1.0, "n": 1}
    assert result["confusion"] == {"lookup_order": {"lookup_order": 1, "none": 1}, "none": {"none": 1}}


def test_bad_routing_lines_are_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "hi", "route": "teleport"}\n')
    with pytest.raises(InvalidInputError, match="unknown route 'teleport'"):
        load_routing_set(path)
    path.write_text("not json\n")
    with pytest.raises(InvalidInputError, match=r"bad.jsonl:1"):
        load_routing_set(path)


@pytest.mark.slow
@pytest.mark.parametrize("name", DEV_SETS)
def test_offline_routing_meets_the_goal_on_the_dev_sets(
    name: str, embeddings: Any, request: pytest.FixtureRequest, record_property: Any
) -> None:
    cache = getattr(request.config, "cache", None)
    cache_dir = Path(cache.mkdir("threadline-intents")) if cache is not None else None
    examples = load_examples("all")  # what the product learns from; the dev sets exclude all of it
    classifier = IntentClassifier(embeddings, examples, cache_dir=cache_dir)

    def router(texts: Any) -> list[str]:
        return [INTENT_ROUTES[c.intent.value] for c in classifier.classify_many(texts)]

    baseline = NearestNeighbour(
        embeddings, [e.text for e in examples], [INTENT_ROUTES[e.intent.value] for e in examples]
    )
    result = evaluate_routing(load_routing_set(DEV_DIR / name), router, baseline)
    record_property("accuracy", result["accuracy"])
    record_property("baseline_accuracy", result["baseline"]["accuracy"])
    print(f"\n{name}: accuracy {result['accuracy']}, baseline {result['baseline']['accuracy']}")
    assert result["accuracy"] >= GOAL_ACCURACY
    for route, figures in result["per_route"].items():
        if figures["n"]:
            assert figures["recall"] >= GOAL_RECALL, (route, figures)


@pytest.mark.slow
def test_routing_command_prints_one_json_object(tmp_path: Path) -> None:
    labelled = tmp_path / "small.jsonl"
    rows = [
        {"text": "where is my package", "route": "lookup_order"},
        {"text": "what is your return policy?", "route": "search_knowledge"},
        {"text": "I want to talk to a person", "route": "escalate_to_human"},
        {"text": "as I said before, the box was empty", "route": "recall_context"},
        {"text": "what's the weather in Paris", "route": "none"},
    ]
    labelled.write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = subprocess.run(
        [sys.executable, "-m", "threadline.cli.main", "eval", "routing", str(labelled), "--json"],
        env={
            **os.environ,
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
            "THREADLINE_DATA_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) >= {"accuracy", "per_route", "confusion", "baseline"}
    assert result["accuracy"] == 1.0
    assert set(result["per_route"]) == set(ROUTES)
    assert "accuracy" in result["baseline"]
