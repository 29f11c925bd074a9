"""The command line: user errors are one clear line and a non-zero exit, never a traceback."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DatabaseFactory
from threadline.memory import migrate


def _threadline(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "threadline.cli.main", *args],
        cwd=cwd,
        env={**full_env, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["db", "upgrade", "--database-url", "mysql://root@localhost/x"], {}, "unsupported database URL scheme"),
        (["db", "upgrade"], {"THREADLINE_MODEL": "gpt-4"}, "THREADLINE_MODEL"),
        (["serve", "--host", "0.0.0.0"], {"THREADLINE_DEMO_PAGE": "true"}, "THREADLINE_DEMO_PAGE"),
        (
            ["demo", "load", "--database-url", "postgresql://postgres@127.0.0.1:9/nowhere"],
            {},
            "database unreachable at postgresql+psycopg://postgres@127.0.0.1:9/nowhere",
        ),
    ],
)
def test_user_errors_print_one_line_and_exit_2(
    tmp_path: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    result = _threadline(*args, cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert expected in lines[0]


def test_db_upgrade_reports_the_revision(db_factory: DatabaseFactory, tmp_path: Path) -> None:
    url = db_factory.empty_url()
    result = _threadline("db", "upgrade", "--database-url", url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"revision {migrate.head_revision()}" in result.stdout


def test_help_lists_the_command_groups(tmp_path: Path) -> None:
    result = _threadline("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("serve", "demo", "db"):
        assert command in result.stdout


@pytest.mark.slow
def test_chat_one_turn_prints_the_outcome_as_json(demo_db_url: str, tmp_path: Path) -> None:
    question = "What is your policy on returning delivered items?"
    args = ["chat", "--channel", "web", "--from", "visitor-9", "--message", question, "--json"]
    result = _threadline(*args, "--database-url", demo_db_url, "--data-dir", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert set(outcome) == {"customer_id", "reply", "tools", "owner", "handoff_id"}
    assert outcome["tools"] == [
        {"name": "search_knowledge", "args": {"query": "What is your policy on returning delivered items?"}}
    ]
    assert outcome["owner"] == "ai"
    assert "(Source: Returns.)" in outcome["reply"]


def test_chat_json_without_a_message_is_a_usage_error(tmp_path: Path) -> None:
    result = _threadline("chat", "--json", cwd=tmp_path)
    assert result.returncode == 2
    assert "--json needs --message" in result.stderr


NEW_VISITOR = re.compile(r"as new visitor (cli-visitor-[0-9a-f]{12}) \(continue later with --from \1\)")
SILENT = "(a human agent owns this case"


@pytest.mark.slow
def test_each_interactive_chat_without_from_is_a_new_visitor(demo_db_url: str, tmp_path: Path) -> None:
    database = ["--database-url", demo_db_url, "--data-dir", str(tmp_path)]

    def session(text: str, *args: str) -> tuple[str | None, str]:
        result = _threadline("chat", *args, *database, cwd=tmp_path, stdin=text)
        assert result.returncode == 0, result.stderr
        found = NEW_VISITOR.search(result.stdout)
        return (found.group(1) if found else None), result.stdout

    first, escalated = session("I'd like to speak to a person, please\nhello?\nquit\n")
    assert first is not None, escalated
    assert "passed your conversation to a member of our team" in escalated
    assert "added this to your case" in escalated  # the person's queue acknowledgement, not an answer

    # The next session is someone else: the first visitor's case does not silence it.
    second, answered = session("What is your return policy?\n")
    assert second is not None and second != first, answered
    assert "(Source: Returns.)" in " ".join(answered.split()) and SILENT not in answered  # the terminal wraps lines

    # With --from, a session continues as that visitor: still with the team.
    resumed, waiting = session("are you there?\n", "--from", first)
    assert resumed is None and f"as {first}." in waiting
    assert "added this to your case" in waiting or SILENT in waiting


@pytest.mark.slow
def test_one_message_without_from_is_a_new_visitor_named_on_stderr(demo_db_url: str, tmp_path: Path) -> None:
    database = ["--database-url", demo_db_url, "--data-dir", str(tmp_path)]
    args = ["chat", "--message", "I'd like to speak to a person, please", "--json", *database]
    escalated = _threadline(*args, cwd=tmp_path)
    assert escalated.returncode == 0, escalated.stderr
    assert json.loads(escalated.stdout)["owner"] == "queue"  # stdout stays one JSON document
    visitor = re.search(r"as new visitor (cli-visitor-[0-9a-f]{12}); continue with --from \1", escalated.stderr)
    assert visitor is not None, escalated.stderr

    # The next one is someone else (continuing with --from is the interactive test's: each run loads the model).
    question = ["chat", "--message", "What is your return policy?", "--json", *database]
    fresh = json.loads(_threadline(*question, cwd=tmp_path).stdout)
    assert fresh["owner"] == "ai" and "(Source: Returns.)" in fresh["reply"]
    assert fresh["customer_id"] != json.loads(escalated.stdout)["customer_id"]


@pytest.mark.parametrize(("channel", "needed"), [("sms", "a phone number"), ("email", "an email address")])
def test_chat_on_a_channel_of_phones_or_emails_needs_from(tmp_path: Path, channel: str, needed: str) -> None:
    result = _threadline("chat", "--channel", channel, cwd=tmp_path, stdin="hi\n")
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: --channel {channel} needs --from ({needed})"
