"""The adapter contract: behaviour every CrmAdapter must show against its sandbox, whatever the CRM.

Use it by subclassing `AdapterContract` in a `test_<crm>_contract.py` module and providing a
`harness` fixture that yields a `ContractHarness` (a fresh adapter on a sandbox whose records
were last modified well before the adapter's clock, so the safety lag does not re-deliver them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pytest

from connector.adapters.base import CrmAdapter
from connector.engine.diff import Desired, DiffRules, plan_write
from connector.core.errors import ConnectorError
from connector.core.models import FetchPage, Lead, Patch


@dataclass(frozen=True)
class BadConfig:
    """A configuration that must fail before any work, naming the key or credential to fix."""

    name: str
    run: Callable[[], Any]  # builds the adapter from the bad settings and calls what should fail
    error: type[ConnectorError]
    names: str  # the key path / credential the message must name


class ContractHarness(Protocol):
    """What the contract needs from one CRM's test set-up."""

    adapter: CrmAdapter

    def advance_past_lag(self) -> None:
        """Move the adapter's clock forward past its safety lag / lookback."""

    def cursor_position(self, cursor: str) -> tuple[Any, ...]:
        """A comparable position of a cursor: later pages and later runs compare greater or equal."""

    def future_cursor(self) -> str:
        """A valid cursor whose watermark lies after the adapter's clock."""

    def desired_for(self, lead: Lead) -> Desired:
        """Values this CRM accepts for the written fields (e.g. a score and a grade option)."""

    def bad_configs(self) -> Sequence[BadConfig]:
        """Configurations that must fail clearly."""


def _drain(pages: Any) -> list[FetchPage]:
    return list(pages)


def _leads(pages: Sequence[FetchPage]) -> list[Lead]:
    return [lead for page in pages for lead in page.leads]


class AdapterContract:
    """Inherit in a Test* class and provide the `harness` fixture."""

    def test_fetch_returns_leads(self, harness: ContractHarness) -> None:
        pages = _drain(harness.adapter.fetch_changed(None))
        leads = _leads(pages)
        assert leads, "a first incremental fetch returns the sandbox's leads"
        assert all(page.cursor for page in pages), "every page carries a cursor to store"
        assert {lead.crm for lead in leads} == {harness.adapter.crm}
        assert {lead.object_type for lead in leads} == {harness.adapter.object_type}
        assert all(lead.id for lead in leads)
        assert len({lead.id for lead in leads}) == len(leads), "one scan returns each record once"
        assert any(lead.email for lead in leads)

    def test_cursors_only_move_forward(self, harness: ContractHarness) -> None:
        first = _drain(harness.adapter.fetch_changed(None))
        positions = [harness.cursor_position(page.cursor or "") for page in first]
        assert positions == sorted(positions), "cursors within a run never move back"
        harness.advance_past_lag()
        second = _drain(harness.adapter.fetch_changed(first[-1].cursor))
        later = [harness.cursor_position(page.cursor or "") for page in second]
        assert later and later[0] >= positions[-1], "a later run never hands out an earlier cursor"
        # Resuming from a mid-run cursor never re-delivers records of the pages before it.
        if len(first) > 1:
            before = {lead.id for lead in first[0].leads}
            resumed = _leads(_drain(harness.adapter.fetch_changed(first[0].cursor)))
            assert resumed and not before & {lead.id for lead in resumed}

    def test_resync_of_unchanged_data_writes_nothing(self, harness: ContractHarness) -> None:
        adapter = harness.adapter
        pages = _drain(adapter.fetch_changed(None))
        leads = _leads(pages)[:5]
        desired = {lead.id: harness.desired_for(lead) for lead in leads}
        patches = [plan_write(lead, desired[lead.id], {}, DiffRules()) for lead in leads]
        results = adapter.write([p for p in patches if not p.is_empty])
        assert results and all(r.ok for r in results), results
        written = {p.record_id: dict(p.changes) for p in patches}

        harness.advance_past_lag()
        again = _leads(_drain(adapter.fetch_changed(pages[-1].cursor)))
        # Only our own writes can come back, and for them the diff is empty: nothing left to write.
        assert {lead.id for lead in again} <= set(desired)
        for lead in adapter.fetch_by_ids(list(desired)):
            patch: Patch = plan_write(lead, desired[lead.id], written[lead.id], DiffRules())
            assert patch.is_empty, (lead.id, patch.changes)

        # And a run over data nobody touched since returns nothing at all.
        last_cursor = _drain(adapter.fetch_changed(pages[-1].cursor))[-1].cursor
        harness.advance_past_lag()
        assert _leads(_drain(adapter.fetch_changed(last_cursor))) == []

    def test_future_cursor_returns_nothing(self, harness: ContractHarness) -> None:
        assert _leads(_drain(harness.adapter.fetch_changed(harness.future_cursor()))) == []

    def test_bad_config_fails_clearly(self, harness: ContractHarness) -> None:
        cases = harness.bad_configs()
        assert cases, "the harness names at least one bad configuration"
        for case in cases:
            with pytest.raises(case.error) as info:
                case.run()
            assert case.names in str(info.value), f"{case.name}: {info.value}"
