"""messages: when accepted, and the unanswered ones by that time

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import threadline.memory.schema

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("accepted_at", threadline.memory.schema.UTCDateTime(timezone=True), nullable=True)
        )
    # The sweep that answers messages whose turn died reads the unanswered ones by when they were accepted.
    op.create_index("ix_messages_handled_accepted_at", "messages", ["handled", "accepted_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_messages_handled_accepted_at", table_name="messages")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("accepted_at")
