"""`threadline serve` as a new user runs it: a real process on a fresh data dir accepts connections at once, says
what it is doing while it starts, and becomes ready with the demo loaded and the pages' links printed."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.live import free_port
from threadline.api.app import ready_message
from threadline.core.auth import DEMO_BOOTSTRAP_KEYS
from threadline.core.settings import Settings
from threadline.memory.db import Database
from threadline.memory.stores import Stores

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_serve_on_a_fresh_data_dir_becomes_ready_with_the_demo_loaded(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "THREADLINE_DATA_DIR": str(tmp_path / "data")}
    env |= {"THREADLINE_BOOTSTRAP_KEYS": DEMO_BOOTSTRAP_KEYS, "THREADLINE_DEMO_PAGE": "true"}  # as `make run`
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "threadline.cli.main", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline, status, alive_while_starting = time.monotonic() + 180, None, False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = httpx.get(f"{base}/readyz", timeout=2).status_code
                alive_while_starting |= status == 503 and httpx.get(f"{base}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                status = None
            if status == 200:
                break
            time.sleep(0.5)
        assert status == 200, log.read_text()
        assert alive_while_starting  # connections were accepted while the services opened
        message = {"channel": "email", "from": "james.li4495@example.com", "text": "hi"}  # a demo customer
        url = f"{base}/v1/messages"
        assert httpx.post(url, json=message, timeout=30).status_code == 401
        auth = {"Authorization": "Bearer demo-channel-key-0001"}
        assert httpx.post(url, json=message, headers=auth, timeout=30).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    output = log.read_text()
    steps = [
        "migrating the database from empty to revision",
        "empty database: loading the demo store…",
        "demo store: 50 products, 591 variants, 500 customers",
        "building the knowledge index…",
        "indexing 124 articles",
        "building the knowledge index: done in",
        f"Threadline is ready on {base}",
    ]
    positions = [output.find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), output
    assert re.search(rf"agent console +{base}/console +\(demo agent key demo-agent-key-00001\)", output)
    db = Database.from_url(f"sqlite:///{tmp_path / 'data' / 'threadline.db'}")
    stores = Stores.over(db)
    assert (stores.customers.count(), stores.orders.count_orders()) == (500, 1000)
    db.dispose()
    assert (tmp_path / "data" / "index" / "knowledge.json").exists()


@pytest.mark.slow
def test_a_background_start_that_fails_ends_the_process_with_uvicorns_start_up_failure_status(tmp_path: Path) -> None:
    """The server accepted connections while starting; a start that then fails must not leave it up, unready."""
    (tmp_path / "cache").write_text("")  # a file where the caches' folder goes: the embeddings cannot open
    env = {**os.environ, "PYTHONPATH": str(ROOT), "THREADLINE_DATA_DIR": str(tmp_path / "data")}
    env |= {"THREADLINE_CACHE_DIR": str(tmp_path / "cache"), "THREADLINE_LOAD_DEMO": "false"}
    result = subprocess.run(
        [sys.executable, "-m", "threadline.cli.main", "serve", "--port", str(free_port())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "Application startup complete" in output  # it was accepting connections
    assert "start-up failed" in output and "FileExistsError" in output


def test_the_ready_message_links_the_pages_and_names_only_the_public_demo_key(tmp_path: Path) -> None:
    demo = ready_message(Settings(data_dir=tmp_path, bootstrap_keys=DEMO_BOOTSTRAP_KEYS, demo_page=True, port=8123))
    assert demo.splitlines()[0] == "Threadline is ready on http://127.0.0.1:8123"
    for path in ("/demo", "/console", "/dashboard", "/docs"):
        assert f"http://127.0.0.1:8123{path}" in demo
    assert "demo agent key demo-agent-key-00001" in demo
    own = ready_message(Settings(data_dir=tmp_path, bootstrap_keys="agent:my-own-agent-key-123", host="0.0.0.0"))
    assert "my-own-agent-key" not in own and "demo agent key" not in own and "/demo" not in own
    assert "http://127.0.0.1:8000/console" in own  # a wildcard bind is reached on loopback from this machine
