"""`connector status`: cursors, last successful sync, backlog, API budget used today, dead letters."""

from __future__ import annotations

from .conftest import Ops


def test_status_before_any_run(ops: Ops) -> None:
    data = ops.json("status")
    assert data["cursors"] == [] and data["last_runs"] == {}
    assert data["backlog"] == {"hubspot": {"pending_writes": 0, "waiting_leads": 0}}
    assert data["budget"]["hubspot"]["used"] == 0 and data["dead_letters"] == {"open": 0, "retrying": 0}
    assert "last successful run: never" in ops.run("status").stdout


def test_status_after_a_sync(ops_any_store: Ops) -> None:
    ops = ops_any_store
    ops.hubspot.fail_write_ids[ops.ids()[0]] = ("VALIDATION_ERROR", "Property values were not valid")
    ops.run("sync", "--once")
    data = ops.json("status")
    streams = {(c["crm"], c["object"], c["stream"]) for c in data["cursors"]}
    assert ("hubspot", "contacts", "changed") in streams
    assert data["last_runs"]["sync"]["fetched"] == len(ops.ids())
    assert data["last_runs"]["sync"]["dead_lettered"] == 1
    assert data["backlog"]["hubspot"] == {"pending_writes": 0, "waiting_leads": 0}
    budget = data["budget"]["hubspot"]
    assert budget["used"] > 0 and budget["remaining"] == budget["allowance"] - budget["used"]
    assert data["dead_letters"]["open"] == 1
    text = ops.run("status").stdout
    for part in ("cursors", "last successful sync", "backlog", "API budget hubspot today", "dead letters: 1 open"):
        assert part in text, part


def test_status_counts_waiting_leads_and_pending_writes(ops: Ops) -> None:
    from connector.core.clock import SystemClock
    from connector.core.models import Patch

    now = SystemClock().now()
    with ops.store() as store:
        with store.routing_transaction(["waiting:hubspot"]) as txn:
            txn.set("waiting:hubspot", "101", 1)
            txn.set("waiting:hubspot", "102", 0)
        store.enqueue([Patch(crm="hubspot", object_type="contacts", record_id="103", changes={"score": 5.0})], now)
    assert ops.json("status")["backlog"]["hubspot"] == {"pending_writes": 1, "waiting_leads": 1}


def test_status_shows_cursors_whole_and_in_words_at_80_columns(ops: Ops) -> None:
    ops.run("sync", "--once")
    data = ops.json("status")
    ops.env["COLUMNS"] = "80"
    lines = ops.run("status").stdout.splitlines()
    for cursor in data["cursors"]:
        assert cursor["words"].startswith(f"HubSpot contacts, {'changed' if cursor['stream'] == 'changed' else ''}")
        assert any(line.startswith("  " + cursor["words"].split(",")[0]) for line in lines), lines
        assert f" {cursor['words']}; saved " in " ".join(" ".join(lines).split()), "in words, wrapped but whole"
        assert any(line.strip() == cursor["value"] for line in lines), "the stored cursor is shown whole"
    text = "\n".join(lines)
    assert "+00:00" not in text and "None" not in text and "{'" not in text
    assert all(len(line) <= 80 or len(line.split()) == 1 for line in lines), "only a word longer than the screen"


def test_status_wraps_long_lines_with_a_hanging_indent_at_80_columns() -> None:
    from io import StringIO

    from rich.console import Console

    from connector.ops.status import render_status

    waiting = {"as_of": "2026-12-05T02:50:00+00:00", "leads": 89, "by_cause": {"outside_hours": 80, "at_capacity": 9},
               "oldest_since": "2026-12-05T02:50:00+00:00", "oldest_lead": "hubspot:1",
               "next_available_at": "2026-12-07T06:00:00+00:00", "next_available_rep": "eli.sales@example-corp.test", "due": 0}
    data = {
        "store": "sqlite:///connector-state.db",
        "cursors": [{"words": "HubSpot contacts, archived or deleted since 2026-12-05 02:50 UTC",
                     "updated_at": "2026-12-05T02:50:00+00:00", "value": '{"after":null,"since_ms":1796439000290,"v":1}'}],
        "last_runs": {"sync": {"at": "2026-12-05T02:50:00+00:00", "fetched": 120, "leads": 120, "routed": 20,
                               "routed_by": {"account_match": 20}, "waiting": 89, "written": 120, "dead_lettered": 0}},
        "last_stopped_run": None, "backlog": {"hubspot": {"pending_writes": 0, "waiting_leads": 89}}, "waiting": waiting,
        "pending_intake": 0, "intake_retrying": {"items": 0},
        "budget": {"hubspot": {"day": "2026-12-05", "used": 11, "allowance": 500_000, "remaining": 499_989, "share": 0.5,
                               "daily_limit": 1_000_000}},
        "dead_letters": {"open": 0, "retrying": 0},
    }
    out = StringIO()
    render_status(data, Console(file=out, width=80, color_system=None))
    lines = out.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    waiting_at = next(i for i, line in enumerate(lines) if line.startswith("waiting leads: 89 ("))
    assert lines[waiting_at + 1].startswith("    ") and lines[waiting_at + 1][4] != " ", "a hanging indent of 4"
    assert any(line.startswith("  HubSpot contacts, archived") for line in lines)
    assert any(line.startswith("      saved 2026-12-05 02:50 UTC") for line in lines), "the cursor's words hang under it"
    words = " ".join(out.getvalue().split())
    for part in ("(in 2d 3h 10m)", "eli.sales@example-corp.test at Mon 2026-12-07 06:00 UTC", "499,989 left (50% of the daily limit 1,000,000)",
                 "routed 20 (account match 20), waiting 89, written 120, dead-lettered 0)"):
        assert part in words, part
    assert '    {"after":null,"since_ms":1796439000290,"v":1}' in lines, "the stored cursor whole, on its own line"
