"""Serving on a loopback port: a free port, and the wait for `/readyz` (the benchmarks and the live-server tests
start servers in other processes; `api.local_server` serves the app in this one)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import httpx


def free_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_ready(base: str, alive: Callable[[], bool], timeout_s: float, poll_s: float = 0.2) -> int | None:
    """Poll `GET {base}/readyz` until it answers 200, the server stops being `alive()`, or `timeout_s` passes;
    returns the last status (None when nothing answered)."""
    deadline, status = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline and alive():
        try:
            status = httpx.get(f"{base}/readyz", timeout=2).status_code
        except httpx.TransportError:
            status = None
        if status == 200:
            break
        time.sleep(poll_s)
    return status
