"""The shared adapter contract, run for Salesforce against the loopback sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from connector.adapters.salesforce.adapter import SalesforceAdapter
from connector.core.clock import FrozenClock
from connector.config import SalesforceSettings
from connector.engine.diff import Desired
from connector.core.errors import AuthError, ConfigError
from connector.core.models import Lead
from connector.sandbox.salesforce import SalesforceSandbox
from tests.adapters.contract import AdapterContract, BadConfig

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
LOOKBACK_SECONDS = 300


@dataclass
class SalesforceHarness:
    adapter: SalesforceAdapter
    sandbox: SalesforceSandbox
    clock: FrozenClock

    def settings(self, **kw: Any) -> SalesforceSettings:
        base: dict[str, Any] = {"enabled": True, "login_url": self.sandbox.instance_url, "client_id": "sandbox-client",
                                "client_secret": SecretStr("sandbox-secret"), "ca_bundle": self.sandbox.ca_file,
                                "lookback_seconds": LOOKBACK_SECONDS}
        return SalesforceSettings(**{**base, **kw})

    def advance_past_lag(self) -> None:
        self.clock.advance(LOOKBACK_SECONDS + 1)

    def cursor_position(self, cursor: str) -> tuple[Any, ...]:
        # Mid-scan cursors: (watermark, after-stamp, after-id); the last page: (next watermark, "", "").
        # Times are fixed-width UTC strings, so string order is time order; "" sorts first.
        state = json.loads(cursor)
        after = state.get("after") or ("", "")
        return (state.get("since") or "", after[0], after[1])

    def future_cursor(self) -> str:
        since = (self.clock.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return json.dumps({"v": 1, "stream": "fetch_changed", "since": since})

    def desired_for(self, lead: Lead) -> Desired:
        return Desired(score=55.0, grade="hot")

    def bad_configs(self) -> Sequence[BadConfig]:
        def adapter(**kw: Any) -> SalesforceAdapter:
            return SalesforceAdapter(self.settings(**kw), clock=self.clock, sleep=lambda s: None)

        return [
            BadConfig("missing custom score field", lambda: adapter(score_field="Missing_Score__c").bootstrap(), ConfigError,
                      "salesforce.score_field"),
            BadConfig("refused client secret", lambda: adapter(client_secret=SecretStr("wrong")).bootstrap(), AuthError,
                      "salesforce.client_secret"),
            BadConfig("status not in the org", lambda: adapter(status_order=["Open - Not Contacted", "Qualified"]).bootstrap(),
                      ConfigError, "salesforce.status_order[1]"),
            BadConfig("foreign cursor", lambda: list(adapter().fetch_changed('{"v": 1, "stream": "fetch_all"}')), ConfigError,
                      "cursor.salesforce.fetch_changed"),
        ]


class TestSalesforceContract(AdapterContract):
    @pytest.fixture
    def harness(self) -> Iterator[SalesforceHarness]:
        clock = FrozenClock(NOW - timedelta(hours=1))
        with SalesforceSandbox(seed=42, leads=150, clock=clock) as sandbox:
            for n in range(300):  # enough leads for several 200-row pages
                sandbox.create_lead({"LastName": f"Contract{n}", "Company": "Contract Co", "Email": f"c{n}@contract.example"})
            clock.advance(3600)  # records last modified well before the adapter's clock
            harness = SalesforceHarness(adapter=None, sandbox=sandbox, clock=clock)  # type: ignore[arg-type]
            harness.adapter = SalesforceAdapter(harness.settings(), clock=clock, sleep=lambda s: None, query_batch_size=200)
            yield harness

    def test_the_first_scan_spans_several_pages(self, harness: SalesforceHarness) -> None:
        # Guards the contract's resume check, which only runs when a scan has more than one page.
        assert len(list(harness.adapter.fetch_changed(None))) > 1
