"""`threadline eval …`: evaluation suites and labelled sets."""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from threadline.core.settings import Settings
from threadline.evals.driver import CustomerFacts, ToolResult, TurnRecord

eval_app = typer.Typer(help="Evaluation suites and labelled sets.", no_args_is_help=True)


@eval_app.command("retrieval")
def retrieval(
    docs: Annotated[Path, typer.Option("--docs", help="Documents, JSON Lines: id, title, content.")],
    tasks: Annotated[Path, typer.Option("--tasks", help="Tasks, JSON Lines: id, query, relevant (doc ids).")],
    k: Annotated[int, typer.Option("--k", help="Cut-off for recall, MRR and nDCG (recall@5 is always reported).")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the result as one JSON object.")] = False,
) -> None:
    """Score Threadline's retriever beside plain BM25 and plain dense search on a labelled set (scratch index)."""
    from threadline.core.errors import InvalidInputError
    from threadline.core.settings import load_settings
    from threadline.evals.retrieval import evaluate_retrieval, load_docs, load_tasks
    from threadline.memory.embeddings import make_embeddings

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


# --- the product behind the suite runner ------------------------------------------------------------------------


class ServicesDriver:
    """One open product (`api.services.Services`) as the runner's `Driver`."""

    def __init__(self, services: Any, customers: dict[str, CustomerFacts], workdir: Path | None = None) -> None:
        self._services, self._customers, self._workdir = services, customers, workdir
        self._seen_tools: set[str] = set()
        self._seen_handoffs: set[str] = set()

    def turn(self, channel: str, sender: str, text: str, *, vouched: bool, at: datetime) -> TurnRecord:
        from threadline.core.errors import ThreadlineError
        from threadline.core.types import Channel, InboundMessage

        record = TurnRecord(channel=channel, sender=sender, text=text, at=at)
        try:
            message = InboundMessage(
                channel=Channel(channel), sender=sender, text=text, vouched=vouched, received_at=at
            )
            outcome = self._services.conversations.handle(message)
        except ThreadlineError as error:
            record.error = error.code
            return record
        record.reply, record.tools, record.owner = outcome.reply, list(outcome.tools), outcome.owner
        record.customer_id, record.handoff_id = outcome.customer_id, outcome.handoff_id
        record.results = self._tool_results(Channel(channel), sender, outcome.customer_id)
        if outcome.handoff_id and outcome.handoff_id not in self._seen_handoffs:
            self._seen_handoffs.add(outcome.handoff_id)
            handoff = self._services.stores.handoffs.get(outcome.handoff_id)
            record.packet = handoff.packet if handoff is not None else None
        return record

    def _tool_results(self, channel: Any, sender: str, customer_id: str) -> list[ToolResult]:
        """The tool messages this turn added, from every thread the turn may have written to, and the
        knowledge-base notice the turn mentioned."""
        from langchain_core.messages import AIMessage, ToolMessage

        from threadline.api.threads import thread_config
        from threadline.memory.identity import classify_handle

        handle_type, handle = classify_handle(channel, sender)
        identity = self._services.stores.customers.find_by_handle(handle_type, handle)
        threads = [customer_id]
        if identity is not None:
            threads += [identity.customer_id, f"{identity.customer_id}~{handle_type.value}:{handle}"]
        graph = self._services.conversations._graph
        results: list[ToolResult] = []
        for thread in dict.fromkeys(threads):
            values = graph.get_state(thread_config(thread)).values
            messages = values.get("messages", [])
            notice = values.get("notice") if thread == customer_id else None
            if notice:  # a proactive notice comes from the knowledge base, not from a tool: still evidence
                results.append(ToolResult("notice", {"citation": notice.get("citation")}, str(notice.get("text"))))
            calls: dict[str | None, Any] = {
                c["id"]: c for m in messages if isinstance(m, AIMessage) for c in m.tool_calls
            }
            for message in messages:
                if isinstance(message, ToolMessage) and message.id not in self._seen_tools:
                    self._seen_tools.add(str(message.id))
                    call: dict[str, Any] = calls.get(message.tool_call_id) or {}
                    name = str(call.get("name") or message.name or "")
                    results.append(ToolResult(name, dict(call.get("args") or {}), str(message.content)))
        return results

    def publish(self, article: dict[str, Any]) -> None:
        from threadline.core.types import ArticleDraft

        stores = self._services.stores
        stores.knowledge.upsert(ArticleDraft.model_validate(article), author="eval-suite")
        self._services.index.sync(stores.knowledge)

    def annotate_order(self, order_id: str, note: str) -> None:
        from sqlalchemy import update

        from threadline.memory.schema import OrderRow

        with self._services.stores.db.session() as session:
            session.execute(update(OrderRow).where(OrderRow.id == order_id).values(notes=note))

    def order_status(self, order_id: str) -> tuple[str, int] | None:
        from threadline.core.types import OrderId

        order = self._services.stores.orders.get_order(OrderId(order_id))
        return None if order is None else (order.status.value, len(order.items))

    def customers(self) -> dict[str, CustomerFacts]:
        return self._customers

    def close(self) -> None:
        self._services.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)


