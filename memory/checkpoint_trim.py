"""Keep a conversation thread's checkpoint history bounded, turn by turn.

LangGraph's savers keep every checkpoint ever written: a customer's thousandth message leaves a thousand full
snapshots of the state behind it (the SQLite saver stores each checkpoint whole). A turn only ever resumes from
the latest checkpoint, so after each turn the thread keeps its latest `keep` checkpoints and drops the rest,
with their pending writes and, on Postgres, the channel blobs no remaining checkpoint points at. Storage per
customer then stays flat however long the relationship runs. The periodic retention job (`memory.retention`)
applies the same rule, and idle-thread expiry, across all threads.

Why SQL on the savers' tables rather than the savers' own API: the installed `PostgresSaver.prune(strategy=
"keep_latest")` keeps exactly one checkpoint per thread (this keeps `THREADLINE_CHECKPOINT_HISTORY`, 2 by default, so
an undo of a merge can reach the checkpoint before it), and `SqliteSaver` has no `prune` at all. Deleting whole
threads does use the savers' `delete_thread` (erasure).
"""

from __future__ import annotations

from sqlalchemy import Engine, text

WRITES_TABLE = {"sqlite": "writes", "postgresql": "checkpoint_writes"}
"""The savers' table of pending writes, per backend (the checkpoints table is `checkpoints` on both)."""
ORPHANED_BLOB = """NOT EXISTS (SELECT 1 FROM checkpoints c WHERE c.thread_id = b.thread_id
    AND c.checkpoint_ns = b.checkpoint_ns AND c.checkpoint -> 'channel_versions' ->> b.channel = b.version)"""
"""Postgres only: a channel blob `b` that no remaining checkpoint points at."""
_KEPT = (
    "SELECT checkpoint_id FROM checkpoints WHERE thread_id = :t AND checkpoint_ns = :ns "
    "ORDER BY checkpoint_id DESC LIMIT :keep"
)
_ORPHAN_BLOBS = text(
    f"DELETE FROM checkpoint_blobs AS b WHERE b.thread_id = :t AND b.checkpoint_ns = :ns AND {ORPHANED_BLOB}"
)
_OLD = f"thread_id = :t AND checkpoint_ns = :ns AND checkpoint_id NOT IN ({_KEPT})"
_TRIM = {
    backend: (text(f"DELETE FROM {writes} WHERE {_OLD}"), text(f"DELETE FROM checkpoints WHERE {_OLD}"))
    for backend, writes in WRITES_TABLE.items()
}
"""Per backend: the statements deleting old pending writes, then old checkpoints (built once: trimming runs after
every turn)."""


def trim_thread(engine: Engine, thread_id: str, keep: int, namespace: str = "") -> int:
    """Delete all but the latest `keep` checkpoints of one thread (ids are time-ordered UUIDv6); returns how
    many checkpoints went. `keep` below 1 keeps everything."""
    if keep < 1:
        return 0
    backend = engine.dialect.name
    key = {"t": thread_id, "ns": namespace, "keep": keep}
    writes, checkpoints = _TRIM[backend]
    with engine.begin() as conn:
        conn.execute(writes, key)
        gone = conn.execute(checkpoints, key).rowcount or 0
        if gone and backend == "postgresql":
            conn.execute(_ORPHAN_BLOBS, key)
    return int(gone)
