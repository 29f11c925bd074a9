"""Suite results through `langsmith.evaluate`: each scenario is a dataset example, its recorded run the target's
output, and each evaluator a LangSmith evaluator reading that run's checks.

Local by default (`upload_runs=False`, the current name of `upload_results`): nothing leaves the machine and no
API key is needed. With `upload=True` the dataset is created or extended in LangSmith and the experiment uploaded.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from threadline.evals.evaluators import EVALUATORS
from threadline.evals.runner import SuiteResult

NAMESPACE = uuid.UUID("5b0f3c1e-6f7a-4d3b-9a57-0c5f1d9e2a41")


def _examples(result: SuiteResult) -> list[dict[str, Any]]:
    return [
        {
            "inputs": {
                "suite": result.suite.name,
                "scenario": s.scenario.id,
                "turns": [t.text for t in s.scenario.turns],
            },
            "outputs": {"expect": s.scenario.model_dump(mode="json", include={"turns", "expect"})},
        }
        for s in result.scenarios
    ]


def _evaluator(name: str) -> Callable[..., dict[str, Any]]:
    def evaluate(outputs: dict[str, Any], **_: Any) -> dict[str, Any]:
        checks = [c for c in outputs.get("checks", []) if c["evaluator"] == name and not c["skipped"]]
        if name == "task_success":
            return {"key": name, "score": float(bool(outputs.get("passed")))}
        score = sum(c["passed"] for c in checks) / len(checks) if checks else None
        return {"key": name, "score": score, "comment": "; ".join(c["detail"] for c in checks if not c["passed"])}

    evaluate.__name__ = name
    return evaluate


def push(results: Sequence[SuiteResult], *, upload: bool = False, client: Any = None) -> list[dict[str, Any]]:
    """Run `langsmith.evaluate` over recorded suite results; returns per-suite {suite, rows, scores}."""
    from langsmith import Client, evaluate, schemas

    if not upload and client is None:
        # A client that knows it has no server: nothing is fetched, traced or uploaded.
        client = Client(api_key="local-only", info={}, auto_batch_tracing=False)
    summaries = []
    for result in results:
        runs = {s.scenario.id: s.runs[-1].as_json() for s in result.scenarios}
        dataset_id = uuid.uuid5(NAMESPACE, f"threadline-eval-{result.suite.name}-v{result.suite.version}")
        rows = _examples(result)
        if upload:
            client = client or Client()
            name = f"threadline-eval-{result.suite.name}"
            if not client.has_dataset(dataset_name=name):
                client.create_dataset(name, description=result.suite.description)
                client.create_examples(dataset_name=name, examples=rows)
            data: Any = name
        else:
            data = [
                schemas.Example(
                    id=uuid.uuid5(dataset_id, row["inputs"]["scenario"]),
                    dataset_id=dataset_id,
                    inputs=row["inputs"],
                    outputs=row["outputs"],
                )
                for row in rows
            ]

        def target(inputs: dict[str, Any], runs: dict[str, Any] = runs) -> dict[str, Any]:
            return dict(runs[inputs["scenario"]])

        # The upload switch is flagged as beta on every call; progress lines go to stderr, never into --json.
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")
            experiment = evaluate(
                target,
                data=data,
                evaluators=[_evaluator(name) for name in EVALUATORS],
                experiment_prefix=f"threadline-{result.suite.name}",
                metadata={"model": result.model, "trials": result.trials, "suite_version": result.suite.version},
                upload_runs=upload,
                client=client,
            )
        table = []
        for row in experiment:
            scores = {r.key: r.score for r in row["evaluation_results"]["results"] if r.score is not None}
            inputs = row["example"].inputs or {}
            table.append({"scenario": inputs.get("scenario"), "scores": scores})
        summaries.append({"suite": result.suite.name, "rows": table})
    return summaries
