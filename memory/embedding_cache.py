"""A persistent embedding cache: a SQLite file of vectors keyed by model and text, shared by processes.

What a start-up on the default configuration embeds ships with the package (`shipped_vectors`); this file holds
the rest (a knowledge base of your own, edited articles, memories), so a second worker or a restart computes
each text once per machine.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np

EMBEDDING_MODEL = "all-MiniLM-L6-v2"
"""The name the local model's vectors are cached under."""


def vector_key(model: str, text: str) -> bytes:
    """The key of a text's vector: the SHA-256 of the model's name and the text (also the shipped vectors' key)."""
    return hashlib.sha256(f"{model}\x00{text}".encode()).digest()


class EmbeddingCache:
    """Vectors by (model, text); safe across threads and processes (WAL, busy timeout)."""

    def __init__(self, path: Path, model: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL)")
        self._model = model
        self._lock = threading.Lock()

    def _key(self, text: str) -> bytes:
        return vector_key(self._model, text)

    def get_many(self, texts: Iterable[str]) -> dict[str, list[float]]:
        """The cached vectors among `texts`."""
        wanted = {self._key(t): t for t in texts}
        found: dict[str, list[float]] = {}
        keys = list(wanted)
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", chunk)
                for key, blob in rows:
                    found[wanted[key]] = np.frombuffer(blob, dtype=np.float32).tolist()
        return found

    def put_many(self, vectors: dict[str, list[float]]) -> None:
        """Store vectors (existing keys are left as they are)."""
        rows = [(self._key(t), np.asarray(v, dtype=np.float32).tobytes()) for t, v in vectors.items()]
        with self._lock:
            self._conn.executemany("INSERT OR IGNORE INTO vectors (key, vector) VALUES (?, ?)", rows)

    def forget(self, texts: Iterable[str]) -> int:
        """Delete the vectors of `texts` (an erased customer's words) so no trace of them stays in the file:
        deleted cells are zeroed and the WAL is truncated. Returns how many were removed."""
        keys = [(self._key(t),) for t in dict.fromkeys(texts)]
        with self._lock:
            self._conn.execute("PRAGMA secure_delete=ON")
            before = self._conn.total_changes
            self._conn.executemany("DELETE FROM vectors WHERE key = ?", keys)
            removed = self._conn.total_changes - before
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return removed

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._conn.close()
