"""Smoke test of the CRM benchmarks: `calls` on a few hundred leads gives every figure and the call arithmetic holds."""

from __future__ import annotations

import math

import pytest

from bench import calls
from bench.ceiling import burst_times, minimum_calls
from bench.harness import max_in_window

LEADS = 200


@pytest.fixture(scope="module")
def figures() -> dict[str, float]:
    return calls.run(["--leads", str(LEADS), "--naive-leads", "50", "--no-startup"])


@pytest.mark.parametrize("crm", ["hubspot", "salesforce"])
def test_calls_reports_every_figure(figures: dict[str, float], crm: str) -> None:
    expected = {
        "leads", "backfill_seconds", "backfill_leads_per_second", "backfill_read_calls_per_1000", "backfill_read_min_per_1000",
        "backfill_read_vs_min", "backfill_write_calls_per_1000", "backfill_write_vs_min", "backfill_lookup_calls_per_1000",
        "backfill_total_calls_per_1000", "changed_leads", "write_calls_per_1000_changed", "sync_read_calls_per_1000_changed",
        "resync_write_calls", "resync_leads_written", "owners_reads_per_run", "naive_calls_per_1000", "naive_seconds_per_1000",
        "write_calls_vs_naive", "total_calls_vs_naive", "write_seconds_vs_naive", "backfill_seconds_vs_naive",
        "backfill_lookup_min_per_1000", "backfill_lookup_vs_min", "backfill_total_min_per_1000", "backfill_total_vs_min",
        "backfill_per_run_calls", "lead_domains", "accounts", "matched_domains", "lead_emails", "contacts",
    }
    assert {k.split(".", 1)[1] for k in figures if k.startswith(f"{crm}.")} == expected
    assert all(isinstance(v, float) and math.isfinite(v) for v in figures.values())


@pytest.mark.parametrize(("crm", "batch", "target"), [("hubspot", 100, 10.1), ("salesforce", 200, 5.1)])
def test_writes_are_batched_to_the_minimum(figures: dict[str, float], crm: str, batch: int, target: float) -> None:
    changed = figures[f"{crm}.changed_leads"]
    assert changed > 0
    writes = figures[f"{crm}.write_calls_per_1000_changed"] * changed / 1000
    # At most one partial batch per page: the minimum number of calls for this many leads.
    assert round(writes) == math.ceil(changed / batch)
    assert figures[f"{crm}.backfill_write_vs_min"] == 1.0
    if crm == "hubspot":  # every page of 100 fills one batch exactly
        assert figures[f"{crm}.write_calls_per_1000_changed"] <= target
    assert figures[f"{crm}.naive_calls_per_1000"] == 1000.0


@pytest.mark.parametrize("crm", ["hubspot", "salesforce"])
def test_resync_of_unchanged_leads_writes_nothing(figures: dict[str, float], crm: str) -> None:
    assert figures[f"{crm}.resync_write_calls"] == 0.0
    assert figures[f"{crm}.resync_leads_written"] == 0.0


@pytest.mark.parametrize("crm", ["hubspot", "salesforce"])
def test_reads_are_at_the_endpoint_minimum_and_owners_once_per_run(figures: dict[str, float], crm: str) -> None:
    assert figures[f"{crm}.backfill_read_vs_min"] <= 1.05
    assert figures[f"{crm}.owners_reads_per_run"] <= 2.0


def test_busiest_window_counts_calls_within_ten_seconds() -> None:
    assert max_in_window([0.0, 1.0, 9.9, 10.0, 10.5, 25.0], 10.0) == 4  # 1.0, 9.9, 10.0, 10.5
    assert max_in_window([], 10.0) == 0


def test_ceiling_minimum_and_burst_log() -> None:
    assert minimum_calls(100_000) == 2000
    assert minimum_calls(150) == 4
    log = [(0.5, "GET", "/crm/v3/objects/contacts", 200), (0.6, "POST", "/crm/v3/objects/companies/search", 200),
           (0.7, "POST", "/crm/v3/objects/contacts/batch/update", 429)]
    assert burst_times(log) == ([0.5, 0.7], 1)
    assert burst_times(log, accepted_only=True) == ([0.5], 1)


@pytest.mark.parametrize(("crm", "tables"), [("hubspot", 1), ("salesforce", 2)])
def test_lookups_are_at_their_minimum_one_call_per_table(figures: dict[str, float], crm: str, tables: int) -> None:
    # The seed's 60 accounts (and few contacts) fit one page: one call per table, however many lead domains.
    assert figures[f"{crm}.backfill_lookup_calls_per_1000"] * LEADS / 1000 == pytest.approx(tables)
    assert figures[f"{crm}.backfill_lookup_vs_min"] == 1.0
    assert figures[f"{crm}.lead_domains"] > figures[f"{crm}.matched_domains"] > 0
    assert figures[f"{crm}.backfill_total_vs_min"] * figures[f"{crm}.backfill_total_min_per_1000"] == pytest.approx(
        figures[f"{crm}.backfill_total_calls_per_1000"])
