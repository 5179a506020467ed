"""Alembic environment: migrates the connection `Store.open` hands over, or builds one from sqlalchemy.url."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

# A name of our own, so the connector's schema history never collides with another app's Alembic
# table when several applications share one PostgreSQL database.
VERSION_TABLE = "connector_alembic_version"


def _migrate(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=None,
        version_table=VERSION_TABLE,
        # SQLite cannot ALTER most things in place; batch mode copies the table when a later
        # revision needs to.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    # Run from the alembic command line (developers only): `alembic -x url=... upgrade head`.
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("pass the store URL: alembic -x url=sqlite:///connector-state.db upgrade head")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            _migrate(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run()
