"""Checkpointers open safely when several workers start at once on a fresh database."""

from __future__ import annotations

import threading

from tests.conftest import DatabaseFactory
from threadline.memory.checkpoints import open_checkpointer


def test_concurrent_first_starts_set_up_the_checkpointer_once(db_factory: DatabaseFactory) -> None:
    url = db_factory.empty_url()
    errors: list[BaseException] = []

    def start_worker() -> None:
        try:
            with open_checkpointer(url, pool_size=2) as saver:
                assert saver.get_tuple({"configurable": {"thread_id": "nobody"}}) is None
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    workers = [threading.Thread(target=start_worker) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert errors == []
