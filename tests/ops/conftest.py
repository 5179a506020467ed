"""Ops fixtures: a small HubSpot sandbox, and the `connector` CLI pointed at it and at a temp state store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result

from connector.cli import main
from connector.config import Settings, example_config_path, load_settings
from connector.sandbox.hubspot import HubSpotSandbox
from connector.state.store import Store


# Tuesday 15:00 UTC: the example's reps in New York, London and Berlin are within working hours.
WEEKDAY_AFTERNOON = "2026-12-08T15:00:00Z"
# Saturday 02:50 UTC: every example rep is off (weekend, or outside working hours).
SATURDAY_NIGHT = "2026-12-05T02:50:00Z"


class Ops:
    """The CLI as an operator runs it: example config + CONNECTOR_* environment for the sandbox and the store."""

    def __init__(self, hubspot: HubSpotSandbox, store_url: str) -> None:
        self.hubspot = hubspot
        self.store_url = store_url
        self.env = {
            "CONNECTOR_HUBSPOT__ENABLED": "true",
            "CONNECTOR_HUBSPOT__BASE_URL": hubspot.base_url,
            "CONNECTOR_HUBSPOT__ACCESS_TOKEN": hubspot.token,
            "CONNECTOR_HUBSPOT__SAFETY_LAG_SECONDS": "0",
            # Tests run at any hour: leads nobody can take now go to the fallback pool / queue.
            "CONNECTOR_ROUTING__WHEN_UNAVAILABLE": "fallback",
            "CONNECTOR_STORE__URL": store_url,
            "CONNECTOR_LOGGING__LEVEL": "WARNING",
        }

    def run(self, *args: str, code: int | None = 0) -> Result:
        result = CliRunner(env=self.env).invoke(main, [*args, "--config", str(example_config_path())])
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        if code is not None:
            assert result.exit_code == code, f"exit {result.exit_code}: {result.stdout}\n{result.stderr}"
        return result

    def json(self, *args: str, code: int | None = 0) -> Any:
        return json.loads(self.run(*args, "--json", code=code).stdout)

    def settings(self) -> Settings:
        return load_settings(example_config_path(), {
            "store": {"url": self.store_url},
            "hubspot": {"enabled": True, "base_url": self.hubspot.base_url, "access_token": self.hubspot.token, "safety_lag_seconds": 0},
            "routing": {"when_unavailable": "fallback"},
        })

    def store(self) -> Store:
        return Store.open(self.store_url)

    def ids(self) -> list[str]:
        return sorted(self.hubspot.records_ids("contacts"), key=int)


@pytest.fixture
def hubspot() -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(seed=42, contacts=60) as sb:
        yield sb


@pytest.fixture
def ops(hubspot: HubSpotSandbox, tmp_path) -> Ops:  # type: ignore[no-untyped-def]
    return Ops(hubspot, f"sqlite:///{tmp_path / 'state.db'}")


@pytest.fixture
def ops_any_store(hubspot: HubSpotSandbox, store_url: str) -> Ops:
    """The same, on SQLite and on the real PostgreSQL."""
    return Ops(hubspot, store_url)
