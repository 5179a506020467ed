"""Shared fixtures: state-store URLs (SQLite and the real PostgreSQL) and the sandbox CRM on loopback."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

PG_ENV = "CONNECTOR_TEST_DATABASE_URL"
NOW_ENV = "CONNECTOR_TEST_NOW"

# The instants .ci/run pins the time-sensitive tests to (issue "any hour, any day"): a Saturday night,
# Sunday 23:59 in Los Angeles, a weekday afternoon, New Year's Eve, and Helsinki's two DST switches.
ANY_HOUR_INSTANTS = (
    "2026-12-05T02:50:00Z",
    "2026-12-07T07:59:00Z",
    "2026-12-08T15:00:00Z",
    "2026-12-31T23:30:00Z",
    "2026-03-29T00:30:00Z",
    "2026-10-25T00:30:00Z",
)
# The tests whose answers could depend on the hour (routing, availability, caps, SLA, decay, budgets, the CLI):
# .ci/run runs them again at each instant above.
ANY_HOUR_PATHS = ("tests/engine", "tests/ops", "tests/pipeline", "tests/runners/service", "tests/state", "tests/test_cli.py")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--now", default=os.environ.get(NOW_ENV) or None, metavar="ISO-TIME",
        help=f"Run the whole session with the wall clock (SystemClock.now) starting at this instant ({NOW_ENV}); "
        "a test that passes only at some hours fails under one of ANY_HOUR_INSTANTS.",
    )


def pytest_configure(config: pytest.Config) -> None:
    at = config.getoption("--now")
    if not at:
        return
    from connector.core.clock import SystemClock, parse_instant

    start = parse_instant(at, what="--now")
    origin = time.monotonic()

    def pinned_now(self: SystemClock) -> datetime:
        return start + timedelta(seconds=time.monotonic() - origin)

    # Only the clock seam reads the wall clock, so pinning it pins every in-process reader (CLI, sandboxes, jobs).
    SystemClock.now = pinned_now  # type: ignore[method-assign]
    config.stash[_PINNED] = start


_PINNED = pytest.StashKey[datetime]()


def pytest_report_header(config: pytest.Config) -> str | None:
    pinned = config.stash.get(_PINNED, None)
    return f"wall clock pinned: SystemClock.now starts at {pinned.isoformat()}" if pinned else None


def _pg_admin_url() -> str | None:
    return os.environ.get(PG_ENV) or None


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session (dropped afterwards)."""
    admin = _pg_admin_url()
    if admin is None:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres); .ci/run sets it")
    import sqlalchemy as sa

    name = f"connector_test_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A state-store URL: an SQLite file, or a fresh schema-less PostgreSQL database (one per test)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    base = request.getfixturevalue("pg_url")
    import sqlalchemy as sa

    name = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    url = sa.engine.make_url(base).set(database=name).render_as_string(hide_password=False)
    request.addfinalizer(lambda: _drop(base, name))
    return url


def _drop(base: str, name: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()
