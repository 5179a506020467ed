"""`connector backfill --dry-run --out`: every planned change in a CSV, nothing written; progress on stderr."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import sqlalchemy as sa

from connector.pipeline.batch import BatchResult
from connector.ops.progress import BackfillProgress
from connector.ops.summary import DIFF_COLUMNS

from .conftest import Ops


def test_dry_run_writes_the_planned_changes_to_csv_and_nothing_anywhere(ops: Ops, tmp_path: Path) -> None:
    out = tmp_path / "diff.csv"
    ops.hubspot.reset_calls()
    result = ops.run("backfill", "--dry-run", "--out", str(out), "--json")
    summary = json.loads(result.stdout)  # stdout is exactly one JSON object; progress went to stderr
    assert summary["dry_run"] is True and summary["written"] == 0
    assert "backfill hubspot:" in result.stderr and "leads/s" in result.stderr and "API budget left" in result.stderr
    # Nothing written to the CRM …
    assert ops.hubspot.calls["contacts.batch_update"] == 0 and ops.hubspot.calls["properties.create"] == 0
    score_prop = ops.settings().hubspot.score_property
    assert all(not (ops.hubspot.get_record("contacts", rid) or {}).get(score_prop) for rid in ops.ids())
    # … nor to the state store's business tables (API calls are still counted against the shared budget).
    engine = sa.create_engine(ops.store_url)
    with engine.connect() as conn:
        for table in ("decisions", "outbox", "cursors", "lead_states", "dead_letters", "runs", "routing_counters"):
            assert conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one() == 0, table
    engine.dispose()

    rows = list(csv.DictReader(out.read_text(encoding="utf-8").splitlines()))
    assert tuple(rows[0].keys()) == DIFF_COLUMNS
    assert {r["id"] for r in rows} == set(ops.ids())  # every lead needs at least its score written
    assert all(r["crm"] == "hubspot" and r["object"] == "contacts" for r in rows)
    by_lead: dict[str, dict[str, dict[str, str]]] = {}
    for r in rows:
        by_lead.setdefault(r["id"], {})[r["field"]] = r
    for rid, fields in by_lead.items():
        record = ops.hubspot.get_record("contacts", rid) or {}
        assert float(fields["score"]["new"]) >= 0 and fields["score"]["current"] == ""
        assert fields["grade"]["new"] in ("Hot", "Warm", "Cold")  # as the CRM's picklist shows it
        if "owner_id" in fields:
            assert fields["owner_id"]["current"] == (record.get("hubspot_owner_id") or "")
            assert fields["owner_id"]["reason"].startswith("routed by")
        if "stage" in fields:
            assert fields["stage"]["current"] == (record.get("lifecyclestage") or "")
    assert sum(len(f) for f in by_lead.values()) == len(rows)


def test_plain_progress_lines_carry_records_rate_eta_and_budget() -> None:
    ticks = iter([0.0, 2.0, 4.0, 6.0, 8.0])
    stream = io.StringIO()
    progress = BackfillProgress(live=False, expected={"hubspot": 300}, budget_left=lambda crm: 1234, stream=stream,
                                every_seconds=0, monotonic=lambda: next(ticks))
    with progress:
        progress("hubspot", BatchResult(fetched=100), None)
        progress("hubspot", BatchResult(fetched=100), None)
    assert progress.lines[0] == "backfill hubspot: 100 leads of about 300, 50.0 leads/s, ETA 4s, API budget left 1,234"
    assert progress.lines[1] == "backfill hubspot: 200 leads of about 300, 50.0 leads/s, ETA 2s, API budget left 1,234"
    assert progress.lines[-1].endswith("done")
    assert stream.getvalue().count("backfill hubspot") == 3


def test_plain_progress_is_periodic_not_per_batch() -> None:
    clock = iter([0.0, 1.0, 2.0, 3.0, 7.0, 8.0])
    progress = BackfillProgress(live=False, expected={}, budget_left=lambda crm: None, stream=io.StringIO(),
                                every_seconds=5, monotonic=lambda: next(clock))
    for _ in range(4):
        progress("hubspot", BatchResult(fetched=10), None)
    assert len(progress.lines) == 2  # at 1 s and at 7 s, not at 2 s or 3 s
    assert "ETA unknown" in progress.lines[0]


def test_live_progress_draws_a_bar_on_a_terminal() -> None:
    stream = io.StringIO()
    ticks = iter([0.0] + [float(i) for i in range(1, 40)])
    with BackfillProgress(live=True, expected={"hubspot": 50}, budget_left=lambda crm: 99, stream=stream, monotonic=lambda: next(ticks)) as progress:
        progress("hubspot", BatchResult(fetched=25), None)
        progress("hubspot", BatchResult(fetched=25), None)
    drawn = stream.getvalue()
    assert "backfill hubspot" in drawn and "50/50" in drawn and "API budget left 99" in drawn and "leads/s" in drawn
