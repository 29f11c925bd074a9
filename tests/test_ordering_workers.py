"""Per-customer ordering across worker processes: two uvicorn workers on Postgres, 120 concurrent messages for
one customer from two channels → every message logged once, answered once, and turns never overlap."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.live import serve_workers
from threadline.core.signing import sign_identity
from threadline.core.types import HandleType, VerificationLevel
from threadline.demo.loader import DATA_DIR, demo_customer_id
from threadline.memory.db import Database
from threadline.memory.schema import MessageRow
from threadline.memory.stores import Stores

ROOT = Path(__file__).resolve().parents[1]
SECRET = "site-secret"
KEY = "channel-key-ordering-0001"
PHONE = "+15550103333"
PER_CHANNEL = 60
JAMES = json.loads((DATA_DIR / "tau_retail" / "users.json").read_text())["james_li_5688"]


async def _send_all(base: str, burst: int) -> list[dict[str, Any]]:
    signature = sign_identity(SECRET, JAMES["email"])
    bodies = []
    for i in range(PER_CHANNEL):
        bodies.append(
            {
                "channel": "web",
                "from": JAMES["email"],
                "identity_signature": signature,
                "text": f"web {i}: hi",
                "message_id": f"web-{burst}-{i}",
            }
        )
        bodies.append({"channel": "sms", "from": PHONE, "text": f"sms {i}: thanks", "message_id": f"sms-{burst}-{i}"})
    limits = httpx.Limits(max_connections=len(bodies))
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:

        async def send(n: int, body: dict[str, Any]) -> dict[str, Any]:
            await asyncio.sleep(n * 0.002)  # arrivals spread over a quarter of a second
            response = await client.post("/v1/messages", json=body, headers={"Authorization": f"Bearer {KEY}"})
            assert response.status_code == 200, response.text
            return {"body": body, **response.json()}

        return await asyncio.gather(*(send(n, b) for n, b in enumerate(bodies)))


def _explain(results: list[dict[str, Any]], rows: list[MessageRow]) -> str:
    """What the log says about requests whose outcome was neither a reply nor folded (or both)."""
    by_provider = {r.provider_message_id: r for r in rows if r.provider_message_id}
    lines = []
    for result in results:
        logged = by_provider.get(result["body"]["message_id"])
        answer = next((r for r in rows if logged and r.id == logged.answer_id), None)
        turn = answer.meta.get("turn") if answer else None
        lines.append(f"{result} | logged {logged and (logged.id, logged.handled, logged.answer_id)} | turn {turn}")
    return "\n".join(lines)


def _out_of_order(turns: list[MessageRow], taken: list[int], logged: list[int], rows: list[MessageRow]) -> str:
    """The turns around the first message answered out of log order, with what each took and when."""
    at = next(i for i, (a, b) in enumerate(zip(taken, logged, strict=False)) if a != b)
    wanted = {taken[at], logged[at]}
    by_id = {r.id: r for r in rows}
    lines = [f"first difference at {at}: took {taken[at]}, log has {logged[at]}"]
    for turn in turns:
        if wanted & set(turn.meta["answers"]):
            meta = turn.meta["turn"]
            lines.append(f"turn {meta} answers {turn.meta['answers']}")
    for message_id in sorted(wanted):
        row = by_id[message_id]
        lines.append(
            f"message {message_id}: {row.provider_message_id} thread {row.thread_key} accepted {row.accepted_at}"
        )
    return "\n".join(lines)


def _turn_pids(db: Database, customer: str) -> set[int]:
    with db.session() as s:
        replies = s.scalars(
            select(MessageRow).where(MessageRow.customer_id == customer, MessageRow.direction == "outbound")
        )
        return {r.meta["turn"]["pid"] for r in replies}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgres"])
def test_two_workers_answer_a_burst_from_two_channels_once_each_in_order(demo_db_url: str, tmp_path: Path) -> None:
    db = Database.from_url(demo_db_url)
    james = demo_customer_id("james_li_5688")
    Stores.over(db).customers.link_identity(james, HandleType.PHONE, PHONE, VerificationLevel.VERIFIED, actor="test")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "THREADLINE_DATA_DIR": str(tmp_path / "data"),
        "THREADLINE_DATABASE_URL": demo_db_url,
        "THREADLINE_LOAD_DEMO": "false",
        "THREADLINE_WEB_IDENTITY_SECRET": SECRET,
        "THREADLINE_BOOTSTRAP_KEYS": f"channel:{KEY}",
        "THREADLINE_RATE_PER_SENDER_PER_MINUTE": "100000",
    }
    with serve_workers(env, tmp_path) as base:
        # A worker whose turn ends often hands the lock to its own next waiter, so one burst may run every turn
        # in one process; up to three bursts, until turns ran in both (asserted below).
        results: list[dict[str, Any]] = []
        for burst in range(3):
            results += asyncio.run(_send_all(base, burst))
            if len(_turn_pids(db, james)) == 2:
                break

    with db.session() as s:
        rows = list(s.scalars(select(MessageRow).where(MessageRow.customer_id == james).order_by(MessageRow.id)))
    db.dispose()
    inbound = [r for r in rows if r.direction == "inbound"]
    replies = [r for r in rows if r.direction == "outbound"]
    sent = {r["body"]["message_id"] for r in results}
    assert sorted(r.provider_message_id for r in inbound) == sorted(sent)  # each message logged exactly once
    # Every request got exactly one outcome: its turn's reply, or "folded" into a turn that answered it.
    neither_or_both = [r for r in results if (r["reply"] is not None) == r["folded"]]
    assert neither_or_both == [], _explain(neither_or_both, rows)
    assert len(replies) == sum(r["reply"] is not None for r in results)
    # Every message answered by exactly one turn, and turns took messages in arrival (log) order.
    turns = sorted(replies, key=lambda r: r.meta["turn"]["started"])
    taken = [i for r in turns for i in r.meta["answers"]]
    assert taken == [r.id for r in inbound], _out_of_order(turns, taken, [r.id for r in inbound], rows)
    assert all(r.handled == "answered" for r in inbound)
    # One turn at a time for this customer, across both worker processes.
    spans = [(r.meta["turn"]["started"], r.meta["turn"]["finished"]) for r in turns]
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    # Both worker processes ran turns, so the exclusion above held across processes, not just threads.
    pids = [r.meta["turn"]["pid"] for r in turns]
    assert len(set(pids)) == 2, [(pid, len(r.meta["answers"])) for pid, r in zip(pids, turns, strict=True)]
    # Arrival order is the order the server accepted the messages (the log's); concurrent requests from one
    # client race on the network, so only that order is defined, and the turns above followed it.
