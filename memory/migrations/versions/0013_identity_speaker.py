"""who is speaking on a shared handle

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import threadline.memory.schema

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("channel_identities", schema=None) as batch_op:
        batch_op.add_column(sa.Column("speaker_customer_id", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("speaker_changed_at", threadline.memory.schema.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("channel_identities", schema=None) as batch_op:
        batch_op.drop_column("speaker_changed_at")
        batch_op.drop_column("speaker_customer_id")
