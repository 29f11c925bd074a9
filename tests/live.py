"""What the live-server tests share: a free local port, the app served by uvicorn from a background thread
(`api.local_server`), and Debian's Chromium with the flags this machine needs."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from threadline.api.local_server import serve_in_thread as serve
from threadline.product.loopback import free_port

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "free_port", "require_chromium", "serve", "serve_workers"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_chromium() -> None:
    """Fail (not skip) when the browser is missing: .ci/run installs it."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does this)")


@contextmanager
def serve_workers(env: dict[str, str], cwd: Path, workers: int = 2) -> Iterator[str]:
    """`threadline serve --workers N` in a process of its own, with `env`; yields its base URL once `/readyz` has
    answered 200 six times in a row (so every worker is up), and stops it afterwards."""
    port = free_port()
    command = [sys.executable, "-m", "threadline.cli.main", "serve", "--port", str(port), "--workers", str(workers)]
    log = cwd / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline, ready = time.monotonic() + 180, 0
        while time.monotonic() < deadline and ready < 6 and proc.poll() is None:
            try:
                ready = ready + 1 if httpx.get(f"{base}/readyz", timeout=2).status_code == 200 else 0
            except httpx.TransportError:
                ready = 0
            time.sleep(0.3)
        assert ready >= 6, f"the {workers} workers did not become ready:\n{_tail(log)}"
        try:
            yield base
        except Exception as exc:
            exc.add_note(f"the server's log ends:\n{_tail(log)}")
            raise
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _tail(log: Path, lines: int = 60) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"
