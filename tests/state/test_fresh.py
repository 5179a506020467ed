"""A failed run leaves no state file behind; a run with work to keep, or a store that was there before, stays."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from connector.cli import main
from connector.config import example_config_path
from connector.sandbox.hubspot import HubSpotSandbox


@pytest.fixture
def sandbox() -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(seed=3, contacts=20) as hs:
        yield hs


def run(hs: HubSpotSandbox, state: Path, *args: str, token: str | None = None, **env: str) -> Result:
    environment = {
        "CONNECTOR_HUBSPOT__ENABLED": "true",
        "CONNECTOR_HUBSPOT__BASE_URL": hs.base_url,
        "CONNECTOR_HUBSPOT__ACCESS_TOKEN": token or hs.token,
        "CONNECTOR_HUBSPOT__SAFETY_LAG_SECONDS": "0",
        "CONNECTOR_ROUTING__WHEN_UNAVAILABLE": "fallback",
        "CONNECTOR_STORE__URL": f"sqlite:///{state}",
        "CONNECTOR_LOGGING__LEVEL": "ERROR",
        **env,
    }
    return CliRunner(env=environment).invoke(main, [*args, "--config", str(example_config_path())])


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("command", [["sync", "--once"], ["backfill"], ["sync", "--once", "--json"]])
def test_a_run_stopped_by_a_rejected_token_leaves_no_state_file(sandbox: HubSpotSandbox, tmp_path: Path, command: list[str]) -> None:
    state = tmp_path / "new" / "state.db"
    state.parent.mkdir()
    result = run(sandbox, state, *command, token="not-the-token")
    assert result.exit_code == 1, result.output
    assert "access token was rejected" in result.stderr
    assert files_in(state.parent) == []  # no state.db, no -wal / -shm / .lock beside it


def test_a_run_refused_for_its_config_after_opening_leaves_no_state_file(sandbox: HubSpotSandbox, tmp_path: Path) -> None:
    # No CRM enabled is found once the store is open: the command still leaves nothing behind.
    result = run(sandbox, tmp_path / "state.db", "sync", "--once", CONNECTOR_HUBSPOT__ENABLED="false")
    assert result.exit_code == 2
    assert "no CRM is enabled" in result.stderr
    assert files_in(tmp_path) == []


def test_a_successful_run_keeps_its_store_and_a_later_failure_keeps_it_too(sandbox: HubSpotSandbox, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    assert run(sandbox, state, "sync", "--once").exit_code == 0
    assert state.exists()
    failed = run(sandbox, state, "sync", "--once", token="not-the-token")
    assert failed.exit_code == 1
    assert state.exists()  # the store was there before this run: its cursors and leads are kept
    status = run(sandbox, state, "status")
    assert status.exit_code == 0, status.output
