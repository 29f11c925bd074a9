"""Crash recovery: a real server is SIGKILLed at each named point of a turn (`core.faults`), restarted, and the
channel redelivers the same message with the same provider id, as Twilio or Meta retry a webhook that failed.

One message walks through all three crash points in a row (killed after it is accepted, then inside the
escalation tool on the redelivery, then after the reply is logged but before it is sent), and then is delivered
once more. The database must show the message logged once, one reply, and the side effect (the handoff the
escalation creates) done once, on SQLite and on Postgres.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from threadline.core.faults import FAULT_POINT_ENV
from threadline.memory.db import Database
from threadline.memory.schema import HandoffEventRow, HandoffRow, MessageRow
from threadline.product.loopback import free_port, wait_until_ready

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
KEY = "channel-key-crash-00001"
ESCALATION = {
    "channel": "sms",
    "from": "+15550104444",
    "text": "I want to talk to a person please",
    "message_id": "SM-c1",
}
"""Its turn has a side effect: the handoff the escalation creates."""
QUESTION = {"channel": "sms", "from": "+15550104445", "text": "where is my order #W2611340?", "message_id": "SM-c2"}
"""Its turn calls a tool (lookup_order), where the server is killed."""
START_TIMEOUT_S = 180
LEASE_S = "2"
"""The SQLite turn lease a killed process leaves behind lapses after this, so the restarted server can take it."""


@contextmanager
def server(db_url: str, data_dir: Path, fault: str | None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`threadline serve` as a real process on a free loopback port; yields its base URL once ready."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "THREADLINE_DATA_DIR": str(data_dir),
        "THREADLINE_DATABASE_URL": db_url,
        "THREADLINE_LOAD_DEMO": "false",
        "THREADLINE_BOOTSTRAP_KEYS": f"channel:{KEY}",
        "THREADLINE_TURN_LEASE_S": LEASE_S,
    }
    env.pop(FAULT_POINT_ENV, None)
    if fault is not None:
        env[FAULT_POINT_ENV] = fault
    proc = subprocess.Popen(
        [sys.executable, "-m", "threadline.cli.main", "serve", "--port", str(port)],
        cwd=data_dir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        if wait_until_ready(base, lambda: proc.poll() is None, START_TIMEOUT_S) != 200:
            pytest.fail(f"the server did not become ready (exit code {proc.poll()})")
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)


def deliver(base: str, message: dict[str, str]) -> httpx.Response:
    """One delivery of `message`, as the channel would retry it: same provider id, same Idempotency-Key."""
    return httpx.post(
        f"{base}/v1/messages",
        json=message,
        headers={"Authorization": f"Bearer {KEY}", "Idempotency-Key": message["message_id"]},
        timeout=60,
    )


def killed_by(base: str, proc: subprocess.Popen[bytes], message: dict[str, str]) -> None:
    """Deliver `message` to a server armed with a fault point: it dies mid-request and answers nothing."""
    with pytest.raises(httpx.TransportError):
        deliver(base, message)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def ledger(db: Database, message: dict[str, str]) -> dict[str, Any]:
    """What the database holds for `message`: its log rows, the replies to its sender, handoffs created."""
    with db.session() as s:
        inbound = list(s.scalars(select(MessageRow).where(MessageRow.provider_message_id == message["message_id"])))
        customers = {r.customer_id for r in inbound}
        replies = s.scalars(
            select(MessageRow.text).where(MessageRow.direction == "outbound", MessageRow.customer_id.in_(customers))
        )
        handoffs = list(s.scalars(select(HandoffRow.id).where(HandoffRow.customer_id.in_(customers))))
        created = s.scalar(
            select(func.count())
            .select_from(HandoffEventRow)
            .where(HandoffEventRow.handoff_id.in_(handoffs), HandoffEventRow.kind == "created")
        )
    return {
        "inbound": len(inbound),
        "handled": [r.handled for r in inbound],
        "replies": list(replies),
        "handoffs": len(handoffs),
        "created_events": created,
    }


UNANSWERED = {"inbound": 1, "handled": [None], "replies": [], "handoffs": 0, "created_events": 0}


def test_a_message_survives_a_kill_at_every_point_of_its_turn(
    backend: str, demo_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = Database.from_url(demo_db_url)
    seen: dict[str, dict[str, Any]] = {}
    try:
        with server(demo_db_url, tmp_path, "after_accept") as (base, proc):
            killed_by(base, proc, ESCALATION)
        seen["escalation, killed after_accept"] = ledger(db, ESCALATION)
        with server(demo_db_url, tmp_path, "before_reply") as (base, proc):
            killed_by(base, proc, ESCALATION)  # the redelivery runs the turn, which dies before answering
        seen["escalation, redelivered, killed before_reply"] = ledger(db, ESCALATION)
        with server(demo_db_url, tmp_path, "during_tool") as (base, proc):
            killed_by(base, proc, QUESTION)
        seen["question, killed during_tool"] = ledger(db, QUESTION)
        with server(demo_db_url, tmp_path, None) as (base, _):
            outcomes = [deliver(base, m) for m in (ESCALATION, ESCALATION, QUESTION, QUESTION)]
        seen["escalation, redelivered twice after restart"] = ledger(db, ESCALATION)
        seen["question, redelivered twice after restart"] = ledger(db, QUESTION)
    finally:
        db.dispose()
    with capsys.disabled():
        for label, state in seen.items():
            print(f"\n[crash {backend}] {label}: {state}")
    first, logged, interrupted, escalation, question = seen.values()
    assert first == UNANSWERED  # killed after acceptance: logged, unanswered, nothing else happened yet
    # The redelivery answered it (the reply is logged: the outbox) and handed the case over, once.
    assert logged["inbound"] == 1
    assert logged["handled"] == ["answered"]
    assert len(logged["replies"]) == 1
    assert logged["handoffs"] == logged["created_events"] == 1
    assert interrupted == UNANSWERED  # killed inside the tool: logged, unanswered
    assert [o.status_code for o in outcomes] == [200] * 4, [o.text for o in outcomes]
    answers = [o.json() for o in outcomes]
    # After the restart the logged reply comes back for the escalation; nothing runs twice.
    assert answers[0]["reply"] == answers[1]["reply"] == logged["replies"][0]
    assert answers[0]["duplicate"] is answers[1]["duplicate"] is True
    assert escalation == logged
    # The interrupted question is answered by its redelivery, exactly once.
    assert answers[2]["reply"] and answers[3]["reply"] == answers[2]["reply"]
    assert [a["duplicate"] for a in answers[2:]] == [False, True]
    assert question == {**UNANSWERED, "handled": ["answered"], "replies": [answers[2]["reply"]]}


SOFIA_PHONE = "+15550104446"
SOFIA_EMAIL = "sofia.rossi2645@example.com"


def test_a_confirmed_cancellation_killed_after_the_order_write_runs_once_and_says_so(
    backend: str, demo_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The customer's yes cancels the order; the server is SIGKILLed right after the order write, before any
    reply. The provider redelivers the yes: the cancellation is not run again, and the one reply says it is done."""
    from threadline.demo.loader import demo_customer_id
    from threadline.memory.stores import Stores

    def said(text: str, message_id: str) -> dict[str, str]:
        return {"channel": "sms", "from": SOFIA_PHONE, "text": text, "message_id": message_id}

    yes = said("yes pls", "SM-yes")
    db = Database.from_url(demo_db_url)
    stores = Stores.over(db)
    try:
        with server(demo_db_url, tmp_path, None) as (base, _):
            assert deliver(base, said(SOFIA_EMAIL, "SM-v")).status_code == 200
            proposed = deliver(base, said("cancel #W5918442 please, ordered by mistake", "SM-p")).json()
        with server(demo_db_url, tmp_path, "after_order_write") as (base, proc):
            killed_by(base, proc, yes)
        order = stores.orders.get_order("#W5918442")
        written = (
            order.status.value if order else None,
            len(stores.orders.actions(demo_customer_id("sofia_rossi_8776"))),
        )
        with server(demo_db_url, tmp_path, None) as (base, _):
            answers = [deliver(base, yes).json() for _ in range(3)]
        order = stores.orders.get_order("#W5918442")
        actions = stores.orders.actions(demo_customer_id("sofia_rossi_8776"))
        replies = ledger(db, yes)["replies"]
    finally:
        db.dispose()
    with capsys.disabled():
        print(f"\n[crash {backend}] after the order write: {written}; after redelivery: {order and order.status.value}")
    assert "Just to confirm" in proposed["reply"]
    assert written == ("cancelled", 1)  # the write happened before the kill, the reply did not
    assert order is not None and [p.transaction_type for p in order.payments] == ["payment", "refund"]
    assert len(actions) == 1 and actions[0].outcome == "done"
    assert "cancelled" in answers[0]["reply"] and answers[1]["duplicate"] and answers[2]["duplicate"]
    assert sum("is cancelled" in r for r in replies) == 1
