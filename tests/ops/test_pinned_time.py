"""`connector --at` / CONNECTOR_AT: one way to pin "now" for what-if commands, refused by commands that change a CRM."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from connector.cli import main

from .conftest import SATURDAY_NIGHT, WEEKDAY_AFTERNOON, Ops


def test_help_lists_the_global_at_option() -> None:
    out = CliRunner().invoke(main, ["--help"]).stdout
    assert "--at ISO-TIME" in out and "CONNECTOR_AT" in out


@pytest.mark.parametrize("value, message", [
    ("next tuesday", "is not an ISO-8601 date-time"),
    ("2026-12-08T15:00:00", "has no time zone"),
])
def test_a_bad_instant_is_a_usage_error(ops: Ops, value: str, message: str) -> None:
    result = ops.run("--at", value, "status", code=2)
    assert message in result.stderr and value in result.stderr


@pytest.mark.parametrize("command", [["sync", "--once"], ["backfill"], ["serve"], ["errors", "retry", "--all"], ["events", "import", __file__]])
def test_commands_that_change_a_crm_or_the_store_refuse_a_pinned_time(ops: Ops, command: list[str]) -> None:
    result = ops.run("--at", WEEKDAY_AFTERNOON, *command, code=2)
    assert "always runs at the real time" in result.stderr and "unset it" in result.stderr
    assert sum(ops.hubspot.calls.values()) == 0, "nothing reached the CRM"


def test_the_environment_variable_pins_as_the_option_does(ops: Ops) -> None:
    ops.env["CONNECTOR_AT"] = WEEKDAY_AFTERNOON
    assert "always runs at the real time" in ops.run("sync", "--once", code=2).stderr
    report = ops.json("explain", f"hubspot:{ops.ids()[4]}")
    assert report["routing"]["kind"] in ("rule", "fallback", "account_match", "contact_match", "kept")


def _candidates(ops: Ops, at: str, rid: str) -> list[dict[str, object]]:
    report = ops.json("--at", at, "explain", f"hubspot:{rid}")
    return list(report["routing"]["candidates"])


def _rule_routed(ops: Ops) -> str:
    """A contact that rules route (no owner to keep, a free-mail address: no account to match)."""
    free_mail = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com")
    records = {rid: ops.hubspot.get_record("contacts", rid) or {} for rid in ops.ids()}
    return next(rid for rid, r in records.items() if not r.get("hubspot_owner_id") and r["email"].endswith(free_mail))


def test_explain_evaluates_working_hours_at_the_pinned_instant(ops: Ops) -> None:
    rid = _rule_routed(ops)
    weekday = _candidates(ops, WEEKDAY_AFTERNOON, rid)
    assert any(c["eligible"] for c in weekday), weekday
    saturday = _candidates(ops, SATURDAY_NIGHT, rid)
    assert saturday and not any(c["eligible"] for c in saturday), saturday
    assert all(str(c["reason"]).startswith(("outside working hours (", "inactive")) for c in saturday), saturday
    assert any("outside working hours (Sat 02:50 Europe/London)" == c["reason"] for c in saturday), "hours are read in each rep's own zone"


def test_dry_run_backfill_and_status_accept_a_pinned_time(ops: Ops) -> None:
    summary = ops.json("--at", WEEKDAY_AFTERNOON, "backfill", "--dry-run")
    assert summary["dry_run"] is True and summary["fetched"] == len(ops.ids())
    status = ops.json("--at", SATURDAY_NIGHT, "status")
    assert status["budget"]["hubspot"]["day"] == "2026-12-05", "the budget day is the pinned instant's"
