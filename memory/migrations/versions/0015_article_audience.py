"""who a knowledge article is written for

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("knowledge_article_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("audience", sa.String(length=16), server_default="customer", nullable=False))
    # Procedures were the articles customers never read: they keep that, now as their audience.
    op.execute("UPDATE knowledge_article_versions SET audience = 'agent' WHERE kind = 'procedure'")
    # The demo store's policy is written to its agents ("you should check its status before the action").
    op.execute(
        "UPDATE knowledge_article_versions SET audience = 'agent' "
        "WHERE article_id LIKE 'policy-%' AND author = 'demo-import'"
    )


def downgrade() -> None:
    with op.batch_alter_table("knowledge_article_versions", schema=None) as batch_op:
        batch_op.drop_column("audience")
