"""The shared adapter contract, run against the HubSpot adapter and its sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from connector.adapters.hubspot.adapter import HubSpotAdapter
from connector.core.clock import FrozenClock
from connector.config import HubSpotSettings
from connector.engine.diff import Desired
from connector.core.errors import AuthError, ConfigError
from connector.core.models import Lead
from connector.sandbox.hubspot import HubSpotSandbox
from tests.adapters.contract import AdapterContract, BadConfig

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def connect(sandbox: HubSpotSandbox, clock: FrozenClock, **kw: Any) -> HubSpotAdapter:
    base: dict[str, Any] = {"enabled": True, "access_token": SecretStr(sandbox.token), "base_url": sandbox.base_url}
    return HubSpotAdapter(HubSpotSettings(**{**base, **kw}), clock=clock, sleep=clock.sleep)


@dataclass
class HubSpotHarness:
    adapter: HubSpotAdapter
    sandbox: HubSpotSandbox
    clock: FrozenClock

    def connect(self, **kw: Any) -> HubSpotAdapter:
        return connect(self.sandbox, self.clock, **kw)

    def advance_past_lag(self) -> None:
        self.clock.advance(self.adapter.settings.safety_lag_seconds + 1)

    def cursor_position(self, cursor: str) -> tuple[Any, ...]:
        state = json.loads(cursor)
        return (state["watermark_ms"], state["last_id"])

    def future_cursor(self) -> str:
        future = self.clock.now() + timedelta(hours=1)
        return json.dumps({"v": 1, "watermark_ms": int(future.timestamp() * 1000), "last_id": 0})

    def desired_for(self, lead: Lead) -> Desired:
        owner = next(o["id"] for o in self.sandbox.owners() if not o["archived"] and o["type"] == "PERSON")
        return Desired(owner_id=owner, score=float(int(lead.id) % 97) + 0.5, grade="warm")

    def bad_configs(self) -> Sequence[BadConfig]:
        return [
            BadConfig("wrong token", lambda: list(self.connect(access_token=SecretStr("not-the-token")).fetch_changed(None)),
                      AuthError, "hubspot.access_token"),
            BadConfig("score property of the wrong type", lambda: self.connect(score_property="email").bootstrap(),
                      ConfigError, "hubspot.score_property"),
            BadConfig("stage the account does not have", lambda: self.connect(stage_order=["lead", "hot_prospect"]).bootstrap(),
                      ConfigError, "hubspot.stage_order"),
        ]


class TestHubSpotContract(AdapterContract):
    @pytest.fixture
    def harness(self) -> Iterator[HubSpotHarness]:
        clock = FrozenClock(NOW)
        # 250 contacts: two search pages of 200, all last modified before the clock's day began.
        with HubSpotSandbox(seed=11, contacts=250, companies=20, clock=clock) as sandbox:
            adapter = connect(sandbox, clock)
            adapter.bootstrap()
            yield HubSpotHarness(adapter, sandbox, clock)
            adapter.close()
