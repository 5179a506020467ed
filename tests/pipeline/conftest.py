"""Pipeline fixtures: a HubSpot sandbox per test and settings from the example config pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connector.core.clock import Clock, SystemClock
from connector.config import Settings, example_config_path, load_settings
from connector.runners.jobs import make_adapters
from connector.sandbox.hubspot import HubSpotSandbox
from connector.state.store import Store


@pytest.fixture
def hubspot() -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(seed=42, contacts=240) as sb:
        yield sb


def settings_for(store_url: str, hubspot: HubSpotSandbox, **extra: Any) -> Settings:
    overrides: dict[str, Any] = {
        "store": {"url": store_url},
        "hubspot": {"enabled": True, "base_url": hubspot.base_url, "access_token": hubspot.token, "safety_lag_seconds": 0},
        # Reps keep office hours in several time zones; tests run at any hour, so leads nobody can
        # take now go to the fallback pool / queue instead of waiting.
        "routing": {"when_unavailable": "fallback"},
        **extra,
    }
    return load_settings(example_config_path(), overrides)


class Env:
    """One connector 'process': settings, store and adapters over the sandbox."""

    def __init__(self, store_url: str, hubspot: HubSpotSandbox, clock: Clock | None = None, **extra: Any) -> None:
        self.settings = settings_for(store_url, hubspot, **extra)
        self.store = Store.open(self.settings.store.url)
        self.clock = clock or SystemClock()
        self.adapters = make_adapters(self.settings, clock=self.clock)

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def env(store_url: str, hubspot: HubSpotSandbox) -> Iterator[Env]:
    e = Env(store_url, hubspot)
    yield e
    e.close()
