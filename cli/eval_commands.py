"""`threadline eval …`: evaluation suites and labelled sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from threadline.core.settings import Settings
from threadline.evals.driver import TurnRecord

eval_app = typer.Typer(help="Evaluation suites and labelled sets.", no_args_is_help=True)


@eval_app.command("retrieval")
def retrieval(
    docs: Annotated[
        Path | None,
        typer.Option(
            "--docs",
            help="Documents, JSON Lines (or .jsonl.gz): id, title, content. Default: the shipped banking knowledge "
            "set's 698 documents.",
            show_default=False,
        ),
    ] = None,
    tasks: Annotated[
        Path | None,
        typer.Option(
            "--tasks",
            help="Tasks, JSON Lines (or .jsonl.gz): id, query, relevant (doc ids). Default: the shipped set's 26.",
            show_default=False,
        ),
    ] = None,
    k: Annotated[int, typer.Option("--k", help="Cut-off for recall, MRR and nDCG (recall@5 is always reported).")] = 10,
    split: Annotated[
        str, typer.Option("--split", help="Tasks to score: all, tune or held_out (fixed split by task id).")
    ] = "all",
    cross_validated: Annotated[
        bool,
        typer.Option(
            "--cross-validate", help="Also choose settings on each half and score them on the other (2-fold)."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the result as one JSON object.")] = False,
) -> None:
    """Score Threadline's retriever beside plain BM25 and plain dense search on a labelled set (scratch index)."""
    from threadline.core.errors import InvalidInputError
    from threadline.core.settings import load_settings
    from threadline.evals.retrieval import (
        BANKING_DOCS,
        BANKING_TASKS,
        SPLITS,
        evaluate_retrieval,
        in_split,
        load_docs,
        load_tasks,
    )
    from threadline.memory.embeddings import make_embeddings

    if k < 1:
        raise InvalidInputError("--k must be at least 1")
    if split not in SPLITS:
        raise InvalidInputError(f"--split must be one of {', '.join(SPLITS)}")
    if docs is None or tasks is None:  # the shipped set, unless both halves of another are given
        if (docs, tasks) != (None, None):
            raise InvalidInputError("give both --docs and --tasks, or neither for the shipped banking knowledge set")
        docs, tasks = BANKING_DOCS, BANKING_TASKS
    documents, labelled = load_docs(docs), load_tasks(tasks)  # fail on bad input before loading the model
    if not in_split(labelled, split):
        raise InvalidInputError(f"no task of {tasks} falls in the {split} split")
    err = Console(stderr=True)
    log = None if as_json else (lambda line: err.print(f"[dim]{line}[/]"))
    result = evaluate_retrieval(
        documents,
        labelled,
        make_embeddings(load_settings()),
        k=k,
        split=split,
        cross_validated=cross_validated,
        log=log,
    )
    if as_json:
        typer.echo(json.dumps(result))
        return
    console = Console()
    _retrieval_table(console, f"Retrieval over {result['tasks']} tasks ({split}; document level)", result)
    if split == "all":
        for part, figures in result["splits"].items():
            _retrieval_table(console, f"{part}: {figures['tasks']} tasks", figures)
    if "cross_validated" in result:
        cv = result["cross_validated"]
        _retrieval_table(console, f"2-fold cross-validated over {cv['tasks']} tasks", cv)
        for fold in cv["folds"]:
            console.print(f"chosen on {fold['tuned_on']} for {fold['scored_on']}: {fold['settings']}")
    console.print(f"shipped settings: {result['settings']}")


def _retrieval_table(console: Console, title: str, figures: dict[str, Any]) -> None:
    retrievers = figures["retrievers"]
    metrics = list(next(iter(retrievers.values())))
    table = Table("retriever", *metrics, title=title)
    for name, values in retrievers.items():
        table.add_row(name, *(f"{values[m]:.3f}" for m in metrics))
    console.print(table)


# --- commands ---------------------------------------------------------------------------------------------------


@eval_app.command("schema")
def schema() -> None:
    """Print the JSON Schema of the suite format (shipped as evals/suite.schema.json)."""
    from threadline.evals.suite import json_schema

    typer.echo(json_schema(), nl=False)


