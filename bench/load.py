"""The benchmark's HTTP load client: a minimal HTTP/1.1 keep-alive client on asyncio streams, the turn traffic
of signed-in demo customers, and closed-loop and open-loop drivers with their summaries.

On a 2-core machine the client shares the CPU with the server under test, and a heavier client (httpx, aiohttp)
would cap the hello-world figure at its own speed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from threadline.bench.turns import DemoCustomer, _message
from threadline.core.signing import sign_identity

CHANNEL_KEY = "bench-channel-key-00001"
IDENTITY_SECRET = "bench-web-identity-secret"
REQUEST_TIMEOUT_S = 60.0
IDLE_REUSE_S = 3.0  # reuse a pooled connection only this long after its last answer


class Connection:
    """One HTTP/1.1 keep-alive connection; responses must carry Content-Length (all of these do)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def request(self, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
        self._writer.write(head + body)
        status = int((await self._reader.readline()).split(b" ", 2)[1])
        length = 0
        while (line := await self._reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self._reader.readexactly(length)

    def close(self) -> None:
        self._writer.close()


Request = tuple[bytes, bytes]
NextRequest = Callable[[], Request]


def hello_requests() -> NextRequest:
    """The hello-world side's requests."""
    head = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    return lambda: (head, b"")


class Traffic:
    """The turn mix (bench.turns) per customer, as signed-in web customers' `POST /v1/messages`.

    Each customer's turns continue the mix's rotation across every phase of the run, so nobody asks the same
    question twice in a row: the escalation policy would rightly hand such a customer to a person.
    """

    def __init__(self, customers: Sequence[DemoCustomer]) -> None:
        self.customers = list(customers)
        self._turns = [0] * len(self.customers)

    def requests(self, picked: Iterable[int]) -> NextRequest:
        """Turns of the customers at `picked` (indexes), round-robin."""
        cycle = itertools.cycle(list(picked))

        def build() -> Request:
            index = next(cycle)
            turn, self._turns[index] = self._turns[index], self._turns[index] + 1
            _kind, message = _message(self.customers, turn * len(self.customers) + index)
            body = json.dumps(
                {
                    "channel": "web",
                    "from": message.sender,
                    "text": message.text,
                    "identity_signature": sign_identity(IDENTITY_SECRET, message.sender),
                }
            ).encode()
            head = (
                "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Authorization: Bearer {CHANNEL_KEY}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            return head, body

        return build

    def spread(self, connections: int) -> list[NextRequest]:
        """One request stream per connection; each customer belongs to one, so never has two turns in flight."""
        return [self.requests(range(w, len(self.customers), connections)) for w in range(connections)]


@dataclass
class Load:
    """What a load phase saw: latencies of 200 responses, each turn's model calls, response counts."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    model_calls: list[int] = field(default_factory=list)  # -1: the turn did not end in an AI reply
    responses: Counter[str] = field(default_factory=Counter)
    max_send_lag_s: float = 0.0
    client_cpu_s: float = 0.0
    """CPU seconds of this process (the client, which is all the process runs during a phase)."""

    def record(self, status: int, body: bytes, elapsed: float, is_turn: bool) -> None:
        if status != 200:
            self.responses[f"HTTP {status}"] += 1
            return
        self.latencies.append(elapsed)
        if not is_turn:
            self.responses["ok"] += 1
            return
        outcome = json.loads(body)
        self.responses[f"owner {outcome['owner']}"] += 1
        self.model_calls.append(len(outcome["tools"]) + 1 if outcome["owner"] == "ai" else -1)

    def merge(self, other: Load) -> None:
        self.seconds += other.seconds
        self.latencies += other.latencies
        self.model_calls += other.model_calls
        self.responses.update(other.responses)
        self.max_send_lag_s = max(self.max_send_lag_s, other.max_send_lag_s)
        self.client_cpu_s += other.client_cpu_s


async def closed_loop(
    port: int, clients: Sequence[NextRequest], seconds: float, *, is_turn: bool, stagger_s: float = 0.0
) -> Load:
    """One connection per client, each sending its next request as soon as the last one is answered. With
    `stagger_s`, the n-th client connects n x `stagger_s` after the first: a burst of connections arriving at once
    is accepted by whichever worker process wakes first (asyncio accepts every pending connection per wake-up),
    so several workers would split the keep-alive connections, and the load, unevenly."""
    load, deadline = Load(), time.perf_counter() + seconds

    async def client(index: int, next_request: NextRequest) -> None:
        await asyncio.sleep(index * stagger_s)
        conn = await Connection.open(port)
        try:
            while time.perf_counter() < deadline:
                head, body = next_request()
                start = time.perf_counter()
                status, answer = await asyncio.wait_for(conn.request(head, body), REQUEST_TIMEOUT_S)
                load.record(status, answer, time.perf_counter() - start, is_turn)
        finally:
            conn.close()

    start, start_cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client(i, c) for i, c in enumerate(clients)))
    load.seconds, load.client_cpu_s = time.perf_counter() - start, time.process_time() - start_cpu
    return load


async def open_loop(port: int, next_request: NextRequest, rate: float, seconds: float) -> Load:
    """Requests on a Poisson schedule at `rate` per second, whatever is in flight; each takes an idle connection
    from the pool or opens one. Latency runs from the send; `max_send_lag_s` says how late the client sent."""
    load, arrivals, idle = Load(), random.Random(0), list[tuple[Connection, float]]()

    async def one(due: float) -> None:
        conn = None
        while idle and conn is None:
            candidate, since = idle.pop()
            if time.perf_counter() - since < IDLE_REUSE_S:
                conn = candidate
            else:  # the server may be closing it: uvicorn drops connections idle for 5 s
                candidate.close()
        conn = conn or await Connection.open(port)
        head, body = next_request()
        start = time.perf_counter()
        load.max_send_lag_s = max(load.max_send_lag_s, start - due)
        status, answer = await asyncio.wait_for(conn.request(head, body), REQUEST_TIMEOUT_S)
        load.record(status, answer, time.perf_counter() - start, True)
        idle.append((conn, time.perf_counter()))

    tasks: list[asyncio.Task[None]] = []
    begin = due = time.perf_counter()
    begin_cpu = time.process_time()
    while due < begin + seconds:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(one(due)))
        due += arrivals.expovariate(rate)
    await asyncio.gather(*tasks)
    load.seconds, load.client_cpu_s = time.perf_counter() - begin, time.process_time() - begin_cpu
    for conn, _since in idle:
        conn.close()
    return load


def percentiles_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 and max of durations in seconds, as milliseconds."""
    if len(seconds) < 2:
        raise RuntimeError(f"too few successful requests to summarize ({len(seconds)})")
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return {
        "p50_ms": cuts[49] * 1000,
        "p95_ms": cuts[94] * 1000,
        "p99_ms": cuts[98] * 1000,
        "max_ms": max(seconds) * 1000,
    }


def describe(load: Load) -> dict[str, Any]:
    """Throughput, latency percentiles and response counts of a load phase."""
    return {
        "requests": len(load.latencies),
        "seconds": load.seconds,
        "per_s": len(load.latencies) / load.seconds,
        "client_cpu_share": load.client_cpu_s / load.seconds,  # of one core
        **percentiles_ms(load.latencies),
        "responses": dict(sorted(load.responses.items())),
    }
