"""One-time tokens of signed webhook posts, remembered for as long as a post with them would be accepted."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select

from threadline.memory.db import Database
from threadline.memory.schema import WebhookNonceRow, table

_NONCES = table(WebhookNonceRow)


class SqlNonceLog:
    """`NonceLog` over the domain store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def first_use(self, channel: str, token: str, digest: str, *, now: datetime, keep: timedelta) -> bool:
        """Record `token` for a post whose content hashes to `digest`. True for its first use and for the same post
        again (a redelivery); False when the token already came with other content (a captured signature reused).
        Tokens older than `keep` are forgotten: posts that old are refused by their timestamp anyway."""
        insert = self._db.insert(_NONCES).values(channel=channel, token=token, digest=digest, seen_at=now)
        with self._db.transaction() as conn:
            conn.execute(delete(_NONCES).where(_NONCES.c.seen_at < now - keep))
            conn.execute(insert.on_conflict_do_nothing(index_elements=[_NONCES.c.channel, _NONCES.c.token]))
            kept = conn.execute(
                select(_NONCES.c.digest).where(_NONCES.c.channel == channel, _NONCES.c.token == token)
            ).scalar()
        return kept == digest
