"""`PendingSweep`: answers messages that were accepted but whose turn died, when nobody redelivers them.

A message is logged before its turn runs, so a worker killed mid-turn, or a turn cut short by a database blip, leaves
it unanswered. A provider's redelivery, or the customer's next message, answers it; a web chat or a provider that
gave up does neither. Every worker runs this sweep: each round it answers the oldest messages left unanswered for
longer than `stale_after` (longer than any turn takes), under the customer's turn lock, so several workers' sweeps
and a late redelivery still answer each message once.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

from threadline.conversations.delivery import Deliveries
from threadline.conversations.turns import TurnService
from threadline.core.ports import MessageLog

log = logging.getLogger("threadline.sweep")


class PendingSweep:
    """A daemon thread that answers stale unanswered messages every `interval_s`."""

    def __init__(
        self,
        turns: TurnService,
        messages: MessageLog,
        *,
        stale_after: timedelta,
        interval_s: float,
        deliveries: Deliveries | None = None,
    ) -> None:
        self._turns, self._messages, self._deliveries = turns, messages, deliveries
        self._stale_after, self._interval = stale_after, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pending-sweep", daemon=True)

    def start(self) -> PendingSweep:
        """Start sweeping; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sweeping and wait for the round in progress."""
        self._stop.set()
        self._thread.join(timeout=30)

    def sweep_once(self, now: datetime | None = None) -> int:
        """Answer what has waited too long; returns how many turns ran."""
        answered = 0
        for message in self._messages.stale((now or datetime.now(UTC)) - self._stale_after):
            if self._stop.is_set():
                break
            outcome = self._turns.answer_stale(message)
            if outcome is None:
                continue
            answered += 1
            if self._deliveries is not None:  # nobody waits for this answer in a response: the provider sends it
                self._deliveries.queue_reply(outcome)
        if answered:
            log.info("answered %d message(s) whose turn had died", answered)
        return answered

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.sweep_once()
            except Exception:  # a failed round must not kill the worker; the next one retries
                log.exception("pending sweep failed; retrying")
