"""Retrieval evaluation: the metrics on hand-made rankings, input checks, and the CLI's JSON output."""

from __future__ import annotations

import gzip
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from threadline.core.errors import InvalidInputError
from threadline.evals.retrieval import (
    BANKING_DOCS,
    BANKING_TASKS,
    TUNING_GRID,
    Task,
    choose,
    cross_validate,
    in_split,
    load_docs,
    load_tasks,
    mrr_at,
    ndcg_at,
    recall_at,
    score_ranking,
    split_of,
)
from threadline.memory.knowledge_index import RetrievalSettings


def test_recall_counts_relevant_documents_within_the_cutoff() -> None:
    ranked = ["a", "x", "b", "y", "z", "c"]
    assert recall_at(ranked, ["a", "b", "c"], 5) == pytest.approx(2 / 3)
    assert recall_at(ranked, ["a", "b", "c"], 6) == 1.0
    assert recall_at(ranked, ["q"], 10) == 0.0
    assert recall_at([], ["a"], 10) == 0.0


def test_mrr_is_the_reciprocal_rank_of_the_first_hit() -> None:
    assert mrr_at(["x", "y", "a", "b"], ["a", "b"], 10) == pytest.approx(1 / 3)
    assert mrr_at(["a"], ["a"], 10) == 1.0
    assert mrr_at(["x", "y", "a"], ["a"], 2) == 0.0  # beyond the cutoff


def test_ndcg_against_hand_computed_values() -> None:
    assert ndcg_at(["a", "b"], ["a", "b"], 10) == pytest.approx(1.0)
    # one relevant document at rank 2: (1/log2 3) / 1
    assert ndcg_at(["x", "a"], ["a"], 10) == pytest.approx(1 / math.log2(3))
    # two relevant, found at ranks 1 and 3: (1 + 1/log2 4) / (1 + 1/log2 3)
    assert ndcg_at(["a", "x", "b"], ["a", "b"], 10) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert ndcg_at(["x", "y"], ["a"], 10) == 0.0


def test_score_ranking_names_the_cutoff() -> None:
    assert score_ranking(["a", "x"], ["a", "b"]) == {
        "recall@5": 0.5,
        "recall@10": 0.5,
        "mrr@10": 1.0,
        "ndcg@10": pytest.approx(1 / (1 + 1 / math.log2(3))),
    }
    assert set(score_ranking(["a"], ["a"], 3)) == {"recall@5", "recall@3", "mrr@3", "ndcg@3"}


def _tasks(n: int) -> list[Task]:
    return [Task(f"task_{i:03d}", f"query {i}", ("d",)) for i in range(1, n + 1)]


def test_the_split_is_fixed_disjoint_balanced_and_covers_every_task() -> None:
    tasks = _tasks(200)
    tune, held_out = in_split(tasks, "tune"), in_split(tasks, "held_out")
    assert {t.id for t in tune}.isdisjoint(t.id for t in held_out)
    assert len(tune) + len(held_out) == len(tasks) and in_split(tasks, "all") == tasks
    assert 80 <= len(tune) <= 120  # about half each
    # each task's half depends on its id alone: not on the order or the other tasks
    assert [t.id for t in in_split(list(reversed(tasks))[:50], "tune")] == [
        t.id for t in reversed(tune) if int(t.id[5:]) > 150
    ]
    # pinned, so the documented figures keep meaning what they say
    assert [split_of(f"task_{i:03d}") for i in (1, 4, 9, 10)] == ["tune", "held_out", "tune", "held_out"]
    with pytest.raises(InvalidInputError, match="unknown split"):
        in_split(tasks, "test")


def test_cross_validation_scores_each_half_with_settings_chosen_on_the_other() -> None:
    tasks = _tasks(20)
    halves = {t.id: split_of(t.id) for t in tasks}
    # setting 0 is perfect on tune tasks, useless on held-out ones; setting 1 the reverse; setting 2 is middling
    grid = [
        [{"recall@10": 1.0 if halves[t.id] == "tune" else 0.0, "mrr@10": 1.0} for t in tasks],
        [{"recall@10": 1.0 if halves[t.id] == "held_out" else 0.0, "mrr@10": 1.0} for t in tasks],
        [{"recall@10": 0.5, "mrr@10": 0.5} for _ in tasks],
    ]
    scores, chosen = cross_validate(tasks, grid, 10)
    assert chosen == [0, 1]  # for held_out: chosen on tune (setting 0); for tune: chosen on held_out (setting 1)
    assert all(s["recall@10"] == 0.0 for s in scores)  # what each choice is worth on tasks it never saw
    assert choose(grid, list(range(20)), 10) == 0  # on all tasks the three tie on recall (0.5); MRR, then order
    with pytest.raises(InvalidInputError, match="both halves"):
        cross_validate(in_split(tasks, "tune"), [g[: len(in_split(tasks, "tune"))] for g in grid], 10)


def test_choose_breaks_recall_ties_on_mrr_then_grid_order() -> None:
    grid = [
        [{"recall@10": 0.5, "mrr@10": 0.2}],
        [{"recall@10": 0.5, "mrr@10": 0.4}],
        [{"recall@10": 0.5, "mrr@10": 0.4}],
        [{"recall@10": 0.4, "mrr@10": 1.0}],
    ]
    assert choose(grid, [0], 10) == 1


def test_the_shipped_settings_are_in_the_tuning_grid() -> None:
    assert RetrievalSettings() in TUNING_GRID
    assert len(set(TUNING_GRID)) == len(TUNING_GRID)


