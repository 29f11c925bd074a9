"""Provider webhooks against a slow model: how long Twilio waits for the SMS webhook's answer with the outbox beside
the same load without it, in one run, and whether every late reply reached the provider.

A burst of SMS webhooks (each from its own number, all at once, signed as Twilio signs them) reaches a `threadline
serve` whose model is the simulated OpenAI-compatible model of `bench.api` at `MODEL_LATENCY_S` per call (a knowledge
question takes two calls). Two servers, one after the other, on fresh data directories:

* **outbox**: a Twilio sender is configured (the local Messages API of `channels.local_providers`), so each webhook
  answers within `THREADLINE_WEBHOOK_REPLY_BUDGET_MS` and the reply follows through the outbox;
* **synchronous**: no sender, so each webhook waits for its turn, as every webhook did before the outbox.

* `webhook_budget_ratio` = the outbox side's p99 answer time ÷ the budget (goal ≤ 1.5): the budget holds under a
  burst of slow turns;
* `webhook_sync_p99_s`: the synchronous side's p99, what a provider would wait without the outbox (Twilio gives up at
  15 s), reported beside it;
* `late_replies_delivered` = the share of the burst's replies the local Messages API received within
  `DRAIN_TIMEOUT_S` (goal ≥ 1), and `last_reply_s`, when the last one arrived after the burst began.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from rich.table import Table

from threadline.bench.api import Processes, slow_model_argv, spawn, subprocess_env, threadline_argv, threadline_env
from threadline.bench.turns import machine
from threadline.channels.local_providers import TwilioApiServer
from threadline.channels.twilio import twilio_signature

Log = Callable[[str], None]
MODEL_LATENCY_S = 1.0
BUDGET_MS = 500
FULL_WEBHOOKS, QUICK_WEBHOOKS = 40, 12
DRAIN_TIMEOUT_S = 120.0
STORE_NUMBER = "+15550009999"
QUESTION = "hi, do you ship to canada? and how long does it take"
PATH = "/v1/channels/twilio/sms"


def _burst(port: int, count: int, token: str) -> list[float]:
    """`count` signed SMS webhooks at once, each from its own number; the seconds each took to be answered."""
    url = f"http://127.0.0.1:{port}{PATH}"
    times: list[float] = [0.0] * count
    start = threading.Barrier(count)

    def one(n: int) -> None:
        params = {"MessageSid": f"SMbench{n:026d}", "From": f"+1555{n:07d}", "To": STORE_NUMBER, "Body": QUESTION}
        headers = {
            "content-type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(token, url, params),
        }
        with httpx.Client(timeout=60) as client:
            start.wait()
            began = time.perf_counter()
            response = client.post(url, content=urlencode(params), headers=headers)
            times[n] = time.perf_counter() - began
        if response.status_code != 200:
            raise RuntimeError(f"webhook {n} answered {response.status_code}: {response.text[:300]}")

    threads = [threading.Thread(target=one, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times


def _summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(p99 * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def run(quick: bool, *, log: Log | None = None) -> dict[str, Any]:
    """The burst against the server with the outbox, then against one without a sender."""
    say = log or (lambda _line: None)
    count = QUICK_WEBHOOKS if quick else FULL_WEBHOOKS
    load_before = os.getloadavg()
    seen = Processes()
    sides: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="threadline-delivery-") as tmp, TwilioApiServer() as twilio:
        root = Path(tmp)
        model_env = subprocess_env(root / "cache") | {"THREADLINE_BENCH_MODEL_LATENCY_S": str(MODEL_LATENCY_S)}
        with spawn(slow_model_argv(), model_env, root / "model.log", "/stats", seen) as model:
            common = {
                "MODEL": "openai:bench-model",
                "OPENAI_BASE_URL": f"http://127.0.0.1:{model.port}/v1",
                "OPENAI_API_KEY": "bench",
                "TWILIO_AUTH_TOKEN": twilio.auth_token,
                "WEBHOOK_REPLY_BUDGET_MS": str(BUDGET_MS),
                "OUTBOX_POLL_S": "0.2",
            }
            outbox = {
                "TWILIO_ACCOUNT_SID": twilio.account_sid,
                "TWILIO_FROM_NUMBER": STORE_NUMBER,
                "TWILIO_API_BASE_URL": twilio.url,
            }
            for side, extra in (("outbox", outbox), ("synchronous", {})):
                env = threadline_env(root / "cache", root / side, **common, **extra)
                with spawn(threadline_argv(1), env, root / f"{side}.log", "/readyz", seen) as server:
                    began = time.perf_counter()
                    times = _burst(server.port, count, twilio.auth_token)
                    result: dict[str, Any] = _summary(times)
                    if side == "outbox":
                        deadline = began + DRAIN_TIMEOUT_S
                        while len({m["to"] for m in twilio.messages}) < count and time.perf_counter() < deadline:
                            time.sleep(0.05)
                        result["replies_delivered"] = len({m["to"] for m in twilio.messages})
                        result["last_reply_s"] = round(time.perf_counter() - began, 2)
                    sides[side] = result
                    say(f"{side}: p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms")
    return {
        "webhooks": count,
        "model_latency_s": MODEL_LATENCY_S,
        "budget_ms": BUDGET_MS,
        "outbox": sides["outbox"],
        "synchronous": sides["synchronous"],
        "webhook_budget_ratio": round(sides["outbox"]["p99_ms"] / BUDGET_MS, 3),
        "webhook_sync_p99_s": round(sides["synchronous"]["p99_ms"] / 1000, 2),
        "late_replies_delivered": round(sides["outbox"]["replies_delivered"] / count, 3),
        "machine": machine() | {"load_average_before": list(load_before), "load_average_after": list(os.getloadavg())},
    }


def render(result: dict[str, Any]) -> Table:
    """The two sides of the burst as a table."""
    table = Table(
        "",
        "p50 (ms)",
        "p99 (ms)",
        "max (ms)",
        "replies delivered",
        title=f"{result['webhooks']} SMS webhooks at once, model {result['model_latency_s']} s per call, "
        f"budget {result['budget_ms']} ms",
    )
    for side in ("outbox", "synchronous"):
        row = result[side]
        delivered = "in the response"
        if "replies_delivered" in row:
            delivered = f"{row['replies_delivered']} (last at {row['last_reply_s']} s)"
        table.add_row(side, f"{row['p50_ms']:.0f}", f"{row['p99_ms']:.0f}", f"{row['max_ms']:.0f}", delivered)
    return table
