"""Keeps a worker's knowledge index in step with the database: edits made anywhere reach search in seconds."""

from __future__ import annotations

import logging
import threading

from threadline.core.ports import KnowledgeRepository
from threadline.memory.knowledge_index import KnowledgeIndex

log = logging.getLogger("threadline.knowledge")


class KnowledgeSync:
    """A daemon thread that compares the knowledge-base revision every `interval_s` and applies the delta."""

    def __init__(self, index: KnowledgeIndex, repository: KnowledgeRepository, interval_s: float) -> None:
        self._index, self._repository, self._interval = index, repository, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="knowledge-sync", daemon=True)

    def start(self) -> KnowledgeSync:
        """Start polling; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling and wait for the thread."""
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if self._index.sync(self._repository):
                    log.info("knowledge index now at revision %s", self._index.revision)
            except Exception:  # a failed poll must not kill the worker; the next one retries
                log.exception("knowledge sync failed; retrying")
