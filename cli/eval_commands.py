"""`threadline eval …`: evaluation suites and labelled sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

eval_app = typer.Typer(help="Evaluation suites and labelled sets.", no_args_is_help=True)


@eval_app.command("retrieval")
def retrieval(
    docs: Annotated[Path, typer.Option("--docs", help="Documents, JSON Lines: id, title, content.")],
    tasks: Annotated[Path, typer.Option("--tasks", help="Tasks, JSON Lines: id, query, relevant (doc ids).")],
    k: Annotated[int, typer.Option("--k", help="Cut-off for recall, MRR and nDCG (recall@5 is always reported).")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the result as one JSON object.")] = False,
) -> None:
    """Score Threadline's retriever beside plain BM25 and plain dense search on a labelled set (scratch index)."""
    from core.errors import InvalidInputError
    from core.settings import load_settings
    from evals.retrieval import evaluate_retrieval, load_docs, load_tasks
    from memory.embeddings import make_embeddings

    if k < 1:
        raise InvalidInputError("--k must be at least 1")
    documents, labelled = load_docs(docs), load_tasks(tasks)  # fail on bad input before loading the model
    err = Console(stderr=True)
    log = None if as_json else (lambda line: err.print(f"[dim]{line}[/]"))
    result = evaluate_retrieval(documents, labelled, make_embeddings(load_settings()), k=k, log=log)
    if as_json:
        typer.echo(json.dumps(result))
        return
    retrievers = result["retrievers"]
    metrics = list(next(iter(retrievers.values())))
    table = Table("retriever", *metrics, title=f"Retrieval over {result['tasks']} tasks (document level)")
    for name, values in retrievers.items():
        table.add_row(name, *(f"{values[m]:.3f}" for m in metrics))
    Console().print(table)
