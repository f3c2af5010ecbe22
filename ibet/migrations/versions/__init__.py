"""One module per schema revision, in order (Alembic skips this file)."""
