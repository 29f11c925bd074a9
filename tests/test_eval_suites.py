"""The CI gate: every shipped suite runs offline through the runner, on fresh demo databases, and meets its
thresholds; the CLI's exit codes, JSON, HTML report and the LangSmith bridge (local only) on a small suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from threadline.core.settings import Settings
from threadline.evals.product import DemoProducts
from threadline.evals.runner import SuiteResult, run_suite, summary
from threadline.evals.suite import load_suite, suite_paths

SUITES = suite_paths()
PASSING = """
version: 1
name: tiny
thresholds: {pass_rate: 1.0}
scenarios:
  - id: policy
    turns:
      - channel: web
        sender: visitor-tiny
        text: "What is your policy on returning delivered items?"
        expect:
          tools: {calls: [{name: search_knowledge}]}
          cites: [Returns]
"""
FAILING = PASSING.replace("cites: [Returns]", "reply_contains: ['<b>free pony</b>']")


@pytest.fixture(scope="module")
def products(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoProducts]:
    """Fresh demo products (SQLite copies of one demo database built once), with the offline model."""
    base = Settings(data_dir=tmp_path_factory.mktemp("eval-base"), cache_dir=Path(os.environ["THREADLINE_CACHE_DIR"]))
    factory = DemoProducts(base)
    yield factory
    factory.close()


@pytest.mark.slow
@pytest.mark.parametrize("path", SUITES, ids=[p.stem for p in SUITES])
def test_shipped_suite_meets_its_thresholds_offline(path: Path, products: DemoProducts, record_property: Any) -> None:
    result: SuiteResult = run_suite(load_suite(path), products, path=path)
    record_property("pass_k", result.pass_k_rate)
    failures = [
        f"{s.scenario.id}: {[c.detail for r in s.runs for c in r.checks if not c.passed]}"
        for s in result.scenarios
        if not s.pass_k
    ]
    assert result.passed, (result.shortfalls(), failures)


def test_two_trials_give_pass_k_and_the_same_transcript(products: DemoProducts, tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(PASSING)
    result = run_suite(load_suite(path), products, trials=2)
    [scenario] = result.scenarios
    assert scenario.pass_k and len(scenario.runs) == 2
    first, second = (r.as_json()["transcript"] for r in scenario.runs)
    assert [t["reply"] for t in first] == [t["reply"] for t in second]
    assert summary([result])["passed"] is True


def test_a_failing_expectation_fails_the_suite(products: DemoProducts, tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(FAILING)
    result = run_suite(load_suite(path), products)
    assert not result.passed
    assert result.shortfalls()[0].startswith("pass^1 0.000")


def test_langsmith_bridge_runs_locally_without_uploading(products: DemoProducts, tmp_path: Path) -> None:
    from threadline.evals.langsmith_bridge import push

    path = tmp_path / "tiny.yaml"
    path.write_text(PASSING)
    result = run_suite(load_suite(path), products)
    [pushed] = push([result])
    assert pushed["suite"] == "tiny"
    [row] = pushed["rows"]
    assert row["scenario"] == "policy"
    assert row["scores"]["task_success"] == 1.0
    assert row["scores"]["trajectory"] == 1.0


def _threadline(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "threadline.cli.main", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "THREADLINE_DATA_DIR": str(cwd)},
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.slow
def test_cli_exit_codes_json_and_html_report(tmp_path: Path) -> None:
    (tmp_path / "pass.yaml").write_text(PASSING)
    (tmp_path / "fail.yaml").write_text(FAILING.replace("name: tiny", "name: tiny-fail"))
    report = tmp_path / "report.html"
    passed = _threadline("eval", "run", str(tmp_path / "pass.yaml"), "--json", "--trials", "2", cwd=tmp_path)
    assert passed.returncode == 0, passed.stderr
    data = json.loads(passed.stdout)
    assert data["passed"] is True
    assert data["suites"][0]["trials"] == 2 and data["suites"][0]["pass_k"] == 1.0
    failed = _threadline(
        "eval",
        "run",
        str(tmp_path / "pass.yaml"),
        str(tmp_path / "fail.yaml"),
        "--json",
        "--report",
        str(report),
        cwd=tmp_path,
    )
    assert failed.returncode == 1
    verdicts = {s["suite"]: s["passed"] for s in json.loads(failed.stdout)["suites"]}
    assert verdicts == {"tiny": True, "tiny-fail": False}
    page = report.read_text()
    assert "tiny-fail" in page and "&lt;b&gt;free pony&lt;/b&gt;" in page and "<b>free pony</b>" not in page
    assert "search_knowledge" in page  # the failing scenario's tool trail


def test_cli_rejects_a_bad_suite_and_prints_the_schema(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("version: 1\nname: bad\nscenarios: []\n")
    bad = _threadline("eval", "run", str(tmp_path / "bad.yaml"), cwd=tmp_path)
    assert bad.returncode == 2
    assert "scenarios" in bad.stderr and "Traceback" not in bad.stderr
    missing = _threadline("eval", "run", "no-such-suite", cwd=tmp_path)
    assert missing.returncode == 2 and "no suite file or shipped suite named 'no-such-suite'" in missing.stderr
    schema = _threadline("eval", "schema", cwd=tmp_path)
    assert schema.returncode == 0
    assert json.loads(schema.stdout)["title"] == "Threadline evaluation suite"


def test_the_same_suite_runs_against_an_openai_compatible_model(
    scripted_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`--model openai:…`: the suite drives the product over real HTTP to an OpenAI-compatible server."""
    base = Settings(
        data_dir=tmp_path_factory.mktemp("eval-http"),
        cache_dir=Path(os.environ["THREADLINE_CACHE_DIR"]),
        model="openai:scripted-model",
        openai_base_url=scripted_server.base_url,
        openai_api_key="test-key",
    )
    factory = DemoProducts(base)
    path = tmp_path_factory.mktemp("suite") / "tiny.yaml"
    path.write_text(PASSING)
    seen = len(scripted_server.requests)
    try:
        result = run_suite(load_suite(path), factory, model=base.model)
    finally:
        factory.close()
    assert result.passed, result.as_json()["scenarios"]
    assert len(scripted_server.requests) > seen
