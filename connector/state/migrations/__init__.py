"""Alembic migrations of the state store; `Store.open` runs them programmatically (no alembic.ini needed)."""
