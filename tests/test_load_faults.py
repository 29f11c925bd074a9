"""Load with faults, bounded and on loopback: `threadline serve --workers 2` on Postgres, 100 concurrent requests
over 20 customers on three channels with duplicate deliveries, once clean and once with every database connection
terminated twice mid-run. No server error; a 503 says when to retry (the client retries, as providers do); every
accepted message is answered exactly once; no two turns of one customer overlap."""

from __future__ import annotations

import asyncio
import itertools
import os
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import select

from tests.conftest import PG_ADMIN_DSN
from tests.live import serve_workers
from threadline.memory.db import Database
from threadline.memory.schema import MessageRow

ROOT = Path(__file__).resolve().parents[1]
KEY = "channel-key-load-faults-01"
CUSTOMERS, REQUESTS, DUPLICATE_EVERY = 20, 100, 10
TEXTS = ["hi, do you ship to canada?", "whats ur return window", "can i change my delivery address??", "thanks!"]
RETRIES = 12


def _bodies(run: str) -> list[dict[str, Any]]:
    """Five messages per customer, each on SMS, voice or web chat; every tenth one delivered twice."""
    bodies = []
    for n in range(REQUESTS):
        customer, channel = n % CUSTOMERS, ("sms", "voice", "web")[n % 3]
        sender = f"+1555010{8000 + customer}" if channel != "web" else f"visitor-load-{run}-{customer:02d}"
        body = {"channel": channel, "from": sender, "text": TEXTS[n % len(TEXTS)], "message_id": f"{run}-{n}"}
        bodies += [body, body] if n % DUPLICATE_EVERY == 0 else [body]
    return bodies


async def _send(base: str, bodies: list[dict[str, Any]], terminate: bool) -> list[dict[str, Any]]:
    # A connection per delivery, as providers' webhooks arrive: a pooled keep-alive connection that the server
    # closes for idleness just as a retry reuses it fails with a read error that says nothing about the server.
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:

        async def send(n: int, body: dict[str, Any]) -> dict[str, Any]:
            await asyncio.sleep(n * 0.003)
            started, statuses = time.monotonic(), []
            for _ in range(RETRIES):
                response = await client.post("/v1/messages", json=body, headers={"Authorization": f"Bearer {KEY}"})
                statuses.append(response.status_code)
                if response.status_code != 503:
                    break
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
            return {"body": body, "statuses": statuses, "seconds": time.monotonic() - started, **response.json()}

        async def cut_connections() -> None:
            for delay in (0.15, 0.6):  # twice, while requests are in flight
                await asyncio.sleep(delay)
                await asyncio.to_thread(_terminate_backends, base)

        tasks = [send(n, b) for n, b in enumerate(bodies)]
        if terminate:
            results, _ = await asyncio.gather(asyncio.gather(*tasks), cut_connections())
            return list(results)
        return list(await asyncio.gather(*tasks))


_DATABASE: dict[str, str] = {}


def _terminate_backends(_base: str) -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (_DATABASE["name"],),
        )


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgres"])
def test_two_workers_under_load_and_dropped_connections(
    demo_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _DATABASE["name"] = demo_db_url.rsplit("/", 1)[1]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "THREADLINE_DATA_DIR": str(tmp_path / "data"),
        "THREADLINE_DATABASE_URL": demo_db_url,
        "THREADLINE_LOAD_DEMO": "false",
        "THREADLINE_BOOTSTRAP_KEYS": f"channel:{KEY}",
        "THREADLINE_RATE_PER_SENDER_PER_MINUTE": "100000",
    }
    runs: dict[str, list[dict[str, Any]]] = {}
    with serve_workers(env, tmp_path) as base:
        for run, terminate in (("clean", False), ("faults", True)):
            runs[run] = asyncio.run(_send(base, _bodies(run), terminate))

    db = Database.from_url(demo_db_url)
    with db.session() as s:
        rows = list(s.scalars(select(MessageRow).order_by(MessageRow.id)))
    db.dispose()
    report = []
    for run, results in runs.items():
        statuses = [code for r in results for code in r["statuses"]]
        assert not [code for code in statuses if code >= 500 and code != 503], statuses  # no server error
        assert all(r["statuses"][-1] == 200 for r in results)  # each delivery answered in the end
        mine = [r for r in rows if (r.provider_message_id or "").startswith(f"{run}-")]
        inbound = [r for r in rows if r.direction == "inbound" and r in mine]
        assert sorted(r.provider_message_id for r in inbound) == sorted({f"{run}-{n}" for n in range(REQUESTS)})
        assert all(r.handled for r in inbound)  # every accepted message answered
        ids = {r.id for r in inbound}
        answers = [i for r in rows if r.direction == "outbound" for i in (r.meta or {}).get("answers", []) if i in ids]
        assert len(answers) == len(set(answers))  # exactly once: no message in two turns' replies
        assert {r.id for r in inbound if r.handled == "answered"} == set(answers)  # the rest went, silent, to a person
        by_customer: dict[str, list[tuple[float, float]]] = {}
        for r in rows:
            turn = (r.meta or {}).get("turn")
            if r.direction == "outbound" and turn and set((r.meta or {}).get("answers", [])) & ids:
                by_customer.setdefault(r.customer_id, []).append((turn["started"], turn["finished"]))
        for spans in by_customer.values():
            spans.sort()
            assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # one turn at a time per customer
        seconds = sorted(r["seconds"] for r in results)
        p99 = seconds[min(len(seconds) - 1, int(0.99 * len(seconds)))]
        report.append(
            f"{run}: {len(results)} deliveries, p50 {statistics.median(seconds):.2f} s, p99 {p99:.2f} s, "
            f"503s {statuses.count(503)}, server errors 0"
        )
    with capsys.disabled():
        print("\n[load with faults] " + " | ".join(report))
