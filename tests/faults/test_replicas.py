"""Three replica processes on one PostgreSQL: 5xx, 429 bursts, kill -9 and human edits, and still every lead once.

One combined scenario: three `tests.faults.worker` processes back-fill a HubSpot sandbox with 10 % injected
5xx, a burst of 429s, five kill -9 of the replica doing the work (each replaced by a fresh process) and owner
edits by people while they run. The default suite runs it on 2,000 leads (100 edits); the full 20,000 leads
with 1,000 edits is marked slow and runs with CONNECTOR_FAULTS_FULL=1 (several minutes on a 2-core machine).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from collections import Counter, defaultdict
from typing import Any

import pytest

from connector.sandbox.hubspot import HubSpotSandbox
from connector.state.store import Store

from .conftest import REPS, Replicas, hubspot_overrides

pytestmark = pytest.mark.postgres

RATE_LIMIT = 90  # calls per 10 s for the account: the connector's limiter and the sandbox's both
KILLS = 5
OWNER = "hubspot_owner_id"
FULL = pytest.mark.skipif(os.environ.get("CONNECTOR_FAULTS_FULL") != "1", reason="the 20,000-lead run needs CONNECTOR_FAULTS_FULL=1")


def max_calls_in_window(times: list[float], window: float = 10.0) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


@pytest.mark.parametrize("leads", [2_000, pytest.param(20_000, marks=[pytest.mark.slow, FULL])])
def test_three_replicas_survive_faults_kills_and_human_edits(pg_store: str, tmp_path: Path, leads: int) -> None:
    rng = random.Random(leads)
    edit_target = min(1000, leads // 20)
    pages = leads // 100
    with HubSpotSandbox(seed=7, contacts=leads, companies=20, leads=0) as sb:
        initial_owner = {rid: (sb.get_record("contacts", rid) or {}).get(OWNER) for rid in sb.records_ids("contacts")}
        owners = [o["id"] for o in sb.owners() if not o["archived"] and o.get("email")]
        sb.requests_per_10s = RATE_LIMIT
        sb.error_rate_5xx = 0.10
        Store.open(pg_store).close()  # schema first; replicas would serialize on the migration lock anyway
        replicas = Replicas({
            "overrides": hubspot_overrides(pg_store, sb.base_url, sb.token, requests_per_10s=RATE_LIMIT),
            "lease_seconds": 2.0, "sleep_scale": 0.1,
        }, tmp_path)
        kill_at = sorted(rng.sample(range(pages // 10, pages * 8 // 10), KILLS))
        burst = (pages // 2, pages // 2 + 3)  # another app of the account eats most of the quota: 429s
        edits: dict[str, str] = {}
        edit_log: list[tuple[str, str]] = []
        seen_changes = 0
        written: list[str] = []
        batches = 0
        pages_by_worker: Counter[int] = Counter()
        try:
            running = {replicas.spawn().pid for _ in range(3)}
            while running:
                event = replicas.next_event()
                assert event["event"] != "aborted", event
                if event["event"] == "exit":
                    running.discard(event["pid"])
                    continue
                if event["event"] != "batch":
                    continue
                batches += 1
                pages_by_worker[event["pid"]] += 1
                sb.requests_per_10s = 5 if burst[0] <= batches < burst[1] else RATE_LIMIT
                # People react to assignments: owner edits on leads the connector has just written.
                changes = list(sb.change_log[seen_changes:])
                seen_changes += len(changes)
                written += [c.record_id for c in changes if c.source == "INTEGRATION" and OWNER in c.properties]
                for _ in range(min(len(written), 6)):
                    if len(edit_log) >= edit_target:
                        break
                    rid = rng.choice(written)
                    value = rng.choice([o for o in owners if o != (sb.get_record("contacts", rid) or {}).get(OWNER)])
                    sb.person_update("contacts", rid, {OWNER: value})
                    edits[rid] = value
                    edit_log.append((rid, value))
                if kill_at and batches >= kill_at[0] and event["pid"] in running:
                    kill_at.pop(0)
                    replicas.kill(event["pid"])  # the replica doing the work, mid-page
                    running.discard(event["pid"])
                    running.add(replicas.spawn().pid)
            codes = replicas.wait_all()
        finally:
            replicas.close()
        assert codes and all(code == 0 for code in codes), [p.read_text()[-3000:] for p in sorted(tmp_path.glob("worker-*.log"))]
        assert len(replicas.killed) == KILLS and not kill_at
        request_times = [t for t, _method, _path, _status in sb.request_log]
        statuses = Counter(status for _t, _m, _p, status in sb.request_log)
        log: list[Any] = list(sb.change_log)
        final = {rid: sb.get_record("contacts", rid) or {} for rid in sb.records_ids("contacts")}

    with Store.open(pg_store) as store:
        routes = store.list_decisions(kinds=["route"])
        dead = store.list_dead_letters(status=None, limit=1000)
        pending = store.count_pending_outbox()

    # Zero lost: every lead was scored, has an owner, and nothing is left to write or dead-lettered.
    assert len(final) == leads
    assert all(rec.get("connector_lead_score") not in (None, "") and rec.get(OWNER) for rec in final.values())
    assert not dead and not pending
    # Zero double-routed: one routing decision per lead, and every lead without an owner got one.
    per_lead = Counter(d.lead_key for d in routes)
    assert max(per_lead.values()) == 1
    unowned = {rid for rid, owner in initial_owner.items() if not owner}
    assert {f"hubspot:contacts:{rid}" for rid in unowned} <= set(per_lead)
    # Zero owners changed after the first write: the connector wrote one owner value per lead, the decided one.
    decided = {d.lead_key.rsplit(":", 1)[1]: d.owner_id for d in routes}
    ours: dict[str, set[str]] = defaultdict(set)
    for change in log:
        if change.source == "INTEGRATION" and OWNER in change.properties:
            ours[change.record_id].add(change.properties[OWNER])
    assert all(values == {decided[rid]} for rid, values in ours.items())
    # Zero overwritten: every person's owner edit stands, and no connector owner write came after one.
    assert len(edit_log) == edit_target
    overwritten = sorted(rid for rid, value in edits.items() if final[rid].get(OWNER) != value)
    assert not overwritten, "people's owner edits overwritten by the connector: " + "; ".join(
        f"{rid}: " + " → ".join(f"{c.source}:{c.properties[OWNER]}" for c in log if c.record_id == rid and OWNER in c.properties)
        for rid in overwritten
    )
    first_edit = {}
    for i, change in enumerate(log):
        if change.source == "CRM_UI" and OWNER in change.properties:
            first_edit.setdefault(change.record_id, i)
    assert not [c for i, c in enumerate(log) if c.source == "INTEGRATION" and OWNER in c.properties
                and c.record_id in first_edit and i > first_edit[c.record_id]]
    # Round-robin fairness held across replicas: the four reps' turns differ by at most one.
    per_rep = Counter(d.rep for d in routes if d.strategy == "round_robin")
    assert set(per_rep) == set(REPS) and max(per_rep.values()) - min(per_rep.values()) <= 1
    # One rate limit for the account across all replicas, 429 bursts included: never above it.
    assert max_calls_in_window(request_times) <= RATE_LIMIT
    assert statuses[502] + statuses[503] > 0 and statuses[429] > 0
    print(f"\nreplicas: {leads} leads, pages per worker process {sorted(pages_by_worker.values(), reverse=True)}, "
          f"kills {len(replicas.killed)}, edits {len(edit_log)}, statuses {dict(statuses)}, "
          f"max calls/10 s {max_calls_in_window(request_times)} (limit {RATE_LIMIT})")
