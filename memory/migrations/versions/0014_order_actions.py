"""order actions: cancel reason and return/exchange request on orders, and the action audit

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import threadline.memory.schema

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cancel_reason", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("request", _JSON, nullable=True))
    op.create_table(
        "order_actions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(length=160), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=True),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=160), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("confirming_message_id", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("action", _JSON, nullable=False),
        sa.Column("before", _JSON, nullable=True),
        sa.Column("after", _JSON, nullable=True),
        sa.Column("detail", _JSON, nullable=False),
        sa.Column("created_at", threadline.memory.schema.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index("ix_order_actions_order_id", "order_actions", ["order_id"], unique=False)
    op.create_index("ix_order_actions_customer_id", "order_actions", ["customer_id"], unique=False)
    op.create_index("ix_order_actions_created_at", "order_actions", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_order_actions_created_at", table_name="order_actions")
    op.drop_index("ix_order_actions_customer_id", table_name="order_actions")
    op.drop_index("ix_order_actions_order_id", table_name="order_actions")
    op.drop_table("order_actions")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("request")
        batch_op.drop_column("cancel_reason")
