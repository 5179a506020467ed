"""The database under the store: opening, migrations, URL errors, SQLite WAL and locking (SQLite and PostgreSQL)."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from connector.state import store as store_module
from connector.core.errors import ConfigError, StoreLockedError
from connector.state.store import Store, metadata

NOW = datetime(2025, 3, 10, 9, 30, tzinfo=UTC)


def _mirrored(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    # A table only a later migration knows (not queried through store.py yet) cannot drift from a query.
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table in metadata.tables


def test_open_migrates_to_head_and_every_queried_table_matches_its_migration(store_url: str) -> None:
    Store.open(store_url).close()
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM connector_alembic_version")).scalar_one() == head
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": _mirrored})
            assert compare_metadata(ctx, metadata) == []
            assert set(metadata.tables) <= set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(store_module.__file__).with_name("migrations")))
    cfg.set_main_option("path_separator", "os")
    return cfg


def test_reopening_keeps_data_and_is_idempotent(store_url: str) -> None:
    with Store.open(store_url) as first:
        first.set_cursor("hubspot", "contacts", "changed", "1700000000000", NOW)
    with Store.open(store_url) as second:
        assert second.get_cursor("hubspot", "contacts", "changed") == "1700000000000"
        assert second.ping() is True


def test_two_processes_migrating_a_fresh_database_at_once_both_succeed(store_url: str) -> None:
    errors: list[BaseException] = []

    def open_and_close() -> None:
        try:
            Store.open(store_url).close()
        except BaseException as exc:  # collected for the assertion in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=open_and_close) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@pytest.mark.parametrize(
    ("url", "expect"),
    [
        ("not a url", "not a database URL"),
        ("mysql://root@localhost/crm", "unsupported database 'mysql'"),
        ("sqlite:////nonexistent-dir/for/sure/state.db", "cannot open the state store"),
        ("postgresql+psycopg://postgres:s3cret@127.0.0.1:1/nope", "cannot open the state store"),
    ],
)
def test_bad_or_unreachable_url_is_a_config_error_on_store_url(url: str, expect: str) -> None:
    with pytest.raises(ConfigError) as info:
        Store.open(url)
    assert [p.path for p in info.value.problems] == ["store.url"]
    assert expect in str(info.value)
    assert "s3cret" not in str(info.value)


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with Store.open(f"sqlite:///{path}") as s:
        assert s.dialect == "sqlite"
        with s._engine.connect() as conn:  # the pragmas are per connection
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == store_module.SQLITE_BUSY_TIMEOUT_SECONDS * 1000
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        raw.close()


def test_sqlite_held_by_another_process_raises_store_locked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.db"
    Store.open(f"sqlite:///{path}").close()
    monkeypatch.setattr(store_module, "SQLITE_BUSY_TIMEOUT_SECONDS", 0)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with Store.open(f"sqlite:///{path}", migrate=False) as s, pytest.raises(StoreLockedError, match="locked by another process"):
            s.set_cursor("hubspot", "contacts", "changed", "1", NOW)
    finally:
        other.execute("ROLLBACK")
        other.close()