DOCS = [
    {
        "id": "returns",
        "title": "Returning a delivered order",
        "content": "Delivered orders can be returned within "
        "30 days for a refund to the original payment method. Print the prepaid label and drop the parcel off.",
    },
    {
        "id": "cancel",
        "title": "Cancelling a pending order",
        "content": "A pending order can be cancelled from the "
        "order page until it ships. The refund reaches the card within five business days.",
    },
    {
        "id": "giftcards",
        "title": "Gift cards",
        "content": "Gift cards never expire and can be combined with other "
        "payment methods. Lost gift cards cannot be replaced.",
    },
    {
        "id": "shipping",
        "title": "Shipping times",
        "content": "Standard shipping takes three to five business days; "
        "express shipping arrives the next business day when ordered before noon.",
    },
]
TASKS = [
    {
        "id": "t1",
        "query": "Hello! My parcel arrived yesterday but the shoes are too small. I want to send them back "
        "and get my money back. How do returns work?",
        "relevant": ["returns"],
    },
    {"id": "t2", "query": "how long does express shipping take", "relevant_doc_ids": ["shipping"]},
]


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_loaders_accept_aliases_and_reject_bad_input(tmp_path: Path) -> None:
    docs = load_docs(_write(tmp_path / "docs.jsonl", DOCS))
    assert [d.id for d in docs] == ["returns", "cancel", "giftcards", "shipping"]
    tasks = load_tasks(_write(tmp_path / "tasks.jsonl", TASKS))
    assert [t.relevant for t in tasks] == [("returns",), ("shipping",)]

    with pytest.raises(InvalidInputError, match="not found"):
        load_docs(tmp_path / "missing.jsonl")
    (tmp_path / "bad.jsonl").write_text(json.dumps(DOCS[0]) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"bad.jsonl:2: not valid JSON"):
        load_docs(tmp_path / "bad.jsonl")
    with pytest.raises(InvalidInputError, match="duplicate document id"):
        load_docs(_write(tmp_path / "dup.jsonl", [DOCS[0], DOCS[0]]))
    with pytest.raises(InvalidInputError, match="relevant"):
        load_tasks(_write(tmp_path / "norel.jsonl", [{"id": "t", "query": "q", "relevant": []}]))
    with pytest.raises(InvalidInputError, match="query"):
        load_tasks(_write(tmp_path / "noquery.jsonl", [{"id": "t", "relevant": ["a"]}]))


def _threadline(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "threadline.cli.main", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_eval_retrieval_prints_one_json_object(tmp_path: Path) -> None:
    docs, tasks = _write(tmp_path / "docs.jsonl", DOCS), _write(tmp_path / "tasks.jsonl", TASKS)
    result = _threadline("eval", "retrieval", "--docs", str(docs), "--tasks", str(tasks), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["tasks"] == 2 and out["split"] == "all"
    assert set(out["retrievers"]) == {"threadline", "bm25", "dense"}
    assert {part: figures["tasks"] for part, figures in out["splits"].items()} == {"held_out": 2}
    assert out["settings"] == {"focus_clauses": 8, "clause_votes": 5, "lexical_weight": 0.0}
    for metrics in out["retrievers"].values():
        assert set(metrics) == {"recall@5", "recall@10", "mrr@10", "ndcg@10"}
        assert all(0.0 <= value <= 1.0 for value in metrics.values())
    assert out["retrievers"]["threadline"]["recall@5"] == 1.0  # four documents: everything is in the top 5
    assert out["retrievers"]["threadline"]["mrr@10"] == 1.0


def test_eval_retrieval_input_errors_are_one_line(tmp_path: Path) -> None:
    docs = _write(tmp_path / "docs.jsonl", DOCS)
    (tmp_path / "tasks.jsonl").write_text('{"id": "t1", "query": "q", "relevant": ["returns"]}\nnot json\n')
    both_held_out = _write(tmp_path / "held_out.jsonl", TASKS)  # t1 and t2 both fall in held_out
    for args in (
        ["--docs", str(tmp_path / "nope.jsonl"), "--tasks", str(tmp_path / "tasks.jsonl")],
        ["--docs", str(docs), "--tasks", str(tmp_path / "tasks.jsonl")],
        ["--docs", str(docs), "--tasks", str(both_held_out), "--split", "tune"],
        ["--docs", str(docs), "--tasks", str(both_held_out), "--split", "test"],
        ["--docs", str(docs)],  # half of a set
    ):
        result = _threadline("eval", "retrieval", *args, "--json", cwd=tmp_path)
        assert result.returncode == 2
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert "Traceback" not in result.stderr


SHARED_BANKING = Path(__file__).resolve().parents[2] / "shared" / "data" / "banking_knowledge"


def test_the_shipped_banking_set_loads_and_every_label_names_a_document() -> None:
    """`threadline eval retrieval` with no paths scores this set, so a fresh clone can run it."""
    docs, tasks = load_docs(BANKING_DOCS), load_tasks(BANKING_TASKS)
    assert (len(docs), len(tasks)) == (698, 26)
    ids = {doc.id for doc in docs}
    assert all(set(task.relevant) <= ids for task in tasks)
    assert {split_of(task.id) for task in tasks} == {"tune", "held_out"}


def test_the_shipped_banking_set_is_the_reference_files() -> None:
    if not SHARED_BANKING.exists():  # a checkout without the reference data beside it
        pytest.skip("the reference data is not beside this checkout")
    for shipped, name in ((BANKING_DOCS, "documents.jsonl"), (BANKING_TASKS, "retrieval_dev.jsonl")):
        assert gzip.decompress(shipped.read_bytes()) == (SHARED_BANKING / name).read_bytes(), name
    assert (BANKING_DOCS.parent / "LICENSE").read_bytes() == (SHARED_BANKING / "LICENSE").read_bytes()
