"""The domain store: SQLAlchemy models and repositories, migrations, and the store factories."""
