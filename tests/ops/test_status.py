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
