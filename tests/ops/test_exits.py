"""How commands end, as a CronJob reads them: --json always leaves one JSON object on stdout, with exit 1 or 2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.config import example_config_path
from connector.core.errors import AuthError, BudgetExhaustedError, CrmApiError, StoreLockedError, TransientError
from connector.runners.jobs import abort_reason
from connector.sandbox.hubspot import HubSpotSandbox


@pytest.fixture
def hubspot_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(seed=3, contacts=20) as hs:
        monkeypatch.setenv("CONNECTOR_CONFIG", str(example_config_path()))
        monkeypatch.setenv("CONNECTOR_HUBSPOT__ENABLED", "true")
        monkeypatch.setenv("CONNECTOR_HUBSPOT__BASE_URL", hs.base_url)
        monkeypatch.setenv("CONNECTOR_HUBSPOT__ACCESS_TOKEN", "not-the-token")
        monkeypatch.setenv("CONNECTOR_LOGGING__LEVEL", "ERROR")
        monkeypatch.setenv("CONNECTOR_STORE__URL", f"sqlite:///{tmp_path / 'state.db'}")
        yield hs


@pytest.mark.parametrize("command", [["sync", "--once", "--json"], ["backfill", "--json"]])
def test_a_run_stopped_by_a_rejected_token_still_prints_its_summary_as_json(hubspot_env: HubSpotSandbox, command: list[str]) -> None:
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)  # one object, nothing else on stdout
    assert summary["aborted_reason"] == "auth" and summary["aborted_crm"] == "hubspot"
    assert "access token was rejected" in summary["aborted"] and "hubspot.access_token" in summary["aborted"]
    assert summary["mode"] == command[0] and summary["written"] == 0 and "api_calls" in summary
    assert "authentication failed" in result.stderr


def test_the_table_output_of_a_stopped_run_stays_a_message_on_stderr(hubspot_env: HubSpotSandbox) -> None:
    result = CliRunner().invoke(main, ["sync", "--once"])
    assert result.exit_code == 1
    assert result.stdout == "" and "authentication failed: hubspot: the access token was rejected" in result.stderr


def test_a_config_error_prints_an_error_object(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[sync]\npoll_interval_seconds = 'often'\n")
    result = CliRunner().invoke(main, ["sync", "--once", "--json", "--config", str(bad)])
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error.startswith("configuration error:") and "sync.poll_interval_seconds" in error
    assert "sync.poll_interval_seconds" in result.stderr


def test_a_usage_error_click_finds_prints_an_error_object_too() -> None:
    result = CliRunner().invoke(main, ["backfill", "--json", "--limit", "zero"])
    assert result.exit_code == 2
    assert "--limit" in json.loads(result.stdout)["error"] and "--limit" in result.stderr


def test_a_usage_error_of_ours_prints_an_error_object() -> None:
    result = CliRunner().invoke(main, ["explain", "pipedrive:1", "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout) == {"error": "usage error: lead reference must be hubspot:ID or salesforce:ID, got 'pipedrive:1'"}


@pytest.mark.parametrize(("error", "reason"), [
    (AuthError("rejected", crm="hubspot", credential="hubspot.access_token"), "auth"),
    (BudgetExhaustedError("used up", crm="salesforce"), "budget"),
    (TransientError("could not reach", crm="hubspot"), "network"),
    (CrmApiError("rejected", crm="salesforce", endpoint="query"), "crm"),
    (StoreLockedError("held"), "store"),
])
def test_abort_reasons_are_words_a_script_can_branch_on(error: Exception, reason: str) -> None:
    assert abort_reason(error) == reason