def demo_customers() -> dict[str, CustomerFacts]:
    """Every demo customer's identifying facts, from the demo store's source data."""
    from threadline.demo.loader import read_json

    users, orders = read_json("tau_retail", "users.json"), read_json("tau_retail", "orders.json")
    tracking: dict[str, set[str]] = {}
    addresses: dict[str, set[str]] = {}
    for order in orders.values():
        tracking.setdefault(order["user_id"], set()).update(t for f in order["fulfillments"] for t in f["tracking_id"])
        addresses.setdefault(order["user_id"], set()).add(order["address"]["address1"])
    return {
        user_id: CustomerFacts(
            user_id=user_id,
            email=user["email"],
            name=f"{user['name']['first_name']} {user['name']['last_name']}",
            zip=user["address"]["zip"],
            order_ids=frozenset(user["orders"]),
            tracking_ids=frozenset(tracking.get(user_id, set())),
            addresses=frozenset({user["address"]["address1"], *addresses.get(user_id, set())}),
        )
        for user_id, user in users.items()
    }


class DemoProducts:
    """A `DriverFactory`: each call opens the product over a fresh copy of one demo database built on first use
    (SQLite in a temp dir). With a database URL every call opens that database instead (demo loaded if empty):
    scenarios then share it, so give a throwaway one."""

    def __init__(self, base: Settings, database_url: str | None = None) -> None:
        self._base, self._database_url = base, database_url
        self._root = Path(tempfile.mkdtemp(prefix="threadline-eval-"))
        self._template: Path | None = None
        self._customers = demo_customers()

    def _build_template(self) -> Path:
        from threadline.api.services import open_services

        template = self._root / "template"
        services = open_services(self._settings(template, None, load_demo=True))
        services.close()
        return template

    def _settings(self, data_dir: Path, database_url: str | None, *, load_demo: bool) -> Settings:
        return self._base.model_copy(
            update={
                "data_dir": data_dir,
                "database_url": database_url,
                "load_demo": load_demo,
                "cache_dir": self._base.cache_path,
                "kb_refresh_s": 60.0,  # the driver indexes the articles a scenario publishes at once: no polling
            }
        )

    def __call__(self) -> ServicesDriver:
        from threadline.api.services import open_services

        if self._database_url is not None:
            settings = self._settings(self._root / "shared", self._database_url, load_demo=True)
            return ServicesDriver(open_services(settings), self._customers)
        if self._template is None:
            self._template = self._build_template()
        workdir = Path(tempfile.mkdtemp(dir=self._root))
        shutil.copytree(self._template, workdir, dirs_exist_ok=True)
        services = open_services(self._settings(workdir, None, load_demo=False))
        return ServicesDriver(services, self._customers, workdir)

    def close(self) -> None:
        shutil.rmtree(self._root, ignore_errors=True)


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
) -> None:
    """Route accuracy of the offline model beside a 1-nearest-neighbour baseline trained on the same examples."""
    from threadline.agents.intents import IntentClassifier, load_examples
    from threadline.core.settings import load_settings
    from threadline.evals.routing_eval import (
        DEV_DIR,
        DEV_SETS,
        INTENT_ROUTES,
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
    table = Table("set", "n", "accuracy", "baseline", *(f"recall {r}" for r in ROUTE_COLUMNS), title="Routing")
    for name, figures in {**results, **({"all": result} if len(results) > 1 else {})}.items():
        recalls = [figures["per_route"].get(r, {}).get("recall") for r in ROUTE_COLUMNS]
        table.add_row(
            name,
            str(figures["n"]),
            f"{figures['accuracy']:.3f}",
            f"{figures['baseline']['accuracy']:.3f}",
            *("-" if v is None else f"{v:.3f}" for v in recalls),
        )
    Console().print(table)


ROUTE_COLUMNS = ("lookup_order", "search_knowledge", "recall_context", "escalate_to_human", "none")


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
