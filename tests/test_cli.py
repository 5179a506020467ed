"""The CLI as users script it: --json summaries, exit codes 0 / 1 / 2, CONNECTOR_* environment."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.config import example_config_path
from connector.sandbox.hubspot import HubSpotSandbox


@pytest.fixture
def sandbox_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(seed=11, contacts=150) as hs:
        monkeypatch.setenv("CONNECTOR_CONFIG", str(example_config_path()))
        monkeypatch.setenv("CONNECTOR_HUBSPOT__ENABLED", "true")
        monkeypatch.setenv("CONNECTOR_HUBSPOT__BASE_URL", hs.base_url)
        monkeypatch.setenv("CONNECTOR_HUBSPOT__ACCESS_TOKEN", hs.token)
        monkeypatch.setenv("CONNECTOR_HUBSPOT__SAFETY_LAG_SECONDS", "0")
        monkeypatch.setenv("CONNECTOR_ROUTING__WHEN_UNAVAILABLE", "fallback")
        monkeypatch.setenv("CONNECTOR_STORE__URL", f"sqlite:///{tmp_path / 'state.db'}")
        yield hs


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout


def test_sync_once_json_summary_and_idempotent_rerun(sandbox_env: HubSpotSandbox) -> None:
    code, out = run("sync", "--once", "--json")
    assert code == 0, out
    first = json.loads(out)
    for key in ("fetched", "scored", "routed", "written", "unchanged", "dead_lettered", "api_calls"):
        assert key in first
    assert first["fetched"] == 150 and first["written"] == 150
    assert first["api_calls"]["hubspot.contacts.batch_update"] == 2
    assert first["api_calls"]["hubspot.owners.list"] >= 1
    code, out = run("sync", "--once", "--json")
    second = json.loads(out)
    assert code == 0 and second["written"] == 0 and second["routed"] == 0


def test_backfill_dry_run_writes_a_diff_csv_and_nothing_else(sandbox_env: HubSpotSandbox, tmp_path: Path) -> None:
    out_csv = tmp_path / "diff.csv"
    code, out = run("backfill", "--dry-run", "--out", str(out_csv), "--json")
    assert code == 0, out
    summary = json.loads(out)
    assert summary["dry_run"] is True and summary["written"] == 0
    assert sandbox_env.calls["contacts.batch_update"] == 0
    header, *rows = out_csv.read_text().splitlines()
    assert header.startswith("crm,object,id,field,current,new,reason,")  # columns are only added
    assert len(rows) >= 150


def test_bad_token_aborts_with_exit_1_naming_the_credential(sandbox_env: HubSpotSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECTOR_HUBSPOT__ACCESS_TOKEN", "wrong-token")
    result = CliRunner().invoke(main, ["sync", "--once"])
    assert result.exit_code == 1
    assert "hubspot.access_token" in result.output
    assert "wrong-token" not in result.output


def test_bad_config_is_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[sync]\nbatch_size = 0\n")
    result = CliRunner().invoke(main, ["sync", "--once", "--config", str(bad)])
    assert result.exit_code == 2
    assert "sync.batch_size" in result.output


def test_usage_errors_are_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONNECTOR_STORE__URL", f"sqlite:///{tmp_path / 's.db'}")
    result = CliRunner().invoke(main, ["backfill", "--out", "x.csv"])
    assert result.exit_code == 2 and "--dry-run" in result.output
    result = CliRunner().invoke(main, ["explain", "pipedrive:1"])
    assert result.exit_code == 2
