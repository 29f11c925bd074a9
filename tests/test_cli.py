"""The command line: user errors are one clear line and a non-zero exit, never a traceback."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DatabaseFactory
from threadline.core.types import HandleType
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


ADMIN_RUNNER = """
import json, sys
from threadline.cli.main import app
watched, commands = json.loads(sys.argv[1]), json.loads(sys.argv[2])
loaded = {}
for args in commands:
    try:
        app(args, standalone_mode=False)
    except SystemExit as exc:
        assert not exc.code, (args, exc.code)
    loaded[" ".join(args[:2])] = sorted(m for m in watched if m in sys.modules)
print(json.dumps(loaded), file=sys.stderr)
"""
MODEL_STACK = ["torch", "faiss", "sentence_transformers", "transformers", "langgraph.graph"]
"""What loading the model, the embeddings, the knowledge index or the support graph imports."""
AGENT_FRAMEWORK = ["langgraph", "langchain_core"]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_administrative_commands_never_import_the_model_stack(demo_db_url: str, tmp_path: Path) -> None:
    """Each command that answers no customer runs without torch, FAISS, the embeddings or LangGraph, so it starts
    in a moment; `customers forget` opens the checkpointer (LangGraph's checkpoint package) to erase threads, and
    nothing more. The commands run in order in one process: a module is charged to the first one it appears after."""
    from threadline.core.auth import Role
    from threadline.memory.db import Database
    from threadline.memory.stores import Stores

    db = Database.from_url(demo_db_url)
    stores = Stores.over(db)
    key, _ = stores.api_keys.create(Role.QA, "to revoke", created_by="test")
    customer = stores.customers.find_by_handle(HandleType.EMAIL, "james.li4495@example.com")
    db.dispose()
    assert customer is not None
    where = ["--database-url", demo_db_url, "--data-dir", str(tmp_path)]
    cid = str(customer.customer_id)
    commands = [
        ["--help"],
        ["keys", "list", *where],
        ["keys", "create", "--role", "agent", "--name", "desk", *where],
        ["keys", "revoke", key.id, *where],
        ["customers", "find", "--email", "james.li4495@example.com", *where],
        ["customers", "show", cid, *where],
        ["customers", "timeline", cid, *where],
        ["customers", "link", cid, "visitor", "v-cli-imports", *where],
        ["db", "upgrade", *where],
        ["maintenance", "--dry-run", "--idle-days", "30", *where],
        ["customers", "forget", cid, *where],
    ]
    result = subprocess.run(
        [sys.executable, "-c", ADMIN_RUNNER, json.dumps(MODEL_STACK + AGENT_FRAMEWORK), json.dumps(commands)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stderr.strip().splitlines()[-1])
    assert "erased" in result.stdout and "revoked" in result.stdout  # every command ran to its end
    before_forget = {command: modules for command, modules in loaded.items() if command != "customers forget"}
    assert before_forget == {command: [] for command in before_forget}
    assert len(before_forget) == len(commands) - 1
    assert not set(loaded["customers forget"]) & set(MODEL_STACK)
