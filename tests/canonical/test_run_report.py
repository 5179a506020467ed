"""A run reports the values that did not parse once, aggregated per CRM — not a log line per lead."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connector.core.clock import FrozenClock
from connector.ops.demo import demo_settings
from connector.runners.jobs import backfill, make_adapters
from connector.sandbox.hubspot import HubSpotSandbox
from connector.sandbox.salesforce import SalesforceSandbox
from connector.state.store import Store

T0 = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def test_unparsed_values_are_one_warning_per_crm_and_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FrozenClock(T0)
    with HubSpotSandbox(seed=5, contacts=0, clock=clock) as hs, SalesforceSandbox(seed=5, leads=0, clock=clock) as sf:
        for i in range(4):
            hs.create_contact({"email": f"p{i}@lumen{i}.example", "firstname": "P", "lastname": str(i),
                               "country": "Untied States" if i < 3 else "Deutschland", "industry": "Underwater basket weaving"})
        settings = demo_settings(tmp_path, hs, sf)
        with Store.open(settings.store.url) as store:
            adapters = make_adapters(settings, clock=clock)
            with caplog.at_level(logging.WARNING):
                summary = backfill(settings, store, adapters, clock)
            leads = adapters["hubspot"].fetch_all()
            countries = sorted(str(lead.country) for page in leads for lead in page.leads)
    assert summary.aborted is None
    assert countries == ["DE", "None", "None", "None"]
    reports = [r.getMessage() for r in caplog.records if "values that did not parse" in r.getMessage()]
    assert len(reports) == 1 and reports[0].startswith("hubspot:")
    assert "country: 3 of 4 values unparsed" in reports[0] and "industry: 4 of 4 values unparsed" in reports[0]
    assert not [r for r in caplog.records if "is not a valid" in r.getMessage()]  # the old line per lead is gone
    assert "Untied" not in reports[0]
