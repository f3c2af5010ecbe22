"""Alembic migration scripts of the ibet database; run them with :func:`ibet.db.migrate`."""
