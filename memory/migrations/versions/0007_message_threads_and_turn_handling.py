"""message threads and turn handling

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("thread_key", sa.String(length=400), nullable=True))
        batch_op.add_column(sa.Column("handled", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("answer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True))
        batch_op.create_index("ix_messages_thread_key_handled", ["thread_key", "handled"], unique=False)
    # Messages accepted before this revision were answered (or will be redelivered) under the old rules.
    op.execute("UPDATE messages SET handled = 'answered' WHERE direction = 'inbound'")


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_thread_key_handled")
        batch_op.drop_column("answer_id")
        batch_op.drop_column("handled")
        batch_op.drop_column("thread_key")
