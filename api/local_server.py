"""The app on a loopback port, for `threadline demo traffic` and the live-server tests: uvicorn on a background
thread, ready once `/readyz` answers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from threadline.product.loopback import free_port, wait_until_ready


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
