"""The app on a loopback port, for `threadline demo traffic` and the live-server tests: a free port, the wait for
`/readyz`, and uvicorn on a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from fastapi import FastAPI


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


@contextmanager
def serve_in_thread(app: FastAPI, name: str, timeout_s: float = 180) -> Iterator[str]:
    """`app` served on 127.0.0.1 from a background thread until the block ends; yields its base URL once
    `/readyz` answers 200."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="none"))
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        status = wait_until_ready(base, thread.is_alive, timeout_s)
        if status != 200:
            raise RuntimeError(f"the server did not become ready (last status {status})")
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)
