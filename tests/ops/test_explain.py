"""`connector explain CRM:ID`: normalized lead, every score point, the routing path and the planned write."""

from __future__ import annotations

import pytest

from .conftest import WEEKDAY_AFTERNOON, Ops


def test_explain_json_accounts_for_every_point_and_the_routing_path(ops: Ops) -> None:
    rid = ops.ids()[4]
    # A weekday afternoon, so that someone in the pool is within working hours whenever the suite runs.
    report = ops.json("--at", WEEKDAY_AFTERNOON, "explain", f"hubspot:{rid}")
    assert report["lead"]["id"] == rid and report["lead"]["crm"] == "hubspot" and report["lead"]["email"]
    assert report["skipped"] is None
    score = report["score"]
    assert score["models"], "at least one model scores every lead"
    for name, model in score["models"].items():
        points = sum(c["points"] for c in model["contributions"])
        assert points == pytest.approx(model["score"], abs=1e-6), f"model {name}: contributions do not add up to the score"
        assert all(c["rule"] and c["source"] for c in model["contributions"])
    assert score["score"] == score["models"][score["model"]]["score"]
    routing = report["routing"]
    assert routing["kind"] in ("rule", "fallback", "account_match", "contact_match", "kept")
    assert routing["reasons"], "the routing path is explained"
    if routing["kind"] in ("rule", "fallback"):
        assert routing["pool"] and routing["candidates"]
        assert any(c["rep"] == routing["rep"] and c["eligible"] for c in routing["candidates"])
        assert all(c["reason"] for c in routing["candidates"] if not c["eligible"]), "every skipped candidate says why"
    patch = report["patch"]
    assert patch["score"]["decision"] == "write" and patch["score"]["new"] == score["score"]
    assert set(patch) >= {"owner_id", "score", "grade", "stage"}
    # explain reads only: nothing was written.
    assert not (ops.hubspot.get_record("contacts", rid) or {}).get(ops.settings().hubspot.score_property)
    with ops.store() as store:
        assert store.decisions_for(f"hubspot:contacts:{rid}") == []


def test_explain_shows_an_owner_locked_by_a_person_and_unchanged_fields(ops: Ops) -> None:
    ops.run("sync", "--once")
    rid = ops.ids()[6]
    before = (ops.hubspot.get_record("contacts", rid) or {})["hubspot_owner_id"]
    other = next(o["id"] for o in ops.hubspot.owners() if o["id"] != before and not o.get("type") == "QUEUE")
    ops.hubspot.person_update("contacts", rid, {"hubspot_owner_id": other})
    report = ops.json("explain", f"hubspot:{rid}")
    owner = report["patch"]["owner_id"]
    assert owner["decision"] == "owner_locked" and owner["current"] == other and owner["new"] is None
    assert owner["reason"]
    assert report["patch"]["score"]["decision"] == "unchanged"
    assert report["routing"]["kind"] == "kept"
    assert [h["kind"] for h in report["history"]] == ["route"]


def test_explain_table_output(ops: Ops) -> None:
    rid = ops.ids()[4]
    out = ops.run("explain", f"hubspot:{rid}").stdout
    assert f"hubspot:{rid}" in out
    for heading in ("model core", "total", "routing", "planned write", "owner", "score"):
        assert heading in out, heading


def test_explain_rejects_a_bad_reference_and_an_unknown_lead(ops: Ops) -> None:
    assert "hubspot:ID or salesforce:ID" in ops.run("explain", "pipedrive:1", code=2).stderr
    assert "was not found" in ops.run("explain", "hubspot:999999", code=2).stderr


def test_explain_reads_as_words_for_a_waiting_lead_at_80_columns(ops: Ops) -> None:
    """No tuples, dicts, `None` or ISO offsets; the waiting lead's owner row says it waits, not "not_configured"."""
    from .conftest import SATURDAY_NIGHT

    ops.env["CONNECTOR_ROUTING__WHEN_UNAVAILABLE"] = "wait"
    ops.env["COLUMNS"] = "80"
    rid = next(r for r in ops.ids()[:20] if ops.json("--at", SATURDAY_NIGHT, "explain", f"hubspot:{r}")["routing"]["kind"] == "wait")
    text = ops.run("--at", SATURDAY_NIGHT, "explain", f"hubspot:{rid}").stdout
    for internal in ("None", "('", "{'", "not_configured", "+00:00", "rule rule"):
        assert internal not in text, internal
    owner_row = next(line for line in text.splitlines() if line.startswith("│ owner "))
    assert "waiting" in owner_row and "no owner until someone can take" in owner_row
    assert "routing: waiting → nobody yet" in text
    reps = [line.split()[0] for line in text.splitlines() if line.startswith(" ") and "@" in line.split()[0]]
    assert reps and len(reps) == len(set(reps)), "each candidate rep is listed once"


def test_a_rep_tried_in_two_pools_is_one_candidate_with_its_best_verdict() -> None:
    from connector.ops.explain import unique_candidates

    tried = [
        {"rep": "a@x.test", "eligible": False, "reason": "at capacity"},
        {"rep": "b@x.test", "eligible": False, "reason": "outside working hours"},
        {"rep": "a@x.test", "eligible": True, "reason": "chosen"},  # again, in the fallback pool
        {"rep": "b@x.test", "eligible": False, "reason": "inactive"},
    ]
    assert unique_candidates(tried) == [
        {"rep": "a@x.test", "eligible": True, "reason": "chosen"},
        {"rep": "b@x.test", "eligible": False, "reason": "outside working hours"},
    ]