def judge_from(model: str | None, base: Settings) -> Any:
    """An LLM judge over the configured OpenAI-compatible endpoint, or None without a judge model."""
    if not model:
        return None
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(
        model=model.removeprefix("openai:"),
        base_url=base.openai_base_url,
        api_key=base.openai_api_key,
        temperature=0,
        timeout=base.model_timeout_s,
    )

    def judge(rubric: str, record: TurnRecord) -> tuple[bool, str]:
        prompt = (
            "You grade a retail support assistant's reply. Answer PASS or FAIL on the first line, then one sentence "
            f"why.\nRubric: {rubric}\nCustomer: {record.text[:4000]}\nTool results: "
            f"{[r.content[:1500] for r in record.results]}\nReply: {record.reply}"
        )
        verdict = str(chat.invoke(prompt).content).strip()
        return verdict.upper().startswith("PASS"), verdict[:300]

    return judge


@eval_app.command("run")
def run(
    suites: Annotated[
        list[str] | None, typer.Argument(help="Suite files or shipped suite names; default: all.")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="'offline' or 'openai:<model>' (THREADLINE_MODEL, base URL, key).")
    ] = None,
    trials: Annotated[int, typer.Option("--trials", min=1, max=100, help="Trials per scenario: pass^k.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the results as one JSON object.")] = False,
    report: Annotated[Path | None, typer.Option("--report", help="Write a self-contained HTML report here.")] = None,
    langsmith: Annotated[
        bool, typer.Option("--langsmith", help="Also run the results through langsmith.evaluate.")
    ] = False,
    upload: Annotated[bool, typer.Option("--upload", help="With --langsmith: upload dataset and results.")] = False,
    judge_model: Annotated[
        str | None, typer.Option("--judge-model", help="An OpenAI-compatible model for rubric checks; none: skipped.")
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Run every scenario on this throwaway database (demo loaded if empty) instead of a fresh SQLite copy.",
        ),
    ] = None,
    offline_only: Annotated[bool, typer.Option("--offline-only", help="Only suites marked offline.")] = False,
) -> None:
    """Run evaluation suites on fresh demo databases; exits 1 when a suite misses its thresholds."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from threadline.core.settings import load_settings
    from threadline.evals.product import DemoProducts
    from threadline.evals.report import render_html
    from threadline.evals.runner import run_suite, summary
    from threadline.evals.suite import load_suite, suite_paths

    loaded = [(path, load_suite(path)) for path in suite_paths(suites)]  # fail on bad suites before any work
    loaded = [(p, s) for p, s in loaded if s.offline or not offline_only]
    base = load_settings(**({"model": model} if model else {}))
    products = DemoProducts(base, database_url)
    total = sum(len(s.scenarios) * trials for _, s in loaded)
    results = []
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=Console(stderr=True))
    try:
        with bar:
            task = bar.add_task("evaluating", total=total)
            for path, suite in loaded:
                results.append(
                    run_suite(
                        suite,
                        products,
                        path=path,
                        trials=trials,
                        model=base.model,
                        judge=judge_from(judge_model, base),
                        progress=lambda name: bar.update(task, advance=1, description=name),
                    )
                )
    finally:
        products.close()
    data = summary(results)
    if report is not None:
        report.write_text(render_html(data), encoding="utf-8")
    if langsmith:
        from threadline.evals.langsmith_bridge import push

        data["langsmith"] = push(results, upload=upload)
    if as_json:
        typer.echo(json.dumps(data, default=str))
    else:
        table = Table("suite", "scenarios", f"pass^{trials}", "verdict", "below threshold", title="Evaluation suites")
        for result in results:
            verdict = "[green]pass[/]" if result.passed else "[red]FAIL[/]"
            table.add_row(
                result.suite.name,
                str(len(result.scenarios)),
                f"{result.pass_k_rate:.3f}",
                verdict,
                "; ".join(result.shortfalls()),
            )
        Console().print(table)
    if not data["passed"]:
        raise typer.Exit(1)


@eval_app.command("routing")
def routing(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Labelled JSON Lines {text, route}; default: the shipped dev sets.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the result as one JSON object.")] = False,
    unseen_domains: Annotated[
        bool,
        typer.Option(
            "--unseen-domains",
            help="Off-topic rejection on clinc150 domains left out of the examples, one fold per domain "
            "(evals/routing_unseen.py), with lookup_order recall on the dev sets' order messages.",
        ),
    ] = False,
    clinc_dir: Annotated[
        Path | None,
        typer.Option(
            help="clinc150 data (clinc150_train_val.json, domains.json); default the copy shipped in "
            "evals/routing/clinc150."
        ),
    ] = None,
) -> None:
    """Route accuracy of the offline model beside a 1-nearest-neighbour baseline trained on the same examples."""
    from threadline.agents.intents import IntentClassifier, load_examples
    from threadline.core.settings import load_settings

    if unseen_domains:
        _unseen_domains(clinc_dir, as_json)
        return
    from threadline.evals.routing_eval import (
        DEV_DIR,
        DEV_SETS,
        INTENT_ROUTES,
        ROUTES,
        NearestNeighbour,
        evaluate_routing,
        load_routing_set,
    )
    from threadline.memory.embeddings import make_embeddings

    paths = files or [DEV_DIR / name for name in DEV_SETS]
    sets = {path.name: load_routing_set(path) for path in paths}  # fail on bad input before loading the model
    settings = load_settings()
    embeddings = make_embeddings(settings)
    examples = load_examples("all")
    classifier = IntentClassifier(embeddings, examples, cache_dir=settings.cache_path)

    def router(texts: Any) -> list[str]:
        return [INTENT_ROUTES[c.intent.value] for c in classifier.classify_many(texts)]

    baseline = NearestNeighbour(
        embeddings, [e.text for e in examples], [INTENT_ROUTES[e.intent.value] for e in examples]
    )
    results = {name: evaluate_routing(labelled, router, baseline) for name, labelled in sets.items()}
    result = results[next(iter(results))] if len(results) == 1 else _pooled(results)
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table("set", "n", "accuracy", "baseline", *(f"recall {r}" for r in ROUTES), title="Routing")
    for name, figures in {**results, **({"all": result} if len(results) > 1 else {})}.items():
        recalls = [figures["per_route"].get(r, {}).get("recall") for r in ROUTES]
        table.add_row(
            name,
            str(figures["n"]),
            f"{figures['accuracy']:.3f}",
            f"{figures['baseline']['accuracy']:.3f}",
            *("-" if v is None else f"{v:.3f}" for v in recalls),
        )
    Console().print(table)


def _unseen_domains(clinc_dir: Path | None, as_json: bool) -> None:
    """`eval routing --unseen-domains`: the leave-one-domain-out figures, as JSON or a table per fold."""
    from threadline.agents.intents import Example, IntentClassifier, load_examples
    from threadline.core.settings import load_settings
    from threadline.evals.routing_eval import INTENT_ROUTES
    from threadline.evals.routing_unseen import default_clinc_dir, evaluate_unseen_domains
    from threadline.memory.embeddings import make_embeddings

    directory = clinc_dir or default_clinc_dir()
    if directory is None:
        raise typer.BadParameter("clinc150 not found: pass --clinc-dir")
    embeddings = make_embeddings(load_settings())

    def make_router(examples: list[Example]) -> Any:
        classifier = IntentClassifier(embeddings, examples)
        return lambda texts: [INTENT_ROUTES[c.intent.value] for c in classifier.classify_many(texts)]

    result = evaluate_unseen_domains(load_examples("all"), make_router, directory)
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table("held-out domain", "n", "none recall", "lookup_order recall", "accuracy", title="Unseen domains")
    for domain, figures in {**result["folds"], "all": result}.items():
        table.add_row(
            domain,
            str(figures["n"]),
            f"{figures['none_recall']:.3f}",
            f"{figures['lookup_order_recall']:.3f}",
            f"{figures['accuracy']:.3f}",
        )
    Console().print(table)


def _pooled(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Several sets: the figures over all of them pooled (from their confusion matrices), and each set's own."""
    from threadline.evals.routing_eval import score

    def pool(key: str | None) -> dict[str, Any]:
        gold: list[str] = []
        predicted: list[str] = []
        for figures in results.values():
            confusion = figures[key]["confusion"] if key else figures["confusion"]
            for want, row in confusion.items():
                for got, n in row.items():
                    gold += [want] * n
                    predicted += [got] * n
        return score(gold, predicted)

    pooled = pool(None)
    pooled["n"] = sum(f["n"] for f in results.values())
    pooled["baseline"] = pool("baseline")
    pooled["sets"] = results
    return pooled
