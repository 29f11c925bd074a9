"""The repository keeps its promises: every setting documented, CI runs the README's test command."""

import re
from pathlib import Path

from threadline.core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _variables() -> set[str]:
    return {f"THREADLINE_{name.upper()}" for name in Settings.model_fields}


def test_env_example_lists_every_setting() -> None:
    listed = set(re.findall(r"^(THREADLINE_[A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert listed == _variables()


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = sorted(v for v in _variables() if f"`{v}`" not in readme)
    assert missing == []


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- test-command -->\s*```(?:sh|bash)?\n(.+?)\n```", readme, re.S)
    assert match, "README must mark its test command with <!-- test-command -->"
    command = match.group(1).strip()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert command in ci_lines


def test_make_run_bootstraps_the_public_demo_keys_the_server_recognises() -> None:
    """`threadline serve` prints the demo agent key only when the configured keys are exactly these."""
    from threadline.core.auth import DEMO_BOOTSTRAP_KEYS

    makefile = (ROOT / "Makefile").read_text()
    assert f"THREADLINE_BOOTSTRAP_KEYS:-{DEMO_BOOTSTRAP_KEYS}}}" in makefile
