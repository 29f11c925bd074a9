"""`threadline serve` as a new user runs it: a real process on a fresh data dir becomes ready with the demo."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.live import free_port
from threadline.memory.db import Database
from threadline.memory.stores import Stores

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_serve_on_a_fresh_data_dir_becomes_ready_with_the_demo_loaded(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "THREADLINE_DATA_DIR": str(tmp_path / "data")}
    env["THREADLINE_BOOTSTRAP_KEYS"] = "channel:demo-channel-key-0001,admin:demo-admin-key-00001"  # as `make run`
    proc = subprocess.Popen(
        [sys.executable, "-m", "threadline.cli.main", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline, status = time.monotonic() + 180, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code
            except httpx.TransportError:
                status = None
            if status == 200:
                break
            time.sleep(0.5)
        assert status == 200, proc.stdout.read() if proc.poll() is not None and proc.stdout else status
        message = {"channel": "email", "from": "james.li4495@example.com", "text": "hi"}  # a demo customer
        url = f"http://127.0.0.1:{port}/v1/messages"
        assert httpx.post(url, json=message, timeout=30).status_code == 401
        auth = {"Authorization": "Bearer demo-channel-key-0001"}
        assert httpx.post(url, json=message, headers=auth, timeout=30).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    db = Database.from_url(f"sqlite:///{tmp_path / 'data' / 'threadline.db'}")
    stores = Stores.over(db)
    assert (stores.customers.count(), stores.orders.count_orders()) == (500, 1000)
    db.dispose()
    assert (tmp_path / "data" / "index" / "knowledge.json").exists()
