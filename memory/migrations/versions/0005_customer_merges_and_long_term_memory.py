"""customer merges and long-term memory

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import threadline.memory.schema

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "memory_items",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("namespace", sa.String(length=512), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column(
            "value", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", threadline.memory.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", threadline.memory.schema.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memory_items")),
        sa.UniqueConstraint("namespace", "key", name="uq_memory_items_namespace_key"),
    )
    with op.batch_alter_table("memory_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_memory_items_namespace"), ["namespace"], unique=False)

    if op.get_bind().dialect.name == "sqlite":
        # A plain ADD COLUMN: a batch copy of the customers table would break the foreign keys pointing at it.
        op.execute(
            "ALTER TABLE customers ADD COLUMN merged_into VARCHAR(64) "
            "CONSTRAINT fk_customers_merged_into_customers REFERENCES customers (id)"
        )
    else:
        op.add_column("customers", sa.Column("merged_into", sa.String(length=64), nullable=True))
        op.create_foreign_key(
            op.f("fk_customers_merged_into_customers"), "customers", "customers", ["merged_into"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_customers_merged_into_customers"), type_="foreignkey")
        batch_op.drop_column("merged_into")

    with op.batch_alter_table("memory_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_memory_items_namespace"))

    op.drop_table("memory_items")
