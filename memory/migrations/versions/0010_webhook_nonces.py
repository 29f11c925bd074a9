"""webhook nonces

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import threadline.memory.schema

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_nonces",
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("token", sa.String(length=128), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("seen_at", threadline.memory.schema.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", "token"),
    )
    op.create_index("ix_webhook_nonces_seen_at", "webhook_nonces", ["seen_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_webhook_nonces_seen_at", table_name="webhook_nonces")
    op.drop_table("webhook_nonces")
