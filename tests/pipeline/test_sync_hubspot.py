"""`sync --once` end to end on the HubSpot sandbox, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from connector.runners.jobs import sync_once
from connector.sandbox.hubspot import HubSpotSandbox

from .conftest import Env


def contact(hubspot: HubSpotSandbox, rid: str) -> dict[str, str]:
    record = hubspot.get_record("contacts", rid)
    assert record is not None
    return record


def test_sync_scores_routes_and_writes_every_lead_once(env: Env, hubspot: HubSpotSandbox) -> None:
    summary = sync_once(env.settings, env.store, env.adapters, env.clock)
    assert summary.aborted is None
    ids = sorted(hubspot.records_ids("contacts"), key=int)
    assert summary.fetched == len(ids)
    owners = {o["id"] for o in hubspot.owners()}
    score_prop = env.settings.hubspot.score_property
    grade_prop = env.settings.hubspot.grade_property
    for rid in ids:
        rec = contact(hubspot, rid)
        assert rec.get("hubspot_owner_id") in owners, f"contact {rid} has no valid owner"
        assert rec.get(score_prop) not in (None, ""), f"contact {rid} has no score"
        assert rec.get(grade_prop) in ("hot", "warm", "cold"), f"contact {rid} grade {rec.get(grade_prop)!r}"
    # One routing decision per lead, never two [architecture: One owner per lead].
    for rid in ids[:25]:
        routes = [d for d in env.store.decisions_for(f"hubspot:contacts:{rid}") if d.kind == "route"]
        assert len(routes) <= 1


def test_second_run_writes_nothing(env: Env, hubspot: HubSpotSandbox) -> None:
    sync_once(env.settings, env.store, env.adapters, env.clock)
    hubspot.reset_calls()
    again = sync_once(env.settings, env.store, env.adapters, env.clock)
    assert again.written == 0
    assert again.routed == 0
    assert hubspot.calls["contacts.batch_update"] == 0


def test_a_persons_owner_change_is_kept(env: Env, hubspot: HubSpotSandbox) -> None:
    sync_once(env.settings, env.store, env.adapters, env.clock)
    rid = sorted(hubspot.records_ids("contacts"), key=int)[3]
    before = contact(hubspot, rid)["hubspot_owner_id"]
    other = next(o["id"] for o in hubspot.owners() if o["id"] != before)
    hubspot.person_update("contacts", rid, {"hubspot_owner_id": other})
    summary = sync_once(env.settings, env.store, env.adapters, env.clock)
    assert contact(hubspot, rid)["hubspot_owner_id"] == other
    assert summary.routed == 0


def test_partial_failure_dead_letters_only_the_failed_records(env: Env, hubspot: HubSpotSandbox) -> None:
    ids = sorted(hubspot.records_ids("contacts"), key=int)
    bad = ids[:3]
    for rid in bad:
        hubspot.fail_write_ids[rid] = ("VALIDATION_ERROR", "Property values were not valid")
    summary = sync_once(env.settings, env.store, env.adapters, env.clock)
    assert summary.dead_lettered == 3
    letters = env.store.list_dead_letters()
    assert sorted(d.record_id for d in letters) == sorted(bad)
    assert all(d.code == "VALIDATION_ERROR" for d in letters)
    good = ids[3:]
    assert all(contact(hubspot, rid).get(env.settings.hubspot.score_property) for rid in good)
    assert summary.written == len(ids) - 3
