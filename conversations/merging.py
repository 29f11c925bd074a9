"""`CustomerMerging`: two customers become one (audited, undoable), their conversations with them.

A provisional customer joins the one they proved to be (verification in conversation, or signing in on the
website after chatting anonymously); agents and admins merge by hand. Rows move in the database
(`memory.merges`), the source's conversation joins the target's thread, and an undo puts both back exactly.
"""

from __future__ import annotations

from contextlib import ExitStack

from threadline.conversations.threads import Threads
from threadline.core.ports import CustomerRepository
from threadline.core.types import Channel, CustomerId, HandleType
from threadline.memory.identity import classify_handle
from threadline.memory.merges import CustomerMerges, MergeRecord
from threadline.memory.turn_locks import TurnLocks


class CustomerMerging:
    """Merges and unmerges customers under both customers' turn locks."""

    def __init__(
        self, merges: CustomerMerges, customers: CustomerRepository, threads: Threads, locks: TurnLocks
    ) -> None:
        self._merges = merges
        self._customers = customers
        self._threads = threads
        self._locks = locks

    def merge(
        self,
        source: CustomerId,
        target: CustomerId,
        *,
        actor: str,
        reason: str,
        verified_handle: tuple[HandleType, str] | None = None,
    ) -> MergeRecord:
        """Merge `source` into `target`: their rows move, and the source's conversation joins the target's
        thread. The audit row remembers the target thread's checkpoint before the join."""
        with ExitStack() as held:
            for customer_id in sorted({source, target}):  # one order everywhere: no deadlock
                held.enter_context(self._locks.hold(customer_id))
            joined, moved_in = self._threads.prepare_join(source, target)
            record = self._merges.merge(
                source, target, actor=actor, reason=reason, verified_handle=verified_handle, extra={"thread": joined}
            )
            if moved_in.get("messages"):
                self._threads.carry_over(moved_in, target)
            return record

    def unmerge(self, event_id: int, *, actor: str) -> MergeRecord:
        """Undo a merge exactly: rows go back, and the target's thread loses what the merge brought in."""
        record = self._merges.get(event_id)
        with ExitStack() as held:
            for customer_id in sorted({record.source, record.target}):
                held.enter_context(self._locks.hold(customer_id))
            self._merges.unmerge(event_id, actor=actor)
            self._threads.unjoin(record.target, record.detail.get("thread") or {})
        return record

    def sign_in(self, channel: Channel, previous_sender: str, customer_id: CustomerId) -> None:
        """A signed-in web customer: the conversation they had as an anonymous visitor joins theirs."""
        handle_type, handle = classify_handle(channel, previous_sender)
        before = self._customers.find_by_handle(handle_type, handle)
        visitor = self._customers.get(before.customer_id) if before else None
        if visitor is not None and visitor.provisional and visitor.id != customer_id and not visitor.merged_into:
            self.merge(visitor.id, customer_id, actor=f"sign-in:{channel.value}", reason="signed in")
