"""The database under the store: opening, migrations, URL errors, SQLite WAL and locking, a full or read-only volume."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from connector.cli import main
from connector.config import example_config_path
from connector.sandbox.hubspot import HubSpotSandbox
from connector.state import db as db_module
from connector.state import store as store_module
from connector.core.errors import ConfigError, StoreLockedError, StoreUnwritableError
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


def _every_new_connection_runs(monkeypatch: pytest.MonkeyPatch, statement: str) -> None:
    """Engines made from now on run `statement` on each connection (a volume that fills up or turns read-only)."""
    real = db_module.create_engine

    def create_engine(url_text: str, **kwargs: Any) -> sa.Engine:
        engine = real(url_text, **kwargs)

        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(statement)
            cursor.close()
            dbapi_connection.commit()  # PostgreSQL: a SET inside a transaction that is rolled back would not stay

        sa.event.listen(engine, "connect", on_connect)
        return engine

    monkeypatch.setattr(db_module, "create_engine", create_engine)


def test_a_store_that_refuses_writes_raises_store_unwritable_and_keeps_the_cursor(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store.open(store_url) as s:
        s.set_cursor("hubspot", "contacts", "changed", "1", NOW)
    read_only = "PRAGMA query_only = ON" if store_url.startswith("sqlite") else "SET default_transaction_read_only = on"
    _every_new_connection_runs(monkeypatch, read_only)
    with Store.open(store_url, migrate=False) as s:
        with pytest.raises(StoreUnwritableError, match=r"the state store at \S+ cannot be written: read-only"):
            s.set_cursor("hubspot", "contacts", "changed", "2", NOW)
        assert s.get_cursor("hubspot", "contacts", "changed") == "1"


@pytest.fixture
def hubspot_sync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[HubSpotSandbox, Path]]:
    """A synced SQLite store, then 20 new contacts in the sandbox waiting for the next `connector sync --once`."""
    path = tmp_path / "state.db"
    with HubSpotSandbox(seed=11, contacts=20) as hs:
        monkeypatch.setenv("CONNECTOR_CONFIG", str(example_config_path()))
        monkeypatch.setenv("CONNECTOR_HUBSPOT__ENABLED", "true")
        monkeypatch.setenv("CONNECTOR_HUBSPOT__BASE_URL", hs.base_url)
        monkeypatch.setenv("CONNECTOR_HUBSPOT__ACCESS_TOKEN", hs.token)
        monkeypatch.setenv("CONNECTOR_HUBSPOT__SAFETY_LAG_SECONDS", "0")
        monkeypatch.setenv("CONNECTOR_ROUTING__WHEN_UNAVAILABLE", "fallback")
        monkeypatch.setenv("CONNECTOR_STORE__URL", f"sqlite:///{path}")
        first = CliRunner().invoke(main, ["sync", "--once"])
        assert first.exit_code == 0, first.output
        for i in range(20):
            hs.create_contact({"email": f"new{i}@acme.example", "firstname": "New", "lastname": f"Lead{i}"})
        yield hs, path


def _cursors(path: Path) -> list[tuple[str, str, str, str]]:
    raw = sqlite3.connect(path)
    try:
        return raw.execute("SELECT crm, object_type, stream, value FROM cursors ORDER BY crm, object_type, stream").fetchall()
    finally:
        raw.close()


@pytest.mark.parametrize("volume", ["full", "read-only"])
def test_sync_on_a_full_or_read_only_volume_exits_1_says_so_and_keeps_the_cursor(
    hubspot_sync: tuple[HubSpotSandbox, Path], volume: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, path = hubspot_sync
    real_create_engine = db_module.create_engine
    before = _cursors(path)
    assert before
    if volume == "full":
        # SQLITE_FULL as on a full disk: the file may not grow by a single page.
        raw = sqlite3.connect(path)
        pages = raw.execute("PRAGMA page_count").fetchone()[0]
        raw.close()
        _every_new_connection_runs(monkeypatch, f"PRAGMA max_page_count = {pages}")
        expect = "cannot be written: disk full"
    else:
        # SQLITE_READONLY as on a read-only mount (tests run as root, where chmod would not stop a write).
        monkeypatch.setenv("CONNECTOR_STORE__URL", f"sqlite:///file:{path}?mode=ro&uri=true")
        expect = "cannot be written: read-only file system"
    failed = CliRunner().invoke(main, ["sync", "--once"])
    assert failed.exit_code == 1
    assert "aborted: the state store at sqlite:///" in failed.output and expect in failed.output, failed.output
    assert "Traceback" not in failed.output
    assert _cursors(path) == before
    # Space freed (or the volume writable again): the next run picks up every new contact.
    monkeypatch.setattr(db_module, "create_engine", real_create_engine)
    monkeypatch.setenv("CONNECTOR_STORE__URL", f"sqlite:///{path}")
    again = CliRunner().invoke(main, ["sync", "--once", "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["fetched"] >= 20
    assert _cursors(path) != before
