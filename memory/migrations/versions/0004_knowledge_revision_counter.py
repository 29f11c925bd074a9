"""knowledge revision counter

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "knowledge_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_revision")),
    )
    # Start from the old measure so running workers see no step backwards.
    op.execute(
        "INSERT INTO knowledge_revision (id, value) SELECT 1, COALESCE(MAX(id), 0) FROM knowledge_article_versions"
    )


def downgrade() -> None:
    op.drop_table("knowledge_revision")
