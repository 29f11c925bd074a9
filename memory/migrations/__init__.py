"""Alembic environment and revisions of the domain store."""
