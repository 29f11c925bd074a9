"""Route modules, one per resource."""

from datetime import UTC, datetime, timedelta

MAX_ID = 2**63 - 1
"""The largest id a database integer column holds: a larger one in a path or query is a 422, not a crash."""

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
"""The earliest time a client may date an event or a message: older is a client's bug (a zero date), not commerce."""


def plausible_time(value: datetime | None) -> datetime | None:
    """`value` if it lies between `EARLIEST` and tomorrow (a pydantic validator: a ValueError is a 422)."""
    if value is not None and not EARLIEST <= value <= datetime.now(UTC) + timedelta(days=1):
        raise ValueError(f"must be between {EARLIEST.date()} and tomorrow")
    return value
