"""One turn at a time per customer, across threads, worker processes and machines.

Inside a process a lock per customer queues the threads. Across processes: on Postgres a session-level
advisory lock, held on a dedicated connection for the turn (released by the server if the worker dies); on
SQLite a lease row, taken when free or expired, so a crashed worker's lease lapses after `lease_s`.

Waiting never holds a database connection: threads of one process wait on the in-process lock, and a worker
waiting for another worker's turn polls (`pg_try_advisory_lock`, the lease) with the connection back in the pool
between tries. A process runs at most `max_turns` turns at once (a turn holds its lock connection and uses one
more at a time, so the pool's size bounds it); past that a message waits up to `SLOT_WAIT_S` for a slot, then gets
a retryable 503 instead of exhausting the pool.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import Connection, bindparam, delete, select, text
from sqlalchemy.exc import SQLAlchemyError

from threadline.core.errors import StoreUnavailableError
from threadline.memory.db import Database
from threadline.memory.schema import TurnLeaseRow, table, utcnow

WAIT_S = 120.0
"""How long a message waits for the customer's previous turn before the request fails (503, retryable)."""
SLOT_WAIT_S = 10.0
"""How long a message waits for one of the process's turn slots before the request fails (503, retryable)."""
_POLL_FIRST_S, _POLL_MAX_S = 0.002, 0.05
_LEASES = table(TurnLeaseRow)
_RELEASE = delete(_LEASES).where(_LEASES.c.customer_id == bindparam("customer"), _LEASES.c.holder == bindparam("me"))


def advisory_key(customer_id: str) -> int:
    """A stable signed 64-bit key for Postgres advisory locks."""
    return int.from_bytes(hashlib.blake2b(f"turn:{customer_id}".encode(), digest_size=8).digest(), "big", signed=True)


class TurnLocks:
    """Per-customer mutual exclusion for turns."""

    def __init__(
        self,
        db: Database,
        *,
        lease_s: float = 120.0,
        wait_s: float = WAIT_S,
        max_turns: int = 10,
        slot_wait_s: float = SLOT_WAIT_S,
    ) -> None:
        self._db = db
        self._slots = threading.BoundedSemaphore(max_turns)
        self._slot_wait_s = slot_wait_s
        self._lease = timedelta(seconds=lease_s)
        self._wait_s = wait_s
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._local: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()
        self._guard = threading.Lock()
        insert = db.insert(_LEASES)
        taken = {name: insert.excluded[name] for name in ("holder", "acquired_at", "expires_at")}
        stale = (_LEASES.c.expires_at < bindparam("now")) | (_LEASES.c.holder == bindparam("me"))
        # Built once: a turn takes a lease with no statement to build or cache key to compute.
        self._take = insert.on_conflict_do_update(index_elements=[_LEASES.c.customer_id], set_=taken, where=stale)

    @property
    def holder(self) -> str:
        """How this process names itself on the leases it takes (`host:pid:nonce`)."""
        return self._holder

    def _process_lock(self, customer_id: str) -> threading.Lock:
        """The customer's in-process lock; dropped once no turn holds or waits for it."""
        with self._guard:
            lock = self._local.get(customer_id)
            if lock is None:
                lock = self._local[customer_id] = threading.Lock()
            return lock

    @contextmanager
    def hold(self, customer_id: str) -> Iterator[None]:
        """Run the block as the only turn of this customer anywhere."""
        local = self._process_lock(customer_id)
        if not local.acquire(timeout=self._wait_s):
            raise StoreUnavailableError("the customer's previous message is still being answered; retry shortly")
        try:
            if not self._slots.acquire(timeout=self._slot_wait_s):
                raise StoreUnavailableError("too many conversations at once right now; retry shortly")
            try:
                if self._db.engine.dialect.name == "postgresql":
                    with self._advisory(customer_id):
                        yield
                else:
                    with self._leased(customer_id):
                        yield
            finally:
                self._slots.release()
        finally:
            local.release()

    @contextmanager
    def _advisory(self, customer_id: str) -> Iterator[None]:
        key = advisory_key(customer_id)
        deadline, delay = time.monotonic() + self._wait_s, _POLL_FIRST_S
        while (conn := self._try_advisory(key)) is None:  # another worker's turn: wait holding no connection
            if time.monotonic() > deadline:
                raise StoreUnavailableError("the customer's previous message is still being answered; retry shortly")
            time.sleep(delay)
            delay = min(delay * 2, _POLL_MAX_S)
        with conn:
            try:
                yield
            finally:
                try:
                    conn.execute(select(text("pg_advisory_unlock(:key)")).params(key=key))
                    conn.commit()
                except SQLAlchemyError:  # the session died, and the server released its locks with it
                    conn.invalidate()

    def _try_advisory(self, key: int) -> Connection | None:
        """A connection holding the advisory lock `key`, or None (and the connection back in the pool)."""
        conn = self._db.engine.connect()
        try:
            taken = conn.execute(select(text("pg_try_advisory_lock(:key)")).params(key=key)).scalar()
            conn.commit()  # the session-level lock outlives the transaction; don't idle in one
        except BaseException:
            conn.close()
            raise
        if taken:
            return conn
        conn.close()
        return None

    @contextmanager
    def _leased(self, customer_id: str) -> Iterator[None]:
        deadline = time.monotonic() + self._wait_s
        delay = _POLL_FIRST_S
        while not self._take_lease(customer_id):
            if time.monotonic() > deadline:
                raise StoreUnavailableError("the customer's previous message is still being answered; retry shortly")
            time.sleep(delay)
            delay = min(delay * 2, _POLL_MAX_S)
        try:
            yield
        finally:
            with self._db.transaction() as conn:
                conn.execute(_RELEASE, {"customer": customer_id, "me": self._holder})

    def _take_lease(self, customer_id: str) -> bool:
        """One statement: insert the lease, or take it over if it has expired, is this process's own (left behind
        when its release failed: this process's lock says no turn holds it), or belongs to a process of this host
        that is gone (`kill -9`); true when this holder has it."""
        now = utcnow()
        lease = {"holder": self._holder, "acquired_at": now, "expires_at": now + self._lease}
        leases = _LEASES
        with self._db.transaction() as conn:
            if conn.execute(self._take, {"customer_id": customer_id, **lease, "now": now, "me": self._holder}).rowcount:
                return True
            holder = conn.execute(select(leases.c.holder).where(leases.c.customer_id == customer_id)).scalar()
            if holder is None or not _dead_here(holder):
                return False
            orphan = (
                self._db.insert(leases)
                .values(customer_id=customer_id, **lease)
                .on_conflict_do_update(
                    index_elements=[leases.c.customer_id], set_=lease, where=leases.c.holder == holder
                )
            )
            return bool(conn.execute(orphan).rowcount)


def _dead_here(holder: str) -> bool:
    """Whether a lease holder (`host:pid:nonce`) is a process of this host that no longer runs."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False
