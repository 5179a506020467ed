"""SLA reassignment (a lead not actioned in time goes to the next rep, at most K times) and load release."""

from __future__ import annotations

from datetime import UTC, datetime

from connector.core.clock import FrozenClock
from connector.runners.jobs import sync_once
from connector.sandbox.hubspot import HubSpotSandbox

from .conftest import Env

# A Tuesday mid-afternoon in Europe, morning on the US east coast: most reps are at work.
T0 = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def test_unactioned_leads_are_reassigned_once_the_sla_expires(store_url: str, hubspot: HubSpotSandbox) -> None:
    clock = FrozenClock(T0)
    env = Env(store_url, hubspot, clock=clock)
    try:
        first = sync_once(env.settings, env.store, env.adapters, clock)
        assert first.routed > 0
        assert first.reassigned == 0
        routed = [d for d in (env.store.decisions_for(f"hubspot:contacts:{rid}") for rid in hubspot.records_ids("contacts")) if d]
        # A person takes over one routed lead: its SLA stops.
        taken = next(ds[0] for ds in routed if ds[0].kind == "route" and ds[0].pool)
        taken_id = taken.lead_key.rsplit(":", 1)[1]
        other = next(o["id"] for o in hubspot.owners() if o["id"] != taken.owner_id and o["type"] == "PERSON" and not o["archived"])
        hubspot.person_update("contacts", taken_id, {"hubspot_owner_id": other})

        clock.advance(env.settings.routing.sla.minutes * 60 + 60)
        second = sync_once(env.settings, env.store, env.adapters, clock)
        assert second.reassigned > 0
        reassigned = [
            ds for ds in (env.store.decisions_for(f"hubspot:contacts:{rid}") for rid in hubspot.records_ids("contacts"))
            if any(d.kind == "reassign" for d in ds)
        ]
        assert len(reassigned) == second.reassigned
        for ds in reassigned:
            route, again = ds[0], next(d for d in ds if d.kind == "reassign")
            assert again.rep != route.rep
            record = hubspot.get_record("contacts", again.lead_key.rsplit(":", 1)[1])
            assert record is not None and record["hubspot_owner_id"] == again.owner_id
        assert hubspot.get_record("contacts", taken_id)["hubspot_owner_id"] == other  # type: ignore[index]
        assert not any(d.kind == "reassign" for d in env.store.decisions_for(taken.lead_key))
        # At most max_reassignments per lead, however long nobody acts.
        for _ in range(env.settings.routing.sla.max_reassignments + 2):
            clock.advance(env.settings.routing.sla.minutes * 60 + 60)
            sync_once(env.settings, env.store, env.adapters, clock)
        for ds in reassigned:
            count = sum(d.kind == "reassign" for d in env.store.decisions_for(ds[0].lead_key))
            assert count <= env.settings.routing.sla.max_reassignments
    finally:
        env.close()


def test_archived_lead_releases_its_reps_open_load(env: Env, hubspot: HubSpotSandbox) -> None:
    sync_once(env.settings, env.store, env.adapters, env.clock)
    with env.store.routing_transaction(["load:open"]) as txn:
        before = txn.counters("load:open")
    decision = next(
        d for d in (env.store.decisions_for(f"hubspot:contacts:{rid}") for rid in hubspot.records_ids("contacts")) if d and d[0].rep
    )[0]
    hubspot.archive("contacts", decision.lead_key.rsplit(":", 1)[1])
    sync_once(env.settings, env.store, env.adapters, env.clock)
    sync_once(env.settings, env.store, env.adapters, env.clock)  # a second sweep must not release twice
    with env.store.routing_transaction(["load:open"]) as txn:
        after = txn.counters("load:open")
    assert after[decision.rep] == before[decision.rep] - 1
