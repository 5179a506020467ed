"""One record's writes leave in the order they were decided, even with two replicas flushing the outbox at once.

The review's probe (issue 19): replica A claimed a lead's older owner write; replica B claimed the newer one
for the same lead and sent it; A's request left last, so the CRM kept the older owner; B then recorded the
newer owner as written, and the next diff read the CRM's (older, connector-written) owner as a person's edit.
The interleaving is forced with a guard hook that runs replica B while A's request waits to leave.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from connector.adapters.base import NoGuard
from connector.adapters.hubspot.adapter import HubSpotAdapter
from connector.core.clock import FrozenClock
from connector.core.models import FieldDecision, Patch, WriteResult
from connector.engine.diff import Desired, DiffRules, plan_write
from connector.pipeline.outbox import send
from connector.pipeline.stages import write
from connector.sandbox.hubspot import HubSpotSandbox
from connector.state.store import Store
from tests.pipeline.conftest import settings_for

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
OWNER = "hubspot_owner_id"


class HookBeforeWrite(NoGuard):
    """A guard that runs `meanwhile` (the other replica) while this replica's first write request waits to leave."""

    def __init__(self) -> None:
        self.meanwhile: list[Callable[[], Any]] = []

    def before(self, endpoint: str, kind: str) -> None:
        while kind == "write" and self.meanwhile:
            self.meanwhile.pop(0)()


@pytest.fixture
def sandbox() -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(seed=5, contacts=4, companies=1, leads=0) as sb:
        yield sb


def test_a_records_older_write_never_lands_after_its_newer_one(store_url: str, sandbox: HubSpotSandbox) -> None:
    settings = settings_for(store_url, sandbox).hubspot
    rid = next(r for r in sandbox.records_ids("contacts") if not (sandbox.get_record("contacts", r) or {}).get(OWNER))
    first, second = [o["id"] for o in sandbox.owners() if not o["archived"]][:2]
    guard = HookBeforeWrite()
    replica_a = HubSpotAdapter(settings, guard=guard, clock=FrozenClock(NOW))
    replica_b = HubSpotAdapter(settings, clock=FrozenClock(NOW))
    b_outcomes: list[tuple[int, Patch, WriteResult]] = []
    with Store.open(store_url) as store_a, Store.open(store_url, migrate=False) as store_b:
        # Routed to `first` (A claims that write), then, while A's request waits to leave, B decides `second`
        # (an SLA reassignment): two pending writes for one record, in that order, held by two replicas.
        store_a.enqueue([Patch("hubspot", "contacts", rid, changes={"owner_id": first}, current={"owner_id": None})], NOW)

        def replica_b_sends() -> None:
            store_b.enqueue([Patch("hubspot", "contacts", rid, changes={"owner_id": second}, current={"owner_id": None})], NOW)
            # B claims and sends while A's (older) write is still on its way; B records its outcome last.
            b_outcomes.extend(send(replica_b, store_b.claim_outbox("hubspot", "b", NOW, lease_seconds=120)))

        guard.meanwhile = [replica_b_sends]
        write(store_a, replica_a, NOW, worker="a", lease_seconds=120)
        store_b.complete_outbox(b_outcomes, NOW)
        write(store_b, replica_b, NOW, worker="b", lease_seconds=120)  # whatever B had to leave pending
        assert store_b.count_pending_outbox() == {}
        written = store_b.get_lead_states([f"hubspot:contacts:{rid}"])[f"hubspot:contacts:{rid}"].written

    sent = [c.properties[OWNER] for c in sandbox.change_log if c.record_id == rid and OWNER in c.properties]
    assert sent == [first, second], "one record's writes must reach the CRM in the order they were decided"
    [lead] = replica_b.fetch_by_ids([rid])
    assert lead.owner_id == second and written["owner_id"] == second
    # The next sync's diff sees the connector's own value, not a person's edit.
    patch = plan_write(lead, Desired(owner_id=second), written, DiffRules())
    assert patch.decisions["owner_id"] is FieldDecision.UNCHANGED and not patch.changes
