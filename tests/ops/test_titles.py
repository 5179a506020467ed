"""Terminal titles read whole at 80 columns: every table title or heading stays on one line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from connector.core.clock import FrozenClock
from connector.ops.errors import render_one
from connector.ops.rules_test import render_outcomes, run_samples
from connector.ops.status import collect_status, render_status
from connector.ops.summary import render_summary
from connector.runners.jobs import RunSummary
from connector.state.dead_letters import DeadLetter
from tests.ops.conftest import WEEKDAY_AFTERNOON, Ops

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "leads.sample.csv"
NOW = datetime(2026, 12, 8, 15, tzinfo=UTC)


def console() -> Console:
    return Console(width=80, record=True, color_system=None)


def lines_of(output: Console | str) -> list[str]:
    text = output if isinstance(output, str) else output.export_text()
    return [line.strip() for line in text.splitlines()]


def assert_on_one_line(lines: list[str], title: str) -> None:
    assert any(title in line for line in lines), f"{title!r} is not on one line of:\n" + "\n".join(lines)


def test_run_summary_heading_does_not_wrap() -> None:
    out = console()
    render_summary(RunSummary(mode="backfill", dry_run=True, fetched=1200, leads_per_rep={"ana@example.com": 3}), out)
    lines = lines_of(out)
    assert lines[0] == "backfill (dry run: nothing written)"
    assert_on_one_line(lines, "leads per rep")


def test_status_rules_test_and_dead_letter_titles_do_not_wrap(ops: Ops) -> None:
    ops.run("sync", "--once")
    settings = ops.settings()
    with ops.store() as store:
        out = console()
        render_status(collect_status(settings, store, FrozenClock(NOW)), out)
        assert_on_one_line(lines_of(out), "backlog")
    out = console()
    render_outcomes(*run_samples(settings, SAMPLE, NOW), out)
    assert_on_one_line(lines_of(out), "sample leads")
    letter = DeadLetter(
        id=12345, crm="hubspot", object_type="contacts", record_id="901", field="hubspot_owner_id", code="INVALID_OWNER",
        message="owner 77 is inactive", attempts=3, first_seen=NOW, last_seen=NOW, status="open", payload={},
    )
    out = console()
    render_one(letter, out)
    assert_on_one_line(lines_of(out), "dead letter 12345")


def test_experiment_heading_does_not_wrap_at_80_columns(ops: Ops) -> None:
    ops.env["COLUMNS"] = "80"
    ops.env["CONNECTOR_AT"] = WEEKDAY_AFTERNOON
    lines = lines_of(ops.run("report", "experiments", "--offline").stdout)
    assert_on_one_line(lines, "experiment us-west-least-loaded (rule us-west)")
    assert max(len(line) for line in lines) <= 80
