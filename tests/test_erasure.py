"""Erasure: after real turns on web, SMS and email, a sign-in merge, a handoff and a memory, `DELETE
/v1/customers/{id}` and `threadline customers forget` leave no byte of the customer's email or phone anywhere:
not in the SQLite files (main, -wal, -shm), not in any Postgres table nor its pg_dump."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from threadline.api.app import create_app
from threadline.core.order_actions import Address, ChangeDefaultAddress
from threadline.core.settings import Settings
from threadline.core.signing import sign_identity
from threadline.demo.loader import DATA_DIR, demo_customer_id
from threadline.memory.db import Database
from threadline.memory.erasure import AUDIT_EVENT, ERASED_CUSTOMER, CustomerErasure, subject_hash
from threadline.memory.longterm import SqlStore
from threadline.memory.schema import AnalyticsEventRow, OrderRow
from threadline.memory.turn_locks import TurnLocks

ADMIN_KEY = "admin-key-for-tests-00001"
AGENT_KEY = "agent-key-for-tests-00001"
SECRET = "site-secret"
USERS = json.loads((DATA_DIR / "tau_retail" / "users.json").read_text())
JAMES = USERS["james_li_5688"]
JAMES_ID = demo_customer_id("james_li_5688")
EMAIL = JAMES["email"]
PHONE = "+15557650123"
CARD = "4111 1111 1111 1111"
VISITOR = "visitor-erase-1"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
AGENT = {"Authorization": f"Bearer {AGENT_KEY}"}


def _settings(db_url: str, data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=db_url,
        load_demo=False,
        bootstrap_keys=f"admin:{ADMIN_KEY},agent:{AGENT_KEY}",
        web_identity_secret=SECRET,
    )


def _say(client: TestClient, channel: str, sender: str, text: str, **extra: Any) -> dict[str, Any]:
    body = {"channel": channel, "from": sender, "text": text, **extra}
    response = client.post("/v1/messages", json=body, headers=ADMIN)
    assert response.status_code == 200, response.text
    reply: dict[str, Any] = response.json()
    return reply


def _populate(client: TestClient) -> None:
    """Every table gets James's data: a visitor who signs in (a merge), SMS on a linked phone, an email that asks
    for a person (a handoff on a per-handle thread), and a long-term memory."""
    _say(client, "web", VISITOR, f"what is your return policy? my phone is {PHONE}")
    signed = sign_identity(SECRET, EMAIL)
    joined = _say(client, "web", EMAIL, "where is my order #W2611340?", identity_signature=signed, visitor_id=VISITOR)
    assert joined["customer_id"] == JAMES_ID
    linked = client.post(
        f"/v1/customers/{JAMES_ID}/identities", json={"handle_type": "phone", "handle": PHONE}, headers=ADMIN
    )
    assert linked.status_code == 201, linked.text
    texted = _say(client, "sms", PHONE, f"my card {CARD} was charged twice, email me at {EMAIL} or call {PHONE}")
    assert texted["customer_id"] == JAMES_ID
    asked = _say(client, "email", EMAIL, f"I want to talk to a person. Reach me at {PHONE}.")
    assert asked["owner"] == "queue" and asked["handoff_id"]
    services = client.app.state.services  # type: ignore[attr-defined]
    store = SqlStore(services.db, None)
    store.put(("customers", JAMES_ID, "preferences"), "contact", {"text": f"prefers texts to {PHONE}, not {EMAIL}"})
    # An order action whose audit holds the customer's words (an address line with the phone in it).
    moved = Address(
        address1="1 Main St", address2=f"buzz {PHONE}", city="Austin", state="TX", country="USA", zip="78701"
    )
    done = services.stores.orders.apply(
        ChangeDefaultAddress(address=moved), customer_id=JAMES_ID, idempotency_key="erasure-1", actor="customer"
    )
    assert done.outcome == "done"


def _sqlite_hits(db_url: str, needles: list[bytes]) -> dict[str, int]:
    path = Path(db_url.split("///", 1)[1])
    hits: dict[str, int] = {}
    for suffix in ("", "-wal", "-shm", "-journal"):
        file = Path(str(path) + suffix)
        if file.exists():
            data = file.read_bytes()
            hits[file.name] = sum(data.count(n) for n in needles)
    return hits


def _pg_dsn(db_url: str) -> str:
    return db_url.replace("postgresql+psycopg://", "postgresql://", 1)


def _pg_hits(db_url: str, needles: list[str]) -> dict[str, int]:
    """Rows of every table whose text (or any bytea column, e.g. checkpoint blobs) holds a needle."""
    hits: dict[str, int] = {}
    with psycopg.connect(_pg_dsn(db_url)) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        for table in tables:
            binary = [
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s AND data_type = 'bytea'",
                    (table,),
                )
            ]
            for needle in needles:
                checks = ["position(%s in t::text) > 0"] + [
                    f"position(convert_to(%s, 'UTF8') in t.\"{c}\") > 0" for c in binary
                ]
                sql = f'SELECT count(*) FROM "{table}" t WHERE ' + " OR ".join(checks)
                found = conn.execute(sql, [needle] * len(checks)).fetchone()
                assert found is not None
                if found[0]:
                    hits[table] = hits.get(table, 0) + int(found[0])
    return hits


def _pg_dump_hits(db_url: str, needles: list[str]) -> int | None:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        return None
    dump = subprocess.run([pg_dump, "--no-owner", _pg_dsn(db_url)], capture_output=True, check=True, timeout=120).stdout
    return sum(dump.count(n.encode()) + dump.count(n.encode().hex().encode()) for n in needles)


def _hits(db_url: str) -> dict[str, int]:
    needles = [EMAIL, PHONE, PHONE.lstrip("+1"), CARD]
    if db_url.startswith("sqlite"):
        return _sqlite_hits(db_url, [n.encode() for n in needles])
    hits = _pg_hits(db_url, needles)
    dumped = _pg_dump_hits(db_url, needles)
    if dumped is not None:
        hits["pg_dump"] = dumped
    return hits


def _erase_with_cli(db_url: str, data_dir: Path) -> str:
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "threadline.cli.main",
            "customers",
            "forget",
            JAMES_ID,
            "--database-url",
            db_url,
            "--data-dir",
            str(data_dir),
        ],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root), "THREADLINE_LOAD_DEMO": "false"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def app_settings(demo_db_url: str, tmp_path: Path) -> Settings:
    return _settings(demo_db_url, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("way", ["api", "cli"])
def test_erasure_leaves_no_byte_of_email_or_phone(app_settings: Settings, backend: str, way: str) -> None:
    db_url = app_settings.sqlalchemy_url
    with TestClient(create_app(app_settings)) as client:
        _populate(client)
        before = _hits(db_url)
        assert sum(before.values()) > 0, "the scenario must have put the customer's data in the store"
        if way == "api":
            erased = client.delete(f"/v1/customers/{JAMES_ID}", headers=ADMIN)
            assert erased.status_code == 200, erased.text
            removed = erased.json()["removed"]
            assert client.delete(f"/v1/customers/{JAMES_ID}", headers=ADMIN).status_code == 404
            assert client.delete(f"/v1/customers/{JAMES_ID}", headers=AGENT).status_code == 403
            assert client.get(f"/v1/customers/{JAMES_ID}", headers=ADMIN).status_code == 404
            after = _hits(db_url)  # while the app still runs: the WAL is there, truncated
    if way == "cli":
        printed = _erase_with_cli(db_url, app_settings.data_dir)
        assert f"erased {JAMES_ID}" in printed
        removed = {"printed": 1}
        again = subprocess.run(
            [sys.executable, "-m", "threadline.cli.main", "customers", "forget", JAMES_ID, "--database-url", db_url],
            cwd=Path(__file__).resolve().parents[1],
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "THREADLINE_LOAD_DEMO": "false"},
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert again.returncode != 0 and "no customer" in (again.stderr + again.stdout)
    if way == "cli":
        after = _hits(db_url)
    print(
        f"\n[erasure {backend}/{way}] occurrences of email/phone/card before {before} after {after}; removed {removed}"
    )
    assert sum(after.values()) == 0, after
    db = Database.from_url(db_url)
    try:
        with db.session() as s:
            orders = list(s.scalars(select(OrderRow).where(OrderRow.id.in_(JAMES["orders"]))))
            audits = list(s.scalars(select(AnalyticsEventRow).where(AnalyticsEventRow.type == AUDIT_EVENT)))
        assert len(orders) == len(JAMES["orders"]) and {o.customer_id for o in orders} == {ERASED_CUSTOMER}
        assert all(o.address == {"erased": True} for o in orders)
        assert [a.payload["subject"] for a in audits] == [subject_hash(JAMES_ID)]
        assert JAMES_ID not in json.dumps(audits[0].payload) and audits[0].customer_id is None
        counts = audits[0].payload["removed"]
        for table in (
            "messages",
            "handoffs",
            "handoff_events",
            "channel_identities",
            "identity_events",
            "memory_items",
        ):
            assert counts[table] > 0, (table, counts)
        assert counts["customers"] == 2 and counts["threads"] >= 2  # James and the merged visitor; two threads
        assert counts["order_actions_anonymised"] == 1  # kept for the books, with nothing of James's in it
        print(f"[erasure {backend}/{way}] audit counts {counts}")
    finally:
        db.dispose()


def test_erasure_waits_for_the_customers_turn(demo_db_url: str) -> None:
    db = Database.from_url(demo_db_url)
    try:
        locks = TurnLocks(db)
        done = threading.Event()
        outcome: list[Any] = []

        def erase() -> None:
            outcome.append(CustomerErasure(db, None).erase(JAMES_ID, actor="test"))
            done.set()

        with locks.hold(JAMES_ID):
            worker = threading.Thread(target=erase)
            worker.start()
            assert not done.wait(1.0), "the erase ran while a turn held the customer's lock"
        worker.join(60)
        assert done.is_set() and outcome[0].removed["customers"] == 1
    finally:
        db.dispose()
