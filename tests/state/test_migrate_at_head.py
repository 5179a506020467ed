"""Opening a store already at the newest migration leaves Alembic alone (issue 18: its import was ~0.2 s of every
start-up); a fresh, an older or an unknown store still goes through Alembic as before."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from connector.core.errors import ConfigError
from connector.state import db as db_module
from connector.state.store import Store


def _script_head() -> str | None:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(db_module.__file__).with_name("migrations")))
    cfg.set_main_option("path_separator", "os")
    return ScriptDirectory.from_config(cfg).get_current_head()


def _set_version(url: str, revision: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE connector_alembic_version SET version_num = :v"), {"v": revision})
    finally:
        engine.dispose()


def _count_upgrades(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = command.upgrade

    def counting(cfg: Config, revision: str, **kwargs: object) -> None:
        calls.append(revision)
        real(cfg, revision, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(command, "upgrade", counting)
    return calls


def test_head_revision_read_from_the_files_is_alembics_head() -> None:
    assert db_module.head_revision() == _script_head()


def test_a_store_at_head_opens_without_running_alembic(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_upgrades(monkeypatch)
    Store.open(store_url).close()
    assert calls == ["head"]  # a fresh store is migrated
    Store.open(store_url).close()
    assert calls == ["head"]  # already at head: nothing to do, Alembic not asked


def test_a_store_behind_head_is_migrated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    Store.open(url).close()
    head = _script_head()
    assert head is not None
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(db_module.__file__).with_name("migrations")))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("sqlalchemy.url", url)
    command.downgrade(cfg, "-1")
    calls = _count_upgrades(monkeypatch)
    Store.open(url).close()
    assert calls == ["head"]
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM connector_alembic_version")).scalar_one() == head
    finally:
        engine.dispose()


def test_a_store_from_a_newer_version_is_still_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    Store.open(url).close()
    _set_version(url, "9999")
    with pytest.raises(ConfigError, match="has a schema this connector version does not know"):
        Store.open(url)


def test_migration_files_that_name_no_single_head_leave_it_to_alembic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "0001_a.py").write_text('revision = "0001"\ndown_revision = None\n', encoding="utf-8")
    (versions / "0002_b.py").write_text('revision = "0002"\ndown_revision = "0001"\n', encoding="utf-8")
    (versions / "0003_c.py").write_text('revision = "0003"\ndown_revision = "0001"\n', encoding="utf-8")
    monkeypatch.setattr(db_module, "_MIGRATIONS", tmp_path)
    assert db_module.head_revision() is None  # two heads
    (versions / "0004_merge.py").write_text('revision = "0004"\ndown_revision = ("0002", "0003")\n', encoding="utf-8")
    assert db_module.head_revision() is None  # a merge's tuple is not read
