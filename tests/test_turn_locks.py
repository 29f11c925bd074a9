"""SQLite turn leases: a lease left by a process that died (`kill -9`) or by this process's own failed release is
taken over at once, not after the lease time; a live holder still excludes everyone else."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from sqlalchemy import insert

from threadline.core.errors import StoreUnavailableError
from threadline.memory.db import Database
from threadline.memory.schema import TurnLeaseRow, table, utcnow
from threadline.memory.turn_locks import TurnLocks

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # Postgres uses advisory locks


def _lease(db: Database, customer_id: str, holder: str) -> None:
    now = utcnow()
    row = {"customer_id": customer_id, "holder": holder, "acquired_at": now, "expires_at": now + timedelta(hours=1)}
    with db.transaction() as conn:
        conn.execute(insert(table(TurnLeaseRow)).values(**row))


def _held_within(locks: TurnLocks, customer_id: str) -> float:
    started = time.monotonic()
    with locks.hold(customer_id):
        return time.monotonic() - started


def test_a_lease_of_a_process_that_died_is_taken_over_at_once(db: Database) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _lease(db, "cus_a", f"{socket.gethostname()}:{gone.stdout.strip()}:deadbeef")
    assert _held_within(TurnLocks(db, lease_s=120), "cus_a") < 1  # not the hour the lease claims


def test_this_processs_own_stale_lease_is_taken_over(db: Database) -> None:
    locks = TurnLocks(db, lease_s=120)
    _lease(db, "cus_b", locks.holder)  # a release that failed (the database was read-only for a while)
    assert _held_within(locks, "cus_b") < 1


def test_a_live_holder_still_excludes_everyone_else(db: Database) -> None:
    _lease(db, "cus_c", f"{socket.gethostname()}:1:init")  # pid 1 is alive
    _lease(db, "cus_d", "another-host:4242:abc")  # another machine: its processes cannot be checked from here
    for customer in ("cus_c", "cus_d"):
        with pytest.raises(StoreUnavailableError), TurnLocks(db, lease_s=120, wait_s=0.3).hold(customer):
            pass
