"""Retention: keep the latest N checkpoints per thread, drop idle threads and old messages; conversations go on
after a prune, `threadline maintenance` runs it (and `--dry-run` counts), and the app can run it at start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from threadline.api.app import create_app
from threadline.core.settings import Settings
from threadline.core.types import Channel, InboundMessage
from threadline.memory.db import Database
from threadline.memory.retention import RetentionPolicy, checkpoint_time, run_retention
from threadline.memory.schema import MessageRow, utcnow
from threadline.product.services import Services, open_services

PHONES = ("+15557651001", "+15557651002")
ROOT = Path(__file__).resolve().parents[1]


def _settings(db_url: str, data_dir: Path, **extra: object) -> Settings:
    """Settings whose turns keep every checkpoint (no per-turn trim), so the history to prune builds up."""
    return Settings(data_dir=data_dir, database_url=db_url, load_demo=False, checkpoint_history=0, **extra)  # type: ignore[arg-type]


def _talk(services: Services, turns: int = 3) -> list[str]:
    customers = []
    for phone in PHONES:
        for n in range(turns):
            said = f"question {n}: what is your return policy?"
            outcome = services.turns.handle(InboundMessage(channel=Channel.SMS, sender=phone, text=said))
        customers.append(outcome.customer_id)
    return customers


def _per_thread(db: Database) -> Counter[str]:
    with db.engine.connect() as conn:
        return Counter(str(r[0]) for r in conn.execute(text("SELECT thread_id FROM checkpoints")))


def _messages(services: Services, customer_id: str) -> list[str]:
    state = services.threads.values(customer_id)
    return [str(m.content) for m in state.get("messages", [])]


def test_keeping_the_latest_checkpoints_loses_no_conversation(demo_db_url: str, tmp_path: Path, backend: str) -> None:
    services = open_services(_settings(demo_db_url, tmp_path))
    try:
        customers = _talk(services)
        before = _per_thread(services.db)
        states = {c: _messages(services, c) for c in customers}
        dry = run_retention(services.db, RetentionPolicy(checkpoints_keep=2), dry_run=True)
        assert _per_thread(services.db) == before
        report = run_retention(services.db, RetentionPolicy(checkpoints_keep=2))
        after = _per_thread(services.db)
        print(
            f"\n[retention {backend}] checkpoints per thread before {dict(before)} after {dict(after)}; "
            f"removed {report.removed}"
        )
        assert dry.removed["checkpoints"] == report.removed["checkpoints"] == sum(before.values()) - sum(after.values())
        assert all(n <= 2 for n in after.values()) and set(after) == set(before)
        assert {c: _messages(services, c) for c in customers} == states  # the latest state is intact
        if backend == "postgres":
            assert report.removed["checkpoint_blobs"] > 0
        again = services.turns.handle(
            InboundMessage(channel=Channel.SMS, sender=PHONES[0], text="and do you ship abroad?")
        )
        assert again.customer_id == customers[0]
        assert _messages(services, customers[0])[: len(states[customers[0]])] == states[customers[0]]
    finally:
        services.close()


def test_idle_threads_and_old_messages_go(demo_db_url: str, tmp_path: Path) -> None:
    services = open_services(_settings(demo_db_url, tmp_path))
    try:
        customers = _talk(services, turns=1)
        latest = max(filter(None, (checkpoint_time(c) for c in _checkpoint_ids(services.db))))
        assert abs(latest - utcnow()) < timedelta(hours=1)  # the ids carry their creation time
        policy = RetentionPolicy(threads_idle_days=30, messages_days=30)
        assert run_retention(services.db, policy).removed == {}  # nothing is that old yet
        later = utcnow() + timedelta(days=31)
        counted = run_retention(services.db, policy, dry_run=True, now=later)
        report = run_retention(services.db, policy, now=later)
        print(f"\n[retention idle] dry run {counted.removed}; removed {report.removed}")
        assert counted.removed == {k: v for k, v in report.removed.items() if k != "checkpoint_blobs"}
        assert report.removed["idle_threads"] >= len(customers) and _per_thread(services.db) == Counter()
        with services.db.session() as s:
            assert s.scalar(select(func.count()).select_from(MessageRow)) == 0
        assert report.removed["messages"] >= 2 * len(customers)
    finally:
        services.close()


def _checkpoint_ids(db: Database) -> list[str]:
    with db.engine.connect() as conn:
        return [str(r[0]) for r in conn.execute(text("SELECT checkpoint_id FROM checkpoints"))]


@pytest.mark.slow
def test_the_maintenance_command_and_the_start_up_job(demo_db_url: str, tmp_path: Path) -> None:
    services = open_services(_settings(demo_db_url, tmp_path))
    try:
        _talk(services, turns=3)
    finally:
        services.close()
    db = Database.from_url(demo_db_url)
    total = sum(_per_thread(db).values())
    args = [
        sys.executable,
        "-m",
        "threadline.cli.main",
        "maintenance",
        "--keep-checkpoints",
        "2",
        "--database-url",
        demo_db_url,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "THREADLINE_LOAD_DEMO": "false"}
    dry = subprocess.run([*args, "--dry-run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "would remove" in dry.stdout and sum(_per_thread(db).values()) == total
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    kept = sum(_per_thread(db).values())
    print(f"\n[retention cli] {dry.stdout.strip()} | {done.stdout.strip()} | checkpoints {total} -> {kept}")
    assert f"{total - kept} checkpoints" in done.stdout and all(n == 2 for n in _per_thread(db).values())
    settings = _settings(demo_db_url, tmp_path, retention_at_startup=True, retention_checkpoints_keep=1)
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200  # ready while the job runs in the background
        client.app.state.retention.join(60)  # type: ignore[attr-defined]
        assert all(n == 1 for n in _per_thread(db).values())
    db.dispose()
