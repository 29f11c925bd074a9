"""An edit made through one API worker reaches search on another worker process within 2 s, no restart."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from threadline.product.loopback import free_port, wait_until_ready

ROOT = Path(__file__).resolve().parents[1]
DEADLINE_S = 2.0
ADMIN_KEY = "admin-key-for-tests-00001"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def _start_worker(database_url: str, data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "THREADLINE_LOAD_DEMO": "false"}
    env["THREADLINE_BOOTSTRAP_KEYS"] = f"admin:{ADMIN_KEY}"  # both workers bootstrap it at once: no conflict
    cmd = [sys.executable, "-m", "threadline.cli.main", "serve", "--port", str(port)]
    cmd += ["--database-url", database_url, "--data-dir", str(data_dir)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    return proc, f"http://127.0.0.1:{port}"


def _wait_ready(base: str, proc: subprocess.Popen[str]) -> None:
    if wait_until_ready(base, lambda: proc.poll() is None, 240, poll_s=0.3) != 200:
        raise AssertionError(f"worker at {base} never became ready (exit code {proc.poll()})")


@pytest.fixture
def two_workers(demo_db_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    started = [_start_worker(demo_db_url, tmp_path / name) for name in ("a", "b")]
    try:
        for proc, base in started:
            _wait_ready(base, proc)
        yield started[0][1], started[1][1]
    finally:
        for proc, _ in started:
            proc.terminate()
        for proc, _ in started:
            proc.wait(timeout=30)


@pytest.mark.slow
def test_an_edit_on_one_worker_is_searchable_on_the_other_within_two_seconds(two_workers: tuple[str, str]) -> None:
    editor, reader = two_workers
    query = {"q": "Do you offer gift wrapping for my order?", "k": 3}
    before = httpx.get(f"{reader}/v1/knowledge/search", params=query, timeout=10).json()
    assert "faq-gift-wrap" not in {hit["article_id"] for hit in before}
    body = {"id": "faq-gift-wrap", "kind": "faq", "title": "Gift wrapping", "body": "We gift wrap any order for $5."}
    created = httpx.post(f"{editor}/v1/knowledge/articles", json=body, timeout=30, headers=ADMIN)
    assert created.status_code == 201
    edited_at = time.monotonic()
    while True:
        hits = httpx.get(f"{reader}/v1/knowledge/search", params=query, timeout=10).json()
        if hits and hits[0]["article_id"] == "faq-gift-wrap":
            break
        assert time.monotonic() - edited_at < DEADLINE_S, "the other worker did not see the new article in time"
        time.sleep(0.05)
    print(f"new article searchable on the other worker after {time.monotonic() - edited_at:.2f} s")
    update = {**body, "body": "Gift wrapping is free this month."}
    update.pop("id")
    assert (
        httpx.put(f"{editor}/v1/knowledge/articles/faq-gift-wrap", json=update, timeout=30, headers=ADMIN).json()[
            "version"
        ]
        == 2
    )
    edited_at = time.monotonic()
    while (hit := httpx.get(f"{reader}/v1/knowledge/search", params=query, timeout=10).json()[0])["version"] != 2:
        assert time.monotonic() - edited_at < DEADLINE_S, "the other worker kept answering from the old version"
        time.sleep(0.05)
    assert "free this month" in hit["text"]
    httpx.post(f"{editor}/v1/knowledge/articles/faq-gift-wrap/retire", timeout=30, headers=ADMIN)
    edited_at = time.monotonic()
    while any(
        h["article_id"] == "faq-gift-wrap" for h in httpx.get(f"{reader}/v1/knowledge/search", params=query).json()
    ):
        assert time.monotonic() - edited_at < DEADLINE_S, "the other worker kept returning a retired article"
        time.sleep(0.05)
