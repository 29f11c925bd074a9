"""analytics events by time

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The analytics read every type of event in a time range: an index on the time alone serves that scan.
    op.create_index("ix_analytics_events_occurred_at", "analytics_events", ["occurred_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_analytics_events_occurred_at", table_name="analytics_events")
